"""Read-side queries of a user's data and their wire shapes (api.md), plus transaction exports.

The ``*_to_dict`` functions produce exactly the JSON objects of the REST API (decimal strings,
RFC 3339 UTC timestamps, ``YYYY-MM-DD`` dates) so the CLI's ``--json`` and the API agree.
:func:`export_transactions` renders CSV (header row, no account numbers), JSON or OFX 2 XML.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID
from xml.sax.saxutils import escape

import orjson
from sqlalchemy import select

from dashtam_core.adapters.sqlalchemy.tables import accounts as accounts_table
from dashtam_core.adapters.sqlalchemy.tables_data import holdings, transactions
from dashtam_core.application.container import Container
from dashtam_core.domain.account import Account
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.holding import Holding
from dashtam_core.domain.transaction import Transaction
from dashtam_core.sync.rows import holding_from_row, transaction_from_row
from dashtam_core.sync.runs import SyncRun

EXPORT_FORMATS = ("csv", "json", "ofx")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


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
        "amount": str(tx.amount),
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
        "quantity": str(h.quantity),
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


_CSV_HEADER = (
    "date",
    "account",
    "description",
    "amount",
    "currency",
    "type",
    "subtype",
    "status",
    "id",
)


def _csv(txs: Sequence[Transaction], names: dict[UUID, str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(_CSV_HEADER)
    for tx in txs:
        writer.writerow(
            [
                tx.date.isoformat(),
                names.get(tx.account_id, ""),
                tx.description,
                str(tx.amount),
                tx.currency,
                str(tx.type),
                str(tx.subtype),
                str(tx.status),
                str(tx.id),
            ]
        )
    return buffer.getvalue().encode("utf-8")


def _ofx_type(tx: Transaction) -> str:
    sub = str(tx.subtype)
    mapping = {
        "check": "CHECK",
        "atm": "ATM",
        "payroll": "DIRECTDEP",
        "fee": "FEE",
        "interest": "INT",
        "dividend": "DIV",
        "payment": "PAYMENT",
    }
    return mapping.get(sub, "CREDIT" if tx.amount > 0 else "DEBIT")


def _ofx(txs: Sequence[Transaction], accounts: Iterable[Account]) -> bytes:
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
        '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>',
        "<OFX><SIGNONMSGSRSV1><SONRS><STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>",
        f"<DTSERVER>{now}</DTSERVER><LANGUAGE>ENG</LANGUAGE></SONRS></SIGNONMSGSRSV1>",
        "<BANKMSGSRSV1>",
    ]
    by_account: dict[UUID, list[Transaction]] = {}
    for tx in txs:
        by_account.setdefault(tx.account_id, []).append(tx)
    for index, account in enumerate(accounts, start=1):
        items = by_account.get(account.id)
        if not items:
            continue
        first = min(t.date for t in items).strftime("%Y%m%d")
        last = max(t.date for t in items).strftime("%Y%m%d")
        parts.append(
            f"<STMTTRNRS><TRNUID>{index}</TRNUID><STATUS><CODE>0</CODE>"
            "<SEVERITY>INFO</SEVERITY></STATUS><STMTRS>"
            f"<CURDEF>{escape(account.currency)}</CURDEF><BANKACCTFROM><BANKID>000000000</BANKID>"
            f"<ACCTID>{escape(str(account.id))}</ACCTID><ACCTTYPE>CHECKING</ACCTTYPE>"
            f"</BANKACCTFROM><BANKTRANLIST><DTSTART>{first}</DTSTART><DTEND>{last}</DTEND>"
        )
        for tx in items:
            parts.append(
                f"<STMTTRN><TRNTYPE>{_ofx_type(tx)}</TRNTYPE>"
                f"<DTPOSTED>{tx.date.strftime('%Y%m%d')}</DTPOSTED>"
                f"<TRNAMT>{tx.amount}</TRNAMT><FITID>{escape(str(tx.id))}</FITID>"
                f"<NAME>{escape(tx.description[:32])}</NAME></STMTTRN>"
            )
        bal = account.balance_current if account.balance_current is not None else Decimal(0)
        parts.append(
            f"</BANKTRANLIST><LEDGERBAL><BALAMT>{bal}</BALAMT><DTASOF>{now}</DTASOF>"
            "</LEDGERBAL></STMTRS></STMTTRNRS>"
        )
    parts.append("</BANKMSGSRSV1></OFX>")
    return "\n".join(parts).encode("utf-8")


async def export_transactions(
    container: Container,
    user_id: UUID,
    fmt: str,
    *,
    account_id: UUID | None = None,
    start: date | None = None,
    end: date | None = None,
) -> bytes:
    """Render the user's transactions as ``csv``, ``json`` or ``ofx``.

    Raises:
        ValueError: an unknown format.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (use csv, json or ofx)")
    txs = await list_transactions(container, user_id, account_id=account_id, start=start, end=end)
    async with container.uow_factory() as uow:
        accounts = await uow.accounts.list_for_user(user_id)
    if fmt == "json":
        return orjson.dumps({"data": [transaction_to_dict(t) for t in txs]})
    if fmt == "csv":
        return _csv(txs, {a.id: a.name for a in accounts})
    return _ofx(txs, accounts)


__all__ = [
    "EXPORT_FORMATS",
    "account_to_dict",
    "connection_to_dict",
    "export_transactions",
    "holding_to_dict",
    "list_transactions",
    "list_user_holdings",
    "sync_run_to_dict",
    "transaction_to_dict",
]
