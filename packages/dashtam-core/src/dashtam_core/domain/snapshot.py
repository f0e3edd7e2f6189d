"""Balance snapshots: the daily series behind balance history and net worth."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    """An account's balance as of ``as_of``; one per account and day is kept (latest wins)."""

    id: UUID
    account_id: UUID
    date: date
    as_of: datetime
    current: Decimal | None
    available: Decimal | None
    currency: str
    source: str = "sync"


__all__ = ["BalanceSnapshot"]
