"""Plain-Python oracles of the read models, for tests that compare the database against them.

The semantics here are the specification the SQL must meet: a test seeds rows as dicts (the
``transactions`` columns), asks the database, and compares with :func:`expected_transactions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dashtam_core.application.transaction_pages import TransactionFilter


def matches_filter(row: Mapping[str, Any], flt: TransactionFilter) -> bool:
    """Whether a ``transactions`` row (as a mapping) is listed under ``flt``.

    Live rows only; ``account_id``, ``start``/``end`` (inclusive dates), ``type`` and
    ``status`` compare exactly; ``q`` is a case-insensitive substring of the description or
    the merchant (no pattern characters: ``%`` and ``_`` are literal).
    """
    if row["removed_at"] is not None:
        return False
    if flt.account_id is not None and row["account_id"] != flt.account_id:
        return False
    if flt.start is not None and row["date"] < flt.start:
        return False
    if flt.end is not None and row["date"] > flt.end:
        return False
    if flt.type is not None and row["type"] != str(flt.type):
        return False
    if flt.status is not None and row["status"] != str(flt.status):
        return False
    if flt.q:
        needle = flt.q.lower()
        return needle in row["description"].lower() or needle in (row["merchant"] or "").lower()
    return True


def expected_transactions(
    rows: Iterable[Mapping[str, Any]], flt: TransactionFilter
) -> list[Mapping[str, Any]]:
    """The rows listed under ``flt``, in list order: newest date first, ties by id, newest first."""
    chosen = [r for r in rows if matches_filter(r, flt)]
    return sorted(chosen, key=lambda r: (r["date"], r["id"]), reverse=True)


__all__ = ["expected_transactions", "matches_filter"]
