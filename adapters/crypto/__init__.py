"""Per-case encryption: case keys wrapped by a master key, and the mapper that uses them.

Identifying fields of a case's events are encrypted with AES-256-GCM under a key of that case;
destroying the key erases them while every other field, the statistics and the hash chain stay.
"""
