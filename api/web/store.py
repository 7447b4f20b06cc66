"""The web tables, next to the read models: credentials, sessions and sign-in records.

They are not read models (the log cannot rebuild a password hash), so no projection owns them
and a rebuild leaves them alone. Secrets never enter the event log: a credential row holds an
argon2id hash and a TOTP secret sealed under the master key; a session row holds the SHA-256
of the cookie value, never the value.
"""

from __future__ import annotations

from projections.db import PostgresDatabase, SqliteDatabase

Database = SqliteDatabase | PostgresDatabase

TABLES = (
    """CREATE TABLE IF NOT EXISTS web_credentials (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        totp_sealed TEXT NOT NULL,
        totp_last_step INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS web_sessions (
        session_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_seen TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS web_signins (
        at TEXT NOT NULL,
        user_id TEXT,
        username TEXT,
        outcome TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS web_signins_at ON web_signins (at)",
)


def create_tables(db: Database) -> None:
    with db.transaction() as tx:
        for statement in TABLES:
            tx.execute(statement)
