"""Read-side wire shapes (api.md) for the CLI, and the transaction exports (CSV, JSON, OFX).

The ``*_to_dict`` functions produce exactly the JSON objects of the REST API (decimal strings,
RFC 3339 UTC timestamps, ``YYYY-MM-DD`` dates) so the CLI's ``--json`` and the API agree.

Exports are async generators of ``bytes`` chunks, the one implementation behind both
``GET /api/v1/exports/transactions`` (a ``StreamingResponse``) and ``dashtam export
transactions`` (written to the file as the chunks come). The user's live transactions are read
newest first in keyset batches of :data:`BATCH_ROWS` (one short read each, the next one read
ahead while the current one is written out), so memory stays flat whatever the size:

* CSV: a header row (:data:`CSV_COLUMNS`), then one line per transaction (``\r\n`` ends, the
  :mod:`csv` module's quoting);
* JSON: ``{"data": [...]}`` with the API's transaction objects, byte for byte;
* OFX: an OFX 2.2 XML document with one statement per account (bank, credit card or investment
  message set by account type).

Money stays exact throughout: amounts are decimal strings as stored, never floats. On
PostgreSQL the database renders ids, dates and amounts as text and the rows come straight from
the driver; each chunk is then one ``orjson.dumps`` (JSON) or one string join (CSV).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import aclosing
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID
from xml.sax.saxutils import escape

import orjson
from sqlalchemy import (
    select,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.engine import read_engine
from dashtam_core.adapters.sqlalchemy.tables import accounts as accounts_table
from dashtam_core.adapters.sqlalchemy.tables_data import holdings, transactions
from dashtam_core.application.container import Container
from dashtam_core.application.queries import list_accounts
from dashtam_core.application.transaction_pages import (
    API_COLUMNS,
    ApiRow,
    TransactionFilter,
    api_object,
    api_row,
    owned_account_ids,
    read_page,
)
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.holding import Holding
from dashtam_core.domain.transaction import Transaction
from dashtam_core.sync.rows import holding_from_row, transaction_from_row
from dashtam_core.sync.runs import SyncRun


def _dec(value: Decimal | None) -> str | None:
    """Money as the API writes it: the stored digits, never an exponent (``1E+4`` is ``10000``)."""
    return None if value is None else format(value, "f")


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def connection_to_dict(conn: ProviderConnection) -> dict[str, Any]:
    """``GET /api/v1/connections`` element."""
    return {
        "id": str(conn.id),
        "provider": conn.provider,
        "alias": conn.alias,
        "status": str(conn.status),
        "auth_expires_at": _ts(conn.auth_expires_at),
        "last_synced_at": _ts(conn.last_synced_at),
        "last_error": conn.last_error,
        "created_at": _ts(conn.created_at),
    }


def sync_run_to_dict(run: SyncRun) -> dict[str, Any]:
    """``GET /api/v1/syncs/{id}`` object."""
    counts = {
        k: run.counts.get(k, 0)
        for k in (
            "accounts",
            "transactions_added",
            "transactions_modified",
            "transactions_removed",
            "holdings",
        )
    }
    return {
        "id": str(run.id),
        "connection_id": str(run.connection_id),
        "status": str(run.status),
        "started_at": _ts(run.started_at),
        "finished_at": _ts(run.finished_at),
        "counts": counts,
        "error": run.error,
    }


def account_to_dict(account: Account) -> dict[str, Any]:
    """``GET /api/v1/accounts`` element."""
    return {
        "id": str(account.id),
        "connection_id": str(account.connection_id),
        "provider": account.provider,
        "name": account.name,
        "mask": account.mask,
        "type": str(account.type),
        "subtype": account.subtype,
        "currency": account.currency,
        "balance": {
            "current": _dec(account.balance_current),
            "available": _dec(account.balance_available),
        },
        "as_of": _ts(account.balance_as_of),
    }


def transaction_to_dict(tx: Transaction) -> dict[str, Any]:
    """``GET /api/v1/transactions`` element."""
    out: dict[str, Any] = {
        "id": str(tx.id),
        "account_id": str(tx.account_id),
        "provider_transaction_id": tx.provider_transaction_id,
        "date": tx.date.isoformat(),
        "posted_at": _ts(tx.posted_at),
        "amount": format(tx.amount, "f"),
        "currency": tx.currency,
        "description": tx.description,
        "merchant": tx.merchant,
        "type": str(tx.type),
        "subtype": str(tx.subtype),
        "status": str(tx.status),
        "pending_transaction_id": (
            None if tx.pending_transaction_id is None else str(tx.pending_transaction_id)
        ),
    }
    out["security"] = None
    if tx.security is not None:
        out["security"] = {
            "symbol": tx.security.symbol,
            "quantity": _dec(tx.security.quantity),
            "price": _dec(tx.security.price),
        }
    return out


def holding_to_dict(h: Holding) -> dict[str, Any]:
    """``GET /api/v1/holdings`` element (``unrealized_gain`` = market value - total cost)."""
    gain = None
    if h.market_value is not None and h.cost_basis_total is not None:
        gain = h.market_value - h.cost_basis_total
    return {
        "id": str(h.id),
        "account_id": str(h.account_id),
        "symbol": h.symbol,
        "name": h.name,
        "asset_type": str(h.asset_type),
        "quantity": format(h.quantity, "f"),
        "cost_basis": {"total": _dec(h.cost_basis_total), "per_unit": _dec(h.cost_basis_per_unit)},
        "price": _dec(h.price),
        "market_value": _dec(h.market_value),
        "unrealized_gain": _dec(gain),
        "currency": h.currency,
        "as_of": _ts(h.as_of),
    }


async def list_transactions(
    container: Container,
    user_id: UUID,
    *,
    account_id: UUID | None = None,
    start: date | None = None,
    end: date | None = None,
    include_removed: bool = False,
) -> list[Transaction]:
    """The user's transactions (live ones by default), oldest date first."""
    t, a = transactions, accounts_table
    stmt = select(t).join(a, a.c.id == t.c.account_id).where(a.c.user_id == user_id)
    if account_id is not None:
        stmt = stmt.where(t.c.account_id == account_id)
    if start is not None:
        stmt = stmt.where(t.c.date >= start)
    if end is not None:
        stmt = stmt.where(t.c.date <= end)
    if not include_removed:
        stmt = stmt.where(t.c.removed_at.is_(None))
    async with container.engine.connect() as conn:
        rows = await conn.execute(stmt.order_by(t.c.date, t.c.id))
        return [transaction_from_row(r) for r in rows]


