"""Several agencies act on cases in random order; a small model predicts what each may do and see.

The model is written from DESIGN.md's "Who sees what", independently of `referral_core.policy`:
the API must agree with it on every decision and never return an event outside the model's view.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.support.api import Harness, agency, harness
from tests.support.builders import NOW, example

ACTORS = ("ngo", "ngo2", "shelter", "police", "guardian")
SERVICES_SCOPE = ("services",)


def _service(kind: str, extra: dict[str, Any], services: set[str]) -> bool:
    return kind == "ServiceDelivered" and extra["service"] in services


# What each relation sees besides its own events and the referrals addressed to it.
SEEN_BY: dict[str, Any] = {
    "shelter": lambda kind, extra: (
        kind in ("ChildIdentified", "ChildSheltered", "PlacementEnded")
        or _service(kind, extra, {"education"})
    ),
    "police": lambda kind, _extra: kind in ("ChildIdentified", "ReportedToLawEnforcement"),
    "receiver": lambda kind, extra: _service(kind, extra, {"education"}),
    "pending": lambda kind, extra: _service(kind, extra, {"education"}),
}


@dataclass
class Referral:
    event_id: str
    to: str
    status: str = "pending"


@dataclass
class ModelCase:
    case_id: str
    version: int = 1
    lead: str = "ngo"
    referrals: list[Referral] = field(default_factory=list)
    shelter: str | None = None
    reported_to: set[str] = field(default_factory=set)
    # (version, type, author, extra) of every event, for predicting views.
    events: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)

    def relations(self, who: str) -> set[str]:
        found = set()
        if who == self.lead:
            found.add("lead")
        if any(r.to == who and r.status == "accepted" for r in self.referrals):
            found.add("receiver")
        if any(r.to == who and r.status == "pending" for r in self.referrals):
            found.add("pending")
        if self.shelter == who:
            found.add("shelter")
        if who in self.reported_to:
            found.add("police")
        return found

    def expected_view(self, who: str) -> set[int]:
        """Versions `who` may see, by DESIGN.md's audiences."""
        relations = self.relations(who)
        if not relations:
            return set()
        if "lead" in relations:
            return {v for v, *_ in self.events}
        return {
            version
            for version, kind, author, extra in self.events
            if author == who
            or extra.get("to") == who
            or any(SEEN_BY[r](kind, extra) for r in relations if r in SEEN_BY)
        }


