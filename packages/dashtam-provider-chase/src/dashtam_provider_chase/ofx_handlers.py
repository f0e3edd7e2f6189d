"""What the OFX reader does when an aggregate closes.

Each handler receives the reader, the closed aggregate's values (``frame``), its parent's
values, the tags still open, and the aggregate's byte span; it returns an event to yield or
stores a converted value in the parent under a ``TAG.PART`` key (never a real OFX tag).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dashtam_provider_chase.ofx_model import (
    TRNTYPE_NAMES,
    OfxAccount,
    OfxBalance,
    OfxEvent,
    OfxStatementEnd,
    OfxTransaction,
    ReadFault,
)

if TYPE_CHECKING:
    from dashtam_provider_chase.ofx import OfxReader

Frame = dict[bytes, Any]
Handler = Callable[["OfxReader", Frame, Frame, list[bytes], int, int], OfxEvent | None]

_STATEMENTS = (b"STMTRS", b"CCSTMTRS")
_BANK_ACCTTYPES = frozenset({"CHECKING", "SAVINGS", "MONEYMRKT", "CREDITLINE", "CD"})
_CURRENCY = re.compile(r"[A-Z]{3}")


def _stmttrn(
    r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
) -> OfxEvent | None:
    # The hot path of the reader: one call per transaction, caches consulted inline.
    if not tags or tags[-1] != b"BANKTRANLIST":
        return None  # e.g. STMTTRN inside an investment INVBANKTRAN: not a bank statement
    account = r.current_account
    if account is None:
        raise ReadFault("STMTTRN before BANKACCTFROM/CCACCTFROM", b"STMTTRN", start)
    span = (start, end)
    raw = frame.get(b"TRNTYPE")
    trntype = TRNTYPE_NAMES.get(raw) if isinstance(raw, bytes) else None
    if trntype is None:
        raw = r.required(frame, b"TRNTYPE", b"STMTTRN", end)
        raise ReadFault(
            f"unknown TRNTYPE {raw[:20].decode('ascii', 'replace')!r}",
            b"TRNTYPE",
            r.locate(b"TRNTYPE", start, end),
        )
    raw = frame.get(b"DTPOSTED")
    when = r.dates.get(raw) if raw else None
    if when is None:
        when = r.datetime(r.required(frame, b"DTPOSTED", b"STMTTRN", end), b"DTPOSTED", span)
    amount = r.amount(r.required(frame, b"TRNAMT", b"STMTTRN", end), b"TRNAMT", span)
    raw = frame.get(b"FITID")
    if not raw:
        raise ReadFault("missing required <FITID> in <STMTTRN>", b"FITID", end)
    fitid = r.string(raw, b"FITID", span)
    raw = frame.get(b"NAME")
    if raw:
        name = r.strings.get(raw) or r.string(raw, b"NAME", span, cache=True)
    else:
        name = frame.get(b"PAYEE.NAME", "")
    raw = frame.get(b"MEMO")
    memo = (r.strings.get(raw) or r.string(raw, b"MEMO", span, cache=True)) if raw else ""
    raw = frame.get(b"CHECKNUM")
    checknum = r.string(raw, b"CHECKNUM", span) if raw else ""
    currency = frame.get(b"CURRENCY.CURSYM") or account.currency
    return OfxTransaction(trntype, when[0], when[1], amount, fitid, name, memo, checknum, currency)


def _currency(r: OfxReader, frame: Frame, tag: bytes, span: tuple[int, int]) -> str:
    value = r.text(frame, tag, span)
    if _CURRENCY.fullmatch(value) is None:
        raise ReadFault(f"invalid currency {value[:10]!r}", tag, r.locate(tag, *span))
    return value


def _acctfrom(kind: str) -> Handler:
    def handler(
        r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
    ) -> OfxEvent | None:
        if not tags or tags[-1] not in _STATEMENTS:
            return None
        span = (start, end)
        element = b"BANKACCTFROM" if kind == "bank" else b"CCACCTFROM"
        r.required(frame, b"ACCTID", element, end)
        acctid = r.text(frame, b"ACCTID", span)
        accttype: str | None = None
        if kind == "bank":
            r.required(frame, b"ACCTTYPE", element, end)
            accttype = r.text(frame, b"ACCTTYPE", span)
            if accttype not in _BANK_ACCTTYPES:
                raise ReadFault(
                    f"unknown ACCTTYPE {accttype[:20]!r}",
                    b"ACCTTYPE",
                    r.locate(b"ACCTTYPE", start, end),
                )
        r.required(parent, b"CURDEF", tags[-1], end)
        currency = _currency(r, parent, b"CURDEF", (start - 200 if start > 200 else 0, start))
        account = OfxAccount(
            kind, acctid, accttype, r.text(frame, b"BANKID", span) or None, currency
        )
        r.set_account(account)
        return account

    return handler


def _currency_aggregate(
    r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
) -> OfxEvent | None:
    if tags and tags[-1] == b"STMTTRN":
        r.required(frame, b"CURSYM", b"CURRENCY", end)
        parent[b"CURRENCY.CURSYM"] = _currency(r, frame, b"CURSYM", (start, end))
    return None


def _payee(
    r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
) -> OfxEvent | None:
    if tags and tags[-1] == b"STMTTRN":
        parent[b"PAYEE.NAME"] = r.text(frame, b"NAME", (start, end), cache=True)
    return None


def _tranlist(
    r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
) -> OfxEvent | None:
    if tags and tags[-1] in _STATEMENTS:
        span = (start, end)
        first = (
            r.datetime(frame[b"DTSTART"], b"DTSTART", span)[0] if frame.get(b"DTSTART") else None
        )
        last = r.datetime(frame[b"DTEND"], b"DTEND", span)[0] if frame.get(b"DTEND") else None
        parent[b"BANKTRANLIST.RANGE"] = (first, last)
    return None


def _balance(tag: bytes) -> Handler:
    def handler(
        r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
    ) -> OfxEvent | None:
        if tags and tags[-1] in _STATEMENTS:
            span = (start, end)
            amount = r.amount(r.required(frame, b"BALAMT", tag, end), b"BALAMT", span)
            day, as_of = r.datetime(r.required(frame, b"DTASOF", tag, end), b"DTASOF", span)
            parent[tag + b".VALUE"] = OfxBalance(amount, day, as_of)
        return None

    return handler


def _statement(
    r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
) -> OfxEvent | None:
    account = r.account(end, b"STMTRS")
    first, last = frame.get(b"BANKTRANLIST.RANGE", (None, None))
    r.set_account(None)
    return OfxStatementEnd(
        account, first, last, frame.get(b"LEDGERBAL.VALUE"), frame.get(b"AVAILBAL.VALUE")
    )


def _status(
    r: OfxReader, frame: Frame, parent: Frame, tags: list[bytes], start: int, end: int
) -> OfxEvent | None:
    if not tags or tags[-1] not in (b"SONRS", b"STMTTRNRS", b"CCSTMTTRNRS"):
        return None
    code = r.required(frame, b"CODE", b"STATUS", end)
    if code != b"0" and frame.get(b"SEVERITY") == b"ERROR":
        message = r.text(frame, b"MESSAGE", (start, end))
        raise ReadFault(
            f"the institution reported error {code[:10].decode('ascii', 'replace')}"
            + (f": {message[:80]}" if message else ""),
            tags[-1],
            start,
        )
    return None


HANDLERS: dict[bytes, Handler] = {
    b"STMTTRN": _stmttrn,
    b"BANKACCTFROM": _acctfrom("bank"),
    b"CCACCTFROM": _acctfrom("creditcard"),
    b"CURRENCY": _currency_aggregate,
    b"PAYEE": _payee,
    b"BANKTRANLIST": _tranlist,
    b"LEDGERBAL": _balance(b"LEDGERBAL"),
    b"AVAILBAL": _balance(b"AVAILBAL"),
    b"STMTRS": _statement,
    b"CCSTMTRS": _statement,
    b"STATUS": _status,
}

__all__ = ["HANDLERS", "Frame", "Handler"]
