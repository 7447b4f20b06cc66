"""Controlled vocabularies: agency kinds, roles, and the value sets of case payloads.

Value sets follow IOM's Human Trafficking Case Data Standard (HTCDS 2.0) where one exists
(exploitation types, means of control, recruiter relation, trafficking status, gender), and the
practice in ECPAT's 2007 good-practice report elsewhere (hotline topics, caller types).
"""

from __future__ import annotations

from enum import StrEnum


class AgencyKind(StrEnum):
    HOTLINE = "hotline"
    NGO = "ngo"
    SOCIAL_SERVICES = "social_services"
    SHELTER = "shelter"
    LAW_ENFORCEMENT = "law_enforcement"
    PROSECUTOR = "prosecutor"
    COURT = "court"
    LEGAL_AID = "legal_aid"
    CHILD_PROTECTION = "child_protection"
    MINISTRY = "ministry"
    COORDINATOR = "coordinator"
    GUARDIAN = "guardian"
    AUDITOR = "auditor"


class Role(StrEnum):
    CASEWORKER = "caseworker"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    DATA_PROTECTION_OFFICER = "data_protection_officer"
    """Erases a case's identifying data when the law requires it; only in a ministry or
    coordinator agency (the national level answers for the register), never in a case agency."""


class ContactChannel(StrEnum):
    PHONE = "phone"
    WEB_FORM = "web_form"
    WALK_IN = "walk_in"
    EMAIL = "email"
    CHAT = "chat"
    OUTREACH = "outreach"


class CallerType(StrEnum):
    CHILD = "child"
    PARENT = "parent"
    RELATIVE = "relative"
    FRIEND = "friend"
    PROFESSIONAL = "professional"
    MEMBER_OF_PUBLIC = "member_of_public"
    UNKNOWN = "unknown"


class ContactTopic(StrEnum):
    SAFE_MIGRATION = "safe_migration"
    MISSING_CHILD_ABROAD = "missing_child_abroad"
    REPORT_OF_EXPLOITATION = "report_of_exploitation"
    EMPLOYMENT_ABROAD = "employment_abroad"
    STUDY_ABROAD = "study_abroad"
    MARRIAGE_ABROAD = "marriage_abroad"
    LEGAL_STATUS = "legal_status"
    RETURN_ASSISTANCE = "return_assistance"
    PSYCHOLOGICAL_SUPPORT = "psychological_support"
    ONLINE_ABUSE = "online_abuse"
    OTHER = "other"


class Sex(StrEnum):
    """HTCDS 2.0 gender values."""

    FEMALE = "female"
    MALE = "male"
    TRANSGENDER_OR_NONCONFORMING = "transgender_or_nonconforming"
    UNKNOWN = "unknown"


class IdentificationMethod(StrEnum):
    PROACTIVE = "proactive"
    SELF_REFERRAL = "self_referral"
    THIRD_PARTY = "third_party"


class TraffickingStatus(StrEnum):
    POSSIBLE = "possible"
    ACTUAL = "actual"
    NOT_A_VICTIM = "not_a_victim"


class ExploitationType(StrEnum):
    """HTCDS 2.0 type of exploitation, with the CSEC forms ECPAT distinguishes."""

    SEXUAL_EXPLOITATION = "sexual_exploitation"
    ONLINE_SEXUAL_EXPLOITATION = "online_sexual_exploitation"
    CHILD_SEXUAL_ABUSE_MATERIAL = "child_sexual_abuse_material"
    SEXUAL_EXPLOITATION_IN_TRAVEL_AND_TOURISM = "sexual_exploitation_in_travel_and_tourism"
    FORCED_LABOUR = "forced_labour"
    DOMESTIC_SERVITUDE = "domestic_servitude"
    FORCED_MARRIAGE = "forced_marriage"
    FORCED_CRIMINALITY = "forced_criminality"
    FORCED_BEGGING = "forced_begging"
    FORCED_MILITARY = "forced_military"
    ORGAN_REMOVAL = "organ_removal"
    SLAVERY_AND_SIMILAR_PRACTICES = "slavery_and_similar_practices"
    OTHER = "other"


