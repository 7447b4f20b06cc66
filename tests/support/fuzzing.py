"""Schemathesis against the app's own OpenAPI document, in-process, as every kind of caller.

`FuzzRun` drives every operation of `app.openapi()` with schemathesis' positive and negative
cases, with every check schemathesis has, once per identity (each agency kind, each role), and
replays real case ids (the caller's own and other agencies') into path parameters. Besides
schemathesis' checks it asserts, against `referral_core.policy`, that no response carries data
outside the caller's view: another agency's case answers a 404 problem, and lists name only
cases the caller may see.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.python import asgi

from adapters.auth import issue_token
from referral_core.directory import Directory
from referral_core.policy import Principal, access_of
from referral_core.vocab import Role
from tests.support.api import SYSTEM, Harness, agency
from tests.support.builders import example

# Roles the harness does not seed, added where the domain gives them work.
EXTRA_ROLES: tuple[tuple[str, Role], ...] = (
    ("ministry", Role.DATA_PROTECTION_OFFICER),
    ("coordinator", Role.DATA_PROTECTION_OFFICER),
    ("ngo", Role.ADMIN),
)
CASE_PARAMETER = "case_id"
PROBLEM = "urn:referral:problem:"
# The document cannot say which payload fits which event type, which as_of or stats dimension
# exists, or which If-Match is current: the domain answers those with a 412/422/428 problem
# (`check_problem` below insists a schema-valid request never fails the framework's own
# validation). 504 is read-your-writes timing out: `check_problem` allows it only for a
# `min_position` beyond the end of the log.
CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": [
                    "2xx",
                    "401",
                    "403",
                    "404",
                    "409",
                    "412",
                    "422",
                    "428",
                    "504",
                ]
            },
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "504"]},
        }
    }
)
AGENCY_PARAMETER = "agency_id"
EVENTS = "/cases/{case_id}/events"
# Supervisors break the glass on any case, and data protection officers erase any case, by
# design (DESIGN.md): those two act on a case by id without seeing it first.
BY_ID = frozenset({"/cases/{case_id}/break-glass", "/cases/{case_id}/erase"})
LISTS = frozenset({"/cases", "/inbox", "/shelters/{agency_id}/roster"})


@dataclass(frozen=True)
class Identity:
    """One caller the fuzzer speaks as."""

    name: str
    role: str
    token: str

    @property
    def label(self) -> str:
        return f"{self.name}/{self.role}"


@dataclass
class Tally:
    """What one run tried and found."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return f"{self.requests} requests ({statuses}); {len(self.failures)} failures"

    def add(self, other: Tally) -> None:
        self.requests += other.requests
        self.statuses.update(other.statuses)
        self.failures.extend(other.failures)


def identities(h: Harness) -> list[Identity]:
    """Every seeded caller (each agency kind, caseworker and supervisor) and the extra roles."""
    found = [Identity(name, role, token) for (name, role), token in sorted(h.tokens.items())]
    for name, role in EXTRA_ROLES:
        user = uuid4()
        agency_id = UUID(agency(name))
        h.services.app.change_directory(
            partial(_add_user, user=user, agency_id=agency_id, role=role, name=name)
        )
        _tid, token = issue_token(h.services.app, user, ttl=timedelta(days=1), actor=SYSTEM)
        h.tokens[(name, role.value)] = token
        found.append(Identity(name, role.value, token))
    return found


def _add_user(d: Directory, *, user: UUID, agency_id: UUID, role: Role, name: str) -> None:
    d.add_user(user, agency_id, role, f"{name} {role.value}", SYSTEM)