class AgenciesAtWork(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cases: list[ModelCase] = []
        self.http: Harness

    @initialize()
    def start(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self._context = harness(
            f"sqlite:///{Path(self._tmp.name) / 'm.sqlite'}", Path(self._tmp.name)
        )
        self.http = self._context.__enter__()
        self.http.clock.now = NOW + timedelta(hours=1)

    def teardown(self) -> None:
        if hasattr(self, "_context"):
            self._context.__exit__(None, None, None)
            self._tmp.cleanup()

    def _append(
        self, case: ModelCase, who: str, event_type: str, payload: dict[str, Any], **env: Any
    ) -> Any:
        role = "supervisor" if event_type == "CaseClosed" else "caseworker"
        return self.http.append(
            case.case_id,
            version=case.version,
            event_type=event_type,
            payload=payload,
            name=who,
            role=role,
            **env,
        )

    def _expect(self, case: ModelCase, who: str, response: Any, allowed: bool) -> bool:
        if not case.relations(who):
            assert response.status_code == 404, response.text
            return False
        if allowed:
            assert response.status_code == 201, response.text
            case.version += 1
            return True
        assert response.status_code in (403, 409), response.text
        return False

    @rule()
    def open_case(self) -> None:
        case_id, version = self.http.open_case("ngo", given_name="Model")
        case = ModelCase(case_id, version)
        case.events.append((1, "ChildIdentified", "ngo", {}))
        self.cases.append(case)

    @precondition(lambda self: self.cases)
    @rule(data=st.data(), who=st.sampled_from(ACTORS), to=st.sampled_from(("ngo2", "shelter")))
    def send_referral(self, data: st.DataObject, who: str, to: str) -> None:
        case = data.draw(st.sampled_from(self.cases))
        payload = example("ReferralSent", to_agency_id=agency(to), scope=list(SERVICES_SCOPE))
        response = self._append(case, who, "ReferralSent", payload, legal_basis="statute s.1")
        allowed = who == case.lead and to != who
        if self._expect(case, who, response, allowed):
            case.referrals.append(Referral(response.json()["event_id"], to))
            case.events.append((case.version, "ReferralSent", who, {"to": to}))

    @precondition(lambda self: any(c.referrals for c in self.cases))
    @rule(data=st.data(), who=st.sampled_from(ACTORS), accept=st.booleans())
    def answer_referral(self, data: st.DataObject, who: str, accept: bool) -> None:
        case = data.draw(st.sampled_from([c for c in self.cases if c.referrals]))
        referral = data.draw(st.sampled_from(case.referrals))
        event_type = "ReferralAccepted" if accept else "ReferralDeclined"
        payload: dict[str, Any] = {"referral_event_id": referral.event_id}
        if not accept:
            payload["reason"] = "no capacity"
        response = self._append(case, who, event_type, payload)
        allowed = who == referral.to and referral.status == "pending"
        if self._expect(case, who, response, allowed):
            referral.status = "accepted" if accept else "declined"
            case.events.append((case.version, event_type, who, {"to": referral.to}))

    @precondition(lambda self: any(c.referrals for c in self.cases))
    @rule(data=st.data(), who=st.sampled_from(ACTORS))
    def revoke_referral(self, data: st.DataObject, who: str) -> None:
        case = data.draw(st.sampled_from([c for c in self.cases if c.referrals]))
        referral = data.draw(st.sampled_from(case.referrals))
        payload = {"referral_event_id": referral.event_id, "reason": "plan changed"}
        response = self._append(case, who, "ReferralRevoked", payload)
        allowed = who == case.lead and referral.status in ("pending", "accepted")
        if self._expect(case, who, response, allowed):
            referral.status = "revoked"
            case.events.append((case.version, "ReferralRevoked", who, {"to": referral.to}))

    @precondition(lambda self: self.cases)
    @rule(data=st.data(), who=st.sampled_from(ACTORS))
    def place_or_end(self, data: st.DataObject, who: str) -> None:
        case = data.draw(st.sampled_from(self.cases))
        if case.shelter is None:
            payload = example("ChildSheltered", shelter_agency_id=agency("shelter"))
            response = self._append(case, who, "ChildSheltered", payload)
            care = case.relations(who) & {"lead", "receiver", "shelter"}
            if self._expect(case, who, response, who in ("ngo", "ngo2", "shelter") and bool(care)):
                case.shelter = "shelter"
                case.events.append((case.version, "ChildSheltered", who, {}))
        else:
            response = self._append(case, who, "PlacementEnded", example("PlacementEnded"))
            care = case.relations(who) & {"lead", "receiver", "shelter"}
            allowed = who in ("ngo", "ngo2", "shelter") and bool(care)
            if self._expect(case, who, response, allowed):
                case.shelter = None
                case.events.append((case.version, "PlacementEnded", who, {}))

    @precondition(lambda self: self.cases)
    @rule(data=st.data(), who=st.sampled_from(ACTORS))
    def report(self, data: st.DataObject, who: str) -> None:
        case = data.draw(st.sampled_from(self.cases))
        payload = example(
            "ReportedToLawEnforcement",
            receiving_unit_agency_id=agency("police"),
            fields_shared=["age_years", "sex"],
        )
        response = self._append(case, who, "ReportedToLawEnforcement", payload)
        # Any relation may report (a mandated reporter), but police and guardians have none here.
        allowed = bool(case.relations(who)) and who in ("ngo", "ngo2", "shelter")
        if self._expect(case, who, response, allowed):
            case.reported_to.add("police")
            case.events.append((case.version, "ReportedToLawEnforcement", who, {}))

    @precondition(lambda self: self.cases)
    @rule(
        data=st.data(),
        who=st.sampled_from(ACTORS),
        service=st.sampled_from(("education", "psychological")),
    )
    def deliver(self, data: st.DataObject, who: str, service: str) -> None:
        case = data.draw(st.sampled_from(self.cases))
        payload = example("ServiceDelivered", provider_agency_id=agency(who), service_type=service)
        response = self._append(case, who, "ServiceDelivered", payload)
        relations = case.relations(who)
        allowed = who in ("ngo", "ngo2", "shelter") and bool(
            relations & {"lead", "receiver", "shelter"}
        )
        if self._expect(case, who, response, allowed):
            case.events.append((case.version, "ServiceDelivered", who, {"service": service}))

    @precondition(lambda self: self.cases)
    @rule(data=st.data(), who=st.sampled_from(ACTORS))
    def read(self, data: st.DataObject, who: str) -> None:
        case = data.draw(st.sampled_from(self.cases))
        response = self.http.client.get(
            f"/cases/{case.case_id}/events", headers=self.http.headers(who)
        )
        expected = case.expected_view(who)
        if not case.relations(who):
            assert response.status_code == 404
            return
        assert response.status_code == 200, response.text
        versions = {e["version"] for e in response.json()["events"]}
        assert versions == expected, (who, versions, expected)
        for event in response.json()["events"]:
            if who == "police" and event["type"] == "ChildIdentified":
                assert set(event["payload"]) <= {"age_years", "sex"}
            if who != case.lead and event["type"] == "ChildIdentified":
                assert event["payload"].get("given_name") in (None, "Model")
                if "police" in case.relations(who) and "shelter" not in case.relations(who):
                    assert "given_name" not in event["payload"]

    @invariant()
    def listings_match_relations(self) -> None:
        if not self.cases:
            return
        position = self.http.latest()
        for who in ACTORS:
            listed = self.http.client.get(
                f"/cases?limit=200&min_position={position}", headers=self.http.headers(who)
            )
            assert listed.status_code == 200
            ids = {item["case_id"] for item in listed.json()["items"]}
            expected = {c.case_id for c in self.cases if c.relations(who)}
            assert ids == expected, who


AgenciesAtWork.TestCase.settings = settings(
    max_examples=int(os.environ.get("REFERRAL_STATEFUL_EXAMPLES", "20")),
    stateful_step_count=30,
    deadline=None,
    database=None,
)
TestAgenciesAtWork = AgenciesAtWork.TestCase
