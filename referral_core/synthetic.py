"""Synthetic, fictional data for the demo, the tests and the benchmarks.

Everything here is invented: three demo countries (Costa Rica, Thailand, Ukraine) with agencies
modelled on the practice ECPAT described in 2007 (La Strada's hotline in Ukraine, FACE's
multi-disciplinary teams in Thailand, Paniamor's anonymous online reporting in Costa Rica), their
demo users, and children whose family names mean "invented" or "fictional" in the country's
language. No real person's data is ever produced.

The generator is deterministic: a seed, a case index, a start time and a "now" fix every event of
a case, including its event id, so two runs with the same arguments record identical histories
(it never touches the global `random`). Each case walks a realistic lifecycle (contact,
identification, the mandatory report, referrals, shelter, services, decisions, reintegration or
return, closure) across the agencies of one country, stopping at a drawn stage so a run holds a
mix of open and closed cases, and some deadlines still pending or already missed. Every event is
decided by the domain's own `commands.record_event` (through `ReferralApplication.open_case` and,
optionally, `append`), so it passes the same validation and rules as an API request.

Public API:

- `DEMO_COUNTRIES`, `DEMO_AGENCIES`, `demo_agency`, `demo_agency_by_id`, `demo_user_id`
- `seed_directory(app)`: register the demo agencies and users (idempotent)
- `plan_case` / `plan_cases`: the events of cases, computed without an application
- `generate_cases(app, cases=..., seed=...)`: record them and return a `GenerationSummary`
- `repeatable_event(rng, lead_agency_id, now)`: one more valid event for an open case
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from uuid import UUID, uuid5

from referral_core.application import case_id_for_opening
from referral_core.case import Case
from referral_core.commands import record_event
from referral_core.directory import DIRECTORY_NAMESPACE, Directory, agency_id_for
from referral_core.envelope import Actor, Envelope
from referral_core.vocab import (
    AgeAssessmentMethod,
    AgencyKind,
    CallerType,
    ClosureReason,
    ConsentGiver,
    ConsentPurpose,
    ContactChannel,
    ContactTopic,
    EpisodePhase,
    ExploitationType,
    FamilySafety,
    FamilyTracingOutcome,
    IdentificationMethod,
    LegalStage,
    MeansOfControl,
    PlacementEndReason,
    PlacementType,
    RecruiterRelation,
    ReferralScope,
    ReturnRisk,
    Role,
    ServiceOutcome,
    ServiceType,
    Sex,
    TraffickingStatus,
    Urgency,
)

if TYPE_CHECKING:
    from referral_core.application import ReferralApplication

DEMO_NAMESPACE = uuid5(DIRECTORY_NAMESPACE, "synthetic-demo")
"""Namespace of the demo users' ids."""

SEED_ACTOR: dict[str, str] = {
    "user_id": "system:synthetic-seed",
    "agency_id": "system",
    "role": Role.ADMIN.value,
}
"""Who registers the demo directory when no actor is given."""

DEFAULT_HISTORY = timedelta(days=540)
"""How far back before "now" generated cases open by default (about 18 months)."""

T = TypeVar("T")

MAJORITY = 18
CONSENT_AGE = 14
"""From this age the demo child gives consent to sharing herself; before it, a parent does."""

FICTION_NOTE = "FICTIONAL: invented by the synthetic data generator; not a real child."

# -- agencies and users --------------------------------------------------------------------------


RETURN_BASIS = "Bilateral agreement on the safe return of child victims (demo), art. 4"


def demo_user_id(agency_slug: str, role: Role) -> UUID:
    """The stable id of the demo user with `role` in the demo agency `agency_slug`."""
    return uuid5(DEMO_NAMESPACE, f"user:{agency_slug}:{role.value}")


@dataclass(frozen=True)
class DemoUser:
    """A demo user: one agency, one role, no real name."""

    user_id: UUID
    agency_slug: str
    role: Role
    display_name: str


@dataclass(frozen=True)
class DemoAgency:
    """A demo agency of one country, with its demo users."""

    slug: str
    kind: AgencyKind
    country: str
    name: str
    agency_id: UUID = field(init=False)
    users: tuple[DemoUser, ...] = field(init=False)

    def __post_init__(self) -> None:
        roles = [Role.CASEWORKER, Role.SUPERVISOR]
        if self.kind in (AgencyKind.MINISTRY, AgencyKind.COORDINATOR):
            roles.append(Role.ADMIN)
        users = tuple(
            DemoUser(
                demo_user_id(self.slug, role),
                self.slug,
                role,
                f"Demo {role.value} - {self.name}",
            )
            for role in roles
        )
        object.__setattr__(self, "agency_id", agency_id_for(self.slug))
        object.__setattr__(self, "users", users)

    def user(self, role: Role = Role.CASEWORKER) -> DemoUser:
        for user in self.users:
            if user.role == role:
                return user
        raise KeyError(f"{self.slug} has no {role.value}")

    def actor(self, role: Role = Role.CASEWORKER) -> Actor:
        return Actor(str(self.user(role).user_id), str(self.agency_id), role)


def _agencies(country: str, *rows: tuple[str, AgencyKind, str]) -> tuple[DemoAgency, ...]:
    return tuple(DemoAgency(slug, kind, country, name) for slug, kind, name in rows)


K = AgencyKind
DEMO_AGENCIES: tuple[DemoAgency, ...] = (
    *_agencies(
        "UA",
        ("ua-hotline", K.HOTLINE, "Kyiv Child Trafficking Hotline (demo)"),
        ("ua-ngo", K.NGO, "Dnipro Children's Rights Centre (demo)"),
        ("ua-social", K.SOCIAL_SERVICES, "Kyiv Centre of Social Services for Youth (demo)"),
        ("ua-shelter", K.SHELTER, "Kyiv Children's Rehabilitation Shelter (demo)"),
        ("ua-shelter-odesa", K.SHELTER, "Odesa Transit Shelter for Children (demo)"),
        ("ua-police", K.LAW_ENFORCEMENT, "Juvenile Affairs Anti-Trafficking Unit, Kyiv (demo)"),
        ("ua-prosecutor", K.PROSECUTOR, "Kyiv Regional Prosecutor's Office (demo)"),
        ("ua-child-protection", K.CHILD_PROTECTION, "Kyiv City Children's Service (demo)"),
        ("ua-guardian", K.GUARDIAN, "Kyiv Guardianship and Custody Office (demo)"),
        ("ua-ministry", K.MINISTRY, "Ministry of Social Policy, Counter-Trafficking Unit (demo)"),
        ("ua-coordinator", K.COORDINATOR, "National Referral Mechanism Secretariat (demo)"),
        ("ua-auditor", K.AUDITOR, "NRM Independent Audit Office, Ukraine (demo)"),
    ),
    *_agencies(
        "TH",
        ("th-hotline", K.HOTLINE, "Bangkok Child Helpline (demo)"),
        ("th-mdt", K.NGO, "Chiang Mai Multidisciplinary Team Foundation (demo)"),
        ("th-social", K.SOCIAL_SERVICES, "Chiang Mai Provincial Social Development Office (demo)"),
        ("th-shelter", K.SHELTER, "Northern Children's Protection Centre (demo)"),
        ("th-shelter-bangkok", K.SHELTER, "Bangkok Girls' and Boys' Transit Home (demo)"),
        ("th-police", K.LAW_ENFORCEMENT, "Anti-Trafficking in Persons Division, Bangkok (demo)"),
        (
            "th-prosecutor",
            K.PROSECUTOR,
            "Office of the Attorney General, Trafficking Cases (demo)",
        ),
        ("th-court", K.COURT, "Central Juvenile and Family Court (demo)"),
        ("th-legal-aid", K.LEGAL_AID, "Northern Legal Aid Centre for Child Victims (demo)"),
        (
            "th-child-protection",
            K.CHILD_PROTECTION,
            "Chiang Mai Child Protection Committee (demo)",
        ),
        (
            "th-ministry",
            K.MINISTRY,
            "Ministry of Social Development, Anti-Trafficking Division (demo)",
        ),
        ("th-auditor", K.AUDITOR, "NRM Independent Audit Office, Thailand (demo)"),
    ),
    *_agencies(
        "CR",
        ("cr-hotline", K.HOTLINE, "San Jose Anonymous Online Reporting Line (demo)"),
        ("cr-ngo", K.NGO, "Costa Rica Children's Rights Foundation (demo)"),
        ("cr-social", K.SOCIAL_SERVICES, "San Jose Institute of Social Aid (demo)"),
        ("cr-shelter", K.SHELTER, "Casa Refugio San Jose (demo)"),
        ("cr-shelter-limon", K.SHELTER, "Limon Children's Shelter (demo)"),
        (
            "cr-police",
            K.LAW_ENFORCEMENT,
            "Judicial Investigation Police, Trafficking Section (demo)",
        ),
        ("cr-prosecutor", K.PROSECUTOR, "Specialised Prosecutor's Office on Trafficking (demo)"),
        ("cr-court", K.COURT, "San Jose Criminal Court (demo)"),
        ("cr-legal-aid", K.LEGAL_AID, "Free Legal Clinic for Children, San Jose (demo)"),
        (
            "cr-child-protection",
            K.CHILD_PROTECTION,
            "National Child Welfare Board, San Jose (demo)",
        ),
        (
            "cr-coordinator",
            K.COORDINATOR,
            "National Coalition against Trafficking, Response Team (demo)",
        ),
        ("cr-auditor", K.AUDITOR, "NRM Independent Audit Office, Costa Rica (demo)"),
    ),
)
del K

