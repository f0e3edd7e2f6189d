"""``GET /api/v1/exports/transactions``: the transactions as a streamed CSV, JSON or OFX file.

The body is produced page by page (keyset pages of :data:`PAGE` rows, one short database read
each), so memory stays flat whatever the size. CSV starts with a header row; JSON is
``{"data": [...]}`` with the API's transaction objects; OFX is an OFX 2.2 XML document with one
statement per account (bank, credit card or investment message set by account type).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID
from xml.sax.saxutils import escape

import orjson
from fastapi import Query
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import StreamingResponse

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.registry import RouteSpec
from dashtam_api.routes.data import AUTH_ERRORS, EngineDep
from dashtam_api.schemas.data import ORJSON_OPTIONS, transaction_json
from dashtam_core.application import queries
from dashtam_core.application.queries import API_COLUMNS
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.transaction import Transaction
from dashtam_core.sync.rows import transaction_from_row

ExportFormat = Literal["csv", "json", "ofx"]
PAGE = 500
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
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json", "ofx": "application/x-ofx"}
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


async def iter_pages(
    engine: AsyncEngine,
    user_id: UUID,
    flt: queries.TransactionFilter,
    *,
    api_only: bool = True,
) -> AsyncIterator[list[Any]]:
    """Every matching live transaction row, newest first, in keyset pages of :data:`PAGE`."""
    cursor: str | None = None
    while True:
        async with engine.connect() as conn:
            rows, cursor = await queries.transaction_rows(
                conn, user_id, flt, limit=PAGE, cursor=cursor, api_only=api_only
            )
        if rows:
            yield rows
        if cursor is None:
            return


async def iter_transactions(
    engine: AsyncEngine, user_id: UUID, flt: queries.TransactionFilter
) -> AsyncIterator[Transaction]:
    """Every matching live transaction as a domain object, newest first."""
    async for rows in iter_pages(engine, user_id, flt, api_only=False):
        for row in rows:
            yield transaction_from_row(row)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _money_text(value: Any) -> str:
    return "" if value is None else format(value, "f")


def csv_row(row: Any) -> list[str]:
    """The CSV cells of a ``transactions`` row (money as exact decimal strings)."""
    if getattr(row, "_fields", None) == API_COLUMNS:  # a row of exactly API_COLUMNS
        values = tuple(row)
    else:
        m = row._mapping if hasattr(row, "_mapping") else row
        values = tuple(m[name] for name in API_COLUMNS)
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
    has_leg = symbol is not None
    return [
        str(ident),
        str(account_id),
        day.isoformat(),
        posted.isoformat().replace("+00:00", "Z") if posted else "",
        format(amount, "f"),
        currency,
        description,
        merchant or "",
        kind,
        subtype,
        status,
        provider_id,
        _text(pending),
        symbol or "",
        _money_text(quantity) if has_leg else "",
        _money_text(price) if has_leg else "",
    ]


async def csv_stream(
    engine: AsyncEngine, user_id: UUID, flt: queries.TransactionFilter
) -> AsyncIterator[bytes]:
    """CSV with a header row, one line per transaction (one chunk per page)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    async for rows in iter_pages(engine, user_id, flt):
        writer.writerows(csv_row(r) for r in rows)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


async def json_stream(
    engine: AsyncEngine, user_id: UUID, flt: queries.TransactionFilter
) -> AsyncIterator[bytes]:
    """``{"data": [...]}`` with the API's transaction objects (one chunk per page)."""
    yield b'{"data":['
    first = True
    async for rows in iter_pages(engine, user_id, flt):
        items = orjson.dumps([transaction_json(r) for r in rows], option=ORJSON_OPTIONS)[1:-1]
        yield items if first else b"," + items
        first = False
    yield b"]}"


def _ofx_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%d%H%M%S") + ".000[0:GMT]"


def _ofx_text(value: str, limit: int) -> str:
    return escape(" ".join(value.split())[:limit]) or "-"


def _acctid(account: Account) -> str:
    pid = account.provider_account_id
    return escape(pid) if 0 < len(pid) <= 22 else account.id.hex[:22]


def _stmttrn(tx: Transaction) -> str:
    kind = _TRNTYPES.get(str(tx.subtype), "CREDIT" if tx.amount >= 0 else "DEBIT")
    memo = f"<MEMO>{_ofx_text(tx.merchant, 255)}</MEMO>" if tx.merchant else ""
    return (
        f"<STMTTRN><TRNTYPE>{kind}</TRNTYPE><DTPOSTED>{tx.date:%Y%m%d}</DTPOSTED>"
        f"<TRNAMT>{format(tx.amount, 'f')}</TRNAMT><FITID>{_ofx_text(str(tx.id), 255)}</FITID>"
        f"<NAME>{_ofx_text(tx.description, 32)}</NAME>{memo}</STMTTRN>"
    )


