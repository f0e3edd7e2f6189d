"""Pages of one user's transactions in keyset order: the reader behind the list route and exports.

Transactions are ordered ``(date DESC, id DESC)``; a page is "the next ``limit`` live rows after
``(date, id)``", so a row inserted behind a cursor never shifts a later page (nothing skipped or
repeated under concurrent inserts). Each account contributes its next ``limit`` matching rows,
read straight off the ``(account_id, date, id)`` index, and the accounts are merged by an outer
sort of at most ``accounts * limit`` rows: a page costs the same at 1M rows as at 1k.

* PostgreSQL: one statement (the user's accounts ``CROSS JOIN LATERAL`` their pages), built and
  compiled once per filter shape with every value bound. Wire rows (:class:`ApiRow`) are fetched
  through the asyncpg connection with the strings rendered by the database (ids, exact decimals),
  so no per-row SQLAlchemy, ``UUID`` or ``Decimal`` work is done (performance.md S1, S8).
* Elsewhere (SQLite): the user's accounts are read, then a ``UNION ALL`` of their pages.

:class:`ApiRow` is the one row shape of the API's transaction objects and of every export format.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import (
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from dashtam_core.adapters.sqlalchemy.tables import accounts
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.domain.transaction import TransactionStatus, TransactionType

#: The columns of the API's transaction objects and of the exports, in :class:`ApiRow` order.
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


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    """Filters of ``GET /api/v1/transactions`` (and exports); every field optional."""

    account_id: UUID | None = None
    start: date | None = None
    end: date | None = None
    type: TransactionType | None = None
    status: TransactionStatus | None = None
    q: str | None = None


class ApiRow(NamedTuple):
    """A transaction as the API and the exports show it (wire values).

    Ids are hyphenated strings and money exact decimal strings (``security_quantity`` and
    ``security_price`` are ``None`` without a ``security_symbol``); ``date`` is a date and
    ``posted_at`` an aware UTC datetime or ``None``.
    """

    id: str
    account_id: str
    provider_transaction_id: str
    date: date
    posted_at: datetime | None
    amount: str
    currency: str
    description: str
    merchant: str | None
    type: str
    subtype: str
    status: str
    pending_transaction_id: str | None
    security_symbol: str | None
    security_quantity: str | None
    security_price: str | None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def api_row(values: Any) -> ApiRow:
    """The :class:`ApiRow` of typed values in :data:`API_COLUMNS` order (UUIDs, decimals)."""
    (
        ident,
        account_id,
        provider_id,
        day,
        posted,
        amount,
        currency,
        description,
        merchant,
        kind,
        subtype,
        status,
        pending,
        symbol,
        quantity,
        price,
    ) = values
    leg = symbol is not None
    return ApiRow(
        str(ident),
        str(account_id),
        provider_id,
        day,
        posted,
        format(amount, "f"),
        currency,
        description,
        merchant,
        str(kind),
        str(subtype),
        str(status),
        None if pending is None else str(pending),
        symbol,
        _money(quantity) if leg else None,
        _money(price) if leg else None,
    )


def api_object(row: ApiRow) -> dict[str, Any]:
    """The API's transaction object of ``row`` (dates left to orjson with ``OPT_UTC_Z``)."""
    (
        ident,
        account_id,
        provider_id,
        day,
        posted,
        amount,
        currency,
        description,
        merchant,
        kind,
        subtype,
        status,
        pending,
        symbol,
        quantity,
        price,
    ) = row  # positional: the hot loop of every page and export
    return {
        "id": ident,
        "account_id": account_id,
        "provider_transaction_id": provider_id,
        "date": day,
        "posted_at": posted,
        "amount": amount,
        "currency": currency,
        "description": description,
        "merchant": merchant,
        "type": kind,
        "subtype": subtype,
        "status": status,
        "pending_transaction_id": pending,
        "security": None
        if symbol is None
        else {"symbol": symbol, "quantity": quantity, "price": price},
    }


# -- filters ------------------------------------------------------------------------------------

#: The account parameters of :func:`union_statement` (``a0``, ``a1``, ...).
_ACCOUNT = re.compile(r"a\d+\Z")
#: Names of the values :func:`filter_params` and the page statements bind.
BOUND_NAMES = frozenset(
    {"uid", "aid", "page_limit", "f_start", "f_end", "f_type", "f_status", "f_q", "c_day", "c_id"}
)


