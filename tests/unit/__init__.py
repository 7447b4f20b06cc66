"""Unit tests: the pure domain and pure helpers, no database, no server."""