def _status() -> str:
    return "<STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>"


async def _ofx_account(
    engine: AsyncEngine,
    user_id: UUID,
    account: Account,
    flt: queries.TransactionFilter,
    now: datetime,
) -> AsyncIterator[str]:
    start = _ofx_time(datetime.combine(flt.start or date(1970, 1, 1), datetime.min.time(), UTC))
    end = _ofx_time(now)
    investment = account.type in _INVESTMENT
    credit = account.type in _CREDIT
    cur = escape(account.currency)
    if investment:
        yield (
            f"<INVSTMTTRNRS><TRNUID>{account.id.hex}</TRNUID>{_status()}<INVSTMTRS>"
            f"<DTASOF>{end}</DTASOF><CURDEF>{cur}</CURDEF><INVACCTFROM>"
            f"<BROKERID>{escape(account.provider[:22])}</BROKERID>"
            f"<ACCTID>{_acctid(account)}</ACCTID></INVACCTFROM>"
            f"<INVTRANLIST><DTSTART>{start}</DTSTART><DTEND>{end}</DTEND>"
        )
    elif credit:
        yield (
            f"<CCSTMTTRNRS><TRNUID>{account.id.hex}</TRNUID>{_status()}<CCSTMTRS>"
            f"<CURDEF>{cur}</CURDEF><CCACCTFROM><ACCTID>{_acctid(account)}</ACCTID></CCACCTFROM>"
            f"<BANKTRANLIST><DTSTART>{start}</DTSTART><DTEND>{end}</DTEND>"
        )
    else:
        kind = _BANK_TYPES.get(account.type, "CHECKING")
        yield (
            f"<STMTTRNRS><TRNUID>{account.id.hex}</TRNUID>{_status()}<STMTRS>"
            f"<CURDEF>{cur}</CURDEF><BANKACCTFROM><BANKID>000000000</BANKID>"
            f"<ACCTID>{_acctid(account)}</ACCTID><ACCTTYPE>{kind}</ACCTTYPE></BANKACCTFROM>"
            f"<BANKTRANLIST><DTSTART>{start}</DTSTART><DTEND>{end}</DTEND>"
        )
    scoped = queries.TransactionFilter(
        account_id=account.id,
        start=flt.start,
        end=flt.end,
        type=flt.type,
        status=flt.status,
        q=flt.q,
    )
    async for tx in iter_transactions(engine, user_id, scoped):
        if investment:
            yield f"<INVBANKTRAN>{_stmttrn(tx)}<SUBACCTFUND>CASH</SUBACCTFUND></INVBANKTRAN>"
        else:
            yield _stmttrn(tx)
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
    engine: AsyncEngine, user_id: UUID, flt: queries.TransactionFilter
) -> AsyncIterator[bytes]:
    """An OFX 2.2 document: one statement per account, grouped in message sets."""
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        owned = await queries.list_accounts(conn, user_id)
    if flt.account_id is not None:
        owned = [a for a in owned if a.id == flt.account_id]
    yield (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" '
        'NEWFILEUID="NONE"?>\n'
        f"<OFX><SIGNONMSGSRSV1><SONRS>{_status()}<DTSERVER>{_ofx_time(now)}</DTSERVER>"
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
            async for chunk in _ofx_account(engine, user_id, account, flt, now):
                yield chunk.encode("utf-8")
        yield f"</{tag}>".encode()
    yield b"</OFX>\n"


async def export_transactions(
    principal: CurrentPrincipal,
    engine: EngineDep,
    format: Annotated[ExportFormat, Query(description="csv, json or ofx.")] = "csv",
    start: date | None = None,
    end: date | None = None,
    account_id: UUID | None = None,
) -> StreamingResponse:
    """The caller's transactions as a streamed CSV, JSON or OFX file."""
    flt = queries.TransactionFilter(account_id=account_id, start=start, end=end)
    makers = {"csv": csv_stream, "json": json_stream, "ofx": ofx_stream}
    body = makers[format](engine, principal.user_id, flt)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    filename = f"dashtam-transactions-{stamp}.{format}"
    return StreamingResponse(
        body,
        media_type=_MEDIA[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


ROUTES = (
    RouteSpec(
        name="exports.transactions",
        method="GET",
        path="/api/v1/exports/transactions",
        handler=export_transactions,
        auth="user",
        rate_limit="read_user",
        policy=("exports", "read"),
        response_class=StreamingResponse,
        errors=AUTH_ERRORS,
        tags=("financial data",),
    ),
)

__all__ = [
    "CSV_COLUMNS",
    "ROUTES",
    "csv_row",
    "csv_stream",
    "export_transactions",
    "iter_pages",
    "iter_transactions",
    "json_stream",
    "ofx_stream",
]