_BY_SLUG: dict[str, DemoAgency] = {a.slug: a for a in DEMO_AGENCIES}
_BY_ID: dict[str, DemoAgency] = {str(a.agency_id): a for a in DEMO_AGENCIES}


def demo_agency(slug: str) -> DemoAgency:
    return _BY_SLUG[slug]


def demo_agency_by_id(agency_id: UUID | str) -> DemoAgency | None:
    return _BY_ID.get(str(agency_id))


# -- countries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InventedNames:
    """A country's invented names: the family names all mean "invented" or "fictional"."""

    female: tuple[str, ...]
    male: tuple[str, ...]
    family: tuple[str, ...]

    @property
    def given(self) -> frozenset[str]:
        return frozenset(self.female + self.male)


@dataclass(frozen=True)
class DemoCountry:
    """Which demo agency plays which part in a country, and the country's invented details."""

    code: str
    name: str
    weight: int
    hotline: str
    case_managers: tuple[str, ...]
    outreach: tuple[str, ...]
    shelters: tuple[str, str]
    police: str
    prosecutor: str
    court: str
    legal_aid: str
    child_protection: str
    guardian: str
    competent_authority: str
    coordinator: str
    social_services: str
    report_basis: str
    referral_basis: str
    police_prefix: str
    court_prefix: str
    currency: str
    places: tuple[str, ...]
    arrival_point: str
    destinations: tuple[str, ...]
    foreign_nationalities: tuple[str, ...]
    kind_weights: tuple[int, int, int]
    """Weights of domestic, returnee (a national exploited abroad) and foreign-national cases."""
    anonymous_share: float
    channels: tuple[tuple[ContactChannel, int], ...]
    exploitation: tuple[tuple[ExploitationType, int], ...]
    names: InventedNames


DEMO_COUNTRIES: tuple[DemoCountry, ...] = (
    DemoCountry(
        code="UA",
        name="Ukraine",
        weight=40,
        hotline="ua-hotline",
        case_managers=("ua-ngo", "ua-social"),
        outreach=("ua-ngo", "ua-social"),
        shelters=("ua-shelter", "ua-shelter-odesa"),
        police="ua-police",
        prosecutor="ua-prosecutor",
        court="ua-prosecutor",
        legal_aid="ua-ngo",
        child_protection="ua-child-protection",
        guardian="ua-guardian",
        competent_authority="ua-ministry",
        coordinator="ua-coordinator",
        social_services="ua-social",
        report_basis="Law on Combating Trafficking, duty to report a child victim (demo citation)",
        referral_basis="Child Protection Law, referral of a child victim to care (demo citation)",
        police_prefix="UA-JAU",
        court_prefix="UA-KRP",
        currency="UAH",
        places=("Kyiv", "Odesa", "Lviv", "Kharkiv", "Chernivtsi", "Uzhhorod"),
        arrival_point="Boryspil airport arrivals hall",
        destinations=("PL", "DE", "AE", "TR", "IT", "CZ"),
        foreign_nationalities=("MD", "GE", "UZ"),
        kind_weights=(45, 45, 10),
        anonymous_share=0.25,
        channels=(
            (ContactChannel.PHONE, 60),
            (ContactChannel.CHAT, 15),
            (ContactChannel.EMAIL, 15),
            (ContactChannel.WALK_IN, 10),
        ),
        exploitation=(
            (ExploitationType.SEXUAL_EXPLOITATION, 40),
            (ExploitationType.FORCED_LABOUR, 20),
            (ExploitationType.ONLINE_SEXUAL_EXPLOITATION, 15),
            (ExploitationType.CHILD_SEXUAL_ABUSE_MATERIAL, 10),
            (ExploitationType.FORCED_BEGGING, 10),
            (ExploitationType.FORCED_CRIMINALITY, 5),
        ),
        names=InventedNames(
            female=("Oksana", "Mariia", "Daryna", "Solomiia", "Yeva", "Zlata", "Sofiia"),
            male=("Bohdan", "Taras", "Ostap", "Yarema", "Denys"),
            family=("Vyhadanenko", "Prydumko", "Uiavna", "Neisnuiuk", "Zrazkovych", "Testenko"),
        ),
    ),
    DemoCountry(
        code="TH",
        name="Thailand",
        weight=35,
        hotline="th-hotline",
        case_managers=("th-mdt", "th-social"),
        outreach=("th-mdt",),
        shelters=("th-shelter", "th-shelter-bangkok"),
        police="th-police",
        prosecutor="th-prosecutor",
        court="th-court",
        legal_aid="th-legal-aid",
        child_protection="th-child-protection",
        guardian="th-child-protection",
        competent_authority="th-ministry",
        coordinator="th-ministry",
        social_services="th-social",
        report_basis="Anti-Trafficking in Persons Act, report of a child victim (demo citation)",
        referral_basis="Child Protection Act, protection of a child victim (demo citation)",
        police_prefix="TH-ATPD",
        court_prefix="TH-CJFC",
        currency="THB",
        places=("Bangkok", "Chiang Mai", "Chiang Rai", "Mae Sot", "Pattaya", "Songkhla"),
        arrival_point="Suvarnabhumi airport arrivals hall",
        destinations=("MY", "JP", "BH"),
        foreign_nationalities=("LA", "MM", "KH"),
        kind_weights=(40, 10, 50),
        anonymous_share=0.2,
        channels=(
            (ContactChannel.PHONE, 55),
            (ContactChannel.OUTREACH, 25),
            (ContactChannel.WALK_IN, 20),
        ),
        exploitation=(
            (ExploitationType.SEXUAL_EXPLOITATION, 35),
            (ExploitationType.FORCED_LABOUR, 25),
            (ExploitationType.FORCED_BEGGING, 15),
            (ExploitationType.DOMESTIC_SERVITUDE, 10),
            (ExploitationType.ONLINE_SEXUAL_EXPLOITATION, 10),
            (ExploitationType.FORCED_MARRIAGE, 5),
        ),
        names=InventedNames(
            female=("Malee", "Dao", "Ploy", "Fon", "Nok", "Kanya"),
            male=("Lek", "Tong", "Chai", "Nat", "Kla"),
            family=("Sommut", "Jamlong", "Tuayang", "Sommutthana", "Jamlongsuk"),
        ),
    ),
    DemoCountry(
        code="CR",
        name="Costa Rica",
        weight=25,
        hotline="cr-hotline",
        case_managers=("cr-child-protection", "cr-ngo"),
        outreach=("cr-ngo",),
        shelters=("cr-shelter", "cr-shelter-limon"),
        police="cr-police",
        prosecutor="cr-prosecutor",
        court="cr-court",
        legal_aid="cr-legal-aid",
        child_protection="cr-child-protection",
        guardian="cr-child-protection",
        competent_authority="cr-coordinator",
        coordinator="cr-coordinator",
        social_services="cr-social",
        report_basis="Law against Trafficking, mandatory report of CSEC (demo citation)",
        referral_basis="Children and Adolescents Code, special protection (demo citation)",
        police_prefix="CR-OIJ",
        court_prefix="CR-TP",
        currency="CRC",
        places=("San Jose", "Limon", "Puntarenas", "Liberia", "Jaco", "Tamarindo"),
        arrival_point="San Jose international airport arrivals hall",
        destinations=("PA", "MX", "GT"),
        foreign_nationalities=("NI", "PA", "CO", "VE"),
        kind_weights=(55, 10, 35),
        anonymous_share=0.6,
        channels=(
            (ContactChannel.WEB_FORM, 60),
            (ContactChannel.PHONE, 30),
            (ContactChannel.EMAIL, 10),
        ),
        exploitation=(
            (ExploitationType.SEXUAL_EXPLOITATION, 35),
            (ExploitationType.SEXUAL_EXPLOITATION_IN_TRAVEL_AND_TOURISM, 25),
            (ExploitationType.ONLINE_SEXUAL_EXPLOITATION, 15),
            (ExploitationType.CHILD_SEXUAL_ABUSE_MATERIAL, 10),
            (ExploitationType.DOMESTIC_SERVITUDE, 10),
            (ExploitationType.FORCED_LABOUR, 5),
        ),
        names=InventedNames(
            female=("Valeria", "Camila", "Daniela", "Fernanda", "Yuliana", "Sofia"),
            male=("Josue", "Kendall", "Andres", "Brandon"),
            family=("Ficticio", "Inventado", "Imaginario", "Supuesto", "Simulado", "Ejemplar"),
        ),
    ),
)

_COUNTRY: dict[str, DemoCountry] = {c.code: c for c in DEMO_COUNTRIES}

INVENTED_GIVEN_NAMES: frozenset[str] = frozenset(
    name for c in DEMO_COUNTRIES for name in c.names.given
)
INVENTED_FAMILY_NAMES: frozenset[str] = frozenset(
    name for c in DEMO_COUNTRIES for name in c.names.family
)

