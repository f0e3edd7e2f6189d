"""Bodies of the financial data routes: accounts, transactions, holdings, series, change feed.

Money, prices and quantities are decimal strings exactly as stored (``format(d, "f")``: no
exponent, the provider's scale kept); each object carries its ``currency`` once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, Field

from dashtam_core.application.queries import NetWorthPoint, SeriesPoint
from dashtam_core.application.transaction_pages import API_COLUMNS, ApiRow, api_object, api_row
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.holding import AssetType, Holding
from dashtam_core.domain.transaction import (
    Transaction,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)

#: orjson options giving the same text as pydantic (``Z`` for UTC).
ORJSON_OPTIONS = orjson.OPT_UTC_Z


def money(value: Decimal | None) -> str | None:
    """A decimal as a plain string with its stored scale (``None`` stays ``None``)."""
    return None if value is None else format(value, "f")


def _money(value: Decimal) -> str:
    return format(value, "f")


class Balance(BaseModel):
    """An account balance: investment accounts ``current`` = total value, ``available`` = cash;
    credit cards and loans ``current`` = amount owed (positive)."""

    current: str | None = Field(examples=["1234.56"])
    available: str | None = Field(examples=["1000.00"])


class AccountOut(BaseModel):
    """One account."""

    id: UUID
    connection_id: UUID
    provider: str
    name: str
    mask: str | None
    type: AccountType
    subtype: str | None
    currency: str = Field(examples=["USD"])
    balance: Balance
    as_of: dt.datetime | None

    @classmethod
    def of(cls, account: Account) -> AccountOut:
        """The body of ``account``."""
        return cls(
            id=account.id,
            connection_id=account.connection_id,
            provider=account.provider,
            name=account.name,
            mask=account.mask,
            type=account.type,
            subtype=account.subtype,
            currency=account.currency,
            balance=Balance(
                current=money(account.balance_current),
                available=money(account.balance_available),
            ),
            as_of=account.balance_as_of,
        )


class AccountList(BaseModel):
    """The caller's accounts."""

    data: list[AccountOut]
    next_cursor: str | None = None


class SecurityOut(BaseModel):
    """The security leg of a trade or dividend (signed quantity, unit price)."""

    symbol: str
    quantity: str | None
    price: str | None


class TransactionOut(BaseModel):
    """One transaction (positive amount = money into the account)."""

    id: UUID
    account_id: UUID
    provider_transaction_id: str
    date: dt.date
    posted_at: dt.datetime | None
    amount: str = Field(examples=["-12.34"])
    currency: str = Field(examples=["USD"])
    description: str
    merchant: str | None
    type: TransactionType
    subtype: TransactionSubtype
    status: TransactionStatus
    pending_transaction_id: UUID | None
    security: SecurityOut | None = None

    @classmethod
    def of(cls, tx: Transaction) -> TransactionOut:
        """The body of ``tx``."""
        leg = tx.security
        return cls(
            id=tx.id,
            account_id=tx.account_id,
            provider_transaction_id=tx.provider_transaction_id,
            date=tx.date,
            posted_at=tx.posted_at,
            amount=_money(tx.amount),
            currency=tx.currency,
            description=tx.description,
            merchant=tx.merchant,
            type=tx.type,
            subtype=tx.subtype,
            status=tx.status,
            pending_transaction_id=tx.pending_transaction_id,
            security=None
            if leg is None
            else SecurityOut(
                symbol=leg.symbol, quantity=money(leg.quantity), price=money(leg.price)
            ),
        )


def transaction_json(row: Any) -> dict[str, Any]:
    """The :class:`TransactionOut` object of a ``transactions`` row, built without pydantic.

    ``row``: an :class:`~dashtam_core.application.transaction_pages.ApiRow`, or any row or
    mapping with the :data:`API_COLUMNS`. Dates and datetimes are left to orjson (with
    :data:`ORJSON_OPTIONS`); the result serializes to exactly the same JSON as
    ``TransactionOut.of(...)``.
    """
    if isinstance(row, ApiRow):
        return api_object(row)
    if getattr(row, "_fields", None) == API_COLUMNS:  # typed values in API_COLUMNS order
        return api_object(api_row(tuple(row)))
    m: Mapping[str, Any] = row._mapping if hasattr(row, "_mapping") else row
    return api_object(api_row([m[name] for name in API_COLUMNS]))


