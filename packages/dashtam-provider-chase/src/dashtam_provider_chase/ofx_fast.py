"""The reader's fast path for a STMTTRN written in the OFX-specified element order.

One regex match reads a whole transaction whose leaves follow the order of the OFX DTD
(TRNTYPE, DTPOSTED, [DTUSER], [DTAVAIL], TRNAMT, FITID, ..., [CHECKNUM], ..., [NAME], [MEMO]),
as every bank writes them. Anything else (another order, a nested aggregate, a bad value) makes
:func:`fast_transaction` return ``None`` and the reader falls back to its general path, which
produces the same records and the precise error messages.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from dashtam_provider_chase.ofx_model import TRNTYPE_NAMES, OfxAccount, OfxTransaction

if TYPE_CHECKING:
    from dashtam_provider_chase.ofx import OfxReader

# (tag, captured, required) in DTD order.
_ORDER = (
    ("TRNTYPE", True, True),
    ("DTPOSTED", True, True),
    ("DTUSER", False, False),
    ("DTAVAIL", False, False),
    ("TRNAMT", True, True),
    ("FITID", True, True),
    ("CORRECTFITID", False, False),
    ("CORRECTACTION", False, False),
    ("SRVRTID", False, False),
    ("CHECKNUM", True, False),
    ("REFNUM", False, False),
    ("SIC", False, False),
    ("PAYEEID", False, False),
    ("NAME", True, False),
    ("MEMO", True, False),
)


def _pattern(xml: bool) -> re.Pattern[bytes]:
    parts = [rb"<STMTTRN>\s*"]
    for tag, captured, required in _ORDER:
        name = tag.encode("ascii")
        value = rb"([^<]*)" if captured else rb"[^<]*"
        close = rb"</" + name + rb">\s*" if xml else rb"(?:</" + name + rb">\s*)?"
        leaf = rb"<" + name + rb">" + value + close
        parts.append(leaf if required else rb"(?:" + leaf + rb")?")
    parts.append(rb"</STMTTRN>([^<]*)")
    return re.compile(b"".join(parts))


SGML_TRANSACTION = _pattern(xml=False)
XML_TRANSACTION = _pattern(xml=True)


def fast_transaction(
    reader: OfxReader, match: re.Match[bytes], account: OfxAccount
) -> OfxTransaction | None:
    """The transaction of a fast-path match, or ``None`` to let the general path handle it.

    Args:
        reader: supplies the caches, the character set and the value converters.
        match: a match of :data:`SGML_TRANSACTION` / :data:`XML_TRANSACTION`.
        account: the statement's account (its currency is the default).
    """
    raw_type, raw_date, raw_amount, raw_fitid, raw_check, raw_name, raw_memo, tail = match.groups()
    trntype = TRNTYPE_NAMES.get(raw_type.strip())
    fitid_bytes = raw_fitid.strip()
    raw_date = raw_date.strip()
    raw_amount = raw_amount.strip()
    if trntype is None or not fitid_bytes or not raw_date or not raw_amount or tail.strip():
        return None
    span = (match.start(), match.end())
    when = reader.dates.get(raw_date) or reader.datetime(raw_date, b"DTPOSTED", span)
    amount = reader.amount(raw_amount, b"TRNAMT", span)
    strings = reader.strings
    name = ""
    if raw_name:
        raw_name = raw_name.strip()
        if raw_name:
            name = strings.get(raw_name) or reader.string(raw_name, b"NAME", span, cache=True)
    memo = ""
    if raw_memo:
        raw_memo = raw_memo.strip()
        if raw_memo:
            memo = strings.get(raw_memo) or reader.string(raw_memo, b"MEMO", span, cache=True)
    checknum = ""
    if raw_check:
        raw_check = raw_check.strip()
        if raw_check:
            checknum = reader.string(raw_check, b"CHECKNUM", span)
    return OfxTransaction(
        trntype,
        when[0],
        when[1],
        amount,
        reader.string(fitid_bytes, b"FITID", span),
        name,
        memo,
        checknum,
        account.currency,
    )


__all__ = ["SGML_TRANSACTION", "XML_TRANSACTION", "fast_transaction"]
