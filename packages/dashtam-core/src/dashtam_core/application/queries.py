"""Read models of the financial data API: accounts, transactions, holdings, series, change feed.

Every query is scoped to one user: objects of another user are indistinguishable from missing
ones (``None`` / empty). Queries run on an ``AsyncConnection`` (one short read each) and return
domain objects or small frozen views; the HTTP and CLI layers shape them.

Pagination is keyset-based and stable under concurrent inserts: transactions are ordered by
``(date DESC, id DESC)`` and the cursor is the last row's ``(date, id)``; a row inserted behind
the cursor never shifts a later page, so no row is skipped or repeated. Cursors are opaque
strings (:func:`encode_cursor` / :func:`decode_cursor`).

Daily series (balance history, net worth) carry the newest known balance forward: the value of
a day is the latest snapshot on or before that day, starting at the account's first snapshot.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy import (
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.mapping import account_from_row, connection_from_row
from dashtam_core.adapters.sqlalchemy.tables import accounts, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import balance_snapshots, holdings, transactions
from dashtam_core.application.transaction_pages import (
    API_COLUMNS,
    TransactionFilter,
    read_page,
)
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.holding import Holding
from dashtam_core.domain.transaction import Transaction
from dashtam_core.errors import ValidationError
from dashtam_core.sync.changes import ChangePage, changes_since
from dashtam_core.sync.rows import holding_from_row, transaction_from_row

#: Default and largest page sizes of list endpoints.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: Longest daily series one request may ask for (about ten years).
MAX_SERIES_DAYS = 3700
_CURSOR_PREFIX = "v1:"
T = TypeVar("T")


class InvalidCursor(ValidationError):
    """A pagination cursor that this service did not issue."""

    code = "invalid_cursor"


def encode_cursor(*parts: object) -> str:
    """An opaque cursor for ``parts`` (each rendered with ``str``)."""
    raw = _CURSOR_PREFIX + "|".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The ``count`` parts of a cursor made by :func:`encode_cursor`.

    Raises:
        InvalidCursor: the cursor is malformed.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursor("the cursor is malformed") from exc
    if not raw.startswith(_CURSOR_PREFIX):
        raise InvalidCursor("the cursor is malformed")
    parts = raw[len(_CURSOR_PREFIX) :].split("|")
    if len(parts) != count:
        raise InvalidCursor("the cursor is malformed")
    return parts


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list."""

    data: list[T]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """A day of an account's balance history."""

    date: date
    current: Decimal | None
    available: Decimal | None


@dataclass(frozen=True, slots=True)
class NetWorthPoint:
    """A day of the net worth series (liabilities as a positive amount owed)."""

    date: date
    assets: Decimal
    liabilities: Decimal
    net_worth: Decimal


# -- accounts and connections ------------------------------------------------------------------


async def list_accounts(
    conn: AsyncConnection,
    user_id: UUID,
    *,
    type: AccountType | None = None,
    connection_id: UUID | None = None,
) -> list[Account]:
    """The user's accounts ordered by id, optionally of one type or connection."""
    a = accounts
    stmt = select(a).where(a.c.user_id == user_id)
    if type is not None:
        stmt = stmt.where(a.c.type == str(type))
    if connection_id is not None:
        stmt = stmt.where(a.c.connection_id == connection_id)
    rows = await conn.execute(stmt.order_by(a.c.id))
    return [account_from_row(r._mapping) for r in rows]


async def get_account(conn: AsyncConnection, user_id: UUID, account_id: UUID) -> Account | None:
    """One of the user's accounts (``None`` when missing or someone else's)."""
    a = accounts
    row = (
        await conn.execute(select(a).where(a.c.id == account_id, a.c.user_id == user_id))
    ).one_or_none()
    return None if row is None else account_from_row(row._mapping)


async def list_connections(conn: AsyncConnection, user_id: UUID) -> list[ProviderConnection]:
    """The user's provider connections ordered by id (creation order)."""
    pc = provider_connections
    rows = await conn.execute(select(pc).where(pc.c.user_id == user_id).order_by(pc.c.id))
    return [connection_from_row(r._mapping) for r in rows]


# -- transactions --------------------------------------------------------------------------------


def _transaction_cursor(cursor: str | None) -> tuple[date, UUID] | None:
    if not cursor:
        return None
    day, ident = decode_cursor(cursor, 2)
    try:
        return date.fromisoformat(day), UUID(ident)
    except ValueError as exc:
        raise InvalidCursor("the cursor is malformed") from exc