async def list_user_holdings(
    container: Container, user_id: UUID, *, account_id: UUID | None = None
) -> list[Holding]:
    """The user's open positions, by account then symbol."""
    h, a = holdings, accounts_table
    stmt = (
        select(h)
        .join(a, a.c.id == h.c.account_id)
        .where(a.c.user_id == user_id, h.c.closed_at.is_(None))
    )
    if account_id is not None:
        stmt = stmt.where(h.c.account_id == account_id)
    async with container.engine.connect() as conn:
        rows = await conn.execute(stmt.order_by(h.c.account_id, h.c.symbol, h.c.id))
        return [holding_from_row(r) for r in rows]


# -- transaction exports --------------------------------------------------------------------------

ExportFormat = Literal["csv", "json", "ofx"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "json", "ofx")
#: ``Content-Type`` of each export format.
EXPORT_MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "ofx": "application/x-ofx",
}
#: Rows per database read (one keyset query each).
BATCH_ROWS = 2000
#: Rows per yielded chunk: about 180 KiB of JSON, 160 KiB of CSV.
JSON_CHUNK_ROWS = 512
CSV_CHUNK_ROWS = 1024
CSV_COLUMNS = (
    "id",
    "account_id",
    "date",
    "posted_at",
    "amount",
    "currency",
    "description",
    "merchant",
    "type",
    "subtype",
    "status",
    "provider_transaction_id",
    "pending_transaction_id",
    "security_symbol",
    "security_quantity",
    "security_price",
)
#: An export row: :class:`~dashtam_core.application.transaction_pages.ApiRow` (wire values).
ExportRow = ApiRow
_JSON_OPTIONS = orjson.OPT_UTC_Z  # "Z" for UTC, like the API's pydantic models
_CSV_SEPARATORS = len(CSV_COLUMNS) - 1


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _csv_cells(row: ExportRow) -> list[str]:
    posted = row.posted_at
    return [
        row.id,
        row.account_id,
        row.date.isoformat(),
        "" if posted is None else _iso(posted),
        row.amount,
        row.currency,
        row.description,
        row.merchant or "",
        row.type,
        row.subtype,
        row.status,
        row.provider_transaction_id,
        row.pending_transaction_id or "",
        row.security_symbol or "",
        row.security_quantity or "",
        row.security_price or "",
    ]


