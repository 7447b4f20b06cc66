"""First look at the HTTP API end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import Harness, harness


@pytest.fixture
def http(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(database_url, tmp_path) as h:
        yield h


def test_open_and_read(http: Harness) -> None:
    case_id, _ = http.open_case("ngo")
    r = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo"))
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"1"'
    r = http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo"))
    assert r.status_code == 200, r.text
    assert r.json()["events"][0]["payload"]["given_name"] == "Mali"
    r = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo2"))
    assert r.status_code == 404
    r = http.client.get(f"/cases?min_position={http.latest()}", headers=http.headers("ngo"))
    assert r.status_code == 200, r.text
    assert [i["case_id"] for i in r.json()["items"]] == [case_id]
