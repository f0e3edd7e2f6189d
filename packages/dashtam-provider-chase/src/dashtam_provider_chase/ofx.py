"""A streaming, safe OFX reader for 1.x SGML and 2.x XML statements.

The reader scans the raw bytes once with a tag regex (no DOM, no XML library), keeps only the
open aggregate currently being read, and yields events as aggregates close:
:class:`OfxAccount` (the account of a statement), :class:`OfxTransaction` (one ``STMTTRN``)
and :class:`OfxStatementEnd` (balances and date range). Values are decoded one by one with the
header's character set (cp1252 for Chase), so memory stays near the file size.

Safety: DOCTYPE, ENTITY and every other markup declaration are refused, processing
instructions in the body are refused, only the five XML entities and numeric references are
expanded, nesting depth is bounded, and every defect raises ``StatementParseError`` naming the
line and the element. :func:`read_ofx` wraps that into a ``Result``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from dashtam_core.errors import StatementParseError
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_chase.ofx_fast import SGML_TRANSACTION, XML_TRANSACTION, fast_transaction
from dashtam_provider_chase.ofx_handlers import HANDLERS
from dashtam_provider_chase.ofx_model import (
    TRNTYPES,
    OfxAccount,
    OfxBalance,
    OfxEvent,
    OfxStatement,
    OfxStatementEnd,
    OfxTransaction,
    ReadFault,
)
from dashtam_provider_chase.ofx_values import (
    OfxHeader,
    ValueFault,
    parse_amount,
    parse_datetime,
    read_header,
    unescape,
)

#: Deepest aggregate nesting accepted (real statements use about 8 levels).
MAX_DEPTH = 32
_CACHE_LIMIT = 4096

_TOKEN = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9._:-]{0,63})>([^<]*)")
# A STMTTRN made only of leaves. SGML leaves may be closed; XML leaves must be. The leaf tag
# may not be STMTTRN itself, and a closing tag must repeat its leaf's name (\\2). Whitespace
# between leaves is consumed in exactly one place, so a failing match cannot backtrack
# exponentially (a leaf's text runs to the next "<", and every iteration starts with "<").
_SGML_BLOCK = re.compile(
    rb"<STMTTRN>\s*((?:<(?!STMTTRN>)([A-Z][A-Z0-9.]*)>[^<]*(?:</\2>\s*)?)*)</STMTTRN>([^<]*)"
)
_XML_BLOCK = re.compile(
    rb"<STMTTRN>\s*((?:<(?!STMTTRN>)([A-Z][A-Z0-9.]*)>[^<]*</\2>\s*)*)</STMTTRN>([^<]*)"
)
_LEAF = re.compile(rb"<([A-Z][A-Z0-9.]*)>([^<]*)")
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|\[CDATA\[)?", re.IGNORECASE)


class OfxReader:
    """Reads one OFX file; iterate :meth:`events` once.

    Args:
        data: the whole file as bytes.

    Raises:
        StatementParseError: from :meth:`events` (and the constructor) on any defect.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        if b"\x00" in data:
            raise self._error(ReadFault("binary data (NUL byte) in a statement file", None, 0))
        try:
            self.header: OfxHeader = read_header(data)
        except ValueFault as fault:
            raise self._error(ReadFault(fault.message, "OFX", fault.pos or 0)) from None
        self.xml = self.header.xml
        self._codec = self.header.encoding
        #: Converted dates and decoded names by raw value (statements repeat them).
        self.dates: dict[bytes, tuple[date, datetime | None]] = {}
        self.strings: dict[bytes, str] = {}
        #: The account of the statement being read (set when BANKACCTFROM/CCACCTFROM closes).
        self.current_account: OfxAccount | None = None

    @property
    def format(self) -> str:
        """``ofx-xml`` for OFX 2.x, ``ofx-sgml`` for 1.x."""
        return "ofx-xml" if self.xml else "ofx-sgml"

    def line_of(self, pos: int) -> int:
        """1-based line number of byte offset ``pos``."""
        return self._data.count(b"\n", 0, pos) + 1

    def _error(self, fail: ReadFault) -> StatementParseError:
        return StatementParseError(fail.message, line=self.line_of(fail.pos), element=fail.element)

    def events(self) -> Iterator[OfxEvent]:
        """Yield account, transaction and statement-end events in file order.

        Raises:
            StatementParseError: malformed, unsafe, truncated or incomplete input.
        """
        try:
            yield from self._scan()
        except ReadFault as fail:
            raise self._error(fail) from None
        except RecursionError:  # pragma: no cover - the scanner is iterative
            raise StatementParseError("statement nesting too deep") from None

    # The scanner is one tight loop: hot-path names are locals, frames are parallel lists.
    # STMTTRN aggregates made only of leaves (nearly all of them) take a fast path: one regex
    # match for the whole block and one findall for its leaves; anything else (a nested
    # aggregate, a mismatched tag) falls back to the token-by-token path, which reports errors.
    def _scan(self) -> Iterator[OfxEvent]:
        data = self._data
        xml = self.xml
        size = len(data)
        block_re = _XML_BLOCK if xml else _SGML_BLOCK
        fast_match = (XML_TRANSACTION if xml else SGML_TRANSACTION).match
        leaf_findall = _LEAF.findall
        tags: list[bytes] = []
        starts: list[int] = []
        frames: list[dict[bytes, Any]] = []
        cur: dict[bytes, Any] = {}
        leaf: bytes | None = None
        seen_root = closed_root = False
        pos = self.header.body_start
        handlers = HANDLERS
        stmttrn = handlers[b"STMTTRN"]
        while pos < size:
            gap = False
            for match in _TOKEN.finditer(data, pos):
                if match.start() != pos:
                    gap = True
                    break
                pos = match.end()
                close, tag, text = match.groups()
                if closed_root:
                    raise ReadFault("content after </OFX>", tag, match.start())
                if close:
                    if text and not text.isspace():
                        raise ReadFault("text after a closing tag", tag, match.start())
                    if tag == leaf:
                        leaf = None
                        continue
                    if leaf is not None and xml:
                        raise ReadFault(f"<{leaf.decode()}> is not closed", leaf, match.start())
                    leaf = None
                    while True:
                        if not tags:
                            raise ReadFault(f"unexpected </{tag.decode()}>", tag, match.start())
                        top = tags.pop()
                        start = starts.pop()
                        frame = frames.pop()
                        cur = frames[-1] if frames else {}
                        if top == tag:
                            break
                        if xml or frame:
                            raise ReadFault(f"<{top.decode()}> is not closed", top, match.start())
                        cur[top] = b""  # SGML empty element without a value
                    handler = handlers.get(tag)
                    if handler is not None:
                        event = handler(self, frame, cur, tags, start, match.start())
                        if event is not None:
                            yield event
                    elif not frame and tag not in cur:
                        cur[tag] = b""  # <X></X>: an empty element
                    if not tags:
                        closed_root = True
                elif not seen_root and tag != b"OFX":
                    raise ReadFault("the body must start with <OFX>", tag, match.start())
                else:
                    if leaf is not None and xml:
                        raise ReadFault(f"<{leaf.decode()}> is not closed", leaf, match.start())
                    value = text.strip()
                    if value:
                        cur[tag] = value
                        leaf = tag
                        continue
                    leaf = None
                    account = self.current_account
                    if tag == b"STMTTRN" and account and tags and tags[-1] == b"BANKTRANLIST":
                        # Consecutive STMTTRN blocks: the ordered fast path, else the leaf-only
                        # block path; a block neither reads goes through the tokens below.
                        first = pos = match.start()
                        while True:
                            fast = fast_match(data, pos)
                            if fast is not None:
                                event = fast_transaction(self, fast, account)
                                if event is not None:
                                    yield event
                                    pos = fast.end()
                                    continue
                            block = block_re.match(data, pos)
                            if block is None or block[3].strip():
                                break
                            fields = {t: v.strip() for t, v in leaf_findall(block[1])}
                            event = stmttrn(self, fields, cur, tags, pos, block.end(1))
                            if event is not None:
                                yield event
                            pos = block.end()
                        if pos != first:
                            break  # resume the token scan after the blocks
                        pos = match.end()
                    if len(tags) >= MAX_DEPTH:
                        raise ReadFault("statement nesting too deep", tag, match.start())
                    seen_root = True
                    tags.append(tag)
                    starts.append(match.start())
                    cur = {}
                    frames.append(cur)
            else:
                if pos < size and _TOKEN.match(data, pos) is None:
                    gap = True
                else:
                    pos = size
            if gap:
                pos = self._skip(data, pos, xml)
        if tags:
            raise ReadFault(f"truncated: <{tags[-1].decode()}> is not closed", tags[-1], size)
        if not closed_root:
            raise ReadFault("no <OFX> element", "OFX", size)

    def _skip(self, data: bytes, pos: int, xml: bool) -> int:
        """Handle what the tag regex did not match at ``pos``: comments, whitespace, or refuse."""
        rest = data[pos : pos + 64]
        if rest[:1].isspace():
            return pos + len(rest) - len(rest.lstrip())
        if data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos + 4)
            if end < 0:
                raise ReadFault("unterminated comment", None, pos)
            after = end + 3
            nxt = data.find(b"<", after)
            nxt = len(data) if nxt < 0 else nxt
            if data[after:nxt].strip():
                raise ReadFault("text after a comment", None, after)
            return nxt
        declaration = _DECLARATION.match(data, pos)
        if declaration is not None:
            kind = (declaration[1] or b"").upper().decode("ascii")
            if kind in ("DOCTYPE", "ENTITY", "ELEMENT", "ATTLIST"):
                raise ReadFault(f"{kind} declarations are refused", kind, pos)
            raise ReadFault("markup declarations and CDATA sections are refused", None, pos)
        if data.startswith(b"<?", pos):
            raise ReadFault("processing instructions are refused in the body", None, pos)
        if not data.startswith(b"<", pos):
            raise ReadFault("text outside an element", None, pos)
        raise ReadFault(f"malformed tag {rest[:20]!r}", None, pos)

    # --- value helpers (raise ReadFault naming the element, located inside its aggregate) --------

    def locate(self, element: bytes, start: int, end: int) -> int:
        """Offset of ``<element>`` inside the aggregate spanning ``start..end`` (else ``end``)."""
        found = self._data.rfind(b"<" + element + b">", start, end)
        return found if found >= 0 else end

    def text(
        self, frame: dict[bytes, Any], tag: bytes, span: tuple[int, int], *, cache: bool = False
    ) -> str:
        """A decoded, unescaped text value (empty when absent).

        With ``cache`` equal values share one string (names repeat across a statement).
        """
        raw = frame.get(tag)
        if not raw:
            return ""
        if cache:
            cached = self.strings.get(raw)
            if cached is not None:
                return cached
        return self.string(raw, tag, span, cache=cache)

    def string(self, raw: bytes, tag: bytes, span: tuple[int, int], *, cache: bool = False) -> str:
        """Decode and unescape one raw value (``span`` locates it for error messages)."""
        try:
            value = raw.decode("ascii") if raw.isascii() else raw.decode(self._codec)
            if b"&" in raw:
                value = unescape(value, xml=self.xml)
        except UnicodeDecodeError as exc:
            raise ReadFault(
                f"undecodable text ({self._codec}): {exc.reason}", tag, self.locate(tag, *span)
            ) from None
        except ValueFault as fault:
            raise ReadFault(fault.message, tag, self.locate(tag, *span)) from None
        if cache and len(self.strings) < _CACHE_LIMIT:
            self.strings[raw] = value
        return value

    def required(self, frame: dict[bytes, Any], tag: bytes, parent: bytes, end: int) -> bytes:
        """The raw value of a required element, or a failure naming it."""
        raw = frame.get(tag)
        if not raw:
            raise ReadFault(f"missing required <{tag.decode()}> in <{parent.decode()}>", tag, end)
        if not isinstance(raw, bytes):
            raise ReadFault(f"<{tag.decode()}> must be a value, not an aggregate", tag, end)
        return raw

    def datetime(
        self, raw: bytes, tag: bytes, span: tuple[int, int]
    ) -> tuple[date, datetime | None]:
        """Date and UTC timestamp of an OFX date value (cached: statements repeat them)."""
        cached = self.dates.get(raw)
        if cached is None:
            try:
                cached = parse_datetime(raw)
            except ValueFault as fault:
                raise ReadFault(fault.message, tag, self.locate(tag, *span)) from None
            if len(self.dates) < _CACHE_LIMIT:
                self.dates[raw] = cached
        return cached

    def amount(self, raw: bytes, tag: bytes, span: tuple[int, int]) -> Decimal:
        """A converted amount value."""
        try:
            return parse_amount(raw)
        except ValueFault as fault:
            raise ReadFault(fault.message, tag, self.locate(tag, *span)) from None

    def set_account(self, account: OfxAccount | None) -> None:
        """Remember the account of the statement being read."""
        self.current_account = account

    def account(self, end: int, element: bytes) -> OfxAccount:
        """The current statement's account, or a failure if none was given yet."""
        if self.current_account is None:
            raise ReadFault("statement without BANKACCTFROM/CCACCTFROM", element, end)
        return self.current_account


def read_ofx(data: bytes) -> Result[list[OfxStatement], StatementParseError]:
    """Parse a whole OFX file into statements (collected; see :class:`OfxReader` to stream).

    Args:
        data: the file's bytes.

    Returns:
        ``Ok`` with one :class:`OfxStatement` per STMTRS/CCSTMTRS, or ``Err`` naming the defect.
    """
    statements: list[OfxStatement] = []
    try:
        reader = OfxReader(data)
        for event in reader.events():
            if isinstance(event, OfxAccount):
                statements.append(OfxStatement(event))
            elif isinstance(event, OfxTransaction):
                statements[-1].transactions.append(event)
            else:
                statements[-1].end = event
    except StatementParseError as error:
        return Err(error)
    if not statements:
        return Err(StatementParseError("no bank or credit-card statement in the file"))
    return Ok(statements)


__all__ = [
    "MAX_DEPTH",
    "TRNTYPES",
    "OfxAccount",
    "OfxBalance",
    "OfxEvent",
    "OfxReader",
    "OfxStatement",
    "OfxStatementEnd",
    "OfxTransaction",
    "read_ofx",
]