_CITY_ABROAD = {
    "PL": "Warsaw",
    "DE": "Berlin",
    "AE": "Dubai",
    "TR": "Istanbul",
    "IT": "Naples",
    "CZ": "Prague",
    "MD": "Chisinau",
    "GE": "Batumi",
    "UZ": "Samarkand",
    "LA": "Savannakhet",
    "MM": "Tachileik",
    "KH": "Poipet",
    "MY": "Johor Bahru",
    "JP": "Osaka",
    "BH": "Manama",
    "NI": "Rivas",
    "PA": "David",
    "CO": "Cali",
    "VE": "Maracaibo",
    "MX": "Tapachula",
    "GT": "Tecun Uman",
}

# -- directory -----------------------------------------------------------------------------------


def seed_directory(app: ReferralApplication, *, actor: Mapping[str, str] | None = None) -> int:
    """Register every demo agency and user not yet in the directory; return how many were added."""
    who = dict(actor if actor is not None else SEED_ACTOR)

    def change(directory: Directory) -> int:
        added = 0
        for agency in DEMO_AGENCIES:
            if str(agency.agency_id) not in directory.agencies:
                directory.register_agency(
                    agency.agency_id, agency.kind, agency.country, agency.name, who
                )
                added += 1
            for user in agency.users:
                if str(user.user_id) not in directory.users:
                    directory.add_user(
                        user.user_id, agency.agency_id, user.role, user.display_name, who
                    )
                    added += 1
        return added

    if _directory_complete(app.directory()):
        return 0
    return app.change_directory(change)


def _directory_complete(directory: Directory) -> bool:
    return all(
        str(agency.agency_id) in directory.agencies
        and all(str(user.user_id) in directory.users for user in agency.users)
        for agency in DEMO_AGENCIES
    )


# -- the planned events --------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticEvent:
    """One command of a generated case: what to append, on which case, as its n-th event.

    `payload` is JSON-ready (strings for enums, dates and ids): it also serves as a request body.
    `recorded_at` is when the generator means the event to be recorded: never before `occurred_at`,
    never after the run's "now", non-decreasing within the case; `generate_cases` hands it to
    `clock_advance` before the append.
    """

    case_index: int
    case_id: UUID
    seq: int
    event_type: str
    payload: dict[str, Any]
    envelope: Envelope
    recorded_at: datetime


@dataclass(frozen=True)
class CasePlan:
    """Every event of one generated case, and the stage it was meant to stop at."""

    index: int
    case_id: UUID
    country: str
    intended_stop: str
    events: tuple[SyntheticEvent, ...]


STOPS: tuple[str, ...] = (
    "contact",
    "identified",
    "reported",
    "referred",
    "in_care",
    "reintegration",
    "closed",
)
"""Where a case may be meant to stop. "identified" leaves the report to law enforcement due,
"reported" leaves its acknowledgement due, "referred" leaves a referral unanswered."""

_STOP_WEIGHTS = (10, 7, 8, 8, 22, 20, 25)


@dataclass(frozen=True)
class _Features:
    opening: str  # "contact" (a hotline contact) or "outreach" (identified by an NGO or service)
    kind: str  # "domestic", "returnee" (a national exploited abroad) or "foreign"
    follow_up_contact: bool
    correct: bool
    not_a_victim: bool
    late_report: bool
    decline: bool
    statutory_shelter: bool
    duplicate_service: bool
    interview: bool
    legal: bool
    missing: bool
    located: bool
    adult: bool
    withdraw: bool
    revoke: bool
    reopen: bool
    return_abroad: bool
    extra_services: int


class _OutOfTimeError(Exception):
    """The next event would happen after "now": the case stops here."""


class _StopHereError(Exception):
    """The case reached the stage it was meant to stop at."""


def _weighted(rng: random.Random, pairs: Sequence[tuple[T, int]]) -> T:
    return rng.choices([v for v, _ in pairs], weights=[w for _, w in pairs])[0]


def _chance(rng: random.Random, probability: float) -> bool:
    return rng.random() < probability


def _uuid4(rng: random.Random) -> UUID:
    return UUID(int=rng.getrandbits(128), version=4)


_INDICATORS = (
    "no identity documents",
    "documents held by another person",
    "controlled movement",
    "debt owed to an employer",
    "signs of physical abuse",
    "found in a venue of commercial sex",
    "recruited with a false job offer",
    "does not know home address",
    "accompanied by an unrelated adult",
    "online grooming messages",
    "works excessive hours",
    "no payment for work",
)

_CONSULTATION_TOPICS = (
    ContactTopic.SAFE_MIGRATION,
    ContactTopic.EMPLOYMENT_ABROAD,
    ContactTopic.STUDY_ABROAD,
    ContactTopic.MARRIAGE_ABROAD,
    ContactTopic.LEGAL_STATUS,
    ContactTopic.PSYCHOLOGICAL_SUPPORT,
    ContactTopic.ONLINE_ABUSE,
    ContactTopic.OTHER,
)

_SCOPES: dict[ServiceType, tuple[ReferralScope, ...]] = {
    ServiceType.CASE_MANAGEMENT: tuple(ReferralScope),
    ServiceType.SHELTER: (
        ReferralScope.IDENTIFICATION,
        ReferralScope.PLACEMENT,
        ReferralScope.SERVICES,
        ReferralScope.MEDICAL,
        ReferralScope.PSYCHOSOCIAL,
    ),
    ServiceType.LEGAL: (
        ReferralScope.IDENTIFICATION,
        ReferralScope.LEGAL,
        ReferralScope.EXPLOITATION,
    ),
    ServiceType.EDUCATION: (
        ReferralScope.IDENTIFICATION,
        ReferralScope.SERVICES,
        ReferralScope.PLAN,
    ),
    ServiceType.VOCATIONAL: (
        ReferralScope.IDENTIFICATION,
        ReferralScope.SERVICES,
        ReferralScope.PLAN,
    ),
}


def _scope(*services: ServiceType) -> list[str]:
    wanted = {s for service in services for s in _SCOPES[service]}
    return [s.value for s in ReferralScope if s in wanted]


