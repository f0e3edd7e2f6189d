"""Transactions: signed amounts (positive = money into the account), pending or posted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID


class TransactionType(StrEnum):
    """Top-level transaction type."""

    TRADE = "trade"
    TRANSFER = "transfer"
    INCOME = "income"
    FEE = "fee"
    OTHER = "other"


class TransactionSubtype(StrEnum):
    """Finer classification (api.md lists the common ones)."""

    BUY = "buy"
    SELL = "sell"
    SHORT = "short"
    COVER = "cover"
    DIVIDEND = "dividend"
    INTEREST = "interest"
    CAPITAL_GAIN = "capital_gain"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    PURCHASE = "purchase"
    REFUND = "refund"
    PAYMENT = "payment"
    FEE = "fee"
    COMMISSION = "commission"
    CHECK = "check"
    ATM = "atm"
    ACH = "ach"
    WIRE = "wire"
    JOURNAL = "journal"
    PAYROLL = "payroll"
    TRANSFER = "transfer"
    ADJUSTMENT = "adjustment"
    OTHER = "other"


class TransactionStatus(StrEnum):
    """Pending transactions may later post (then the pending row is removed, with lineage)."""

    PENDING = "pending"
    POSTED = "posted"


@dataclass(frozen=True, slots=True)
class SecurityLeg:
    """The security side of a trade or dividend: signed quantity, unit price."""

    symbol: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    asset_type: str | None = None


@dataclass(slots=True)
class Transaction:
    """A stored transaction. ``dedupe_key`` disambiguates reused provider ids (Chase FITIDs)."""

    id: UUID
    account_id: UUID
    provider_transaction_id: str
    dedupe_key: str
    date: date
    amount: Decimal
    currency: str
    description: str
    type: TransactionType
    subtype: TransactionSubtype
    status: TransactionStatus
    created_at: datetime
    updated_at: datetime
    posted_at: datetime | None = None
    merchant: str | None = None
    pending_transaction_id: UUID | None = None
    security: SecurityLeg | None = None
    fees: Decimal | None = None
    removed_at: datetime | None = None
    content_hash: str = ""


__all__ = [
    "SecurityLeg",
    "Transaction",
    "TransactionStatus",
    "TransactionSubtype",
    "TransactionType",
]
