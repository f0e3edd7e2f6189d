"""Chase test helpers: an OFX statement writer (SGML or XML) used by the reader tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

SGML_HEADER = (
    "OFXHEADER:100\nDATA:OFXSGML\nVERSION:102\nSECURITY:NONE\nENCODING:{encoding}\n"
    "CHARSET:{charset}\nCOMPRESSION:NONE\nOLDFILEUID:NONE\nNEWFILEUID:NONE\n"
)
XML_HEADER = (
    '<?xml version="1.0" encoding="{encoding}" standalone="no"?>\n'
    '<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>\n'
)


@dataclass
class Spec:
    """One statement to write: transactions are (tag, raw text) pairs, already escaped."""

    transactions: Sequence[Sequence[tuple[str, str]]]
    kind: str = "bank"  # or "creditcard"
    acctid: str = "9876543210"
    accttype: str = "CHECKING"
    ledger: str | None = "100.00"
    available: str | None = "90.00"
    dtstart: str = "20250301120000[0:GMT]"
    dtend: str = "20250430120000[0:GMT]"
    extra: dict[str, str] = field(default_factory=dict)


def write_ofx(
    statements: Sequence[Spec],
    *,
    xml: bool = False,
    blank_line: bool = False,
    crlf: bool = False,
    closed_leaves: bool = False,
    encoding: str | None = None,
    charset: str = "1252",
    codec: str = "cp1252",
) -> bytes:
    """An OFX file holding ``statements`` (SGML 1.02 unless ``xml``)."""
    close = xml or closed_leaves

    def leaf(tag: str, value: str) -> str:
        return f"<{tag}>{value}</{tag}>\n" if close else f"<{tag}>{value}\n"

    if xml:
        out = [XML_HEADER.format(encoding=encoding or "UTF-8")]
    else:
        out = [SGML_HEADER.format(encoding=encoding or "USASCII", charset=charset)]
        if blank_line:
            out.append("\n")
    out.append("<OFX>\n<SIGNONMSGSRSV1>\n<SONRS>\n<STATUS>\n")
    out.append(leaf("CODE", "0") + leaf("SEVERITY", "INFO") + "</STATUS>\n")
    out.append(leaf("DTSERVER", "20250430120000[0:GMT]") + leaf("LANGUAGE", "ENG"))
    out.append("</SONRS>\n</SIGNONMSGSRSV1>\n")
    for spec in statements:
        bank = spec.kind == "bank"
        msgs, trnrs, stmtrs = (
            ("BANKMSGSRSV1", "STMTTRNRS", "STMTRS")
            if bank
            else ("CREDITCARDMSGSRSV1", "CCSTMTTRNRS", "CCSTMTRS")
        )
        out.append(f"<{msgs}>\n<{trnrs}>\n" + leaf("TRNUID", "1") + "<STATUS>\n")
        out.append(leaf("CODE", "0") + leaf("SEVERITY", "INFO") + "</STATUS>\n")
        out.append(f"<{stmtrs}>\n" + leaf("CURDEF", "USD"))
        if bank:
            out.append("<BANKACCTFROM>\n" + leaf("BANKID", "021000021"))
            out.append(leaf("ACCTID", spec.acctid) + leaf("ACCTTYPE", spec.accttype))
            out.append("</BANKACCTFROM>\n")
        else:
            out.append("<CCACCTFROM>\n" + leaf("ACCTID", spec.acctid) + "</CCACCTFROM>\n")
        out.append("<BANKTRANLIST>\n" + leaf("DTSTART", spec.dtstart) + leaf("DTEND", spec.dtend))
        for trn in spec.transactions:
            out.append("<STMTTRN>\n")
            out.extend(leaf(tag, value) for tag, value in trn)
            out.append("</STMTTRN>\n")
        out.append("</BANKTRANLIST>\n")
        for tag, amount in (("LEDGERBAL", spec.ledger), ("AVAILBAL", spec.available)):
            if amount is not None:
                out.append(f"<{tag}>\n" + leaf("BALAMT", amount))
                out.append(leaf("DTASOF", "20250430120000[0:GMT]") + f"</{tag}>\n")
        out.append(f"</{stmtrs}>\n</{trnrs}>\n</{msgs}>\n")
    out.append("</OFX>\n")
    text = "".join(out)
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode(codec)


def trn(
    fitid: str,
    amount: str,
    name: str = "PAYEE",
    *,
    trntype: str = "DEBIT",
    posted: str = "20250415120000[0:GMT]",
    memo: str | None = None,
    checknum: str | None = None,
) -> list[tuple[str, str]]:
    """One STMTTRN in DTD order."""
    fields = [("TRNTYPE", trntype), ("DTPOSTED", posted), ("TRNAMT", amount), ("FITID", fitid)]
    if checknum is not None:
        fields.append(("CHECKNUM", checknum))
    fields.append(("NAME", name))
    if memo is not None:
        fields.append(("MEMO", memo))
    return fields


@pytest.fixture
def ofx() -> Callable[..., bytes]:
    """``ofx(transactions, **options)``: one bank statement; see :func:`write_ofx`."""

    def build(transactions: Sequence[Sequence[tuple[str, str]]], **options: object) -> bytes:
        spec_keys = {"kind", "acctid", "accttype", "ledger", "available", "dtstart", "dtend"}
        spec = Spec(transactions, **{k: v for k, v in options.items() if k in spec_keys})  # type: ignore[arg-type]
        rest = {k: v for k, v in options.items() if k not in spec_keys}
        return write_ofx([spec], **rest)  # type: ignore[arg-type]

    return build


@pytest.fixture
def make_trn() -> Callable[..., list[tuple[str, str]]]:
    """The :func:`trn` helper as a fixture."""
    return trn


@pytest.fixture
def spec_type() -> type[Spec]:
    """The :class:`Spec` class (tests build multi-statement files with it)."""
    return Spec


@pytest.fixture
def writer() -> Callable[..., bytes]:
    """The :func:`write_ofx` function."""
    return write_ofx