def filter_params(flt: TransactionFilter) -> dict[str, Any]:
    """The bound values of ``flt`` (only the filters it sets; ``q`` as an escaped pattern)."""
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


def filter_clauses(names: frozenset[str]) -> list[ColumnElement[bool]]:
    """Live rows, filtered by the bound values ``names`` (and after the key ``c_day``/``c_id``)."""
    t = transactions
    clauses: list[ColumnElement[bool]] = [t.c.removed_at.is_(None)]
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
        merchant = func.coalesce(t.c.merchant, literal_column("''"))
        clauses.append(
            or_(
                func.lower(t.c.description).like(pattern, escape="\\"),
                func.lower(merchant).like(pattern, escape="\\"),
            )
        )
    if "c_day" in names:
        day: BindParameter[Any] = bindparam("c_day")
        ident: BindParameter[Any] = bindparam("c_id")
        clauses.extend((t.c.date <= day, or_(t.c.date < day, t.c.id < ident)))
    return clauses


# -- statements ---------------------------------------------------------------------------------

#: Column sets: every column (domain rows), the API columns typed, or as wire text (PostgreSQL).
FULL, TYPED, TEXT = "full", "typed", "text"


def _columns(kind: str) -> list[ColumnElement[Any]]:
    t = transactions
    if kind == FULL:
        return list(t.c)
    if kind == TYPED:
        return [t.c[name] for name in API_COLUMNS]

    def text(name: str) -> ColumnElement[Any]:
        return cast(t.c[name], Text).label(name)

    def leg(name: str) -> ColumnElement[Any]:
        return case((t.c.security_symbol.is_(None), null()), else_=cast(t.c[name], Text)).label(
            name
        )

    wire = {
        "id": text("id"),
        "account_id": text("account_id"),
        "amount": text("amount"),
        "pending_transaction_id": text("pending_transaction_id"),
        "security_quantity": leg("security_quantity"),
        "security_price": leg("security_price"),
    }
    return [wire.get(name, t.c[name]) for name in API_COLUMNS]


def _names(kind: str) -> list[str]:
    return [c.name for c in transactions.c] if kind == FULL else list(API_COLUMNS)


@functools.lru_cache(maxsize=512)
def lateral_statement(shape: frozenset[str], one_account: bool, kind: str) -> Select[Any]:
    """PostgreSQL: the page of user ``uid`` (account ``aid``) as one statement, built once.

    The merge sorts on the typed ``date``/``id`` (``k_date``/``k_id``), never on their text
    renderings (a collation-aware text sort costs more than the page itself).
    """
    t, a = transactions, accounts
    limit = bindparam("page_limit", type_=Integer())
    inner = (
        select(*_columns(kind), t.c.date.label("k_date"), t.c.id.label("k_id"))
        .where(t.c.account_id == a.c.id, *filter_clauses(shape))
        .order_by(t.c.date.desc(), t.c.id.desc())
        .limit(limit)
        .lateral("page")
    )
    stmt = (
        select(*(inner.c[name] for name in _names(kind)))
        .select_from(a.join(inner, true()))
        .where(a.c.user_id == bindparam("uid"))
    )
    if one_account:
        stmt = stmt.where(a.c.id == bindparam("aid"))
    return stmt.order_by(inner.c.k_date.desc(), inner.c.k_id.desc()).limit(limit)


@functools.lru_cache(maxsize=512)
def union_statement(shape: frozenset[str], accounts_count: int, kind: str) -> Select[Any]:
    """The page of accounts ``a0`` ... as a ``UNION ALL`` of their own pages, built once.

    One account: its index range scan alone, with no merge sort at all.
    """
    t = transactions
    limit = bindparam("page_limit", type_=Integer())

    def part(index: int, *keys: ColumnElement[Any]) -> Select[Any]:
        return (
            select(*_columns(kind), *keys)
            .where(t.c.account_id == bindparam(f"a{index}"), *filter_clauses(shape))
            .order_by(t.c.date.desc(), t.c.id.desc())
            .limit(limit)
        )

    if accounts_count == 1:
        return part(0)
    keys = (t.c.date.label("k_date"), t.c.id.label("k_id"))
    merged = union_all(*(select(part(i, *keys).subquery()) for i in range(accounts_count)))
    page = merged.subquery()
    return (
        select(*(page.c[name] for name in _names(kind)))
        .order_by(page.c.k_date.desc(), page.c.k_id.desc())
        .limit(limit)
    )