def seed_cases(h: Harness) -> list[str]:
    """Cases led by several agencies, with a referral and a report so relations exist."""
    case_ids: list[str] = []
    for name in ("ngo", "ngo2", "social", "protection"):
        case_id, _ = h.open_case(name)
        case_ids.append(case_id)
    hotline_case, _ = h.open_case("hotline", "ContactReceived")
    case_ids.append(hotline_case)
    first, version = case_ids[0], 1
    consent = h.append(
        first, version=version, event_type="ConsentRecorded", payload=example("ConsentRecorded")
    )
    assert consent.status_code == 201, consent.text
    version = consent.json()["version"]
    referral = h.append(
        first,
        version=version,
        event_type="ReferralSent",
        payload=example("ReferralSent", to_agency_id=agency("shelter")),
        legal_basis="Child Protection Act s.20",
    )
    assert referral.status_code == 201, referral.text
    version = referral.json()["version"]
    report = h.append(
        first,
        version=version,
        event_type="ReportedToLawEnforcement",
        payload=example("ReportedToLawEnforcement", receiving_unit_agency_id=agency("police")),
        legal_basis="Criminal Procedure Code",
    )
    assert report.status_code == 201, report.text
    return case_ids


def all_checks() -> list[Any]:
    """Every check schemathesis registers, response checks and stateful ones alike."""
    load_all_checks()
    return list(CHECKS.get_all())