def csv_row(row: Any) -> list[str]:
    """The CSV cells of a ``transactions`` row: a row of exactly ``API_COLUMNS`` or a mapping.

    Money and quantities are exact decimal strings, ``None`` an empty cell.
    """
    if getattr(row, "_fields", None) == API_COLUMNS:  # positional, in API_COLUMNS order
        values = tuple(row)
    else:
        m = row._mapping if hasattr(row, "_mapping") else row
        values = tuple(m[name] for name in API_COLUMNS)
    return _csv_cells(api_row(values))


def csv_text(rows: Sequence[ExportRow]) -> str:
    """CSV lines (``\\r\\n`` ends) of export rows, the same text as :mod:`csv`'s ``excel`` writer.

    Cells are joined directly, which is right unless a cell holds a comma, a quote or a line
    break: then the lines have more commas than separators, or a quote or line break at all,
    and the batch goes through :func:`csv.writer` instead, which quotes those cells.
    """
    # The cells of _csv_cells(), unpacked inline: no call per row on the hot path.
    lines = [
        ",".join(
            (
                ident,
                account_id,
                day.isoformat(),
                "" if posted is None else _iso(posted),
                amount,
                currency,
                description,
                merchant or "",
                kind,
                subtype,
                status,
                provider_id,
                pending or "",
                symbol or "",
                quantity or "",
                price or "",
            )
        )
        for (
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
        ) in rows
    ]
    cells = "".join(lines)
    if (
        '"' in cells
        or "\n" in cells
        or "\r" in cells
        or cells.count(",") != _CSV_SEPARATORS * len(lines)
    ):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerows(map(_csv_cells, rows))
        return buffer.getvalue()
    lines.append("")
    return "\r\n".join(lines)


def json_items(rows: Sequence[ApiRow]) -> bytes:
    """The API transaction objects of export rows, comma-separated (a JSON array's inside).

    The same bytes as the list route's objects, with one ``orjson.dumps`` for the whole batch.
    """
    return orjson.dumps(list(map(api_object, rows)), option=_JSON_OPTIONS)[1:-1]


# -- reading: keyset batches --------------------------------------------------------------------


async def _read_batch(
    engine: AsyncEngine,
    user_id: UUID,
    flt: TransactionFilter,
    limit: int,
    after: ApiRow | None,
    account_ids: list[UUID],
) -> list[ApiRow]:
    """One keyset batch on a pooled connection of its own (``engine``: a read engine)."""
    key = None if after is None else (after.date, UUID(after.id))
    async with engine.connect() as conn:
        return await read_page(conn, user_id, flt, limit=limit, after=key, account_ids=account_ids)