def transaction_page_json(rows: Sequence[ApiRow], next_cursor: str | None) -> bytes:
    """The ``GET /api/v1/transactions`` body of ``rows`` (same JSON as :class:`TransactionList`)."""
    return orjson.dumps(
        {"data": [api_object(r) for r in rows], "next_cursor": next_cursor},
        option=ORJSON_OPTIONS,
    )


class TransactionList(BaseModel):
    """A page of transactions; pass ``next_cursor`` as ``cursor`` for the next one."""

    data: list[TransactionOut]
    next_cursor: str | None


class ChangesOut(BaseModel):
    """Changes since the cursor, in commit order; store ``next_cursor`` and pass it next time."""

    added: list[TransactionOut]
    modified: list[TransactionOut]
    removed: list[UUID]
    next_cursor: str
    has_more: bool


class CostBasisOut(BaseModel):
    """Cost basis in both units (total signed like the quantity, per unit positive)."""

    total: str | None
    per_unit: str | None


class HoldingOut(BaseModel):
    """One open position (short positions have a negative quantity)."""

    id: UUID
    account_id: UUID
    symbol: str
    name: str | None
    asset_type: AssetType
    quantity: str
    cost_basis: CostBasisOut
    price: str | None
    market_value: str | None
    unrealized_gain: str | None
    currency: str
    as_of: dt.datetime

    @classmethod
    def of(cls, h: Holding) -> HoldingOut:
        """The body of ``h``."""
        return cls(
            id=h.id,
            account_id=h.account_id,
            symbol=h.symbol,
            name=h.name,
            asset_type=h.asset_type,
            quantity=_money(h.quantity),
            cost_basis=CostBasisOut(
                total=money(h.cost_basis_total), per_unit=money(h.cost_basis_per_unit)
            ),
            price=money(h.price),
            market_value=money(h.market_value),
            unrealized_gain=money(h.unrealized_gain),
            currency=h.currency,
            as_of=h.as_of,
        )


class HoldingList(BaseModel):
    """The caller's open positions."""

    data: list[HoldingOut]
    next_cursor: str | None = None


class BalancePointOut(BaseModel):
    """An account's balance at the end of one day."""

    date: dt.date
    current: str | None
    available: str | None

    @classmethod
    def of(cls, p: SeriesPoint) -> BalancePointOut:
        """The body of ``p``."""
        return cls(date=p.date, current=money(p.current), available=money(p.available))


class BalanceHistory(BaseModel):
    """Daily series, oldest first (the newest known balance carried forward)."""

    data: list[BalancePointOut]
    currency: str
    next_cursor: str | None = None


class NetWorthPointOut(BaseModel):
    """Assets, liabilities (amount owed, positive) and their difference on one day."""

    date: dt.date
    assets: str
    liabilities: str
    net_worth: str

    @classmethod
    def of(cls, p: NetWorthPoint) -> NetWorthPointOut:
        """The body of ``p``."""
        return cls(
            date=p.date,
            assets=_money(p.assets),
            liabilities=_money(p.liabilities),
            net_worth=_money(p.net_worth),
        )


class NetWorthOut(BaseModel):
    """Daily net worth over the caller's accounts in ``currency``."""

    data: list[NetWorthPointOut]
    currency: str
    next_cursor: str | None = None


__all__ = [
    "AccountList",
    "AccountOut",
    "Balance",
    "BalanceHistory",
    "BalancePointOut",
    "ChangesOut",
    "CostBasisOut",
    "HoldingList",
    "HoldingOut",
    "NetWorthOut",
    "NetWorthPointOut",
    "SecurityOut",
    "TransactionList",
    "TransactionOut",
    "ORJSON_OPTIONS",
    "money",
    "transaction_json",
    "transaction_page_json",
]