@dataclass
class FuzzRun:
    """A harness with seeded cases and callers, and the schemathesis schema of its app."""

    h: Harness
    case_ids: list[str]
    callers: list[Identity]
    schema: Any = None
    missing: str = field(default_factory=lambda: str(uuid4()))

    def __post_init__(self) -> None:
        app: Any = self.h.client.app
        self.schema = schemathesis.openapi.from_dict(app.openapi(), config=CONFIG)
        self.schema.app = app

    def principal(self, who: Identity) -> Principal:
        return self.h.services.resolver.resolve(who.token)

    def visible(self, who: Identity, case_id: str) -> bool:
        """Whether the domain policy lets `who` see the case now (break-glass included)."""
        services = self.h.services
        try:
            case = services.app.get_case(UUID(case_id))
        except Exception:  # noqa: BLE001 -- a missing case is not visible
            return False
        principal = self.principal(who)
        now = services.app.clock()
        until = services.directory.current().active_break_glass(principal.user_id, case_id, now)
        return bool(access_of(principal, case, break_glass_until=until, now=now).relations)

    def version(self, case_id: str) -> int:
        try:
            return int(self.h.services.app.get_case(UUID(case_id)).version)
        except Exception:  # noqa: BLE001 -- a made-up id: any version will do
            return 1

    def operations(self) -> list[Any]:
        return [result.ok() for result in self.schema.get_all_operations()]

    def fuzz(self, who: Identity, examples: int, modes: tuple[GenerationMode, ...]) -> Tally:
        """Every operation, in the given generation modes, as `who`."""
        tally = Tally()
        for operation in self.operations():
            for mode in modes:
                strategy = operation.as_strategy(generation_mode=mode)
                tally.add(self._drive(operation, strategy, st.just(who), examples))
        return tally

    def replay_examples(self, examples: int, lead: Identity) -> Tally:
        """The document's own examples (one per event type), as the lead agency of the first
        seeded case and as every other caller in turn."""
        tally = Tally()
        turn = 0
        for operation in self.operations():
            for strategy in operation.get_strategies_from_examples():
                other = self.callers[turn % len(self.callers)]
                turn += 1
                for who in (lead, other):
                    tally.add(self._drive(operation, strategy, st.just(who), examples))
        return tally

    def _drive(self, operation: Any, strategy: Any, callers: Any, examples: int) -> Tally:
        tally = Tally()
        checks = all_checks()
        path = operation.path or ""
        pool = [*self.case_ids, self.missing]

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy, who=callers)
        def run(case: Any, who: Identity) -> None:
            positive = case.meta is None or case.meta.generation.mode.is_positive
            # Which real case id (or the made-up one) to replay: a function of the drawn data,
            # so a failing example replays the same way while shrinking.
            pick = zlib.crc32(f"{who.label}{case.query}{case.body}{case.headers}".encode())
            if CASE_PARAMETER in path and positive and pick % 8:
                case.path_parameters[CASE_PARAMETER] = pool[pick % len(pool)]
            if path == EVENTS and case.method.upper() == "POST" and positive and pick % 4:
                # Mostly the current version, so appends reach the domain's rules.
                case.headers["If-Match"] = (
                    f'"{self.version(case.path_parameters[CASE_PARAMETER])}"'
                )
            if AGENCY_PARAMETER in path and positive and pick % 2:
                case.path_parameters[AGENCY_PARAMETER] = agency("shelter")
            negated = not _authorize(case, who, positive=positive)
            response = case.call()
            tally.requests += 1
            tally.statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=checks)
                self.check_problem(case, response)
                if not negated:
                    self.check_view(who, case, response)
            except BaseException as exc:
                tally.failures.append(f"{who.label} {operation.label}: {str(exc)[:2000]}")
                raise

        with suppress(Unsatisfiable):  # nothing in this operation can be negated
            run()
        return tally

    def check_problem(self, case: Any, response: Any) -> None:
        """Every error is an RFC 9457 problem with our type; no 5xx but a read-model wait."""
        status = response.status_code
        if status < 400:
            return
        assert _header(response, "content-type") == "application/problem+json", status
        body = json.loads(response.content)
        assert body["type"].startswith(PROBLEM), body
        assert body["status"] == status, body
        meta = case.meta
        positive = meta is not None and meta.generation.mode.is_positive
        if positive:
            assert body["type"] != PROBLEM + "invalid-request", f"schema-valid but {body}"
        if status >= 500:
            assert status == 504, body
            assert body["type"] == PROBLEM + "read-model-behind", body
            wanted = int(case.query["min_position"])
            assert wanted > self.h.latest(), f"a 504 for a reachable position {wanted}"

    def check_view(self, who: Identity, case: Any, response: Any) -> None:
        """No data outside the caller's view: 404 for an unseen case, lists of seen cases only."""
        status = response.status_code
        path = case.operation.path
        case_id = case.path_parameters.get(CASE_PARAMETER)
        if isinstance(case_id, str) and path not in BY_ID and not self.visible(who, case_id):
            assert not 200 <= status < 300, f"{who.label} got {status} for an unseen case"
            if status == 404:
                assert json.loads(response.content)["type"] == PROBLEM + "not-found"
        if status != 200 or path not in LISTS or who.name == "auditor":
            return
        if _header(response, "content-type") != "application/json":
            return
        unseen = self.unseen(who, json.loads(response.content))
        if unseen:
            # The read models may trail the log: catch them up, ask again, judge that answer.
            self.h.services.runner.wait_for(self.h.latest(), 5)
            again = self.h.client.get(response.request.url, headers=dict(response.request.headers))
            unseen = self.unseen(who, again.json()) if again.status_code == 200 else set()
        assert not unseen, f"{who.label} was shown cases outside its view: {unseen}"

    def unseen(self, who: Identity, body: Any) -> set[str]:
        return {case_id for case_id in _case_ids(body) if not self.visible(who, case_id)}


def _authorize(case: Any, who: Identity, *, positive: bool) -> bool:
    """Put `who`'s token on the case, unless a negative case breaks Authorization on purpose.

    Schemathesis fills the bearer scheme with a made-up token; a positive case, or a negative
    one whose token is merely made up, gets the caller's real one instead.
    """
    sent = case.headers.get("Authorization")
    if positive or (isinstance(sent, str) and sent.startswith("Bearer ")):
        case.headers["Authorization"] = f"Bearer {who.token}"
        return True
    return False


def _case_ids(body: Any) -> Iterator[str]:
    """Every `case_id` anywhere in a JSON body."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key == CASE_PARAMETER and isinstance(value, str):
                yield value
            else:
                yield from _case_ids(value)
    elif isinstance(body, list):
        for item in body:
            yield from _case_ids(item)


def _header(response: Any, name: str) -> str:
    """A response header from schemathesis' response (its headers map names to lists)."""
    values = response.headers.get(name) or [""]
    return str(values[0])


@contextmanager
def lifespans() -> Iterator[None]:
    """Stop the lifespans schemathesis' in-process transport started, before the harness goes."""
    try:
        yield
    finally:
        asgi.shutdown_lifespans()