async def transaction_rows(
    conn: AsyncConnection,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    api_only: bool = False,
) -> tuple[list[Any], str | None]:
    """A page of the user's live transactions and the next cursor (``None`` on the last page).

    ``api_only``: :class:`~dashtam_core.application.transaction_pages.ApiRow` wire rows (the
    list route's hot path); otherwise every column as SQLAlchemy rows. See
    :func:`~dashtam_core.application.transaction_pages.read_page` for the statements.

    Raises:
        InvalidCursor: ``cursor`` is malformed.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    rows = await read_page(
        conn,
        user_id,
        flt or TransactionFilter(),
        limit=limit + 1,
        after=_transaction_cursor(cursor),
        full=not api_only,
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.date.isoformat(), last.id)
    return rows, next_cursor


async def list_transactions(
    conn: AsyncConnection,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[Transaction]:
    """A page of the user's live transactions, newest date first (ties by id, newest first).

    Raises:
        InvalidCursor: ``cursor`` is malformed.
    """
    rows, next_cursor = await transaction_rows(conn, user_id, flt, limit=limit, cursor=cursor)
    return Page([transaction_from_row(r) for r in rows], next_cursor)


async def get_transaction(
    conn: AsyncConnection, user_id: UUID, transaction_id: UUID
) -> Transaction | None:
    """One live transaction of the user (``None`` when missing, removed or someone else's)."""
    t, a = transactions, accounts
    row = (
        await conn.execute(
            select(t)
            .join(a, a.c.id == t.c.account_id)
            .where(t.c.id == transaction_id, a.c.user_id == user_id, t.c.removed_at.is_(None))
        )
    ).one_or_none()
    return None if row is None else transaction_from_row(row)


async def change_feed(
    conn: AsyncConnection, user_id: UUID, cursor: str | None, limit: int = 100
) -> tuple[ChangePage, str]:
    """A page of the change feed and its opaque ``next_cursor`` (empty cursor = beginning).

    Raises:
        InvalidCursor: ``cursor`` is malformed.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    start = 0
    if cursor:
        (raw,) = decode_cursor(cursor, 1)
        if not raw.isdigit():
            raise InvalidCursor("the cursor is malformed")
        start = int(raw)
    page = await changes_since(conn, user_id, start, limit)
    return page, encode_cursor(page.next_cursor)


# -- holdings ------------------------------------------------------------------------------------


async def list_holdings(
    conn: AsyncConnection, user_id: UUID, *, account_id: UUID | None = None
) -> list[Holding]:
    """The user's open positions, by account then symbol."""
    h, a = holdings, accounts
    stmt = (
        select(h)
        .join(a, a.c.id == h.c.account_id)
        .where(a.c.user_id == user_id, h.c.closed_at.is_(None))
    )
    if account_id is not None:
        stmt = stmt.where(h.c.account_id == account_id)
    rows = await conn.execute(stmt.order_by(h.c.account_id, h.c.symbol, h.c.id))
    return [holding_from_row(r) for r in rows]


# -- daily series --------------------------------------------------------------------------------


def _check_range(start: date, end: date) -> None:
    if end < start:
        raise ValidationError("end is before start")
    if (end - start).days >= MAX_SERIES_DAYS:
        raise ValidationError(f"the range may cover at most {MAX_SERIES_DAYS} days")


async def _snapshots(conn: AsyncConnection, account_ids: Sequence[UUID], end: date) -> list[Any]:
    b = balance_snapshots
    if not account_ids:
        return []
    stmt = (
        select(b.c.account_id, b.c.date, b.c.current, b.c.available)
        .where(b.c.account_id.in_(list(account_ids)), b.c.date <= end)
        .order_by(b.c.date)
    )
    return list((await conn.execute(stmt)).all())


async def balance_series(
    conn: AsyncConnection,
    user_id: UUID,
    account_id: UUID,
    *,
    start: date | None,
    end: date | None,
    today: date,
) -> list[SeriesPoint] | None:
    """The account's daily balances in ``[start, end]`` (``None`` if not the user's account).

    ``start`` defaults to the first snapshot, ``end`` to ``today``; days before the first
    snapshot are omitted.
    """
    if await get_account(conn, user_id, account_id) is None:
        return None
    end = end or today
    rows = await _snapshots(conn, [account_id], end)
    if not rows:
        return []
    first = rows[0].date
    begin = max(start or first, first)
    if begin > end:
        return []
    _check_range(begin, end)
    points: list[SeriesPoint] = []
    index = 0
    current: Any = None
    day = min(first, begin)
    while day <= end:
        while index < len(rows) and rows[index].date <= day:
            current = rows[index]
            index += 1
        if day >= begin and current is not None:
            points.append(SeriesPoint(day, current.current, current.available))
        day += timedelta(days=1)
    return points


async def net_worth_series(
    conn: AsyncConnection,
    user_id: UUID,
    *,
    start: date | None,
    end: date | None,
    today: date,
    currency: str = "USD",
) -> list[NetWorthPoint]:
    """Daily assets, liabilities and net worth over the user's accounts in ``currency``.

    Each account contributes its latest snapshot on or before the day (``current``; for
    liabilities the positive amount owed). ``start`` defaults to the first snapshot of any
    account, ``end`` to ``today``.
    """
    owned = [acc for acc in await list_accounts(conn, user_id) if acc.currency == currency.upper()]
    end = end or today
    rows = await _snapshots(conn, [acc.id for acc in owned], end)
    if not rows:
        return []
    first = rows[0].date
    begin = max(start or first, first)
    if begin > end:
        return []
    _check_range(begin, end)
    liability = {acc.id: acc.type.is_liability for acc in owned}
    latest: dict[UUID, Decimal] = {}
    points: list[NetWorthPoint] = []
    index = 0
    day = first
    while day <= end:
        while index < len(rows) and rows[index].date <= day:
            row = rows[index]
            if row.current is not None:
                latest[row.account_id] = row.current
            index += 1
        if day >= begin:
            assets = sum((v for k, v in latest.items() if not liability[k]), Decimal(0))
            owed = sum((v for k, v in latest.items() if liability[k]), Decimal(0))
            points.append(NetWorthPoint(day, assets, owed, assets - owed))
        day += timedelta(days=1)
    return points


__all__ = [
    "API_COLUMNS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_SERIES_DAYS",
    "InvalidCursor",
    "NetWorthPoint",
    "Page",
    "SeriesPoint",
    "TransactionFilter",
    "balance_series",
    "change_feed",
    "decode_cursor",
    "encode_cursor",
    "get_account",
    "get_transaction",
    "list_accounts",
    "list_connections",
    "list_holdings",
    "list_transactions",
    "net_worth_series",
    "transaction_rows",
]