@functools.lru_cache(maxsize=512)
def _driver_sql(dialect: Dialect, stmt: Select[Any]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """The SQL text of a (cached) statement, its parameter order and its constants."""
    compiled = stmt.compile(dialect=dialect)
    constants = {
        k: v for k, v in compiled.params.items() if k not in BOUND_NAMES and not _ACCOUNT.match(k)
    }
    return str(compiled), tuple(compiled.positiontup or ()), constants


# -- reading ------------------------------------------------------------------------------------


async def owned_account_ids(
    conn: AsyncConnection, user_id: UUID, account_id: UUID | None = None
) -> list[UUID]:
    """The user's account ids (only ``account_id`` when given and owned), ordered."""
    a = accounts
    stmt = select(a.c.id).where(a.c.user_id == user_id)
    if account_id is not None:
        stmt = stmt.where(a.c.id == account_id)
    return list((await conn.execute(stmt.order_by(a.c.id))).scalars())


async def read_page(
    conn: AsyncConnection,
    user_id: UUID,
    flt: TransactionFilter,
    *,
    limit: int,
    after: tuple[date, UUID] | None = None,
    full: bool = False,
    account_ids: Sequence[UUID] | None = None,
) -> list[Any]:
    """The user's next ``limit`` live transactions matching ``flt`` after the key ``after``.

    Args:
        conn: a database connection (an autocommit one costs a single round trip).
        user_id: whose transactions (other users' accounts never match).
        flt: the filters.
        limit: rows to read.
        after: ``(date, id)`` of the previous page's last row (``None``: the first page).
        full: read every column as SQLAlchemy rows (for domain objects) instead of
            :class:`ApiRow` wire rows.
        account_ids: the user's accounts to read, already checked with
            :func:`owned_account_ids` (a reader of many pages looks them up once); default:
            looked up by the statement itself on PostgreSQL, first otherwise.

    Returns:
        Rows newest first: :class:`ApiRow` values, or SQLAlchemy rows with ``full``.
    """
    params = filter_params(flt)
    if after is not None:
        params["c_day"], params["c_id"] = after
    shape = frozenset(params)
    kind = FULL if full else TYPED
    driver = not full and conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg"
    params["page_limit"] = limit
    if account_ids is None and conn.dialect.name == "postgresql":
        params.update(uid=user_id, aid=flt.account_id)
        stmt = lateral_statement(shape, flt.account_id is not None, TEXT if driver else kind)
    else:
        if account_ids is None:
            account_ids = await owned_account_ids(conn, user_id, flt.account_id)
        if not account_ids:
            return []
        params.update({f"a{index}": ident for index, ident in enumerate(account_ids)})
        stmt = union_statement(shape, len(account_ids), TEXT if driver else kind)
    if driver:
        return await _driver_page(conn, stmt, params)
    rows = list((await conn.execute(stmt, params)).all())
    return rows if full else [api_row(row) for row in rows]


async def _driver_page(
    conn: AsyncConnection, stmt: Select[Any], params: dict[str, Any]
) -> list[ApiRow]:
    """The wire rows straight through the asyncpg connection (same statement, compiled once)."""
    sql, order, constants = _driver_sql(conn.dialect, stmt)
    params = {**constants, **params}
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None:  # pragma: no cover - a checked-out connection always has one
        raise RuntimeError("the database connection is closed")
    records = await driver.fetch(sql, *(params[name] for name in order))
    make = tuple.__new__  # ApiRow._make without its per-row Python call and length check
    return [make(ApiRow, record) for record in records]


__all__ = [
    "API_COLUMNS",
    "BOUND_NAMES",
    "ApiRow",
    "TransactionFilter",
    "api_object",
    "api_row",
    "filter_clauses",
    "filter_params",
    "lateral_statement",
    "owned_account_ids",
    "read_page",
    "union_statement",
]
