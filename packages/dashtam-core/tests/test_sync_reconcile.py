"""Pending → posted matching rules (pure), without a database."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID

from dashtam_core.domain.ids import uuid7
from dashtam_core.sync.reconcile import (
    HEURISTIC,
    PROVIDER_LINK,
    Candidate,
    MatchRules,
    amounts_close,
    description_tokens,
    match_pending,
    similarity,
)

DAY = date(2025, 2, 1)


def cand(
    amount: str,
    description: str,
    *,
    days: int = 0,
    ptid: str = "",
    link: str | None = None,
    touched: bool = True,
    currency: str = "USD",
) -> Candidate:
    return Candidate(
        id=uuid7(),
        provider_transaction_id=ptid or uuid7().hex,
        date=DAY + timedelta(days=days),
        amount=Decimal(amount),
        currency=currency,
        description=description,
        pending_link=link,
        touched=touched,
    )


def pairs(matches: list) -> set[tuple[UUID, UUID, str]]:  # type: ignore[type-arg]
    return {(m.pending_id, m.posted_id, m.reason) for m in matches}


def test_tokens_drop_numbers_and_noise() -> None:
    assert description_tokens("SQ *BLUE BOTTLE #4471 POS PURCHASE") == {"blue", "bottle"}
    assert similarity("SQ *BLUE BOTTLE 4471", "Blue Bottle Coffee Oakland") == 1.0
    assert similarity("Amazon", "Walmart") == 0.0
    assert similarity("1234", "Amazon") == 0.0


def test_amount_tolerance() -> None:
    rules = MatchRules()
    assert amounts_close(Decimal("-40.00"), Decimal("-50.00"), rules)  # 25% tip
    assert not amounts_close(Decimal("-40.00"), Decimal("-50.01"), rules)
    assert amounts_close(Decimal("-0.02"), Decimal("-0.03"), rules)  # absolute cent
    assert not amounts_close(Decimal("-10.00"), Decimal("10.00"), rules)  # sign differs


def test_provider_link_wins_over_everything() -> None:
    pend = cand("-20.00", "HOLD", ptid="P1")
    posted = cand("-99.00", "Totally different", days=30, link="P1")
    assert pairs(match_pending([pend], [posted])) == {(pend.id, posted.id, PROVIDER_LINK)}


def test_heuristic_needs_every_condition() -> None:
    pend = cand("-40.00", "STARBUCKS STORE 1234")
    good = cand("-45.00", "STARBUCKS SEATTLE", days=2)
    assert pairs(match_pending([pend], [good])) == {(pend.id, good.id, HEURISTIC)}
    assert match_pending([pend], [cand("-45.00", "STARBUCKS", days=6)]) == []  # too late
    assert match_pending([pend], [cand("-45.00", "STARBUCKS", days=-1)]) == []  # before auth
    assert match_pending([pend], [cand("-45.00", "Peets Coffee", days=1)]) == []  # other shop
    assert match_pending([pend], [cand("-45.00", "STARBUCKS", currency="EUR")]) == []
    assert match_pending([pend], [cand("-60.00", "STARBUCKS", days=1)]) == []  # too far


def test_one_to_one_and_closest_first() -> None:
    p1 = cand("-10.00", "Corner Deli")
    p2 = cand("-12.00", "Corner Deli", days=1)
    exact = cand("-12.00", "CORNER DELI NYC", days=2)
    near = cand("-10.50", "CORNER DELI NYC", days=2)
    found = pairs(match_pending([p1, p2], [exact, near]))
    assert found == {(p2.id, exact.id, HEURISTIC), (p1.id, near.id, HEURISTIC)}


def test_untouched_pairs_are_not_reexamined() -> None:
    pend = cand("-10.00", "Corner Deli", touched=False)
    posted = cand("-10.00", "Corner Deli", touched=False)
    assert match_pending([pend], [posted]) == []
