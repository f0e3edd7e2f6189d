"""Accounts held at a provider."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID


class AccountType(StrEnum):
    """Account types (api.md)."""

    CHECKING = "checking"
    SAVINGS = "savings"
    MONEY_MARKET = "money_market"
    CD = "cd"
    CREDIT_CARD = "credit_card"
    LINE_OF_CREDIT = "line_of_credit"
    LOAN = "loan"
    MORTGAGE = "mortgage"
    BROKERAGE = "brokerage"
    IRA = "ira"
    ROTH_IRA = "roth_ira"
    K401 = "401k"
    B403 = "403b"
    HSA = "hsa"
    CRYPTO = "crypto"
    OTHER = "other"

    @property
    def is_liability(self) -> bool:
        """Credit cards and loans: ``balance.current`` is the amount owed, positive."""
        return self in LIABILITY_TYPES


LIABILITY_TYPES = frozenset(
    {AccountType.CREDIT_CARD, AccountType.LINE_OF_CREDIT, AccountType.LOAN, AccountType.MORTGAGE}
)


@dataclass(slots=True)
class Account:
    """One account. ``provider_account_id`` is the provider's stable id (Schwab hash, ACCTID)."""

    id: UUID
    connection_id: UUID
    user_id: UUID
    provider: str
    provider_account_id: str
    name: str
    type: AccountType
    currency: str
    created_at: datetime
    subtype: str | None = None
    mask: str | None = None
    balance_current: Decimal | None = None
    balance_available: Decimal | None = None
    balance_as_of: datetime | None = None
    is_closed: bool = False


__all__ = ["LIABILITY_TYPES", "Account", "AccountType"]
