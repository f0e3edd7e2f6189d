"""The OFX reader: SGML and XML variants, encodings, entities, dates, several statements."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.transaction import TransactionSubtype as S
from dashtam_core.domain.transaction import TransactionType as T
from dashtam_provider_chase import ChaseProvider, OfxStatement, read_ofx
from dashtam_provider_chase.ofx_values import parse_amount, parse_datetime

Build = Callable[..., bytes]
Trn = Callable[..., list[tuple[str, str]]]


def only(data: bytes) -> OfxStatement:
    [statement] = read_ofx(data).unwrap()
    return statement


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"blank_line": True},
        {"crlf": True},
        {"crlf": True, "blank_line": True},
        {"closed_leaves": True},
        {"xml": True},
        {"xml": True, "crlf": True},
    ],
    ids=["sgml", "blank-line", "crlf", "crlf-blank", "closed-leaves", "xml", "xml-crlf"],
)
def test_syntax_variants_read_the_same(ofx: Build, make_trn: Trn, options: dict[str, Any]) -> None:
    data = ofx([make_trn("A1", "-12.50", "SHOP"), make_trn("A2", "3", "REFUND X")], **options)
    statement = only(data)
    assert [(t.fitid, t.amount, t.name) for t in statement.transactions] == [
        ("A1", Decimal("-12.50"), "SHOP"),
        ("A2", Decimal("3"), "REFUND X"),
    ]
    assert statement.end is not None
    assert statement.end.ledger is not None
    assert statement.end.ledger.amount == Decimal("100.00")
    parsed = ChaseProvider().parse_statement(data, "x.qfx").unwrap()
    assert parsed.format == ("ofx-xml" if options.get("xml") else "ofx-sgml")


@pytest.mark.parametrize("xml", [False, True])
def test_entities_are_expanded(ofx: Build, make_trn: Trn, xml: bool) -> None:
    name = "AT&amp;T &lt;US&gt; &quot;Q&quot; &apos;A&apos; &#233;&#x20AC;"
    statement = only(ofx([make_trn("E1", "-1.00", name)], xml=xml))
    assert statement.transactions[0].name == "AT&T <US> \"Q\" 'A' é€"


def test_sgml_tolerates_a_bare_ampersand_and_nbsp(ofx: Build, make_trn: Trn) -> None:
    statement = only(ofx([make_trn("E1", "-1.00", "AT&T&nbsp;MOBILITY &foo;")]))
    assert statement.transactions[0].name == "AT&T MOBILITY &foo;"


@pytest.mark.parametrize("name", ["AT&T", "X &foo; Y", "&nbsp;", "&#0;"])
def test_xml_refuses_unknown_entities_and_bare_ampersands(
    ofx: Build, make_trn: Trn, name: str
) -> None:
    error = read_ofx(ofx([make_trn("E1", "-1.00", name)], xml=True)).unwrap_err()
    assert error.element == "NAME"
    assert error.line is not None


def test_cp1252_utf8_and_latin1(ofx: Build, make_trn: Trn) -> None:
    name = "CAF\u00c9 \u2018QUOTE\u2019 \u20ac5"
    cp1252 = ofx([make_trn("C1", "-1.00", name)])
    assert "\u2019".encode("cp1252") in cp1252
    assert only(cp1252).transactions[0].name == name
    utf8 = ofx([make_trn("C1", "-1.00", name)], encoding="UTF-8", charset="NONE", codec="utf-8")
    assert only(utf8).transactions[0].name == name
    xml = ofx([make_trn("C1", "-1.00", name)], xml=True, codec="utf-8")
    assert only(xml).transactions[0].name == name
    latin = ofx([make_trn("C1", "-1.00", "CAFÉ")], charset="ISO-8859-1", codec="latin-1")
    assert only(latin).transactions[0].name == "CAFÉ"


def test_undecodable_bytes_name_the_element_and_line(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("C1", "-1.00", "OK"), make_trn("C2", "-2.00", "BAD")])
    data = data.replace(b"<NAME>BAD", b"<NAME>B\x81D")  # 0x81 is undefined in cp1252
    error = read_ofx(data).unwrap_err()
    assert error.element == "NAME"
    assert error.line == data[: data.index(b"B\x81D")].count(b"\n") + 1


@pytest.mark.parametrize(
    ("raw", "day", "stamp"),
    [
        (b"20250415", date(2025, 4, 15), None),
        (b"20250415120000", date(2025, 4, 15), datetime(2025, 4, 15, 12, tzinfo=UTC)),
        (b"202504151200", date(2025, 4, 15), datetime(2025, 4, 15, 12, tzinfo=UTC)),
        (b"20250415120000[0:GMT]", date(2025, 4, 15), datetime(2025, 4, 15, 12, tzinfo=UTC)),
        (
            b"20250415120000.123[-5:EST]",
            date(2025, 4, 15),
            datetime(2025, 4, 15, 17, 0, 0, 123000, tzinfo=UTC),
        ),
        # late evening in New York is the next day in UTC; the date stays as stated
        (b"20250415230000[-4:EDT]", date(2025, 4, 15), datetime(2025, 4, 16, 3, tzinfo=UTC)),
        (
            b"20250415000000[+5.30:IST]",
            date(2025, 4, 15),
            datetime(2025, 4, 14, 18, 30, tzinfo=UTC),
        ),
        (b"20250415120000[+1]", date(2025, 4, 15), datetime(2025, 4, 15, 11, tzinfo=UTC)),
        (b"20250415[0:GMT]", date(2025, 4, 15), None),
    ],
)
def test_dates(raw: bytes, day: date, stamp: datetime | None) -> None:
    assert parse_datetime(raw) == (day, stamp)


def test_posted_date_is_the_stated_calendar_day(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("D1", "-1.00", posted="20250415230000[-4:EDT]")])
    record = ChaseProvider().parse_statement(data, "x.qfx").unwrap().transactions[0]
    assert record.date == date(2025, 4, 15)
    assert record.posted_at == datetime(2025, 4, 16, 3, tzinfo=UTC)
    date_only = ofx([make_trn("D1", "-1.00", posted="20250415")])
    record = ChaseProvider().parse_statement(date_only, "x.qfx").unwrap().transactions[0]
    assert (record.date, record.posted_at) == (date(2025, 4, 15), None)


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"-98.03", "-98.03"), (b"+5", "5"), (b"12,50", "12.50"), (b".5", "0.5"), (b"-0.00", "0.00")],
)
def test_amounts(raw: bytes, value: str) -> None:
    assert parse_amount(raw) == Decimal(value)


def test_several_statements_and_card_balances(writer: Build, spec_type: Any, make_trn: Trn) -> None:
    checking = spec_type([make_trn("K1", "-5.00", "COFFEE")], acctid="111122223333")
    savings = spec_type(
        [make_trn("S1", "0.42", "INTEREST PAID", trntype="INT")],
        acctid="999988887777",
        accttype="SAVINGS",
        dtstart="20250201",
        dtend="20250228",
    )
    card = spec_type(
        [make_trn("C1", "-20.00", "STORE"), make_trn("C2", "20.00", "Payment Thank You")],
        kind="creditcard",
        acctid="1234-5555",
        ledger="-250.10",
        available="0.00",
    )
    parsed = ChaseProvider().parse_statement(writer([checking, savings, card]), "multi.ofx")
    statement = parsed.unwrap()
    by_id = {a.provider_account_id: a for a in statement.accounts}
    assert by_id["111122223333"].type is AccountType.CHECKING
    assert by_id["999988887777"].type is AccountType.SAVINGS
    assert by_id["1234-5555"].type is AccountType.CREDIT_CARD
    assert by_id["1234-5555"].balance_current == Decimal("250.10")
    assert by_id["1234-5555"].mask == "5555"
    assert (statement.start, statement.end) == (date(2025, 2, 1), date(2025, 4, 30))
    kinds = {
        t.provider_transaction_id: (t.provider_account_id, t.type, t.subtype)
        for t in statement.transactions
    }
    assert kinds["S1"] == ("999988887777", T.INCOME, S.INTEREST)
    assert kinds["C2"] == ("1234-5555", T.TRANSFER, S.PAYMENT)
    assert kinds["C1"] == ("1234-5555", T.OTHER, S.PURCHASE)


def test_nested_aggregates_in_a_transaction(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("N1", "-30.00", "MARKER", posted="20250410")])
    nested = (
        b"<PAYEE>\n<NAME>UTILITY CO\n<ADDR1>1 MAIN\n</PAYEE>\n"
        b"<CURRENCY>\n<CURRATE>1.1\n<CURSYM>EUR\n</CURRENCY>\n"
    )
    [record] = only(data.replace(b"<NAME>MARKER\n", nested)).transactions
    assert (record.name, record.currency, record.amount) == ("UTILITY CO", "EUR", Decimal("-30.00"))
    assert record.date == date(2025, 4, 10)


@pytest.mark.parametrize(
    ("trntype", "amount", "name", "checknum", "expected"),
    [
        ("CHECK", "-10", "CHECK 12", "12", (T.TRANSFER, S.CHECK)),
        ("DEBIT", "-10", "CHECK 12", "12", (T.TRANSFER, S.CHECK)),
        ("ATM", "-40", "ATM WITHDRAWAL", None, (T.TRANSFER, S.ATM)),
        ("DIRECTDEP", "1000", "ACME PAYROLL", None, (T.INCOME, S.PAYROLL)),
        ("INT", "0.12", "INTEREST", None, (T.INCOME, S.INTEREST)),
        ("FEE", "-5", "FEE", None, (T.FEE, S.FEE)),
        ("SRVCHG", "-5", "SERVICE", None, (T.FEE, S.FEE)),
        ("XFER", "-5", "TO SAVINGS", None, (T.TRANSFER, S.TRANSFER)),
        ("DIV", "3", "DIVIDEND", None, (T.INCOME, S.DIVIDEND)),
        ("POS", "-3", "SHOP", None, (T.OTHER, S.PURCHASE)),
        ("DEP", "300", "BRANCH DEPOSIT", None, (T.TRANSFER, S.DEPOSIT)),
        ("DEBIT", "-9", "SHOP", None, (T.OTHER, S.PURCHASE)),
        ("CREDIT", "9", "Zelle payment from X", None, (T.TRANSFER, S.TRANSFER)),
        ("DEBIT", "-9", "MONTHLY SERVICE FEE", None, (T.FEE, S.FEE)),
        ("CREDIT", "9", "Monthly Service Fee Reversal", None, (T.OTHER, S.REFUND)),
        ("DEBIT", "-9", "ELECTRIC BILL PMT PPD ID: 1", None, (T.TRANSFER, S.ACH)),
        ("OTHER", "-9", "INCOMING WIRE", None, (T.TRANSFER, S.WIRE)),
    ],
)
def test_checking_classification(
    ofx: Build,
    make_trn: Trn,
    trntype: str,
    amount: str,
    name: str,
    checknum: str | None,
    expected: tuple[T, S],
) -> None:
    data = ofx([make_trn("T1", amount, name, trntype=trntype, checknum=checknum)])
    [record] = ChaseProvider().parse_statement(data, "x.qfx").unwrap().transactions
    assert (record.type, record.subtype) == expected


@pytest.mark.parametrize("xml", [False, True])
def test_fast_block_and_token_paths_agree(ofx: Build, make_trn: Trn, xml: bool) -> None:
    items = [
        make_trn("P1", "-12.34", "AT&amp;T", memo="AT&amp;T WIRELESS BILL", checknum="77"),
        make_trn("P2", "5.00", "REFUND", posted="20250401", trntype="CREDIT"),
        make_trn("P3", "-1.00", "CAF\u00c9", posted="20250402093000.500[-5:EST]"),
    ]
    codec = "utf-8" if xml else "cp1252"
    in_order = only(ofx(items, xml=xml, codec=codec)).transactions  # the ordered fast path
    assert [t.fitid for t in in_order] == ["P1", "P2", "P3"]
    shuffled = [list(reversed(item)) for item in items]  # leaf-only blocks in another order
    assert only(ofx(shuffled, xml=xml, codec=codec)).transactions == in_order
    data = ofx(items, xml=xml, codec=codec)
    nested = b"<BANKACCTTO>\n<ACCTID>9" + (b"</ACCTID>" if xml else b"") + b"\n</BANKACCTTO>\n"
    for fitid in (b"P1", b"P2", b"P3"):
        data = data.replace(b"<FITID>" + fitid, nested + b"<FITID>" + fitid)
    assert only(data).transactions == in_order  # the token-by-token path
