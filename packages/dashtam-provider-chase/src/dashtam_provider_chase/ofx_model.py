"""The events the OFX reader yields, and its internal failure signal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

#: Every OFX 1.02 / 2.x TRNTYPE.
TRNTYPES = frozenset(
    {
        "CREDIT",
        "DEBIT",
        "INT",
        "DIV",
        "FEE",
        "SRVCHG",
        "DEP",
        "ATM",
        "POS",
        "XFER",
        "CHECK",
        "PAYMENT",
        "CASH",
        "DIRECTDEP",
        "DIRECTDEBIT",
        "REPEATPMT",
        "HOLD",
        "OTHER",
    }
)
TRNTYPE_NAMES = {t.encode("ascii"): t for t in TRNTYPES}


@dataclass(frozen=True, slots=True)
class OfxAccount:
    """The account a statement is about (from BANKACCTFROM or CCACCTFROM)."""

    kind: str  # "bank" or "creditcard"
    acctid: str
    accttype: str | None
    bankid: str | None
    currency: str


class OfxTransaction(NamedTuple):
    """One STMTTRN, values converted but not yet classified (a tuple: cheap to build)."""

    trntype: str
    date: date
    posted_at: datetime | None
    amount: Decimal
    fitid: str
    name: str
    memo: str
    checknum: str
    currency: str


@dataclass(frozen=True, slots=True)
class OfxBalance:
    """LEDGERBAL or AVAILBAL: the amount and when it was stated."""

    amount: Decimal
    date: date
    as_of: datetime | None


@dataclass(frozen=True, slots=True)
class OfxStatementEnd:
    """Emitted when STMTRS/CCSTMTRS closes: balances and the statement's date range."""

    account: OfxAccount
    start: date | None
    end: date | None
    ledger: OfxBalance | None
    available: OfxBalance | None


@dataclass(slots=True)
class OfxStatement:
    """A whole statement collected from the events (convenient for tests and small files)."""

    account: OfxAccount
    transactions: list[OfxTransaction] = field(default_factory=list)
    end: OfxStatementEnd | None = None


OfxEvent = OfxAccount | OfxTransaction | OfxStatementEnd


class ReadFault(Exception):
    """A defect found while reading (internal: the reader turns it into StatementParseError)."""

    def __init__(self, message: str, element: bytes | str | None, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.element = element.decode("ascii", "replace") if isinstance(element, bytes) else element
        self.pos = pos


__all__ = [
    "TRNTYPES",
    "TRNTYPE_NAMES",
    "OfxAccount",
    "OfxBalance",
    "OfxEvent",
    "OfxStatement",
    "OfxStatementEnd",
    "OfxTransaction",
    "ReadFault",
]
