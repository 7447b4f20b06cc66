"""Per-agency work: case summaries, shelter rosters, police and referral inboxes, deadlines.

Four read models, each in its own module, each built from the case state after every event
and the same `policy` that answers every read, so an agency's rows hold only what it may see,
and none holds anything identifying:

- `case_summary` (`work_summary`): per case and involved agency, and its open deadlines;
- `shelter_roster` (`work_roster`): the children placed with each shelter now;
- `le_inbox` and `referral_inbox` (`work_inboxes`): reports per police unit, referrals per
  receiving agency.

Deadlines (`referral_core.deadlines`) are stored as due times, never as "overdue" flags: a
reader compares them with its own clock. The durations are the country rules: the built-in
`RULES_BY_COUNTRY`, or the file named by REFERRAL_COUNTRY_RULES_FILE (the setting
`country_rules_file`), read here from the environment because the API and `referral projections
run` build read models without settings. Changing the rules changes due times from the next
event of each case on; rebuild these read models to apply them to every row at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from projections.base import Projection
from projections.work_common import RulesTable
from projections.work_inboxes import LawEnforcementInbox, ReferralInbox
from projections.work_roster import ShelterRoster
from projections.work_summary import CaseSummary
from referral_core.deadlines import RULES_BY_COUNTRY, load_country_rules

RULES_FILE_VARIABLE = "REFERRAL_COUNTRY_RULES_FILE"


def configured_rules() -> RulesTable:
    """The country rules in force: the configured file's, else the built-in defaults."""
    path = os.environ.get(RULES_FILE_VARIABLE, "").strip()
    return load_country_rules(Path(path)) if path else RULES_BY_COUNTRY


def work_projections(rules: RulesTable | None = None) -> list[Projection]:
    """The work read models, applying `rules` (default: `configured_rules()`)."""
    table = configured_rules() if rules is None else rules
    return [
        CaseSummary(table),
        ShelterRoster(table),
        LawEnforcementInbox(table),
        ReferralInbox(table),
    ]
