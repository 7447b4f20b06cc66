"""Integration tests: the real adapters on SQLite and PostgreSQL, and the real HTTP app."""