class _CaseScript:
    """Writes one case's events in order, tracking what the domain will know of the case."""

    def __init__(
        self,
        *,
        index: int,
        seed: int,
        rng: random.Random,
        country: DemoCountry,
        opened_at: datetime,
        limit: datetime,
        stop: str,
        features: _Features,
        brisk: bool = False,
    ) -> None:
        self.index = index
        self.brisk = brisk
        self.seed = seed
        self.rng = rng
        self.c = country
        self.f = features
        self.t = opened_at
        self.limit = limit
        self.stop = stop
        self.events: list[SyntheticEvent] = []
        self.case_id: UUID | None = None
        self.lead = ""
        self.consent: UUID | None = None
        self.identification: tuple[UUID, str] | None = None
        self.shelter = ""
        self.manager = ""
        self.imminent = False
        self.report_id: UUID | None = None
        self.court_reference = ""
        self.legal_referral: UUID | None = None
        self.birthday18: str | None = None
        self.home_safe = False
        self.identified_on = opened_at.date()
        self.sex = _weighted(
            rng,
            (
                (Sex.FEMALE, 66),
                (Sex.MALE, 32),
                (Sex.TRANSGENDER_OR_NONCONFORMING, 2),
            ),
        )
        self.age = rng.choice((11, 12, 13, 14, 14, 15, 15, 15, 16, 16, 16, 17, 17))
        if features.kind == "foreign":
            self.nationality = rng.choice(country.foreign_nationalities)
        else:
            self.nationality = country.code
        self.abroad = rng.choice(country.destinations)
        given = country.names.male if self.sex == Sex.MALE else country.names.female
        self.given_name = rng.choice(given)
        self.family_name = rng.choice(country.names.family)
        self.types = self._exploitation_types()

    # -- mechanics -------------------------------------------------------------------------------

    def hours(self, low: float, high: float) -> timedelta:
        if self.brisk:
            high = low + (high - low) / 4
        return timedelta(seconds=max(60, round(self.rng.uniform(low, high) * 3600)))

    def days(self, low: float, high: float) -> timedelta:
        return self.hours(low * 24, high * 24)

    def day(self, offset: timedelta = timedelta(0)) -> str:
        return (self.t + offset).date().isoformat()

    def checkpoint(self, stop: str) -> None:
        if self.stop == stop:
            raise _StopHereError

    def emit(
        self,
        event_type: str,
        payload: dict[str, Any],
        agency: str,
        role: Role = Role.CASEWORKER,
        *,
        after: timedelta,
        legal_basis: str | None = None,
        consent_ref: UUID | None = None,
    ) -> UUID:
        at = self.t + after
        if at > self.limit:
            raise _OutOfTimeError
        self.t = at
        event_id = _uuid4(self.rng)
        if self.case_id is None:
            self.case_id = case_id_for_opening(event_id)
            self.lead = agency
        seq = len(self.events) + 1
        envelope = Envelope(
            event_id=event_id,
            actor=_BY_SLUG[agency].actor(role),
            occurred_at=at,
            correlation_id=f"synthetic:{self.seed}:{self.index}:{seq}",
            legal_basis=legal_basis,
            consent_ref=consent_ref,
        )
        recorded = at + timedelta(seconds=self.rng.randint(5, 1800))
        if self.events:
            recorded = max(recorded, self.events[-1].recorded_at)
        recorded = max(at, min(recorded, self.limit))
        self.events.append(
            SyntheticEvent(self.index, self.case_id, seq, event_type, payload, envelope, recorded)
        )
        return event_id

    def name(self) -> str:
        names = self.c.names
        return f"{self.rng.choice(names.female + names.male)} {self.rng.choice(names.family)}"

    def _exploitation_types(self) -> list[str]:
        first = _weighted(self.rng, self.c.exploitation)
        types = [first]
        if _chance(self.rng, 0.25):
            second = _weighted(self.rng, self.c.exploitation)
            if second != first:
                types.append(second)
        return [t.value for t in types]

    # -- the lifecycle ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.lifecycle()
        except (_OutOfTimeError, _StopHereError):
            return

    def lifecycle(self) -> None:
        f = self.f
        if f.opening == "contact":
            self.contact(after=timedelta(0))
            if f.follow_up_contact:
                self.contact(after=self.hours(2, 72), follow_up=True)
            self.checkpoint("contact")
            if f.kind == "returnee":
                self.return_home()
            self.identify(after=self.hours(1, 48))
        else:
            self.identify(after=timedelta(0))
        if f.correct:
            self.correct_identification()
        if f.not_a_victim:
            self.cleared()
            return
        self.checkpoint("identified")
        self.report()
        self.checkpoint("reported")
        self.acknowledge()
        self.record_sharing_consent()
        if self.lead == self.c.hotline:
            self.transfer_lead()
        self.place_in_shelter()
        self.care()
        if f.adult:
            self.transfer_adult()
            return
        if f.missing and not f.located:
            self.lost_contact()
            return
        self.checkpoint("in_care")
        self.reintegration()
        self.checkpoint("reintegration")
        self.close()

    # -- contact and identification ----------------------------------------------------------

    def contact(self, *, after: timedelta, follow_up: bool = False) -> None:
        c, f, rng = self.c, self.f, self.rng
        channel = _weighted(rng, c.channels)
        if follow_up:
            repeat = dict(self.events[0].payload)
            repeat["channel"] = channel.value
            repeat["summary"] = "Follow-up contact: the caller had new details about the child."
            self.emit("ContactReceived", repeat, self.c.hotline, after=after)
            return
        anonymous = _chance(rng, 0.7 if channel == ContactChannel.WEB_FORM else c.anonymous_share)
        if self.stop == "contact":
            topics = [rng.choice(_CONSULTATION_TOPICS)]
            caller = rng.choice((CallerType.CHILD, CallerType.PARENT, CallerType.RELATIVE))
            summary = "Consultation: information given and hotline number left with the caller."
        elif f.kind == "returnee":
            topics = [ContactTopic.MISSING_CHILD_ABROAD]
            if _chance(rng, 0.4):
                topics.append(ContactTopic.RETURN_ASSISTANCE)
            caller = rng.choice((CallerType.PARENT, CallerType.RELATIVE, CallerType.FRIEND))
            city = _CITY_ABROAD[self.abroad]
            summary = f"Child left for a job offer in {city} and stopped answering the phone."
        else:
            topic = ContactTopic.REPORT_OF_EXPLOITATION
            if ExploitationType.ONLINE_SEXUAL_EXPLOITATION.value in self.types:
                topic = ContactTopic.ONLINE_ABUSE
            topics = [topic]
            caller = _weighted(
                rng,
                (
                    (CallerType.MEMBER_OF_PUBLIC, 30),
                    (CallerType.PROFESSIONAL, 25),
                    (CallerType.CHILD, 20),
                    (CallerType.FRIEND, 15),
                    (CallerType.UNKNOWN, 10),
                ),
            )
            summary = f"Report of a child at risk of exploitation in {rng.choice(c.places)}."
        payload: dict[str, Any] = {
            "channel": channel.value,
            "anonymous": anonymous,
            "caller_type": caller.value,
            "topics": [t.value for t in topics],
            "imminent_danger": _chance(rng, 0.12),
            "child_age_years": self.age if _chance(rng, 0.8) else None,
            "child_sex": (Sex.UNKNOWN if anonymous and _chance(rng, 0.3) else self.sex).value,
            "summary": summary,
        }
        if f.kind == "returnee":
            payload["country_of_concern"] = self.abroad
        elif f.kind == "foreign":
            payload["country_of_concern"] = self.nationality
        if not anonymous and caller not in (CallerType.CHILD, CallerType.UNKNOWN):
            payload["caller_name"] = self.name()
            payload["caller_contact"] = f"demo-caller-{rng.randint(1000, 9999)}@example.org"
        self.imminent = bool(payload["imminent_danger"])
        self.emit("ContactReceived", payload, self.c.hotline, after=after)

    def identify(self, *, after: timedelta) -> None:
        c, f, rng = self.c, self.f, self.rng
        if f.opening == "contact":
            agency = c.hotline
            method = IdentificationMethod.THIRD_PARTY
        else:
            agency = rng.choice(c.outreach)
            method = rng.choice(
                (IdentificationMethod.PROACTIVE, IdentificationMethod.SELF_REFERRAL)
            )
            self.imminent = False
        place = c.arrival_point if f.kind == "returnee" else rng.choice(c.places)
        indicators = rng.sample(_INDICATORS, rng.randint(2, 5))
        payload: dict[str, Any] = {
            "place": place,
            "country": c.code,
            "method": method.value,
            "indicators": indicators,
            "trafficking_status": TraffickingStatus.POSSIBLE.value,
            "exploitation_types": self.types,
            "sex": self.sex.value,
            "age_years": self.age,
            "age_is_estimate": True,
            "minority_presumed": True,
            "nationality": self.nationality,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "notes": FICTION_NOTE,
        }
        if _chance(rng, 0.3):
            payload["address"] = f"{rng.choice(c.places)}, street withheld (demo)"
        event_id = self.emit("ChildIdentified", payload, agency, after=after)
        self.identified_on = self.t.date()
        self.identification = (event_id, agency)

    def correct_identification(self) -> None:
        if self.identification is None:
            return
        target, agency = self.identification
        if _chance(self.rng, 0.6):
            old = self.age
            self.age = max(10, min(17, old + self.rng.choice((-2, -1, 1))))
            if self.age == old:
                self.age = old - 1
            values: dict[str, Any] = {"age_years": self.age}
            reason = "age entered wrongly"
        else:
            values = {"indicators": self.rng.sample(_INDICATORS, 3)}
            reason = "indicators completed after a second interview"
        self.emit(
            "EntryCorrected",
            {"target_event_id": str(target), "reason": reason, "corrected_values": values},
            agency,
            Role.SUPERVISOR,
            after=self.hours(2, 96),
        )

    def cleared(self) -> None:
        """Not a victim after all: the competent authority decides, and the case closes."""
        c = self.c
        self.emit(
            "IdentificationDecisionMade",
            {
                "decision": TraffickingStatus.NOT_A_VICTIM.value,
                "deciding_body": _BY_SLUG[c.competent_authority].name,
                "reasons": "The child ran away from home after a family quarrel; no exploitation.",
                "exploitation_types": [],
            },
            c.competent_authority,
            Role.SUPERVISOR,
            after=self.days(2, 20),
        )
        self.checkpoint("identified")
        self.emit(
            "CaseClosed",
            {"reason": ClosureReason.NOT_A_VICTIM.value, "notes": "Referred to family support."},
            self.lead,
            Role.SUPERVISOR,
            after=self.days(1, 10),
        )

    def return_home(self) -> None:
        """A national traced abroad through partner NGOs and brought home (as La Strada does)."""
        c, rng = self.c, self.rng
        self.emit(
            "ReturnRiskAssessed",
            {
                "from_country": self.abroad,
                "to_country": c.code,
                "risk": rng.choice((ReturnRisk.LOW, ReturnRisk.MEDIUM)).value,
                "recommendation": "return",
                "notes": "Traced through a partner NGO and the consulate; parent waiting at home.",
            },
            c.coordinator,
            after=self.days(7, 60),
        )
        after = self.days(3, 30)
        self.emit(
            "ChildReturned",
            {
                "from_country": self.abroad,
                "to_country": c.code,
                "receiving_agency_id": str(_BY_SLUG[c.hotline].agency_id),
                "receiving_agency_name": _BY_SLUG[c.hotline].name,
                "escort": rng.choice(("consular officer", "partner NGO social worker")),
                "met_by": "hotline social worker at the airport",
                "return_date": self.day(after),
            },
            c.coordinator,
            after=after,
            legal_basis=RETURN_BASIS,
        )

    # -- report and referrals ----------------------------------------------------------------

    def report(self) -> None:
        c, rng = self.c, self.rng
        after = self.hours(30, 96) if self.f.late_report else self.hours(1, 20)
        urgency = Urgency.IMMEDIATE if self.imminent else rng.choice(list(Urgency)[:2])
        self.report_id = self.emit(
            "ReportedToLawEnforcement",
            {
                "receiving_unit_agency_id": str(_BY_SLUG[c.police].agency_id),
                "statutory_basis": c.report_basis,
                "fields_shared": [
                    "age_years",
                    "sex",
                    "nationality",
                    "exploitation_types",
                    "place",
                    "indicators",
                ],
                "urgency": urgency.value,
            },
            self.lead,
            after=after,
        )

    def acknowledge(self) -> None:
        c = self.c
        reference = f"{c.police_prefix}-{self.t.year}-{self.rng.randint(1, 99999):05d}"
        self.emit(
            "ReportAcknowledged",
            {"report_event_id": str(self.report_id), "police_reference": reference},
            c.police,
            after=self.hours(1, 72),
        )

    def record_sharing_consent(self) -> None:
        c, rng = self.c, self.rng
        services = [ServiceType.SHELTER]
        shared = [c.shelters[0]]
        if self.lead == c.hotline:
            self.manager = rng.choice(c.case_managers)
            services.append(ServiceType.CASE_MANAGEMENT)
            shared.append(self.manager)
        giver = ConsentGiver.CHILD if self.age >= CONSENT_AGE else ConsentGiver.PARENT
        if self.f.kind == "foreign":
            giver = ConsentGiver.CHILD
        self.consent = self.emit(
            "ConsentRecorded",
            {
                "purpose": ConsentPurpose.SHARING.value,
                "given_by": giver.value,
                "scope": _scope(*services),
                "shared_with_agency_ids": [str(_BY_SLUG[s].agency_id) for s in shared],
                "valid_until": self.day(timedelta(days=365)),
            },
            self.lead,
            after=self.hours(2, 48),
        )

    def refer(
        self,
        to: str,
        service: ServiceType,
        *,
        after: timedelta,
        transfers_lead: bool = False,
        statutory: bool = False,
    ) -> UUID:
        respond = timedelta(days=self.rng.choice((2, 3, 5)))
        basis = self.c.referral_basis if statutory or self.consent is None else None
        sent = self.emit(
            "ReferralSent",
            {
                "to_agency_id": str(_BY_SLUG[to].agency_id),
                "service": service.value,
                "scope": _scope(service),
                "respond_by": (self.t + after + respond).isoformat(),
                "transfers_lead": transfers_lead,
            },
            self.lead,
            after=after,
            legal_basis=basis,
            consent_ref=None if basis else self.consent,
        )
        self.checkpoint("referred")
        return sent

    def answer(self, referral: UUID, to: str, *, accept: bool, reason: str = "") -> None:
        if accept:
            self.emit(
                "ReferralAccepted",
                {"referral_event_id": str(referral)},
                to,
                after=self.hours(2, 60),
            )
        else:
            self.emit(
                "ReferralDeclined",
                {"referral_event_id": str(referral), "reason": reason},
                to,
                after=self.hours(2, 60),
            )

    def transfer_lead(self) -> None:
        """The hotline hands case management to an NGO or social services."""
        c = self.c
        manager = self.manager
        referral = self.refer(
            manager, ServiceType.CASE_MANAGEMENT, after=self.hours(1, 24), transfers_lead=True
        )
        if self.f.decline:
            self.answer(referral, manager, accept=False, reason="no case manager free this month")
            manager = next(m for m in c.case_managers if m != manager)
            referral = self.refer(
                manager,
                ServiceType.CASE_MANAGEMENT,
                after=self.hours(1, 24),
                transfers_lead=True,
                statutory=True,
            )
        self.answer(referral, manager, accept=True)
        self.lead = manager

    def place_in_shelter(self) -> None:
        c, f = self.c, self.f
        shelter = c.shelters[0]
        referral = self.refer(
            shelter, ServiceType.SHELTER, after=self.hours(1, 24), statutory=f.statutory_shelter
        )
        if f.decline and (f.opening == "outreach" or _chance(self.rng, 0.5)):
            self.answer(referral, shelter, accept=False, reason="no places this month")
            shelter = c.shelters[1]
            referral = self.refer(
                shelter, ServiceType.SHELTER, after=self.hours(1, 12), statutory=True
            )
        self.answer(referral, shelter, accept=True)
        self.shelter = shelter
        placement = (
            PlacementType.EMERGENCY_SHELTER if self.imminent else PlacementType.SHORT_TERM_SHELTER
        )
        facility = {Sex.FEMALE: "Girls' wing", Sex.MALE: "Boys' wing"}.get(
            self.sex, "Transit unit"
        )
        after = self.hours(1, 24)
        self.emit(
            "ChildSheltered",
            {
                "shelter_agency_id": str(_BY_SLUG[shelter].agency_id),
                "facility": facility,
                "placement_type": placement.value,
                "start_date": self.day(after),
                "expected_end_date": self.day(after + timedelta(days=90)),
                "address": "Shelter address withheld (demo)",
            },
            shelter,
            after=after,
        )

    # -- care ----------------------------------------------------------------------------------

    def service(
        self,
        provider: str,
        service: ServiceType,
        *,
        after: timedelta,
        outcome: ServiceOutcome | None = None,
        notes: str | None = None,
    ) -> UUID:
        result = outcome or _weighted(
            self.rng,
            (
                (ServiceOutcome.COMPLETED, 55),
                (ServiceOutcome.ONGOING, 35),
                (ServiceOutcome.REFUSED, 5),
                (ServiceOutcome.NOT_AVAILABLE, 5),
            ),
        )
        payload: dict[str, Any] = {
            "service_type": service.value,
            "provider_agency_id": str(_BY_SLUG[provider].agency_id),
            "delivered_on": self.day(after),
            "outcome": result.value,
        }
        if notes:
            payload["notes"] = notes
        return self.emit("ServiceDelivered", payload, provider, after=after)

    def care(self) -> None:
        c, f, rng = self.c, self.f, self.rng
        self.service(self.shelter, ServiceType.MEDICAL, after=self.hours(2, 48))
        self.service(
            self.shelter,
            ServiceType.PSYCHOLOGICAL,
            after=self.days(1, 7),
            outcome=ServiceOutcome.ONGOING,
            notes="Emergency counselling; the child sleeps badly.",
        )
        if f.kind == "foreign":
            self.service(self.shelter, ServiceType.INTERPRETATION, after=self.hours(2, 72))
        if f.duplicate_service:
            self.service(
                self.shelter,
                ServiceType.MEDICAL,
                after=timedelta(minutes=rng.randint(5, 90)),
                outcome=ServiceOutcome.COMPLETED,
            )
            duplicate = self.service(
                self.shelter,
                ServiceType.MEDICAL,
                after=timedelta(minutes=rng.randint(1, 10)),
                outcome=ServiceOutcome.COMPLETED,
            )
            self.emit(
                "EntryVoided",
                {"target_event_id": str(duplicate), "reason": "recorded twice"},
                self.shelter,
                Role.SUPERVISOR,
                after=self.hours(1, 48),
            )
        if f.interview:
            after = self.days(2, 10)
            self.emit(
                "InterviewConducted",
                {
                    "interview_date": self.day(after - self.hours(0, 20)),
                    "conducted_by": f"Investigator, {_BY_SLUG[c.police].name}",
                    "through_social_worker": "Shelter social worker",
                    "recording_reference": f"REC-{self.t.year}-{rng.randint(1, 9999):04d}",
                },
                c.police,
                after=after,
            )
        self.conference(after=self.days(3, 14))
        self.episodes()
        self.assess_age()
        if f.adult:
            return
        self.emit(
            "GuardianAppointed",
            {
                "guardian_agency_id": str(_BY_SLUG[c.guardian].agency_id),
                "mandate": "legal representation until majority",
                "guardian_name": self.name(),
                "until": self.birthday18,
            },
            c.child_protection,
            after=self.days(2, 14),
        )
        if f.legal:
            self.legal_aid()
        if f.missing:
            self.missing_from_care()
            if not f.located:
                return
        actual = _chance(rng, 0.85)
        decision = TraffickingStatus.ACTUAL if actual else TraffickingStatus.POSSIBLE
        self.emit(
            "IdentificationDecisionMade",
            {
                "decision": decision.value,
                "deciding_body": _BY_SLUG[c.competent_authority].name,
                "reasons": "Recruitment by deception, control of movement and exploitation.",
                "exploitation_types": self.types,
            },
            c.competent_authority,
            Role.SUPERVISOR,
            after=self.days(5, 21),
        )
        if f.legal:
            self.proceeding(LegalStage.CHARGE, c.prosecutor, after=self.days(7, 30))
        for _ in range(f.extra_services):
            provider = rng.choice((self.shelter, self.lead))
            service = rng.choice(
                (
                    ServiceType.PSYCHOLOGICAL,
                    ServiceType.MEDICAL,
                    ServiceType.CASE_MANAGEMENT,
                    ServiceType.FINANCIAL,
                    ServiceType.OTHER,
                )
            )
            self.service(provider, service, after=self.days(2, 14))

    def conference(self, *, after: timedelta) -> None:
        c, rng = self.c, self.rng
        members = [(self.lead, Role.SUPERVISOR), (self.shelter, Role.CASEWORKER)]
        for extra in (c.police, c.child_protection, c.social_services):
            if _chance(rng, 0.6) and extra not in (self.lead, self.shelter):
                members.append((extra, Role.CASEWORKER))
        decisions = rng.sample(
            (
                "refer for psychological support",
                "trace the family",
                "request an age assessment",
                "prepare the child for the police interview",
                "enrol the child in catch-up classes",
                "assess the risks of a return",
            ),
            rng.randint(1, 3),
        )
        self.emit(
            "CaseConferenceHeld",
            {
                "participants": [
                    {"agency_id": str(_BY_SLUG[a].agency_id), "role": r.value} for a, r in members
                ],
                "decisions": decisions,
                "next_conference_on": self.day(after + timedelta(days=rng.randint(14, 60))),
            },
            self.lead,
            Role.SUPERVISOR,
            after=after,
        )

    def episodes(self) -> None:
        c, f, rng = self.c, self.f, self.rng
        if f.kind == "foreign":
            recruited_in, recruited_at = self.nationality, _CITY_ABROAD[self.nationality]
            exploited_in, exploited_at = c.code, rng.choice(c.places)
        elif f.kind == "returnee":
            recruited_in, recruited_at = c.code, rng.choice(c.places)
            exploited_in, exploited_at = self.abroad, _CITY_ABROAD[self.abroad]
        else:
            recruited_in, recruited_at = c.code, rng.choice(c.places)
            exploited_in, exploited_at = c.code, rng.choice(c.places)
        began = self.identified_on - timedelta(days=rng.randint(60, 400))
        ended = began + timedelta(days=rng.randint(1, 20))
        relation = _weighted(
            rng,
            (
                (RecruiterRelation.FRIEND, 30),
                (RecruiterRelation.INTIMATE_PARTNER, 15),
                (RecruiterRelation.FAMILY, 15),
                (RecruiterRelation.OTHER, 25),
                (RecruiterRelation.UNKNOWN, 15),
            ),
        )
        recorder = c.police if _chance(rng, 0.3) else self.lead
        self.emit(
            "ExploitationEpisodeRecorded",
            {
                "phase": EpisodePhase.RECRUITMENT.value,
                "place": recruited_at,
                "country": recruited_in,
                "start_date": began.isoformat(),
                "end_date": ended.isoformat(),
                "exploitation_types": self.types,
                "means_of_control": [MeansOfControl.FALSE_PROMISES.value],
                "recruiter_relation": relation.value,
                "perpetrator_details": "An invented adult acquaintance who offered a job (demo).",
            },
            recorder,
            after=self.days(1, 14),
        )
        if recruited_in != exploited_in and _chance(rng, 0.5):
            self.emit(
                "ExploitationEpisodeRecorded",
                {
                    "phase": EpisodePhase.TRANSIT.value,
                    "place": "border crossing",
                    "country": exploited_in,
                    "start_date": ended.isoformat(),
                    "end_date": ended.isoformat(),
                    "means_of_control": [MeansOfControl.WITHHOLDS_DOCUMENTS.value],
                },
                recorder,
                after=self.hours(1, 48),
            )
        if _chance(rng, 0.6):
            means = rng.sample(list(MeansOfControl)[:-1], rng.randint(1, 4))
            self.emit(
                "ExploitationEpisodeRecorded",
                {
                    "phase": EpisodePhase.EXPLOITATION.value,
                    "place": exploited_at,
                    "country": exploited_in,
                    "start_date": ended.isoformat(),
                    "end_date": min(
                        ended + timedelta(days=rng.randint(20, 300)), self.identified_on
                    ).isoformat(),
                    "exploitation_types": self.types,
                    "means_of_control": [m.value for m in means],
                    "recruiter_relation": relation.value,
                },
                recorder,
                after=self.hours(1, 48),
            )

    def assess_age(self) -> None:
        c, f, rng = self.c, self.f, self.rng
        method = _weighted(
            rng,
            (
                (AgeAssessmentMethod.DOCUMENTARY, 40),
                (AgeAssessmentMethod.INTERVIEW, 20),
                (AgeAssessmentMethod.MULTIDISCIPLINARY, 35),
                (AgeAssessmentMethod.MEDICAL, 5),
            ),
        )
        assessor = c.child_protection if _chance(rng, 0.7) else c.social_services
        after = self.days(5, 20)
        when = (self.t + after).date()
        if f.adult:
            age = rng.choice((18, 19))
        else:
            age = max(10, min(17, self.age + rng.choice((-1, 0, 0, 1))))
        birth = when - timedelta(days=365 * age + rng.randint(10, 350))
        self.birthday18 = date(birth.year + MAJORITY, birth.month, min(birth.day, 28)).isoformat()
        payload: dict[str, Any] = {
            "method": method.value,
            "age_years": age,
            "is_minor": age < MAJORITY,
            "presumption_applies": age < MAJORITY,
        }
        if method == AgeAssessmentMethod.DOCUMENTARY:
            payload["birth_date"] = birth.isoformat()
            payload["notes"] = "Birth certificate obtained through the consulate (demo)."
        self.age = age
        self.emit("AgeAssessed", payload, assessor, after=after)

    def legal_aid(self) -> None:
        c = self.c
        self.court_reference = f"{c.court_prefix}-{self.t.year}-{self.rng.randint(1, 9999):04d}"
        self.emit(
            "LegalProceedingRecorded",
            {
                "stage": LegalStage.COMPLAINT.value,
                "court_reference": self.court_reference,
                "protective_measures": ["no confrontation with the accused"],
            },
            c.prosecutor,
            after=self.days(2, 20),
        )
        consent = self.emit(
            "ConsentRecorded",
            {
                "purpose": ConsentPurpose.SERVICES.value,
                "given_by": ConsentGiver.GUARDIAN.value,
                "scope": _scope(ServiceType.LEGAL),
                "shared_with_agency_ids": [str(_BY_SLUG[c.legal_aid].agency_id)],
            },
            c.guardian,
            after=self.days(1, 10),
        )
        if c.legal_aid == self.lead:
            self.legal_referral = None
            self.service(self.lead, ServiceType.LEGAL, after=self.days(1, 10))
            return
        self.consent, previous = consent, self.consent
        referral = self.refer(c.legal_aid, ServiceType.LEGAL, after=self.hours(2, 72))
        self.consent = previous
        self.answer(referral, c.legal_aid, accept=True)
        self.legal_referral = referral
        self.service(c.legal_aid, ServiceType.LEGAL, after=self.days(1, 14))

    def proceeding(self, stage: LegalStage, agency: str, *, after: timedelta) -> None:
        payload: dict[str, Any] = {
            "stage": stage.value,
            "court_reference": self.court_reference,
            "protective_measures": ["testimony by video link", "closed hearing"],
        }
        if stage == LegalStage.JUDGMENT:
            convicted = _chance(self.rng, 0.75)
            payload["outcome"] = "conviction" if convicted else "acquittal"
            if convicted and _chance(self.rng, 0.6):
                payload["compensation_awarded_minor_units"] = self.rng.randint(50, 900) * 10_000
                payload["currency"] = self.c.currency
        self.emit("LegalProceedingRecorded", payload, agency, after=after)

    def missing_from_care(self) -> None:
        c, rng = self.c, self.rng
        after = self.days(3, 30)
        last_seen = self.t + after - self.hours(2, 20)
        reference = f"{c.police_prefix}-{self.t.year}-M{rng.randint(1, 9999):04d}"
        self.emit(
            "ChildMissingFromCare",
            {
                "last_seen_at": last_seen.isoformat(),
                "last_seen_place": "Shelter gate, evening (demo)",
                "police_reference": reference,
            },
            self.shelter,
            after=after,
        )
        if not self.f.located:
            return
        after = self.hours(6, 120)
        self.emit(
            "ChildLocated",
            {
                "located_at": (self.t + after - self.hours(1, 4)).isoformat(),
                "place": f"Bus station, {rng.choice(c.places)} (demo)",
                "police_reference": reference,
                "condition": rng.choice(("unharmed", "tired and hungry", "minor injuries")),
            },
            c.police,
            after=after,
        )

    def end_placement(self, reason: PlacementEndReason, *, after: timedelta) -> None:
        self.emit(
            "PlacementEnded",
            {"end_date": self.day(after), "reason": reason.value},
            self.shelter,
            after=after,
        )

    def lost_contact(self) -> None:
        self.end_placement(PlacementEndReason.MISSING, after=self.days(2, 7))
        self.checkpoint("in_care")
        self.emit(
            "CaseClosed",
            {"reason": ClosureReason.LOST_CONTACT.value, "notes": "Police search continues."},
            self.lead,
            Role.SUPERVISOR,
            after=self.days(60, 120),
        )

    def transfer_adult(self) -> None:
        self.end_placement(PlacementEndReason.MOVED, after=self.days(1, 7))
        self.checkpoint("in_care")
        self.emit(
            "CaseClosed",
            {
                "reason": ClosureReason.TRANSFERRED.value,
                "notes": "Assessed as an adult; referred to adult victim services.",
            },
            self.lead,
            Role.SUPERVISOR,
            after=self.days(1, 10),
        )

    # -- reintegration and closure -------------------------------------------------------------

    def reintegration(self) -> None:
        c, f, rng = self.c, self.f, self.rng
        self.emit(
            "BestInterestsDetermined",
            {
                "panel": ["child protection officer", "psychologist", "guardian"],
                "child_views": rng.choice(
                    (
                        "Wants to go home and finish school.",
                        "Wants to stay near her friends at the shelter for now.",
                        "Afraid of the recruiter; wants to live with the grandmother.",
                    )
                ),
                "option_chosen": "return to country of origin with support"
                if f.kind == "foreign" and f.return_abroad
                else "family reintegration with support",
                "review_date": self.day(timedelta(days=rng.randint(90, 180))),
            },
            c.child_protection,
            Role.SUPERVISOR,
            after=self.days(5, 20),
        )
        if f.kind == "foreign":
            self.emit(
                "ReturnRiskAssessed",
                {
                    "from_country": c.code,
                    "to_country": self.nationality,
                    "risk": (ReturnRisk.LOW if f.return_abroad else ReturnRisk.HIGH).value,
                    "recommendation": "return" if f.return_abroad else "defer",
                },
                self.lead,
                after=self.days(3, 21),
            )
        self.emit(
            "ConsentRecorded",
            {
                "purpose": ConsentPurpose.TRACING.value,
                "given_by": ConsentGiver.CHILD.value,
                "scope": [ReferralScope.FAMILY.value, ReferralScope.CONTACT_DETAILS.value],
            },
            self.lead,
            after=self.days(1, 10),
        )
        found = _chance(rng, 0.8) or (f.kind == "foreign" and f.return_abroad)
        outcome = FamilyTracingOutcome.FOUND if found else FamilyTracingOutcome.NOT_FOUND
        traced: dict[str, Any] = {"outcome": outcome.value}
        if found:
            traced["relationship"] = rng.choice(("mother", "father", "grandmother", "aunt"))
            traced["family_contact"] = self.name()
        self.emit("FamilyTraced", traced, self.lead, after=self.days(5, 21))
        if found:
            safety = _weighted(
                rng,
                (
                    (FamilySafety.SAFE, 30),
                    (FamilySafety.SAFE_WITH_SUPPORT, 55),
                    (FamilySafety.UNSAFE, 15),
                ),
            )
            self.home_safe = safety != FamilySafety.UNSAFE
            assessor = c.coordinator if f.kind == "foreign" else c.social_services
            self.emit(
                "HomeAssessed",
                {
                    "safety": safety.value,
                    "recommendation": "family support and school follow-up"
                    if self.home_safe
                    else "long-term placement",
                },
                assessor,
                after=self.days(3, 14),
            )
        else:
            self.home_safe = False
        services = [ServiceType.EDUCATION, ServiceType.PSYCHOLOGICAL]
        if f.kind == "foreign" and f.return_abroad:
            services.append(ServiceType.REPATRIATION)
        responsible = {self.lead, c.social_services, self.shelter}
        self.emit(
            "ReintegrationPlanAgreed",
            {
                "goals": ["return to school", "weekly counselling", "stable home"],
                "services": [s.value for s in services],
                "responsible_agency_ids": sorted(str(_BY_SLUG[a].agency_id) for a in responsible),
                "review_date": self.day(timedelta(days=rng.randint(60, 120))),
            },
            self.lead,
            Role.SUPERVISOR,
            after=self.days(3, 14),
        )
        if f.withdraw and self.consent is not None:
            self.emit(
                "ConsentWithdrawn",
                {"consent_event_id": str(self.consent), "reason": "child asked to stop sharing"},
                self.lead,
                after=self.days(1, 20),
            )
            self.consent = None
        if c.social_services != self.lead:
            referral = self.refer(
                c.social_services, ServiceType.EDUCATION, after=self.days(1, 10), statutory=True
            )
            self.answer(referral, c.social_services, accept=True)
            self.service(c.social_services, ServiceType.EDUCATION, after=self.days(3, 20))
        else:
            self.service(self.lead, ServiceType.EDUCATION, after=self.days(3, 20))
        if f.revoke:
            other = next(a for a in (*c.case_managers, c.legal_aid) if a != self.lead)
            referral = self.refer(
                other, ServiceType.VOCATIONAL, after=self.days(2, 20), statutory=True
            )
            self.emit(
                "ReferralRevoked",
                {"referral_event_id": str(referral), "reason": "child chose a school course"},
                self.lead,
                after=self.days(1, 4),
            )
        self.conference(after=self.days(7, 30))
        for i in range(1 if _chance(rng, 0.6) else 2):
            self.emit(
                "PlanReviewed",
                {
                    "progress": rng.choice(
                        (
                            "attending school",
                            "counselling continues",
                            "family visits going well",
                            "some missed appointments",
                        )
                    ),
                    "next_review_date": self.day(timedelta(days=rng.randint(30, 120))),
                },
                self.lead,
                after=self.days(21, 60) if i == 0 else self.days(14, 45),
            )
        if f.legal:
            self.proceeding(LegalStage.TRIAL, c.court, after=self.days(15, 45))
            self.proceeding(LegalStage.JUDGMENT, c.court, after=self.days(7, 30))
            if self.legal_referral is not None:
                self.emit(
                    "ReferralCompleted",
                    {"referral_event_id": str(self.legal_referral), "outcome": "judgment given"},
                    c.legal_aid,
                    after=self.days(1, 14),
                )

    def close(self) -> None:
        c, f, rng = self.c, self.f, self.rng
        if f.kind == "foreign" and f.return_abroad:
            city = _CITY_ABROAD[self.nationality]
            after = self.days(7, 40)
            self.emit(
                "ChildReturned",
                {
                    "from_country": c.code,
                    "to_country": self.nationality,
                    "receiving_agency_name": f"{city} child reception centre (demo)",
                    "escort": "shelter social worker",
                    "met_by": "reception centre staff at the border",
                    "return_date": self.day(after),
                },
                c.coordinator,
                after=after,
                legal_basis=RETURN_BASIS,
            )
            end_reason, closure = PlacementEndReason.RETURNED_ABROAD, ClosureReason.RETURNED
        elif self.home_safe:
            end_reason, closure = PlacementEndReason.RETURNED_HOME, ClosureReason.REINTEGRATED
        else:
            end_reason = (
                PlacementEndReason.AGED_OUT
                if self.age >= MAJORITY - 1
                else PlacementEndReason.MOVED
            )
            closure = (
                ClosureReason.AGED_OUT if self.age >= MAJORITY - 1 else ClosureReason.TRANSFERRED
            )
        self.end_placement(end_reason, after=self.days(1, 20))
        self.emit(
            "PlanReviewed",
            {"progress": "plan goals met; no further review", "next_review_date": None},
            self.lead,
            after=self.days(5, 21),
        )
        self.emit(
            "CaseClosed",
            {"reason": closure.value},
            self.lead,
            Role.SUPERVISOR,
            after=self.days(1, 10),
        )
        if f.reopen:
            self.emit(
                "CaseReopened",
                {"reason": "child contacted the hotline again"},
                self.lead,
                Role.SUPERVISOR,
                after=self.days(10, 45),
            )
            self.service(self.lead, ServiceType.PSYCHOLOGICAL, after=self.days(1, 14))
            if _chance(rng, 0.5):
                self.emit(
                    "CaseClosed",
                    {"reason": closure.value, "notes": "Follow-up support completed."},
                    self.lead,
                    Role.SUPERVISOR,
                    after=self.days(20, 60),
                )


