"""Schemathesis against the service's own OpenAPI document, as every caller, on both stores.

Every operation gets schemathesis' positive cases as each agency kind's caseworker and
supervisor (and the extra roles), negative cases as a sample of callers, and the document's
own examples; path parameters often carry real case ids of other agencies. Every schemathesis
check runs on every response, and `tests.support.fuzzing` adds ours: every error is a problem,
no 5xx, nothing outside the caller's view. `make test` runs a bounded pass;
`make fuzz` sets REFERRAL_FUZZ_EXAMPLES for a longer one.
"""

from __future__ import annotations

import os
from pathlib import Path

from schemathesis import GenerationMode

from referral_core.vocab import Role
from tests.support.api import harness
from tests.support.fuzzing import FuzzRun, Identity, Tally, identities, lifespans, seed_cases

EXAMPLES = int(os.environ.get("REFERRAL_FUZZ_EXAMPLES", "1"))
# The bounded run speaks as every agency kind's caseworker and as every other role once; the
# longer one (`make fuzz`) as every seeded caller, supervisors of every kind included.
ONCE_PER_ROLE = {("ngo", "supervisor"), ("police", "supervisor")}
# Negative cases need no particular caller: a case worker, a police supervisor, an auditor.
NEGATIVE_CALLERS = {("ngo", "caseworker"), ("police", "supervisor"), ("auditor", "caseworker")}


def test_every_operation_as_every_caller(database_url: str, tmp_path: Path) -> None:
    with harness(database_url, tmp_path, read_wait_seconds=0.05) as h, lifespans():
        run = FuzzRun(h, seed_cases(h), identities(h))
        tally = Tally()
        for who in _callers(run):
            tally.add(run.fuzz(who, EXAMPLES, (GenerationMode.POSITIVE,)))
        for who in run.callers:
            if (who.name, who.role) in NEGATIVE_CALLERS:
                tally.add(run.fuzz(who, 2 * EXAMPLES, (GenerationMode.NEGATIVE,)))
        lead = next(who for who in run.callers if who.label == "ngo/caseworker")
        tally.add(run.replay_examples(EXAMPLES, lead))
        print(f"\nfuzz {database_url.split(':', maxsplit=1)[0]}: {tally.summary()}")  # noqa: T201

    assert not tally.failures
    callers = _callers(run)
    assert len({who.name for who in callers}) == 15
    assert {who.role for who in callers} == {r.value for r in Role}
    # Every caller reached every operation, and the answers span success and refusal.
    assert tally.requests >= len(callers) * len(run.operations())
    for status in (200, 401, 403, 404, 422):
        assert tally.statuses[status], status
    assert not [status for status in tally.statuses if status >= 500 and status != 504]


def _callers(run: FuzzRun) -> list[Identity]:
    if EXAMPLES > 1:
        return run.callers
    return [
        who
        for who in run.callers
        if who.role != "supervisor" or (who.name, who.role) in ONCE_PER_ROLE
    ]
