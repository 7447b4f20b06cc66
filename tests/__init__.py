"""The test suite: unit tests of the domain, and integration tests on SQLite and PostgreSQL."""