# -- planning ------------------------------------------------------------------------------------


def _case_rng(seed: int, index: int, start: datetime, now: datetime) -> random.Random:
    """The random source of one case, stable across processes (`random` hashes str seeds with
    SHA-512). The window is part of it: a run with another "now" draws other event ids, so it
    adds new cases instead of colliding with the ids of an earlier run."""
    key = f"referral-synthetic:{seed}:{index}:{start.isoformat()}:{now.isoformat()}"
    return random.Random(key)  # noqa: S311 -- workload data, not secrets


def _features(rng: random.Random, country: DemoCountry, showcase: bool) -> _Features:
    if showcase:
        kind = {"UA": "returnee", "TH": "foreign"}.get(country.code, "domestic")
        return _Features(
            opening="contact",
            kind=kind,
            follow_up_contact=True,
            correct=True,
            not_a_victim=False,
            late_report=False,
            decline=True,
            statutory_shelter=False,
            duplicate_service=True,
            interview=True,
            legal=True,
            missing=True,
            located=True,
            adult=False,
            withdraw=True,
            revoke=True,
            reopen=True,
            return_abroad=True,
            extra_services=2,
        )
    kind = rng.choices(("domestic", "returnee", "foreign"), weights=country.kind_weights)[0]
    opening = "contact" if kind == "returnee" or _chance(rng, 0.75) else "outreach"
    missing = _chance(rng, 0.1)
    return _Features(
        opening=opening,
        kind=kind,
        follow_up_contact=_chance(rng, 0.1),
        correct=_chance(rng, 0.15),
        not_a_victim=_chance(rng, 0.04),
        late_report=_chance(rng, 0.15),
        decline=_chance(rng, 0.2),
        statutory_shelter=_chance(rng, 0.3),
        duplicate_service=_chance(rng, 0.08),
        interview=_chance(rng, 0.5),
        legal=_chance(rng, 0.4),
        missing=missing,
        located=missing and _chance(rng, 0.8),
        adult=_chance(rng, 0.02),
        withdraw=_chance(rng, 0.05),
        revoke=_chance(rng, 0.06),
        reopen=_chance(rng, 0.05),
        return_abroad=_chance(rng, 0.7),
        extra_services=rng.randint(0, 3),
    )


