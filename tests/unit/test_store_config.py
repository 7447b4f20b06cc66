"""REFERRAL_DATABASE_URL parsing: the one setting that picks SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.store import ConfigurationError, parse_database_url


def test_sqlite_url_maps_to_file_and_creates_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "referral.sqlite"
    config = parse_database_url(f"sqlite:///{path}")
    assert config.kind == "sqlite"
    assert config.env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert config.env["SQLITE_DBNAME"] == str(path)
    assert path.parent.is_dir()


def test_relative_sqlite_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = parse_database_url("sqlite:///var/referral.sqlite")
    assert config.env["SQLITE_DBNAME"] == "var/referral.sqlite"
    assert (tmp_path / "var").is_dir()


def test_postgres_url_maps_every_part() -> None:
    config = parse_database_url(
        "postgresql://alice:s%40cret@db.example:6543/referral?schema=nrm", pool_size=7
    )
    assert config.is_postgres
    env = config.env
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"]) == (
        "db.example",
        "6543",
        "referral",
    )
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("alice", "s@cret")
    assert env["POSTGRES_SCHEMA"] == "nrm"
    assert env["POSTGRES_POOL_SIZE"] == "7"
    assert env["POSTGRES_ENABLE_DB_FUNCTIONS"] == "n"


def test_postgres_defaults() -> None:
    env = parse_database_url("postgresql://127.0.0.1/referral").env
    assert (env["POSTGRES_PORT"], env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == (
        "5432",
        "postgres",
        "",
    )
    assert "POSTGRES_SCHEMA" not in env


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@localhost/db",
        "sqlite://relative/path",
        "sqlite:///",
        "postgresql://host:notaport/db",
        "postgresql://host:5432/",
        "postgresql:///db",
        "postgresql://h/db?schema=bad;drop",
        "not a url at all",
    ],
)
def test_bad_urls_are_one_line_errors_naming_the_setting(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_database_url(url)
    message = str(raised.value)
    assert message.startswith("REFERRAL_DATABASE_URL is invalid")
    assert "\n" not in message


def test_error_never_shows_the_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_database_url("postgresql://alice:hunter2@h:bad/db")
    assert "hunter2" not in str(raised.value)