async def iter_export_rows(
    engine: AsyncEngine,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> AsyncGenerator[Sequence[ExportRow], None]:
    """The user's live transactions matching ``flt`` as export rows, newest first, in batches.

    Keyset batches of ``batch_rows`` (``date DESC, id DESC``): one short read each, and the next
    one already runs on the database while the caller works on the current batch. Memory stays
    at two batches whatever the number of rows.
    """
    flt = flt or TransactionFilter()
    engine = read_engine(engine)  # autocommit: each batch costs one round trip
    async with engine.connect() as conn:
        owned = await owned_account_ids(conn, user_id, flt.account_id)
    if not owned:
        return
    pending: asyncio.Future[list[ApiRow]] | None = asyncio.ensure_future(
        _read_batch(engine, user_id, flt, batch_rows, None, owned)
    )
    try:
        while pending is not None:
            rows = await pending
            pending = None
            if len(rows) == batch_rows:  # maybe more: read ahead
                pending = asyncio.ensure_future(
                    _read_batch(engine, user_id, flt, batch_rows, rows[-1], owned)
                )
            if rows:
                yield rows
    finally:
        if pending is not None:  # closed early: let the read in flight finish, drop its result
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()


def _chunks(rows: Sequence[ExportRow], size: int) -> Iterator[Sequence[ExportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def json_stream(
    engine: AsyncEngine,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> AsyncGenerator[bytes, None]:
    """``{"data": [...]}`` with the API's transaction objects, in chunks of about 180 KiB."""
    yield b'{"data":['
    separator = b""
    async with aclosing(iter_export_rows(engine, user_id, flt, batch_rows=batch_rows)) as batches:
        async for rows in batches:
            for chunk in _chunks(rows, JSON_CHUNK_ROWS):
                yield separator + json_items(chunk)
                separator = b","
    yield b"]}"


async def csv_stream(
    engine: AsyncEngine,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> AsyncGenerator[bytes, None]:
    """A header row (:data:`CSV_COLUMNS`), then one line per transaction, in chunks."""
    yield (",".join(CSV_COLUMNS) + "\r\n").encode()
    async with aclosing(iter_export_rows(engine, user_id, flt, batch_rows=batch_rows)) as batches:
        async for rows in batches:
            for chunk in _chunks(rows, CSV_CHUNK_ROWS):
                yield csv_text(chunk).encode("utf-8")


# -- OFX 2.2 --------------------------------------------------------------------------------------

_INVESTMENT = frozenset(
    {
        AccountType.BROKERAGE,
        AccountType.IRA,
        AccountType.ROTH_IRA,
        AccountType.K401,
        AccountType.B403,
        AccountType.HSA,
        AccountType.CRYPTO,
    }
)
_CREDIT = frozenset({AccountType.CREDIT_CARD, AccountType.LINE_OF_CREDIT})
_BANK_TYPES = {
    AccountType.SAVINGS: "SAVINGS",
    AccountType.MONEY_MARKET: "MONEYMRKT",
    AccountType.CD: "CD",
}
_TRNTYPES = {
    "interest": "INT",
    "dividend": "DIV",
    "fee": "FEE",
    "commission": "SRVCHG",
    "atm": "ATM",
    "check": "CHECK",
    "payment": "PAYMENT",
    "deposit": "DEP",
    "ach": "DIRECTDEBIT",
    "wire": "XFER",
    "transfer": "XFER",
    "journal": "XFER",
    "payroll": "DIRECTDEP",
    "purchase": "POS",
}
_OFX_STATUS = "<STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>"


def _ofx_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S") + ".000[0:GMT]"


#: Control characters XML 1.0 forbids and :meth:`str.split` does not take for whitespace.
_XML_INVALID = re.compile("[\x00-\x08\x0e-\x1b\ufffe\uffff]")


def _ofx_text(value: str, limit: int) -> str:
    """Element text: whitespace runs as one space, no XML-invalid character, escaped."""
    return escape(" ".join(_XML_INVALID.sub("", value).split())[:limit]) or "-"


def _acctid(account: Account) -> str:
    pid = account.provider_account_id
    return escape(pid) if 0 < len(pid) <= 22 else account.id.hex[:22]


def _stmttrn(row: ExportRow) -> str:
    amount = row.amount
    kind = _TRNTYPES.get(row.subtype) or ("CREDIT" if Decimal(amount) >= 0 else "DEBIT")
    merchant = row.merchant
    memo = f"<MEMO>{_ofx_text(merchant, 255)}</MEMO>" if merchant else ""
    return (
        f"<STMTTRN><TRNTYPE>{kind}</TRNTYPE><DTPOSTED>{row.date:%Y%m%d}</DTPOSTED>"
        f"<TRNAMT>{amount}</TRNAMT><FITID>{_ofx_text(row.id, 255)}</FITID>"
        f"<NAME>{_ofx_text(row.description, 32)}</NAME>{memo}</STMTTRN>"
    )


async def _ofx_account(
    engine: AsyncEngine,
    user_id: UUID,
    account: Account,
    flt: TransactionFilter,
    now: datetime,
    batch_rows: int,
) -> AsyncGenerator[str, None]:
    start = _ofx_time(datetime.combine(flt.start or date(1970, 1, 1), datetime.min.time(), UTC))
    end = _ofx_time(now)
    investment = account.type in _INVESTMENT
    credit = account.type in _CREDIT
    cur = escape(account.currency)
    if investment:
        yield (
            f"<INVSTMTTRNRS><TRNUID>{account.id.hex}</TRNUID>{_OFX_STATUS}<INVSTMTRS>"
            f"<DTASOF>{end}</DTASOF><CURDEF>{cur}</CURDEF><INVACCTFROM>"
            f"<BROKERID>{escape(account.provider[:22])}</BROKERID>"
            f"<ACCTID>{_acctid(account)}</ACCTID></INVACCTFROM>"
            f"<INVTRANLIST><DTSTART>{start}</DTSTART><DTEND>{end}</DTEND>"
        )
    elif credit:
        yield (
            f"<CCSTMTTRNRS><TRNUID>{account.id.hex}</TRNUID>{_OFX_STATUS}<CCSTMTRS>"
            f"<CURDEF>{cur}</CURDEF><CCACCTFROM><ACCTID>{_acctid(account)}</ACCTID></CCACCTFROM>"
            f"<BANKTRANLIST><DTSTART>{start}</DTSTART><DTEND>{end}</DTEND>"
        )
    else:
        kind = _BANK_TYPES.get(account.type, "CHECKING")
        yield (
            f"<STMTTRNRS><TRNUID>{account.id.hex}</TRNUID>{_OFX_STATUS}<STMTRS>"
            f"<CURDEF>{cur}</CURDEF><BANKACCTFROM><BANKID>000000000</BANKID>"
            f"<ACCTID>{_acctid(account)}</ACCTID><ACCTTYPE>{kind}</ACCTTYPE></BANKACCTFROM>"
            f"<BANKTRANLIST><DTSTART>{start}</DTSTART><DTEND>{end}</DTEND>"
        )
    scoped = replace(flt, account_id=account.id)
    async with aclosing(
        iter_export_rows(engine, user_id, scoped, batch_rows=batch_rows)
    ) as batches:
        async for rows in batches:
            if investment:
                yield "".join(
                    f"<INVBANKTRAN>{_stmttrn(row)}<SUBACCTFUND>CASH</SUBACCTFUND></INVBANKTRAN>"
                    for row in rows
                )
            else:
                yield "".join(map(_stmttrn, rows))
    if investment:
        yield "</INVTRANLIST></INVSTMTRS></INVSTMTTRNRS>"
        return
    balance = ""
    if account.balance_current is not None:
        owed = -account.balance_current if credit else account.balance_current
        as_of = _ofx_time(account.balance_as_of or now)
        balance = (
            f"<LEDGERBAL><BALAMT>{format(owed, 'f')}</BALAMT><DTASOF>{as_of}</DTASOF></LEDGERBAL>"
        )
    closing = "</CCSTMTRS></CCSTMTTRNRS>" if credit else "</STMTRS></STMTTRNRS>"
    yield f"</BANKTRANLIST>{balance}{closing}"


async def ofx_stream(
    engine: AsyncEngine,
    user_id: UUID,
    flt: TransactionFilter | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> AsyncGenerator[bytes, None]:
    """An OFX 2.2 document: one statement per account (bank, credit card or investment message
    set by account type), each with the account's transactions newest first."""
    flt = flt or TransactionFilter()
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        owned = await list_accounts(conn, user_id)
    if flt.account_id is not None:
        owned = [a for a in owned if a.id == flt.account_id]
    yield (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" '
        'NEWFILEUID="NONE"?>\n'
        f"<OFX><SIGNONMSGSRSV1><SONRS>{_OFX_STATUS}<DTSERVER>{_ofx_time(now)}</DTSERVER>"
        "<LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1>"
    ).encode()
    groups = (
        ("BANKMSGSRSV1", [a for a in owned if a.type not in _INVESTMENT | _CREDIT]),
        ("CREDITCARDMSGSRSV1", [a for a in owned if a.type in _CREDIT]),
        ("INVSTMTMSGSRSV1", [a for a in owned if a.type in _INVESTMENT]),
    )
    for tag, members in groups:
        if not members:
            continue
        yield f"<{tag}>".encode()
        for account in members:
            statement = _ofx_account(engine, user_id, account, flt, now, batch_rows)
            async with aclosing(statement) as texts:
                async for text in texts:
                    yield text.encode("utf-8")
        yield f"</{tag}>".encode()
    yield b"</OFX>\n"


_STREAMS = {"csv": csv_stream, "json": json_stream, "ofx": ofx_stream}


def export_stream(
    engine: AsyncEngine,
    user_id: UUID,
    fmt: str,
    flt: TransactionFilter | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
) -> AsyncGenerator[bytes, None]:
    """The user's transactions as a stream of ``csv``, ``json`` or ``ofx`` bytes (the REST
    export's body; the CLI writes the chunks as they come).

    Raises:
        ValueError: an unknown format.
    """
    stream = _STREAMS.get(fmt)
    if stream is None:
        raise ValueError(f"unknown export format {fmt!r} (use csv, json or ofx)")
    return stream(engine, user_id, flt, batch_rows=batch_rows)


__all__ = [
    "BATCH_ROWS",
    "CSV_CHUNK_ROWS",
    "CSV_COLUMNS",
    "EXPORT_FORMATS",
    "EXPORT_MEDIA_TYPES",
    "JSON_CHUNK_ROWS",
    "ExportFormat",
    "ExportRow",
    "account_to_dict",
    "connection_to_dict",
    "csv_row",
    "csv_stream",
    "csv_text",
    "export_stream",
    "holding_to_dict",
    "iter_export_rows",
    "json_items",
    "json_stream",
    "list_transactions",
    "list_user_holdings",
    "ofx_stream",
    "sync_run_to_dict",
    "transaction_to_dict",
]