def plan_case(index: int, *, seed: int, start: datetime, now: datetime) -> CasePlan:
    """The events of case number `index` of a run: a pure function of its arguments.

    The first `len(DEMO_COUNTRIES)` cases of every run are showcase cases, one per country, that
    take every branch of the lifecycle; opened at `start`, they cover every event type when
    `start` is far enough back (the default 18 months is). Later cases open at a random time
    between `start` and `now` and stop at a drawn stage, or earlier if `now` comes first.
    """
    if start.tzinfo is None or now.tzinfo is None:
        raise ValueError("start and now need a time zone")
    limit = now - timedelta(minutes=1)
    if start >= limit:
        raise ValueError("start must be more than a minute before now")
    rng = _case_rng(seed, index, start, now)
    showcase = index < len(DEMO_COUNTRIES)
    if showcase:
        country = DEMO_COUNTRIES[index]
        opened_at = start + timedelta(days=index)
        stop = "closed"
    else:
        country = rng.choices(DEMO_COUNTRIES, weights=[c.weight for c in DEMO_COUNTRIES])[0]
        span = (now - start).total_seconds()
        opened_at = start + timedelta(seconds=round(rng.uniform(0, span * 0.995)))
        stop = rng.choices(STOPS, weights=_STOP_WEIGHTS)[0]
    features = _features(rng, country, showcase)
    if stop == "contact" and features.opening != "contact":
        stop = "identified"
    script = _CaseScript(
        index=index,
        seed=seed,
        rng=rng,
        country=country,
        opened_at=min(opened_at, limit).replace(microsecond=0),
        limit=limit,
        stop=stop,
        features=features,
        brisk=showcase,
    )
    script.run()
    if script.case_id is None:
        raise ValueError("now leaves no time to open a case")
    return CasePlan(index, script.case_id, country.code, stop, tuple(script.events))


