"""`referral projections run` as a process: stops on SIGTERM, survives SIGKILL exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from adapters.store import build_application
from projections.db import open_database
from projections.registry import all_projections
from projections.runner import read_position, rebuild
from referral_core import synthetic
from tests.support.builders import NOW
from tests.support.readmodels import table_rows

ROOT = Path(__file__).resolve().parents[2]


def _worker(database_url: str, batch: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REFERRAL_DATABASE_URL": database_url,
        "REFERRAL_PROJECTION_BATCH_SIZE": str(batch),
        "REFERRAL_LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli", "projections", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _position(database_url: str) -> int:
    db = open_database(database_url)
    try:
        with db.reading() as tx:  # not the write lock: the worker would starve this poll
            return min(read_position(tx, p.name) for p in all_projections())
    except Exception:  # noqa: BLE001 -- tables may not exist yet
        return 0
    finally:
        db.close()


def _wait_for(database_url: str, position: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _position(database_url) < position:
        assert time.monotonic() < deadline, "the worker did not catch up"
        time.sleep(0.1)


def test_worker_survives_sigkill_and_stops_on_sigterm(database_url: str) -> None:
    app = build_application(database_url)
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=80, seed=11, now=NOW - timedelta(minutes=1))
    last = app.recorder.max_notification_id() or 0

    first = _worker(database_url, batch=1)
    deadline = time.monotonic() + 60
    while _position(database_url) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    reached = _position(database_url)
    assert 0 < reached < last, "the kill should land in the middle of the backlog"

    second = _worker(database_url, batch=25)
    try:
        _wait_for(database_url, last)
        synthetic.generate_cases(app, cases=3, seed=12, now=NOW)
        _wait_for(database_url, app.recorder.max_notification_id() or 0)
    finally:
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=20)
    assert second.returncode == 0, output.decode()
    assert b"projections stopped" in output

    db = open_database(database_url)
    live = {p.name: table_rows(db, p) for p in all_projections()}
    rebuild(app, db, all_projections(), swap=False, suffix="_check")
    for projection in all_projections():
        assert table_rows(db, projection, "_check") == live[projection.name]
    db.close()
    app.close()
