"""Differential test: our reader and ofxtools (the oracle, tests only) agree on generated files.

Hypothesis writes SGML and XML statements with random amounts, dates (with and without time and
zone), FITIDs, and names/memos full of characters that need entities; both parsers must return
the same accounts, amounts, dates, FITIDs, names, memos and balances.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ofxtools.Parser import OFXTree

from dashtam_provider_chase import ChaseProvider, read_ofx

Writer = Callable[..., bytes]
TRNTYPES = [
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
]
TRNTYPES += ["DIRECTDEBIT", "REPEATPMT", "OTHER"]
ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}
ALPHABET = "ABCXYZabcxyz0189 #*-./,:&<>\"'éñÜ€’"  # noqa: RUF001 - cp1252 characters on purpose


@dataclass(frozen=True)
class Generated:
    trntype: str
    amount: Decimal
    posted: str
    fitid: str
    name: str
    memo: str | None


def escape(text: str) -> str:
    return "".join(ESCAPES.get(ch, ch) for ch in text)


texts = st.text(ALPHABET, min_size=1, max_size=32).filter(lambda s: s.strip() == s and s)
dates = st.builds(
    lambda day, time, zone: day + time + (zone if time else ""),
    st.dates(min_value=datetime(1990, 1, 1).date(), max_value=datetime(2037, 12, 31).date()).map(
        lambda d: d.strftime("%Y%m%d")
    ),
    st.sampled_from(["", "120000", "235959", "000000.123", "093000.500"]),
    st.sampled_from(["", "[0:GMT]", "[-5:EST]", "[-4:EDT]", "[+5.30:IST]", "[+14]", "[-12:X]"]),
)
transactions = st.builds(
    Generated,
    trntype=st.sampled_from(TRNTYPES),
    amount=st.decimals(
        min_value=Decimal("-999999.99"), max_value=Decimal("999999.99"), places=2
    ).filter(lambda d: d.is_finite()),
    posted=dates,
    fitid=st.text("0123456789ABCDEFGHJK+_", min_size=1, max_size=31),
    name=texts,
    memo=st.none() | texts,
)


def as_fields(trn: Generated) -> list[tuple[str, str]]:
    fields = [
        ("TRNTYPE", trn.trntype),
        ("DTPOSTED", trn.posted),
        ("TRNAMT", str(trn.amount)),
        ("FITID", trn.fitid),
        ("NAME", escape(trn.name)),
    ]
    if trn.memo is not None:
        fields.append(("MEMO", escape(trn.memo)))
    return fields


def oracle(data: bytes) -> list[Any]:
    tree = OFXTree()
    tree.parse(io.BytesIO(data))
    return list(tree.convert().statements)


# The fixtures used under @given are stateless helpers (a class and a pure function).
FIXTURE_OK = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(
    st.lists(transactions, min_size=1, max_size=8),
    st.lists(transactions, max_size=4),
    st.booleans(),
    st.booleans(),
    st.decimals(min_value=Decimal("-99999.99"), max_value=Decimal("99999.99"), places=2),
)
def test_reader_agrees_with_ofxtools(
    writer: Writer,
    spec_type: Any,
    first: list[Generated],
    second: list[Generated],
    xml: bool,
    closed: bool,
    ledger: Decimal,
) -> None:
    write_ofx = writer
    specs = [spec_type([as_fields(t) for t in first], ledger=str(ledger))]
    if second:
        specs.append(
            spec_type([as_fields(t) for t in second], kind="creditcard", acctid="4444-1111")
        )
    data = write_ofx(specs, xml=xml, closed_leaves=closed, codec="utf-8" if xml else "cp1252")
    expected = oracle(data)
    ours = read_ofx(data).unwrap()
    assert len(ours) == len(expected)
    for mine, theirs in zip(ours, expected, strict=True):
        assert mine.account.acctid == theirs.account.acctid
        assert mine.end is not None
        assert mine.end.ledger is not None
        assert mine.end.ledger.amount == theirs.ledgerbal.balamt
        assert len(mine.transactions) == len(theirs.banktranlist)
        for got, want in zip(mine.transactions, theirs.banktranlist, strict=True):
            assert got.trntype == want.trntype
            assert got.amount == want.trnamt
            assert got.fitid == want.fitid
            assert got.name == want.name
            assert (got.memo or None) == want.memo
            if got.posted_at is None:  # date only: ofxtools reads midnight UTC
                assert want.dtposted == datetime.combine(got.date, datetime.min.time(), UTC)
            else:
                assert got.posted_at == want.dtposted


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURE_OK)
@given(st.lists(transactions, min_size=1, max_size=6), st.booleans())
def test_records_match_oracle_amounts_and_dates(
    writer: Writer, spec_type: Any, items: list[Generated], xml: bool
) -> None:
    write_ofx = writer
    data = write_ofx(
        [spec_type([as_fields(t) for t in items])], xml=xml, codec="utf-8" if xml else "cp1252"
    )
    [theirs] = oracle(data)
    parsed = ChaseProvider().parse_statement(data, "gen.qfx").unwrap()
    assert [t.amount for t in parsed.transactions] == [t.trnamt for t in theirs.banktranlist]
    assert [t.provider_transaction_id for t in parsed.transactions] == [
        t.fitid for t in theirs.banktranlist
    ]
    for record, item in zip(parsed.transactions, items, strict=True):
        assert record.date.strftime("%Y%m%d") == item.posted[:8]  # the stated day, no shift
    assert parsed.accounts[0].balance_current == theirs.ledgerbal.balamt
