"""Fixtures: the application and the read models' database on SQLite and on PostgreSQL,
through the real adapters."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from adapters.crypto.master import MASTER_KEYS_SETTING, generate_master_key_entry
from adapters.integrity.tree_head import generate_signing_key_pem
from adapters.store import build_application
from projections.db import PostgresDatabase, SqliteDatabase, open_database
from referral_core.application import ReferralApplication
from tests.support import postgres
from tests.support.builders import MovableClock

settings.register_profile("default", deadline=None, max_examples=60)
settings.register_profile("fuzz", deadline=None, max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session", autouse=True)
def generated_keys() -> Iterator[dict[str, str]]:
    """A master key and a tree-head signing key generated for this run, in the environment
    every store, read model and worker process of the suite is built from."""
    keys = {
        MASTER_KEYS_SETTING: generate_master_key_entry("test1"),
        "REFERRAL_SIGNING_KEY": generate_signing_key_pem(),
    }
    previous = {name: os.environ.get(name) for name in keys}
    os.environ.update(keys)
    yield keys
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of the suite's PostgreSQL database; never skipped, never silently absent."""
    admin = os.environ.get("REFERRAL_TEST_DATABASE_URL", postgres.DEFAULT_URL)
    server = None
    if not postgres.answers(admin):
        bindir = postgres.find_binaries()
        if bindir is None:
            pytest.exit(postgres.HOW_TO_GET_POSTGRES, returncode=3)
        server = postgres.ThrowawayServer.start(bindir)
        admin = server.url
    yield postgres.ensure_test_database(admin)
    if server is not None:
        server.stop()


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A fresh schema in the suite's database, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    postgres.create_schema(postgres_url, schema)
    yield f"{postgres_url}?schema={schema}"
    postgres.drop_schema(postgres_url, schema)


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store: one run on SQLite, one on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'referral.sqlite'}"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def app(database_url: str, clock: MovableClock) -> Iterator[ReferralApplication]:
    """The application on a fresh store, with a clock the test can move."""
    application = build_application(database_url, clock=clock)
    yield application
    application.close()


@pytest.fixture
def db(database_url: str) -> Iterator[SqliteDatabase | PostgresDatabase]:
    """The read models' database on the same store."""
    database = open_database(database_url)
    yield database
    database.close()
