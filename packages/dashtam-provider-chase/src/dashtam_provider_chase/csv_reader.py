"""Chase CSV exports: the checking/savings layout and the credit-card layout.

The layout is detected from the header row. Rows may end with a trailing comma (an extra empty
field), descriptions may be quoted and padded, amounts are signed (money into the account is
positive), and rows with an empty or zero amount are skipped (Chase lists $0 authorizations).
A row whose column count is wrong (an unescaped quote inside a description) is re-split around
the description, whose position is known.

CSV files carry no account number: the account id is ``csv:<layout>:<last4>`` when the file
name starts ``Chase1234``, else ``csv:<layout>``; the importer may override it.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import PurePath

from dashtam_core.domain.account import AccountType
from dashtam_core.errors import StatementParseError
from dashtam_core.ports.provider import ParsedStatement, ProviderAccount, ProviderTransaction
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_chase.mapping import (
    Kind,
    classify_card_csv,
    classify_checking_csv,
    collapse,
    csv_transaction_id,
)

CHECKING_HEADER = ("Details", "Posting Date", "Description", "Amount", "Type", "Balance",
                   "Check or Slip #")  # fmt: skip
CARD_HEADER = ("Transaction Date", "Post Date", "Description", "Category", "Type", "Amount", "Memo")
CARD_HEADER_WITH_CARD = ("Card", *CARD_HEADER)

_FILENAME = re.compile(r"^Chase(\d{4})_Activity", re.IGNORECASE)
_AMOUNT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_MERCHANT_KINDS = frozenset({"purchase", "refund"})


class _RowError(Exception):
    def __init__(self, message: str, column: str) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class _Row:
    day: date
    amount: Decimal
    description: str
    kind: Kind
    balance: Decimal | None


def _split_header(line: str) -> tuple[str, ...]:
    return tuple(cell.strip() for cell in next(csv.reader([line])))


def detect_layout(head: bytes) -> str | None:
    """``"checking"``, ``"card"`` or ``None`` from the first line of a file."""
    lines = head.lstrip(b"\xef\xbb\xbf").splitlines()
    if not lines or b"\x00" in lines[0]:
        return None
    try:
        header = _split_header(lines[0].decode("utf-8", "replace"))
    except (StopIteration, csv.Error):
        return None
    header = header[:-1] if header and header[-1] == "" else header
    if header == CHECKING_HEADER:
        return "checking"
    if header in (CARD_HEADER, CARD_HEADER_WITH_CARD):
        return "card"
    return None


def account_for(layout: str, filename: str) -> ProviderAccount:
    """The account a CSV of ``layout`` belongs to, derived from a ``Chase1234`` file name."""
    match = _FILENAME.match(PurePath(filename.replace("\\", "/")).name)
    last4 = match[1] if match else None
    label = "checking" if layout == "checking" else "card"
    return ProviderAccount(
        provider_account_id=f"csv:{label}:{last4}" if last4 else f"csv:{label}",
        name=f"Chase {label} ...{last4} (CSV)" if last4 else f"Chase {label} (CSV)",
        type=AccountType.CHECKING if layout == "checking" else AccountType.CREDIT_CARD,
        currency="USD",
        subtype="checking" if layout == "checking" else "credit_card",
        mask=last4,
    )


def _decimal(text: str, column: str) -> Decimal:
    value = text.strip()
    if len(value) > 32 or _AMOUNT.fullmatch(value) is None:
        raise _RowError(f"invalid {column.lower()} {value[:40]!r}", column)
    return Decimal(value)


def _date(text: str, column: str) -> date:
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise _RowError(f"invalid date {text.strip()[:20]!r} (expected MM/DD/YYYY)", column)
    try:
        return date(int(match[3]), int(match[1]), int(match[2]))
    except ValueError:
        raise _RowError(f"invalid date {text.strip()!r}", column) from None


def _resplit(raw: str, width: int, desc_index: int) -> list[str]:
    """Split a row naively on commas, joining the surplus back into the description."""
    parts = raw.split(",")
    tail = width - desc_index - 1
    if len(parts) < width:
        raise _RowError(f"expected {width} columns, found {len(parts)}", "Description")
    description = ",".join(parts[desc_index : len(parts) - tail]).strip()
    if len(description) >= 2 and description[0] == description[-1] == '"':
        description = description[1:-1]
    description = description.replace('""', '"')
    return [*parts[:desc_index], description, *parts[len(parts) - tail :]]


def _checking_row(cells: list[str]) -> _Row | None:
    details, posting, description, amount_text, type_code, balance_text, _check = cells
    if not amount_text.strip() or _decimal(amount_text, "Amount") == 0:
        return None
    amount = _decimal(amount_text, "Amount")
    if details.strip().upper() not in ("DEBIT", "CREDIT", "CHECK", "DSLIP"):
        raise _RowError(f"unknown Details value {details.strip()[:20]!r}", "Details")
    balance = _decimal(balance_text, "Balance") if balance_text.strip() else None
    kind = classify_checking_csv(type_code, amount, description)
    return _Row(_date(posting, "Posting Date"), amount, collapse(description), kind, balance)


def _card_row(cells: list[str]) -> _Row | None:
    transaction_date, _post, description, _category, type_code, amount_text, _memo = cells
    if not amount_text.strip() or _decimal(amount_text, "Amount") == 0:
        return None
    amount = _decimal(amount_text, "Amount")
    kind = classify_card_csv(type_code, amount, description)
    _date(_post, "Post Date")
    return _Row(
        _date(transaction_date, "Transaction Date"), amount, collapse(description), kind, None
    )


def _decode(data: bytes) -> str:
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("cp1252", "replace")


def parse_csv_statement(data: bytes, filename: str) -> Result[ParsedStatement, StatementParseError]:
    """Parse a Chase checking or card CSV export.

    Args:
        data: the file's bytes (UTF-8, or cp1252 as a fallback).
        filename: the uploaded file name (``Chase1234_...`` names the account).

    Returns:
        ``Ok(ParsedStatement)`` with format ``csv-checking`` or ``csv-card``, or ``Err``
        naming the line and column of the first bad row.
    """
    if b"\x00" in data:
        return Err(StatementParseError("binary data (NUL byte) in a CSV file", line=1))
    layout = detect_layout(data[:1024])
    if layout is None:
        return Err(StatementParseError("not a Chase CSV export: unknown header", line=1))
    lines = _decode(data).splitlines()
    header = _split_header(lines[0])
    offset = 1 if header[0] == "Card" else 0
    width = len(CHECKING_HEADER) if layout == "checking" else len(CARD_HEADER)
    rows: list[_Row] = []
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        parse_row = _checking_row if layout == "checking" else _card_row
        try:
            try:
                cells = next(csv.reader([raw]))[offset:]
                if layout == "checking" and len(cells) == width + 1 and not cells[-1].strip():
                    cells = cells[:width]  # the trailing comma every checking row carries
                if len(cells) != width:
                    raise _RowError(f"expected {width} columns, found {len(cells)}", "Description")
                row = parse_row(cells)
            except (_RowError, csv.Error) as first:
                # An unescaped quote or comma in the description shifts the columns: re-split
                # around it (its position is known); if that fails too, report the first error.
                body = raw.split(",", offset)[offset] if offset else raw
                if layout == "checking" and body.endswith(","):
                    body = body[:-1]
                try:
                    row = parse_row(_resplit(body, width, 2))
                except _RowError:
                    raise first from None
        except _RowError as exc:
            return Err(StatementParseError(exc.message, line=number, element=exc.column))
        except csv.Error as exc:
            return Err(StatementParseError(f"malformed CSV: {exc}", line=number))
        if row is not None:
            rows.append(row)
    return Ok(_statement(layout, filename, rows))


def _statement(layout: str, filename: str, rows: list[_Row]) -> ParsedStatement:
    account = account_for(layout, filename)
    seen: Counter[tuple[date, Decimal, str]] = Counter()
    transactions: list[ProviderTransaction] = []
    for row in rows:
        identity = (row.day, row.amount, row.description)
        seen[identity] += 1
        txn_id = csv_transaction_id(row.day, row.amount, row.description, seen[identity])
        kind, subtype = row.kind
        transactions.append(
            ProviderTransaction(
                account.provider_account_id,
                txn_id,
                txn_id,
                row.day,
                row.amount,
                account.currency,
                row.description,
                kind,
                subtype,
                merchant=row.description if subtype.value in _MERCHANT_KINDS else None,
            )
        )
    if layout == "checking" and rows:
        newest = max(rows, key=lambda r: r.day)  # first of the newest day: rows are newest first
        if newest.balance is not None:
            account = replace(
                account,
                balance_current=newest.balance,
                balance_as_of=datetime.combine(newest.day, time(12), tzinfo=UTC),
            )
    days = [row.day for row in rows]
    return ParsedStatement(
        accounts=[account],
        transactions=transactions,
        format=f"csv-{layout}",
        start=min(days) if days else None,
        end=max(days) if days else None,
    )


__all__ = [
    "CARD_HEADER",
    "CARD_HEADER_WITH_CARD",
    "CHECKING_HEADER",
    "account_for",
    "detect_layout",
    "parse_csv_statement",
]
