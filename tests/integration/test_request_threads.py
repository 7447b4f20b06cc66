"""Request threads: REFERRAL_THREADS sizes each worker's pool, and a read waiting for the read
models (`?min_position=`) holds none of them, on SQLite and PostgreSQL through the real app."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio.to_thread

from tests.support.api import agency, harness

WAIT = 2.0  # REFERRAL_READ_WAIT_SECONDS in these tests
WAITING_READS = 3


def _pool_size() -> int:
    return anyio.to_thread.current_default_thread_limiter().total_tokens  # type: ignore[return-value]


def test_waiting_reads_leave_the_request_threads_free(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path, threads=1, read_wait_seconds=WAIT) as http:
        assert http.client.portal is not None
        assert http.client.portal.call(_pool_size) == 1
        case_id, _version = http.open_case()
        ahead = http.latest() + 1_000  # a position nobody appends in this test
        shelter = agency("shelter")
        waiting = [
            f"/inbox?min_position={ahead}",
            f"/cases?min_position={ahead}",
            f"/shelters/{shelter}/roster?min_position={ahead}",
        ]
        with ThreadPoolExecutor(WAITING_READS) as pool:
            started = time.monotonic()
            reads = [
                pool.submit(http.client.get, path, headers=http.headers(name))
                for path, name in zip(waiting, ("ngo", "ngo", "shelter"), strict=True)
            ]
            time.sleep(0.3)  # the three reads are waiting by now
            answered = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo"))
            took = time.monotonic() - started
            still_waiting = [not r.done() for r in reads]
            results = [r.result() for r in reads]
            waited = time.monotonic() - started
        # One request thread, three reads waiting on it would have kept this one out for WAIT.
        assert answered.status_code == 200
        assert took < WAIT / 2, took
        assert still_waiting == [True] * WAITING_READS
        assert [r.status_code for r in results] == [504] * WAITING_READS
        assert all(r.json()["type"].endswith("read-model-behind") for r in results)
        assert waited >= WAIT


def test_a_refusal_still_comes_before_the_timeout(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path, read_wait_seconds=0.2) as http:
        ahead = http.latest() + 1_000
        roster = http.client.get(
            f"/shelters/{agency('shelter')}/roster?min_position={ahead}",
            headers=http.headers("ngo"),
        )
        export = http.client.get(
            f"/exports/ctdc.csv?min_position={ahead}", headers=http.headers("ngo")
        )
        stats = http.client.get(
            f"/stats?by=nonsense&min_position={ahead}", headers=http.headers("ministry")
        )
        reached = http.client.get(
            f"/inbox?min_position={http.latest()}", headers=http.headers("ngo")
        )
    assert (roster.status_code, export.status_code, stats.status_code) == (403, 403, 422)
    assert reached.status_code == 200


def test_unauthenticated_reads_are_refused_without_waiting(
    database_url: str, tmp_path: Path
) -> None:
    with harness(database_url, tmp_path, read_wait_seconds=WAIT) as http:
        started = time.monotonic()
        response = http.client.get(f"/inbox?min_position={http.latest() + 1_000}")
        took = time.monotonic() - started
    assert response.status_code == 401
    assert took < WAIT / 2
