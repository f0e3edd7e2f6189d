"""Chase CSV layouts: detection, quirks (trailing comma, quotes, blanks) and errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from dashtam_core.domain.transaction import TransactionSubtype as S
from dashtam_core.domain.transaction import TransactionType as T
from dashtam_core.ports.provider import ParsedStatement
from dashtam_core.result import Err
from dashtam_provider_chase import ChaseProvider, detect_layout

CHECKING = "Details,Posting Date,Description,Amount,Type,Balance,Check or Slip #\r\n"
CARD = "Transaction Date,Post Date,Description,Category,Type,Amount,Memo\r\n"


def parse(text: str | bytes, filename: str = "export.csv") -> ParsedStatement:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return ChaseProvider().parse_statement(data, filename).unwrap()


def test_layout_detection() -> None:
    assert detect_layout(CHECKING.encode()) == "checking"
    assert detect_layout(CARD.encode()) == "card"
    assert detect_layout(b"Card," + CARD.encode()) == "card"
    assert detect_layout(b"\xef\xbb\xbf" + CARD.encode()) == "card"
    assert detect_layout(b"Date,Amount\r\n") is None
    assert detect_layout(b"") is None


def test_checking_quirks() -> None:
    text = CHECKING + (
        'CHECK,12/18/2025,"CHECK 176  ",-450.00,CHECK_PAID,7564.71,176,\r\n'
        'DEBIT,12/17/2025,"Check paid - for "rent, may"",-20.00,MISC_DEBIT,8014.71,,\r\n'
        'CREDIT,12/16/2025,"ZERO",0.00,MISC_CREDIT,8034.71,,\r\n'
        'CREDIT,12/15/2025,"ACME CORP   PAYROLL     PPD ID: 1234567890",1000.00,ACH_CREDIT,,,\r\n'
        'DEBIT,12/14/2025,"Zelle payment to Jo",-5.00,QUICKPAY_DEBIT,7034.71,,\r\n'
        'DEBIT,12/13/2025,"UNSEEN CODE",-5.00,BRAND_NEW_TYPE,7039.71,,\r\n'
    )
    statement = parse(text)
    txns = statement.transactions
    assert [t.description for t in txns] == [
        "CHECK 176",
        'Check paid - for "rent, may"',
        "ACME CORP PAYROLL PPD ID: 1234567890",
        "Zelle payment to Jo",
        "UNSEEN CODE",
    ]  # the 0.00 row is skipped; the padded, quoted row is re-split
    assert [(t.type, t.subtype) for t in txns] == [
        (T.TRANSFER, S.CHECK),
        (T.OTHER, S.OTHER),
        (T.INCOME, S.PAYROLL),
        (T.TRANSFER, S.TRANSFER),
        (T.OTHER, S.PURCHASE),
    ]
    assert txns[0].date == date(2025, 12, 18)
    assert statement.accounts[0].balance_current == Decimal("7564.71")
    assert statement.accounts[0].provider_account_id == "csv:checking"
    assert statement.accounts[0].name == "Chase checking (CSV)"


def test_card_layout_with_card_column_and_lf_endings() -> None:
    text = (
        "Card,Transaction Date,Post Date,Description,Category,Type,Amount,Memo\n"
        "1234,01/02/2026,01/03/2026,AMZN Mktp US,Shopping,Sale,-20.54,\n"
        "1234,01/04/2026,01/05/2026,AMZN Mktp US,Shopping,Return,413.54,\n"
        "1234,01/06/2026,01/06/2026,Payment Thank You - Web,,Payment,4000.00,\n"
        "1234,01/07/2026,01/07/2026,PURCHASE INTEREST CHARGE,Fees & Adjustments,Fee,-9.10,\n"
        "1234,01/08/2026,01/08/2026,CREDIT BALANCE ADJ,,Adjustment,1.00,note\n"
    )
    statement = parse(text, "/tmp/uploads/Chase1234_Activity20260110.CSV")
    assert statement.accounts[0].provider_account_id == "csv:card:1234"
    assert statement.accounts[0].mask == "1234"
    kinds = [(t.type, t.subtype) for t in statement.transactions]
    assert kinds == [
        (T.OTHER, S.PURCHASE),
        (T.OTHER, S.REFUND),
        (T.TRANSFER, S.PAYMENT),
        (T.FEE, S.INTEREST),
        (T.OTHER, S.ADJUSTMENT),
    ]
    assert statement.transactions[0].merchant == "AMZN Mktp US"
    assert (statement.start, statement.end) == (date(2026, 1, 2), date(2026, 1, 8))


def test_card_description_with_a_comma_is_resplit() -> None:
    text = CARD + "01/02/2026,01/03/2026,ACME, INC,Shopping,Sale,-1.00,\r\n"
    [txn] = parse(text).transactions
    assert (txn.description, txn.amount) == ("ACME, INC", Decimal("-1.00"))


def test_identical_rows_are_distinct_and_stable() -> None:
    row = "01/02/2026,01/03/2026,PARKING,Travel,Sale,-2.00,\r\n"
    txns = parse(CARD + row + row).transactions
    assert txns[1].dedupe_key == txns[0].dedupe_key + "-2"
    assert txns[0].provider_transaction_id == txns[0].dedupe_key


def test_cp1252_and_bom() -> None:
    text = CARD + "01/02/2026,01/03/2026,CAF\xc9 \u2019A\u2019,Food,Sale,-1.00,\r\n"
    [txn] = parse(text.encode("cp1252")).transactions
    assert txn.description == "CAF\xc9 \u2019A\u2019"
    [txn] = parse(b"\xef\xbb\xbf" + text.encode("utf-8")).transactions
    assert txn.description == "CAF\xc9 \u2019A\u2019"


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ('DEBIT,13/45/2025,"X",-1.00,ACH_DEBIT,1.00,,', "Posting Date"),
        ('DEBIT,12/01/2025,"X",-1.0.0,ACH_DEBIT,1.00,,', "Amount"),
        ('DEBIT,12/01/2025,"X",1e3,ACH_DEBIT,1.00,,', "Amount"),
        ('DEBIT,12/01/2025,"X",-1.00,ACH_DEBIT,lots,,', "Balance"),
        ('SOMETHING,12/01/2025,"X",-1.00,ACH_DEBIT,1.00,,', "Details"),
        ("DEBIT,12/01/2025", "Description"),
    ],
)
def test_bad_rows_name_line_and_column(row: str, column: str) -> None:
    good = 'DEBIT,12/02/2025,"OK",-1.00,ACH_DEBIT,2.00,,\r\n'
    result = ChaseProvider().parse_statement((CHECKING + good + row + "\r\n").encode(), "a.csv")
    assert isinstance(result, Err)
    assert result.error.line == 3
    assert result.error.element == column


def test_unknown_csv_header_is_refused() -> None:
    error = ChaseProvider().parse_statement(b"Date,Amount\r\n1,2\r\n", "bank.csv").unwrap_err()
    assert "unknown header" in error.message
    assert error.line == 1


def test_header_only_file_is_an_empty_statement() -> None:
    statement = parse(CHECKING)
    assert statement.transactions == []
    assert statement.accounts[0].balance_current is None