def plan_cases(
    *, cases: int, seed: int, now: datetime, start: datetime | None = None
) -> list[CasePlan]:
    """The plans of cases 0 to `cases - 1` of a run; the first n are the same for any count."""
    begin = start if start is not None else now - DEFAULT_HISTORY
    return [plan_case(i, seed=seed, start=begin, now=now) for i in range(cases)]


def interleave(plans: Iterable[CasePlan]) -> list[SyntheticEvent]:
    """Every planned event in the order it is meant to be recorded, across cases."""
    events = [e for plan in plans for e in plan.events]
    events.sort(key=lambda e: (e.recorded_at, e.case_index, e.seq))
    return events


# -- recording -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationSummary:
    """What a run recorded, for a CLI to print and a test or benchmark to use."""

    seed: int
    start: datetime
    now: datetime
    case_ids: tuple[UUID, ...]
    events: int
    """Events planned; all of them are in the store after the run."""
    recorded: int
    """Events this run added: fewer than `events` when it repeated an earlier run."""
    by_stage: dict[str, int]
    by_country: dict[str, int]
    by_event_type: dict[str, int]
    open_cases: dict[UUID, str]
    """Open case id -> its lead agency id: the cases `repeatable_event` may extend."""

    def describe(self) -> str:
        def counts(title: str, values: Mapping[str, int]) -> str:
            cells = ", ".join(f"{k} {v}" for k, v in sorted(values.items()))
            return f"  {title}: {cells}"

        return "\n".join(
            (
                f"{len(self.case_ids)} synthetic cases, {self.events} events",
                f"  seed {self.seed}, from {self.start:%Y-%m-%d} to {self.now:%Y-%m-%d}",
                counts("by stage", self.by_stage),
                counts("by country", self.by_country),
                f"  event types: {len(self.by_event_type)}",
            )
        )