class MeansOfControl(StrEnum):
    """HTCDS 2.0 means of control."""

    DEBT_BONDAGE = "debt_bondage"
    TAKES_EARNINGS = "takes_earnings"
    RESTRICTS_FINANCIAL_ACCESS = "restricts_financial_access"
    THREATS = "threats"
    PSYCHOLOGICAL_ABUSE = "psychological_abuse"
    PHYSICAL_ABUSE = "physical_abuse"
    SEXUAL_ABUSE = "sexual_abuse"
    FALSE_PROMISES = "false_promises"
    PSYCHOACTIVE_SUBSTANCES = "psychoactive_substances"
    RESTRICTS_MOVEMENT = "restricts_movement"
    RESTRICTS_MEDICAL_CARE = "restricts_medical_care"
    EXCESSIVE_WORKING_HOURS = "excessive_working_hours"
    USES_CHILDREN = "uses_children"
    THREAT_OF_LAW_ENFORCEMENT = "threat_of_law_enforcement"
    WITHHOLDS_NECESSITIES = "withholds_necessities"
    WITHHOLDS_DOCUMENTS = "withholds_documents"
    OTHER = "other"


class RecruiterRelation(StrEnum):
    """HTCDS 2.0 recruiter relation."""

    INTIMATE_PARTNER = "intimate_partner"
    FRIEND = "friend"
    FAMILY = "family"
    OTHER = "other"
    UNKNOWN = "unknown"


class EpisodePhase(StrEnum):
    RECRUITMENT = "recruitment"
    TRANSIT = "transit"
    EXPLOITATION = "exploitation"


class AgeAssessmentMethod(StrEnum):
    DOCUMENTARY = "documentary"
    INTERVIEW = "interview"
    MULTIDISCIPLINARY = "multidisciplinary"
    MEDICAL = "medical"


class ConsentPurpose(StrEnum):
    SERVICES = "services"
    SHARING = "sharing"
    TRACING = "tracing"
    RETURN = "return"
    CONTINUATION_AS_ADULT = "continuation_as_adult"


class ConsentGiver(StrEnum):
    CHILD = "child"
    GUARDIAN = "guardian"
    PARENT = "parent"


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    IMMEDIATE = "immediate"


class ServiceType(StrEnum):
    MEDICAL = "medical"
    PSYCHOLOGICAL = "psychological"
    LEGAL = "legal"
    EDUCATION = "education"
    VOCATIONAL = "vocational"
    SHELTER = "shelter"
    REPATRIATION = "repatriation"
    COMPENSATION_CLAIM = "compensation_claim"
    FAMILY_TRACING = "family_tracing"
    CASE_MANAGEMENT = "case_management"
    INTERPRETATION = "interpretation"
    FINANCIAL = "financial"
    OTHER = "other"


class ServiceOutcome(StrEnum):
    COMPLETED = "completed"
    ONGOING = "ongoing"
    REFUSED = "refused"
    NOT_AVAILABLE = "not_available"


class ReferralScope(StrEnum):
    """What a referral's receiver may see of the case."""

    IDENTIFICATION = "identification"
    CONTACT_DETAILS = "contact_details"
    PLACEMENT = "placement"
    SERVICES = "services"
    PSYCHOSOCIAL = "psychosocial"
    MEDICAL = "medical"
    LEGAL = "legal"
    EXPLOITATION = "exploitation"
    PLAN = "plan"
    FAMILY = "family"


class PlacementType(StrEnum):
    EMERGENCY_SHELTER = "emergency_shelter"
    SHORT_TERM_SHELTER = "short_term_shelter"
    LONG_TERM_SHELTER = "long_term_shelter"
    FOSTER_CARE = "foster_care"
    KINSHIP_CARE = "kinship_care"
    SUPERVISED_INDEPENDENT_LIVING = "supervised_independent_living"


class PlacementEndReason(StrEnum):
    MOVED = "moved"
    RETURNED_HOME = "returned_home"
    RETURNED_ABROAD = "returned_abroad"
    MISSING = "missing"
    AGED_OUT = "aged_out"
    OTHER = "other"


class FamilyTracingOutcome(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    IN_PROGRESS = "in_progress"


class FamilySafety(StrEnum):
    SAFE = "safe"
    SAFE_WITH_SUPPORT = "safe_with_support"
    UNSAFE = "unsafe"


class ReturnRisk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class LegalStage(StrEnum):
    COMPLAINT = "complaint"
    INVESTIGATION = "investigation"
    CHARGE = "charge"
    TRIAL = "trial"
    JUDGMENT = "judgment"
    APPEAL = "appeal"
    COMPENSATION = "compensation"


class ClosureReason(StrEnum):
    REINTEGRATED = "reintegrated"
    RETURNED = "returned"
    TRANSFERRED = "transferred"
    AGED_OUT = "aged_out"
    LOST_CONTACT = "lost_contact"
    DECEASED = "deceased"
    NOT_A_VICTIM = "not_a_victim"


class CaseStage(StrEnum):
    """Where a case stands, derived from its events."""

    CONTACT = "contact"
    IDENTIFIED = "identified"
    REPORTED = "reported"
    IN_CARE = "in_care"
    REINTEGRATION = "reintegration"
    CLOSED = "closed"
