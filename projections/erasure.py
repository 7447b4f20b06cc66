"""Scrub what read models copied from an erased case's identifying fields.

Of the read models, only the access log keeps free text that may name the child: each
reader's stated `purpose`, which the log itself seals under the case key. The others keep ids,
stages, dates, codes and counts (statistics must stay unchanged by an erasure), and the
integrity read model keeps hashes of the stored bytes only. A new read model that copies an
identifying field must add its column here.
"""

from __future__ import annotations

from projections.access_log import AccessLog
from projections.db import Tx

IDENTIFYING_COLUMNS: tuple[tuple[str, str, str], ...] = (("access_log", "purpose", "case_id"),)
"""(table, column holding identifying text, column naming the case)."""


def scrub_case(tx: Tx, case_id: str) -> None:
    """Set every identifying read-model value of the case to NULL."""
    AccessLog().create(tx)
    for table, column, case_column in IDENTIFYING_COLUMNS:
        tx.execute(
            f"UPDATE {table} SET {column} = NULL WHERE {case_column} = ?",
            (case_id,),
        )
