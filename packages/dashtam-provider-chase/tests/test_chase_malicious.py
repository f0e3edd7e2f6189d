"""Unsafe, broken and hostile statement files are refused with an error naming line/element."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashtam_core.errors import StatementParseError
from dashtam_core.result import Err, Ok
from dashtam_provider_chase import ChaseProvider, ChaseSettings, read_ofx

FIXTURES = Path(__file__).parent / "fixtures"
Build = Callable[..., bytes]
Trn = Callable[..., list[tuple[str, str]]]


def refused(data: bytes, filename: str = "x.qfx") -> StatementParseError:
    result = ChaseProvider().parse_statement(data, filename)
    assert isinstance(result, Err), result
    return result.error


def line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1


XML_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)


@pytest.mark.parametrize(
    ("declaration", "element"),
    [
        (b'<!DOCTYPE OFX [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n', "DOCTYPE"),
        (
            b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n',
            "DOCTYPE",
        ),
        (b'<!ENTITY xxe SYSTEM "http://127.0.0.1/">\n', "ENTITY"),
        (b"<!doctype ofx>\n", "DOCTYPE"),
    ],
)
def test_xml_doctype_and_entity_declarations_are_refused(
    ofx: Build, make_trn: Trn, declaration: bytes, element: str
) -> None:
    body = ofx([make_trn("X1", "-1.00", "&xxe;".replace("&xxe;", "SAFE"))], xml=True)
    data = body.replace(b"<OFX>", declaration + b"<OFX>", 1)
    error = refused(data)
    assert error.element == element
    assert error.line == line_of(data, declaration[:9])
    assert "refused" in error.message


def test_declaration_inside_the_body_is_refused(ofx: Build, make_trn: Trn) -> None:
    for xml in (False, True):
        data = ofx([make_trn("X1", "-1.00", "SAFE")], xml=xml)
        data = data.replace(b"<BANKTRANLIST>", b'<!ENTITY a "b">\n<BANKTRANLIST>')
        error = refused(data)
        assert error.element == "ENTITY"
        assert error.line == line_of(data, b"<!ENTITY")


def test_external_entity_reference_is_never_expanded(ofx: Build, make_trn: Trn) -> None:
    error = refused(ofx([make_trn("X1", "-1.00", "&xxe;")], xml=True))
    assert error.element == "NAME"
    assert "not allowed" in error.message


@pytest.mark.parametrize(
    ("old", "new", "element"),
    [
        (b"<TRNAMT>-1.00", b"<TRNAMT>1e5", "TRNAMT"),
        (b"<TRNAMT>-1.00", b"<TRNAMT>NaN", "TRNAMT"),
        (b"<TRNAMT>-1.00", b"<TRNAMT>1,000.00", "TRNAMT"),
        (b"<TRNAMT>-1.00", b"<TRNAMT>1_000", "TRNAMT"),
        (b"<TRNAMT>-1.00", b"<TRNAMT>--1", "TRNAMT"),
        (b"<DTPOSTED>20250415120000[0:GMT]", b"<DTPOSTED>20251345", "DTPOSTED"),
        (b"<DTPOSTED>20250415120000[0:GMT]", b"<DTPOSTED>2025-04-15", "DTPOSTED"),
        (b"<DTPOSTED>20250415120000[0:GMT]", b"<DTPOSTED>20250415250000", "DTPOSTED"),
        (b"<DTPOSTED>20250415120000[0:GMT]", b"<DTPOSTED>20250415120000[+99]", "DTPOSTED"),
        (b"<TRNTYPE>DEBIT", b"<TRNTYPE>STEAL", "TRNTYPE"),
        (b"<ACCTTYPE>CHECKING", b"<ACCTTYPE>OFFSHORE", "ACCTTYPE"),
        (b"<CURDEF>USD", b"<CURDEF>dollars", "CURDEF"),
        (b"<BALAMT>100.00", b"<BALAMT>lots", "BALAMT"),
    ],
)
def test_bad_values_name_element_and_line(
    ofx: Build, make_trn: Trn, old: bytes, new: bytes, element: str
) -> None:
    for xml in (False, True):
        good = ofx([make_trn("G0", "-2.00"), make_trn("G1", "-1.00")], xml=xml)
        data = good.replace(old, new, 1)
        assert data != good
        error = refused(data)
        assert error.element == element, error
        assert error.line == line_of(data, new), error


@pytest.mark.parametrize(
    "tag", [b"TRNTYPE", b"DTPOSTED", b"TRNAMT", b"FITID", b"ACCTID", b"CURDEF", b"DTASOF"]
)
def test_missing_required_elements(ofx: Build, make_trn: Trn, tag: bytes) -> None:
    data = ofx([make_trn("M1", "-1.00")])
    start = data.index(b"<" + tag + b">")
    data = data[:start] + data[data.index(b"\n", start) + 1 :]
    error = refused(data)
    assert error.element == tag.decode()
    assert "missing" in error.message


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (b"</STMTTRN>", b"</STMTTRNX>", "not closed"),
        (b"</OFX>", b"</OFX></SONRS>", "after </OFX>"),
        (b"<OFX>", b"<OFX></STMTRS>", "unexpected"),
        (b"</BANKTRANLIST>", b"", "not closed"),
        (b"<STMTTRN>", b"<?php evil() ?><STMTTRN>", "processing instructions"),
        (b"<NAME>PAYEE", b"<NAME><![CDATA[PAYEE]]>", "CDATA"),
        (b"</OFX>", b"</OFX>\n<OFX>", "after </OFX>"),
        (b"</STATUS>", b"</STATUS>trailing text", "text after"),
        (b"<NAME>PAYEE", b"<NAME PAYEE", "malformed tag"),
    ],
)
def test_structural_defects(
    ofx: Build, make_trn: Trn, old: bytes, new: bytes, fragment: str
) -> None:
    data = ofx([make_trn("S1", "-1.00")]).replace(old, new, 1)
    error = refused(data)
    assert fragment in error.message
    assert error.line is not None


def test_xml_leaves_must_be_closed(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("S1", "-1.00")], xml=True).replace(b"-1.00</TRNAMT>", b"-1.00", 1)
    error = refused(data)
    assert error.element == "TRNAMT"
    assert "not closed" in error.message


def test_deep_nesting_is_bounded() -> None:
    data = b"OFXHEADER:100\nDATA:OFXSGML\n<OFX>" + b"<A>" * 5000 + b"</A>" * 5000 + b"</OFX>"
    error = refused(data)
    assert "too deep" in error.message


def test_comments_are_skipped(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("S1", "-1.00")], xml=True).replace(
        b"<BANKTRANLIST>", b"<!-- a comment <OFX> -->\n<BANKTRANLIST>"
    )
    [statement] = read_ofx(data).unwrap()
    assert [t.fitid for t in statement.transactions] == ["S1"]


def test_institution_error_status(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("S1", "-1.00")])
    data = data.replace(
        b"<TRNUID>1\n<STATUS>\n<CODE>0\n<SEVERITY>INFO\n",
        b"<TRNUID>1\n<STATUS>\n<CODE>2000\n<SEVERITY>ERROR\n<MESSAGE>General error\n",
    )
    error = refused(data)
    assert "2000" in error.message
    assert error.element == "STMTTRNRS"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02binary",
        b"MZ\x90\x00" + bytes(range(256)),
        b"hello, world\n",
        b"OFXHEADER:100\nDATA:OFXSGML\n",
        b"OFXHEADER:100\nDATA:OFXSGML\n<OFX></OFX>",
        b"OFXHEADER:999\nDATA:OFXSGML\n<OFX></OFX>",
        b'<?xml version="1.0"?>\n<OFX></OFX>',
    ],
)
def test_not_a_statement(data: bytes) -> None:
    refused(data)


def test_statement_without_account(ofx: Build, make_trn: Trn) -> None:
    data = ofx([make_trn("S1", "-1.00")])
    start, end = data.index(b"<BANKACCTFROM>"), data.index(b"</BANKACCTFROM>\n") + 16
    error = refused(data[:start] + data[end:])
    assert "BANKACCTFROM" in error.message


def test_every_truncation_is_an_error() -> None:
    data = (FIXTURES / "credit_card.qfx").read_bytes()
    cut_limit = data.index(b"</OFX>")
    for cut in range(0, cut_limit, 7):
        result = ChaseProvider().parse_statement(data[:cut], "credit_card.qfx")
        assert isinstance(result, Err), cut


def test_file_size_limit() -> None:
    data = (FIXTURES / "checking.qfx").read_bytes()
    provider = ChaseProvider(ChaseSettings(max_file_bytes=1000))
    error = provider.parse_statement(data, "checking.qfx").unwrap_err()
    assert "too large" in error.message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data: bytes) -> None:
    for name in ("x.qfx", "x.csv"):
        result = ChaseProvider().parse_statement(data, name)
        assert isinstance(result, Ok | Err)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    )
)
def test_mutated_statements_never_raise(edits: list[tuple[int, int]]) -> None:
    data = bytearray((FIXTURES / "checking.qfx").read_bytes())
    for position, value in edits:
        data[position % len(data)] = value
    for header in (b"", XML_HEAD):
        result = ChaseProvider().parse_statement(header + bytes(data), "x.qfx")
        if isinstance(result, Err):
            assert isinstance(result.error, StatementParseError)


@pytest.mark.parametrize("xml", [False, True])
def test_huge_unclosed_transaction_fails_in_linear_time(
    ofx: Build, make_trn: Trn, xml: bool
) -> None:
    data = ofx([make_trn("L1", "-1.00")], xml=xml)
    leaf = b"<MEMO>x</MEMO>\n \n" if xml else b"<MEMO>x\n \n"
    hostile = data.replace(b"</STMTTRN>", leaf * 40_000 + b"<PAYEE>", 1)
    started = time.perf_counter()
    error = refused(hostile)
    assert time.perf_counter() - started < 2.0
    assert error.line is not None
