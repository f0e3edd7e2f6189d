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
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from sqlalchemy import (
    Integer,
    Select,
    String,
    Uuid,
    bindparam,
    cast,
    func,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter

from dashtam_core.adapters.sqlalchemy.mapping import account_from_row, connection_from_row
from dashtam_core.adapters.sqlalchemy.tables import accounts, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import balance_snapshots, holdings, transactions
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.holding import Holding
from dashtam_core.domain.transaction import Transaction, TransactionStatus, TransactionType
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
class TransactionFilter:
    """Filters of ``GET /api/v1/transactions`` (and exports); every field optional."""

    account_id: UUID | None = None
    start: date | None = None
    end: date | None = None
    type: TransactionType | None = None
    status: TransactionStatus | None = None
    q: str | None = None


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


async def _account_ids(conn: AsyncConnection, user_id: UUID, account_id: UUID | None) -> list[UUID]:
    a = accounts
    stmt = select(a.c.id).where(a.c.user_id == user_id)
    if account_id is not None:
        stmt = stmt.where(a.c.id == account_id)
    return list((await conn.execute(stmt.order_by(a.c.id))).scalars())


#: The columns the API's transaction objects need (:func:`transaction_rows` ``api_only``).
API_COLUMNS = (
    "id",
    "account_id",
    "provider_transaction_id",
    "date",
    "posted_at",
    "amount",
    "currency",
    "description",
    "merchant",
    "type",
    "subtype",
    "status",
    "pending_transaction_id",
    "security_symbol",
    "security_quantity",
    "security_price",
)
#: UUID columns of :data:`API_COLUMNS`, read as hyphenated strings (no per-row UUID objects).
_API_UUID_COLUMNS = frozenset({"id", "account_id", "pending_transaction_id"})
_UUID_TEXT = Uuid(as_uuid=False)
#: :data:`API_COLUMNS` with the UUID columns cast to text in SQL (the raw-driver fast path).
_API_SELECT_TEXT: tuple[Any, ...] = tuple(
    cast(transactions.c[name], String()).label(name)
    if name in _API_UUID_COLUMNS
    else transactions.c[name]
    for name in API_COLUMNS
)
_API_SELECT: tuple[Any, ...] = tuple(
    type_coerce(transactions.c[name], _UUID_TEXT).label(name)
    if name in _API_UUID_COLUMNS
    else transactions.c[name]
    for name in API_COLUMNS
)


def _filter_params(flt: TransactionFilter) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if flt.start is not None:
        params["f_start"] = flt.start
    if flt.end is not None:
        params["f_end"] = flt.end
    if flt.type is not None:
        params["f_type"] = str(flt.type)
    if flt.status is not None:
        params["f_status"] = str(flt.status)
    if flt.q:
        escaped = flt.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["f_q"] = f"%{escaped}%"
    return params


def _bound_filters(names: frozenset[str]) -> list[Any]:
    """The WHERE clauses of :func:`_filter_params`'s keys ``names``, as bound parameters."""
    t = transactions
    clauses: list[Any] = [t.c.removed_at.is_(None)]
    if "f_start" in names:
        clauses.append(t.c.date >= bindparam("f_start"))
    if "f_end" in names:
        clauses.append(t.c.date <= bindparam("f_end"))
    if "f_type" in names:
        clauses.append(t.c.type == bindparam("f_type"))
    if "f_status" in names:
        clauses.append(t.c.status == bindparam("f_status"))
    if "f_q" in names:
        pattern = bindparam("f_q", type_=String())
        clauses.append(
            or_(
                func.lower(t.c.description).like(pattern, escape="\\"),
                func.lower(func.coalesce(t.c.merchant, "")).like(pattern, escape="\\"),
            )
        )
    if "c_day" in names:
        day: BindParameter[Any] = bindparam("c_day")
        ident: BindParameter[Any] = bindparam("c_id")
        clauses.extend((t.c.date <= day, or_(t.c.date < day, t.c.id < ident)))
    return clauses


@functools.lru_cache(maxsize=512)
def _lateral_page(
    names: frozenset[str], one_account: bool, api_only: bool, *, text_ids: bool = False
) -> Select[Any]:
    """PostgreSQL: one statement per filter shape, built once (values are bound parameters).

    ``accounts`` of the user ``CROSS JOIN LATERAL`` their newest ``limit`` matching rows (an index
    range scan on ``(account_id, date)`` each), merged by an outer sort of at most
    ``accounts * limit`` rows.
    """
    t, a = transactions, accounts
    cols = list(_API_SELECT_TEXT if text_ids else _API_SELECT) if api_only else list(t.c)
    limit = bindparam("page_limit", type_=Integer())
    inner = (
        select(*cols)
        .where(t.c.account_id == a.c.id, *_bound_filters(names))
        .order_by(t.c.date.desc(), t.c.id.desc())
        .limit(limit)
        .lateral("page")
    )
    stmt = select(inner).select_from(a.join(inner, true())).where(a.c.user_id == bindparam("uid"))
    if one_account:
        stmt = stmt.where(a.c.id == bindparam("aid"))
    return stmt.order_by(inner.c.date.desc(), inner.c.id.desc()).limit(limit)


async def transaction_rows(
    conn: AsyncConnection,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    api_only: bool = False,
) -> tuple[list[Any], str | None]:
    """A page of raw ``transactions`` rows (see :func:`list_transactions`) and the next cursor.

    ``api_only`` selects only :data:`API_COLUMNS` (less row processing on the hot path), with
    the UUID columns as hyphenated strings.

    Each account of the user contributes its newest ``limit + 1`` matching rows (an index range
    scan on ``(account_id, date)``), merged by an outer sort of at most ``accounts * (limit + 1)``
    rows, so a page costs the same at 1M rows as at 1k. On PostgreSQL this is one statement
    (``LATERAL``), prepared once per filter shape; elsewhere the user's accounts are read first.

    Raises:
        InvalidCursor: ``cursor`` is malformed.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    flt = flt or TransactionFilter()
    after = _transaction_cursor(cursor)
    params = _filter_params(flt)
    if after is not None:
        params["c_day"], params["c_id"] = after
    if conn.dialect.name == "postgresql":
        params.update(uid=user_id, aid=flt.account_id, page_limit=limit + 1)
        shape = frozenset(params) - {"uid", "aid", "page_limit"}
        if api_only:
            rows = await _api_rows_postgresql(conn, shape, flt.account_id is not None, params)
        else:
            stmt = _lateral_page(shape, flt.account_id is not None, api_only)
            rows = list((await conn.execute(stmt, params)).all())
    else:
        rows = await _rows_per_account(conn, user_id, flt, params, limit + 1, api_only)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.date.isoformat(), last.id)
    return rows, next_cursor


class ApiRow(NamedTuple):
    """A row of :data:`API_COLUMNS` read by the PostgreSQL fast path (ids as strings)."""

    id: str
    account_id: str
    provider_transaction_id: str
    date: date
    posted_at: datetime | None
    amount: Decimal
    currency: str
    description: str
    merchant: str | None
    type: str
    subtype: str
    status: str
    pending_transaction_id: str | None
    security_symbol: str | None
    security_quantity: Decimal | None
    security_price: Decimal | None


#: Parameters :func:`transaction_rows` binds (everything else in a statement is a constant).
_BOUND_NAMES = frozenset(
    {"uid", "aid", "page_limit", "f_start", "f_end", "f_type", "f_status", "f_q", "c_day", "c_id"}
)


@functools.lru_cache(maxsize=512)
def _lateral_sql(
    dialect: Dialect, shape: frozenset[str], one_account: bool
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The SQL text of :func:`_lateral_page` (API columns, ids as text), its parameter order
    and the values of its constant parameters (literals SQLAlchemy binds, e.g. ``''``)."""
    compiled = _lateral_page(shape, one_account, True, text_ids=True).compile(dialect=dialect)
    constants = {k: v for k, v in compiled.params.items() if k not in _BOUND_NAMES}
    return str(compiled), tuple(compiled.positiontup or ()), constants


async def _api_rows_postgresql(
    conn: AsyncConnection, shape: frozenset[str], one_account: bool, params: dict[str, Any]
) -> list[Any]:
    """The API page straight through the asyncpg connection (performance.md S1).

    The statement is SQLAlchemy's (compiled once per filter shape); only the per-row result
    processing of the ORM-less Core path is skipped: every column comes back in its final Python
    type (``NUMERIC`` → ``Decimal``, ``timestamptz`` → aware UTC ``datetime``, ids cast to text).
    """
    sql, order, constants = _lateral_sql(conn.dialect, shape, one_account)
    params = {**constants, **params}
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:  # pragma: no cover - a checked-out connection always has one
        raise RuntimeError("the database connection is closed")
    records = await driver.fetch(sql, *(params[name] for name in order))
    return list(map(ApiRow._make, records))


async def _rows_per_account(
    conn: AsyncConnection,
    user_id: UUID,
    flt: TransactionFilter,
    params: dict[str, Any],
    limit: int,
    api_only: bool,
) -> list[Any]:
    """:func:`transaction_rows` without ``LATERAL``: the accounts, then a ``UNION ALL`` of pages."""
    t = transactions
    owned = await _account_ids(conn, user_id, flt.account_id)
    if not owned:
        return []
    cols = list(_API_SELECT) if api_only else list(t.c)
    clauses = _bound_filters(frozenset(params))
    parts = [
        select(*cols)
        .where(t.c.account_id == account_id, *clauses)
        .order_by(t.c.date.desc(), t.c.id.desc())
        .limit(limit)
        for account_id in owned
    ]
    if len(parts) == 1:
        stmt = parts[0]
    else:
        merged = union_all(*(select(p.subquery()) for p in parts)).subquery()
        stmt = select(merged).order_by(merged.c.date.desc(), merged.c.id.desc()).limit(limit)
    return list((await conn.execute(stmt, params)).all())


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