def generate_cases(
    app: ReferralApplication,
    *,
    cases: int,
    seed: int,
    start: datetime | None = None,
    now: datetime | None = None,
    clock_advance: Callable[[datetime], object] | None = None,
    via_append: bool = False,
) -> GenerationSummary:
    """Record `cases` synthetic cases in `app`; return what was recorded.

    `now` defaults to `app.clock()` at the start of the run; no event occurs after it. `start`
    defaults to 18 months before `now`. Events are recorded interleaved across cases in the
    order of their `recorded_at`; if `clock_advance` is given, it is called with that time
    before each event, so an application built on a settable clock records realistic
    `recorded_at` values (its clock must then not run behind them).

    Each case opens through `app.open_case`. With `via_append`, every later event goes through
    `app.append`, which loads the case from the store each time. Otherwise the case stays
    loaded: each event is decided by the same `commands.record_event` that `append` uses (the
    same validation and rules) and the case is saved with `app.save`, which is several times
    faster because nothing is replayed. Either way the stored histories are identical, and a
    second run with the same arguments records nothing new (every event is a retry).
    An event the domain refuses raises its domain error: a bug here or in the domain.
    """
    end = now if now is not None else app.clock()
    begin = start if start is not None else end - DEFAULT_HISTORY
    plans = plan_cases(cases=cases, seed=seed, now=end, start=begin)
    ordered = interleave(plans)
    live: dict[UUID, Case] = {}
    recorded = 0
    for event in ordered:
        if clock_advance is not None:
            clock_advance(event.recorded_at)
        if event.seq == 1:
            result = app.open_case(
                event_type=event.event_type, payload=event.payload, envelope=event.envelope
            )
            if result.case_id != event.case_id:
                raise RuntimeError("the application opened a different case than planned")
            duplicate = result.duplicate
            if not via_append:
                live[event.case_id] = app.get_case(event.case_id)
        elif via_append:
            duplicate = app.append(
                event.case_id,
                expected_version=event.seq - 1,
                event_type=event.event_type,
                payload=event.payload,
                envelope=event.envelope,
            ).duplicate
        else:
            decision = record_event(
                live[event.case_id],
                case_id=event.case_id,
                event_type=event.event_type,
                payload=event.payload,
                envelope=event.envelope,
                now=app.clock(),
                expected_version=event.seq - 1,
                recorded=partial(app.recorded_event, event.case_id),
            )
            duplicate = decision.duplicate
            if not duplicate:
                app.save(decision.case)
        recorded += not duplicate
    stages: Counter[str] = Counter()
    open_cases: dict[UUID, str] = {}
    for plan in plans:
        case = live[plan.case_id] if plan.case_id in live else app.get_case(plan.case_id)
        stages[case.stage] += 1
        if not case.closed:
            open_cases[plan.case_id] = case.lead_agency_id
    return GenerationSummary(
        seed=seed,
        start=begin,
        now=end,
        case_ids=tuple(plan.case_id for plan in plans),
        events=len(ordered),
        recorded=recorded,
        by_stage=dict(sorted(stages.items())),
        by_country=dict(sorted(Counter(plan.country for plan in plans).items())),
        by_event_type=dict(sorted(Counter(e.event_type for e in ordered).items())),
        open_cases=open_cases,
    )


# -- one more event, for benchmarks --------------------------------------------------------------


class RepeatableEvent(NamedTuple):
    """One more valid event for an open case: unpack as (event_type, payload, envelope)."""

    event_type: str
    payload: dict[str, Any]
    envelope: Envelope


def _actor_of(agency_id: str, role: Role) -> Actor:
    agency = demo_agency_by_id(agency_id)
    if agency is not None:
        return agency.actor(role)
    return Actor(str(uuid5(DEMO_NAMESPACE, f"user:{agency_id}:{role.value}")), agency_id, role)


def repeatable_event(
    rng: random.Random, lead_agency_id: UUID | str, now: datetime
) -> RepeatableEvent:
    """A ServiceDelivered or CaseConferenceHeld by a case's lead agency, in the hour before `now`.

    Both pass the domain rules on any open case, however many times they are appended; the
    caller picks an open case (see `GenerationSummary.open_cases`) and its lead agency. The same
    `rng` state gives the same event, id included.
    """
    lead = str(lead_agency_id)
    event_id = _uuid4(rng)
    occurred_at = now - timedelta(seconds=rng.randint(1, 3600))
    correlation_id = f"synthetic-repeat:{event_id.hex[:16]}"
    if _chance(rng, 0.7):
        service = rng.choice(
            (
                ServiceType.PSYCHOLOGICAL,
                ServiceType.CASE_MANAGEMENT,
                ServiceType.EDUCATION,
                ServiceType.MEDICAL,
                ServiceType.VOCATIONAL,
            )
        )
        outcome = rng.choice((ServiceOutcome.COMPLETED, ServiceOutcome.ONGOING))
        payload: dict[str, Any] = {
            "service_type": service.value,
            "provider_agency_id": lead,
            "delivered_on": occurred_at.date().isoformat(),
            "outcome": outcome.value,
        }
        return RepeatableEvent(
            "ServiceDelivered",
            payload,
            Envelope(event_id, _actor_of(lead, Role.CASEWORKER), occurred_at, correlation_id),
        )
    participants = [{"agency_id": lead, "role": Role.SUPERVISOR.value}]
    home = demo_agency_by_id(lead)
    if home is not None:
        peers = [
            a
            for a in DEMO_AGENCIES
            if a.country == home.country and a.slug != home.slug and a.kind != AgencyKind.AUDITOR
        ]
        for peer in rng.sample(peers, 2):
            participants.append({"agency_id": str(peer.agency_id), "role": Role.CASEWORKER.value})
    payload = {
        "participants": participants,
        "decisions": [rng.choice(("continue counselling", "review school attendance"))],
        "next_conference_on": (occurred_at + timedelta(days=30)).date().isoformat(),
    }
    return RepeatableEvent(
        "CaseConferenceHeld",
        payload,
        Envelope(event_id, _actor_of(lead, Role.SUPERVISOR), occurred_at, correlation_id),
    )
