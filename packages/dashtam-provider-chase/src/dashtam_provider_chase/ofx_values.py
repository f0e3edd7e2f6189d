"""OFX value converters: header, dates, amounts and character entities.

Every converter works on the raw bytes of one element value and raises :class:`ValueFault`
on bad input; the reader turns that into a ``StatementParseError`` naming the line and the
element. Nothing here ever expands an entity other than the five XML ones and numeric
character references (plus ``&nbsp;`` in SGML files, which OFX 1.x section 2.3 lists).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

#: Longest amount text accepted (digits, sign and separator); longer values are refused.
MAX_AMOUNT_CHARS = 32
#: How far into the file the SGML header may extend.
MAX_HEADER_BYTES = 4096


class ValueFault(Exception):
    """A value or header that cannot be converted (internal; never leaves the package)."""

    def __init__(self, message: str, *, element: str | None = None, pos: int | None = None):
        super().__init__(message)
        self.message = message
        self.element = element
        self.pos = pos


@dataclass(frozen=True, slots=True)
class OfxHeader:
    """What the file header says: syntax, version and the text encoding to decode values with."""

    xml: bool
    version: str
    encoding: str
    body_start: int
    fields: dict[str, str]


# --- header ------------------------------------------------------------------------------

_SGML_HEADER_LINE = re.compile(rb"[ \t]*([A-Z0-9_]+)[ \t]*:([^\r\n]*)")
_XML_DECL = re.compile(rb"<\?xml\b([^?>]*)\?>")
_OFX_PI = re.compile(rb"\s*<\?OFX\b([^?>]*)\?>")
_ATTR = re.compile(rb"""([A-Za-z_:][A-Za-z0-9_.:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_BOM = b"\xef\xbb\xbf"

_ENCODINGS = {
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "USASCII": "cp1252",
    "US-ASCII": "cp1252",
    "ASCII": "cp1252",
    "1252": "cp1252",
    "WINDOWS-1252": "cp1252",
    "CP1252": "cp1252",
    "ISO-8859-1": "latin-1",
    "8859-1": "latin-1",
    "LATIN-1": "latin-1",
    "NONE": "cp1252",
}


def _codec(name: str, default: str) -> str:
    if not name.strip():
        return default
    codec = _ENCODINGS.get(name.strip().upper())
    if codec is None:
        raise ValueFault(f"unsupported character set {name!r}")
    return codec


def read_header(data: bytes) -> OfxHeader:
    """Parse the OFX 1.x (``OFXHEADER:100``) or 2.x (``<?xml`` + ``<?OFX``) header.

    Args:
        data: the whole file.

    Returns:
        The header, with ``body_start`` the offset of the ``<OFX>`` root tag.

    Raises:
        ValueFault: not an OFX header, or an unsupported encoding.
    """
    pos = len(_BOM) if data.startswith(_BOM) else 0
    while pos < len(data) and data[pos] in b" \t\r\n":
        pos += 1
    if data.startswith(b"<?xml", pos):
        return _read_xml_header(data, pos)
    if data.startswith(b"<OFX>", pos):
        # Headerless SGML (some tools strip the header): assume Chase's cp1252.
        return OfxHeader(False, "102", "cp1252", pos, {})
    if not data.startswith(b"OFXHEADER", pos):
        raise ValueFault("not an OFX file: no OFXHEADER or <?xml header", pos=pos)
    end = data.find(b"<", pos, pos + MAX_HEADER_BYTES)
    if end < 0:
        raise ValueFault("OFX header does not end with an <OFX> element", pos=pos)
    fields: dict[str, str] = {}
    for raw in data[pos:end].splitlines():
        if not raw.strip():
            continue
        match = _SGML_HEADER_LINE.fullmatch(raw)
        if match is None:
            raise ValueFault(f"malformed OFX header line {raw[:40]!r}", pos=pos)
        fields[match[1].decode("ascii")] = match[2].strip().decode("ascii", "replace")
    if fields.get("OFXHEADER") != "100":
        raise ValueFault("unsupported OFXHEADER (expected 100)", pos=pos)
    if fields.get("DATA", "OFXSGML").upper() != "OFXSGML":
        raise ValueFault(f"unsupported OFX DATA {fields['DATA']!r}", pos=pos)
    encoding = fields.get("ENCODING", "USASCII").upper()
    if encoding in ("UTF-8", "UTF8", "UNICODE"):
        codec = "utf-8"
    else:
        codec = _codec(fields.get("CHARSET", "1252"), "cp1252")
    return OfxHeader(False, fields.get("VERSION", "102"), codec, end, fields)


def _attributes(raw: bytes) -> dict[str, str]:
    return {
        m[1].decode("ascii").upper(): (m[2] if m[2] is not None else m[3]).decode(
            "ascii", "replace"
        )
        for m in _ATTR.finditer(raw)
    }


def _read_xml_header(data: bytes, pos: int) -> OfxHeader:
    decl = _XML_DECL.match(data, pos)
    if decl is None:
        raise ValueFault("malformed <?xml declaration", pos=pos)
    attrs = _attributes(decl[1])
    codec = _codec(attrs.get("ENCODING", "UTF-8"), "utf-8")
    pi = _OFX_PI.match(data, decl.end())
    if pi is None:
        raise ValueFault("missing <?OFX OFXHEADER=... ?> processing instruction", pos=decl.end())
    fields = _attributes(pi[1])
    if fields.get("OFXHEADER") != "200":
        raise ValueFault("unsupported OFXHEADER (expected 200)", pos=decl.end())
    return OfxHeader(True, fields.get("VERSION", "220"), codec, pi.end(), fields)


# --- dates -------------------------------------------------------------------------------

_DATETIME = re.compile(
    rb"(\d{4})(\d\d)(\d\d)"
    rb"(?:(\d\d)(\d\d)(?:(\d\d)(?:\.(\d{1,6}))?)?)?"
    rb"[ \t]*(?:\[[ \t]*([+-]?\d{1,2})(?:\.(\d{1,2}))?(?::([A-Za-z]{0,8})[ \t]*)?\])?"
)


def parse_datetime(raw: bytes) -> tuple[date, datetime | None]:
    """``YYYYMMDD[HHMM[SS[.XXX]]][[+-]H[H][.MM][:TZ]]`` → (stated date, UTC timestamp).

    The date is the first eight characters as written (no time-zone shift); the timestamp is
    ``None`` when the value has no time part. Without an offset the time is GMT (OFX spec).

    Raises:
        ValueFault: not an OFX date/time.
    """
    match = _DATETIME.fullmatch(raw)
    if match is None:
        raise ValueFault(f"invalid date/time {raw[:40]!r}")
    year, month, day, hour, minute, second, frac, off_h, off_m, _tz = match.groups()
    try:
        stated = date(int(year), int(month), int(day))
        if hour is None:
            return stated, None
        micro = int((frac or b"0").ljust(6, b"0")) if frac else 0
        local = datetime(
            stated.year,
            stated.month,
            stated.day,
            int(hour),
            int(minute),
            int(second or 0),
            micro,
        )
    except ValueError as exc:
        raise ValueFault(f"invalid date/time {raw[:40]!r}: {exc}") from None
    offset = timedelta(0)
    if off_h is not None:
        hours = int(off_h)
        minutes = int(off_m or 0)
        if not -12 <= hours <= 14 or minutes > 59:
            raise ValueFault(f"invalid UTC offset in {raw[:40]!r}")
        total = abs(hours) * 60 + minutes
        offset = timedelta(minutes=-total if off_h.startswith(b"-") else total)
    return stated, (local - offset).replace(tzinfo=UTC)


# --- amounts -----------------------------------------------------------------------------

_AMOUNT = re.compile(rb"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")


def parse_amount(raw: bytes) -> Decimal:
    """A signed OFX amount (``-98.03``; a comma decimal separator is accepted) as Decimal.

    Raises:
        ValueFault: empty, too long, exponent/NaN/thousands separators, or not a number.
    """
    if len(raw) > MAX_AMOUNT_CHARS or _AMOUNT.fullmatch(raw) is None:
        raise ValueFault(f"invalid amount {raw[:40]!r}")
    text = raw.decode("ascii")
    if "," in text:
        text = text.replace(",", ".")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise ValueFault(f"invalid amount {raw[:40]!r}") from None


# --- text --------------------------------------------------------------------------------

_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
_REFERENCE = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([A-Za-z][A-Za-z0-9]{0,31}));")


def _char(code: int) -> str | None:
    if code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0x10FFFF:
        return chr(code)
    return None


def unescape(text: str, *, xml: bool) -> str:
    """Replace entity and character references in one decoded value.

    XML files accept only the five predefined entities and numeric references; anything
    else (an unknown entity, a bare ``&``) is refused. SGML files also accept ``&nbsp;``
    and keep a bare ``&`` or an unknown ``&name;`` as literal text (banks send ``AT&T``).

    Raises:
        ValueFault: an XML file with an unknown entity, a bare ``&`` or an invalid reference.
    """

    def replace(match: re.Match[str]) -> str:
        decimal, hexa, name = match.groups()
        if name is not None:
            value = _NAMED.get(name)
            if value is None and not xml and name == "nbsp":
                value = " "
            if value is None:
                if xml:
                    raise ValueFault(f"entity &{name}; is not allowed (only the XML five)")
                return match.group(0)
            return value
        char = _char(int(decimal) if decimal is not None else int(hexa, 16))
        if char is None:
            if xml:
                raise ValueFault(f"invalid character reference {match.group(0)}")
            return match.group(0)
        return char

    if xml and text.count("&") != len(_REFERENCE.findall(text)):
        raise ValueFault("a bare '&' is not allowed in an XML value")
    return _REFERENCE.sub(replace, text)


__all__ = [
    "MAX_AMOUNT_CHARS",
    "MAX_HEADER_BYTES",
    "OfxHeader",
    "ValueFault",
    "parse_amount",
    "parse_datetime",
    "read_header",
    "unescape",
]
