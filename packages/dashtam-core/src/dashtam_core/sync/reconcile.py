"""Pending → posted matching: a pure function over candidate rows.

The documented rule (:class:`MatchRules` holds the numbers):

1. **Provider link** (reason ``provider_link``): the posted row's ``pending_link`` equals the
   pending row's ``provider_transaction_id``. Always wins; no other condition.
2. **Heuristic** (reason ``amount_date_description``), all of:
   * same currency and same sign of amount;
   * ``|posted - pending| <= max(0.01, 25% of |pending|)`` — card holds differ from the settled
     amount by tips (restaurants) and by rounding; 25% covers customary tips;
   * ``pending.date <= posted.date <= pending.date + 5 days`` (a charge never settles before it
     was authorised, which also keeps a later, identical purchase from absorbing an old one);
   * similar descriptions: the overlap coefficient of their normalized token sets
     (``|A ∩ B| / min(|A|, |B|)``) is at least 0.5. Tokens are lower-case alphanumeric words of two
     or more characters, without pure numbers (store numbers, dates) and card-network noise words.
3. Matching is one-to-one and deterministic: provider links first, then heuristic pairs in order
   of (amount difference, date difference, lower similarity last, pending date, ids).

Only pairs where at least one side was written in the current unit are considered, so old rows
that never matched are not re-examined on every sync.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from uuid import UUID

PROVIDER_LINK = "provider_link"
HEURISTIC = "amount_date_description"

_WORD = re.compile(r"[a-z0-9]+")
_NOISE = frozenset(
    {
        "pos",
        "purchase",
        "pending",
        "debit",
        "credit",
        "card",
        "recurring",
        "authorization",
        "auth",
        "sq",
        "tst",
        "pp",
        "www",
        "com",
        "the",
    }
)


@dataclass(frozen=True, slots=True)
class MatchRules:
    """Tolerances of the heuristic pending → posted match."""

    amount_abs: Decimal = Decimal("0.01")
    amount_rel: Decimal = Decimal("0.25")
    max_days: int = 5
    min_similarity: float = 0.5


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored live transaction that may take part in a match."""

    id: UUID
    provider_transaction_id: str
    date: date
    amount: Decimal
    currency: str
    description: str
    pending_link: str | None
    touched: bool  # written in the current unit of work


@dataclass(frozen=True, slots=True)
class Match:
    """A pending row settled by a posted row, with the reason."""

    pending_id: UUID
    posted_id: UUID
    reason: str


def description_tokens(text: str) -> frozenset[str]:
    """Normalized words of a description (see the module docstring)."""
    return frozenset(
        w
        for w in _WORD.findall(text.lower())
        if len(w) >= 2 and not w.isdigit() and w not in _NOISE
    )


def similarity(a: str, b: str) -> float:
    """Overlap coefficient of the two descriptions' token sets (0 when either is empty)."""
    ta, tb = description_tokens(a), description_tokens(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


def amounts_close(pending: Decimal, posted: Decimal, rules: MatchRules) -> bool:
    """Same sign and within ``max(amount_abs, amount_rel * |pending|)``."""
    if (pending < 0) != (posted < 0):
        return False
    return abs(posted - pending) <= max(rules.amount_abs, rules.amount_rel * abs(pending))


def match_pending(
    pendings: list[Candidate], posted: list[Candidate], rules: MatchRules | None = None
) -> list[Match]:
    """Pair pending rows with the posted rows that settle them.

    Args:
        pendings: live pending rows of one account.
        posted: live posted rows of the same account without a pending lineage yet.
        rules: tolerances; the documented defaults when omitted.

    Returns:
        One-to-one matches, provider links first.
    """
    rules = rules or MatchRules()
    matches: list[Match] = []
    used_pending: set[UUID] = set()
    used_posted: set[UUID] = set()
    by_ptid = {p.provider_transaction_id: p for p in pendings}
    for post in sorted(posted, key=lambda c: (c.date, str(c.id))):
        pend = by_ptid.get(post.pending_link) if post.pending_link else None
        if pend is None or pend.id in used_pending or not (pend.touched or post.touched):
            continue
        matches.append(Match(pend.id, post.id, PROVIDER_LINK))
        used_pending.add(pend.id)
        used_posted.add(post.id)

    scored: list[tuple[Decimal, int, float, date, str, str, Candidate, Candidate]] = []
    for pend in pendings:
        if pend.id in used_pending:
            continue
        for post in posted:
            if post.id in used_posted or not (pend.touched or post.touched):
                continue
            if post.currency != pend.currency:
                continue
            days = (post.date - pend.date).days
            if days < 0 or days > rules.max_days:
                continue
            if not amounts_close(pend.amount, post.amount, rules):
                continue
            sim = similarity(pend.description, post.description)
            if sim < rules.min_similarity:
                continue
            diff = abs(post.amount - pend.amount)
            scored.append((diff, days, -sim, pend.date, str(pend.id), str(post.id), pend, post))
    scored.sort(key=lambda s: s[:6])
    for *_, pend, post in scored:
        if pend.id in used_pending or post.id in used_posted:
            continue
        matches.append(Match(pend.id, post.id, HEURISTIC))
        used_pending.add(pend.id)
        used_posted.add(post.id)
    return matches


__all__ = [
    "HEURISTIC",
    "PROVIDER_LINK",
    "Candidate",
    "Match",
    "MatchRules",
    "amounts_close",
    "description_tokens",
    "match_pending",
    "similarity",
]
