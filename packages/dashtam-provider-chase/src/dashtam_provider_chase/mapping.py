"""Classification and identity rules shared by the OFX and CSV paths.

* :func:`classify_ofx`, :func:`classify_checking_csv` and :func:`classify_card_csv` map the
  institution's codes (plus CHECKNUM and a few description patterns) to Dashtam's
  ``(TransactionType, TransactionSubtype)``; the table is documented in the README.
* :func:`assign_dedupe_keys` gives every record a stable natural key: the FITID when it is
  unique in its statement, else ``FITID#h`` where ``h`` hashes (date, amount, name), with
  ``-2``, ``-3``… for the second and later exact duplicates.
* :func:`csv_transaction_id` derives ids for CSV rows (which have no FITID).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import replace
from datetime import date
from decimal import Decimal
from itertools import islice

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.transaction import TransactionSubtype as S
from dashtam_core.domain.transaction import TransactionType as T
from dashtam_core.ports.provider import ProviderTransaction

Kind = tuple[T, S]

ACCOUNT_TYPES: dict[str, AccountType] = {
    "CHECKING": AccountType.CHECKING,
    "SAVINGS": AccountType.SAVINGS,
    "MONEYMRKT": AccountType.MONEY_MARKET,
    "CREDITLINE": AccountType.LINE_OF_CREDIT,
    "CD": AccountType.CD,
}

_PAYROLL = re.compile(r"\bPAYROLL\b|\bDIR DEP\b|\bDIRECT DEP", re.IGNORECASE)
_INTEREST = re.compile(r"\bINTEREST\b", re.IGNORECASE)
_FEE = re.compile(r"\bFEES?\b|\bCHARGE\b", re.IGNORECASE)
_REVERSAL = re.compile(r"\bREVERSAL\b|\bREFUND\b|\bRETURN\b", re.IGNORECASE)
_PAYMENT = re.compile(r"\bPAYMENT\b|\bPMT\b|\bAUTOPAY\b", re.IGNORECASE)
_TRANSFER = re.compile(r"\bTRANSFER\b|\bZELLE\b|\bXFER\b", re.IGNORECASE)
_ACH = re.compile(r"\b(?:PPD|WEB|CCD|TEL) ID\b", re.IGNORECASE)
_WIRE = re.compile(r"\bWIRE\b", re.IGNORECASE)
_ATM = re.compile(r"\bATM\b", re.IGNORECASE)
_CHECK = re.compile(r"^\s*CHECK\s*#?\s*\d+", re.IGNORECASE)
_DEPOSIT = re.compile(r"\bDEPOSIT\b", re.IGNORECASE)


# Subtypes whose sign is fixed (amount > 0 is money in); a contradicting amount flips them.
_FLIP_WHEN_IN: dict[S, Kind] = {
    S.PURCHASE: (T.OTHER, S.REFUND),
    S.WITHDRAWAL: (T.TRANSFER, S.DEPOSIT),
    S.FEE: (T.OTHER, S.REFUND),
}
_FLIP_WHEN_OUT: dict[S, Kind] = {
    S.REFUND: (T.OTHER, S.PURCHASE),
    S.DEPOSIT: (T.TRANSFER, S.WITHDRAWAL),
}


def signed(kind: Kind, amount: Decimal) -> Kind:
    """``kind`` made consistent with the sign (a positive "purchase" is a refund, ...)."""
    if amount > 0:
        return _FLIP_WHEN_IN.get(kind[1], kind)
    if amount < 0:
        return _FLIP_WHEN_OUT.get(kind[1], kind)
    return kind


def _by_sign(amount: Decimal, inflow: Kind, outflow: Kind) -> Kind:
    return inflow if amount > 0 else outflow


def _by_text(text: str, amount: Decimal, *, card: bool) -> Kind:
    """Classify from the description when the code says only DEBIT/CREDIT/OTHER."""
    inflow = amount > 0
    if _INTEREST.search(text):
        return (T.INCOME, S.INTEREST) if inflow else (T.FEE, S.INTEREST)
    if _FEE.search(text):
        return (T.OTHER, S.REFUND) if inflow else (T.FEE, S.FEE)
    if card:
        if inflow:
            return (T.TRANSFER, S.PAYMENT) if _PAYMENT.search(text) else (T.OTHER, S.REFUND)
        return T.OTHER, S.PURCHASE
    if inflow and _PAYROLL.search(text):
        return T.INCOME, S.PAYROLL
    if _CHECK.search(text):
        return T.TRANSFER, S.CHECK
    if _ATM.search(text):
        return T.TRANSFER, S.ATM
    if _WIRE.search(text):
        return T.TRANSFER, S.WIRE
    if _ACH.search(text):
        return T.TRANSFER, S.ACH
    if _TRANSFER.search(text):
        return T.TRANSFER, S.TRANSFER
    if not inflow and _PAYMENT.search(text):
        return T.TRANSFER, S.PAYMENT
    if inflow:
        return (T.OTHER, S.REFUND) if _REVERSAL.search(text) else (T.TRANSFER, S.DEPOSIT)
    return T.OTHER, S.PURCHASE


_OFX_FIXED: dict[str, Kind] = {
    "CHECK": (T.TRANSFER, S.CHECK),
    "ATM": (T.TRANSFER, S.ATM),
    "DIRECTDEBIT": (T.TRANSFER, S.ACH),
    "FEE": (T.FEE, S.FEE),
    "SRVCHG": (T.FEE, S.FEE),
    "DIV": (T.INCOME, S.DIVIDEND),
    "XFER": (T.TRANSFER, S.TRANSFER),
    "PAYMENT": (T.TRANSFER, S.PAYMENT),
    "REPEATPMT": (T.TRANSFER, S.PAYMENT),
}


def classify_ofx(trntype: str, amount: Decimal, text: str, checknum: str, *, card: bool) -> Kind:
    """Type and subtype of one OFX STMTTRN.

    Args:
        trntype: the TRNTYPE code (``DEBIT``, ``CHECK``, ``DIRECTDEP``, ...).
        amount: the signed TRNAMT (the sign is never taken from TRNTYPE).
        text: NAME and MEMO joined, for the DEBIT/CREDIT/OTHER patterns.
        checknum: CHECKNUM (a non-empty value makes it a check).
        card: True for credit-card statements.
    """
    return classify_ofx_sign(trntype, amount > 0, text, bool(checknum), card=card)


def classify_ofx_sign(
    trntype: str, inflow: bool, text: str, has_checknum: bool, *, card: bool
) -> Kind:
    """:func:`classify_ofx` from the amount's sign only (the rules never look further)."""
    amount = Decimal(1) if inflow else Decimal(-1)
    return signed(_classify_ofx(trntype, amount, text, has_checknum, card=card), amount)


def _classify_ofx(
    trntype: str, amount: Decimal, text: str, has_checknum: bool, *, card: bool
) -> Kind:
    if has_checknum and not card:
        return T.TRANSFER, S.CHECK
    fixed = _OFX_FIXED.get(trntype)
    if fixed is not None:
        return fixed
    if trntype == "INT":
        return _by_sign(amount, (T.INCOME, S.INTEREST), (T.FEE, S.INTEREST))
    if trntype == "DIRECTDEP":
        return _by_sign(amount, (T.INCOME, S.PAYROLL), (T.TRANSFER, S.ACH))
    if trntype == "DEP":
        return _by_sign(amount, (T.TRANSFER, S.DEPOSIT), (T.TRANSFER, S.WITHDRAWAL))
    if trntype == "CASH":
        return _by_sign(amount, (T.TRANSFER, S.DEPOSIT), (T.TRANSFER, S.WITHDRAWAL))
    if trntype == "POS":
        return _by_sign(amount, (T.OTHER, S.REFUND), (T.OTHER, S.PURCHASE))
    return _by_text(text, amount, card=card)


_CHECKING_CSV: dict[str, Kind] = {
    "DEBIT_CARD": (T.OTHER, S.PURCHASE),
    "CHECK_PAID": (T.TRANSFER, S.CHECK),
    "CHECK_DEPOSIT": (T.TRANSFER, S.DEPOSIT),
    "DEPOSIT": (T.TRANSFER, S.DEPOSIT),
    "ATM_DEPOSIT": (T.TRANSFER, S.DEPOSIT),
    "ATM": (T.TRANSFER, S.ATM),
    "ACCT_XFER": (T.TRANSFER, S.TRANSFER),
    "QUICKPAY_CREDIT": (T.TRANSFER, S.TRANSFER),
    "QUICKPAY_DEBIT": (T.TRANSFER, S.TRANSFER),
    "CHASE_TO_PARTNERFI": (T.TRANSFER, S.TRANSFER),
    "PARTNERFI_TO_CHASE": (T.TRANSFER, S.TRANSFER),
    "LOAN_PMT": (T.TRANSFER, S.PAYMENT),
    "BILLPAY": (T.TRANSFER, S.PAYMENT),
    "ACH_PAYMENT": (T.TRANSFER, S.PAYMENT),
    "FEE_TRANSACTION": (T.FEE, S.FEE),
    "REFUND_TRANSACTION": (T.OTHER, S.REFUND),
    "WIRE_INCOMING": (T.TRANSFER, S.WIRE),
    "WIRE_OUTGOING": (T.TRANSFER, S.WIRE),
    "MISC_CREDIT": (T.OTHER, S.OTHER),
    "MISC_DEBIT": (T.OTHER, S.OTHER),
}


def classify_checking_csv(type_code: str, amount: Decimal, description: str) -> Kind:
    """Type and subtype of a checking-CSV row from its ``Type`` column (open-ended list)."""
    code = type_code.strip().upper()
    if code in ("ACH_CREDIT", "ACH_DEBIT"):
        if amount > 0 and _PAYROLL.search(description):
            return T.INCOME, S.PAYROLL
        return T.TRANSFER, S.ACH
    fixed = _CHECKING_CSV.get(code)
    return signed(fixed or _by_text(description, amount, card=False), amount)


def classify_card_csv(type_code: str, amount: Decimal, description: str) -> Kind:
    """Type and subtype of a card-CSV row (``Sale``/``Return``/``Payment``/``Fee``/...)."""
    return signed(_card_kind(type_code.strip().lower(), amount, description), amount)


def _card_kind(code: str, amount: Decimal, description: str) -> Kind:
    if code == "sale":
        return T.OTHER, S.PURCHASE
    if code == "return":
        return T.OTHER, S.REFUND
    if code == "payment":
        return T.TRANSFER, S.PAYMENT
    if code == "fee":
        return (T.FEE, S.INTEREST) if _INTEREST.search(description) else (T.FEE, S.FEE)
    if code == "adjustment":
        return T.OTHER, S.ADJUSTMENT
    return _by_text(description, amount, card=True)


def amount_text(amount: Decimal) -> str:
    """Canonical text of an amount for hashing (``-1.50`` and ``-1.5`` agree)."""
    normalized = amount.normalize()
    return format(normalized if normalized != 0 else Decimal(0), "f")


def short_hash(*parts: str) -> str:
    """First 8 hex digits of SHA-256 over the ``|``-joined parts."""
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:8]


def collapse(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped (Chase pads descriptions)."""
    return " ".join(text.split())


class RepeatFinder:
    """Finds the FITIDs that repeat in one statement, in about 128 KiB whatever its size.

    :meth:`add` marks each FITID's hash in a bitmap; a FITID whose bit is already set becomes a
    candidate (a repeat or a hash collision), and :meth:`repeated` counts only the candidates
    exactly. A set of every FITID would cost far more memory on a 50k-transaction file.
    """

    __slots__ = ("_bits", "_candidates")

    _MASK = (1 << 20) - 1

    def __init__(self) -> None:
        self._bits = bytearray(1 << 17)
        self._candidates: set[str] = set()

    def add(self, fitid: str) -> None:
        """Record one FITID."""
        h = hash(fitid) & self._MASK
        bit = 1 << (h & 7)
        if self._bits[h >> 3] & bit:
            self._candidates.add(fitid)
        else:
            self._bits[h >> 3] |= bit

    def repeated(self, records: list[ProviderTransaction], start: int = 0) -> set[str]:
        """The FITIDs occurring more than once in ``records[start:]`` (those :meth:`add` saw)."""
        candidates = self._candidates
        if not candidates:
            return set()
        counts = Counter(
            record.provider_transaction_id
            for record in islice(records, start, None)
            if record.provider_transaction_id in candidates
        )
        return {fitid for fitid, n in counts.items() if n > 1}


def assign_dedupe_keys(
    records: list[ProviderTransaction], start: int = 0, repeated: set[str] | None = None
) -> None:
    """Re-key, in place, the records of one statement whose FITID repeats (``records[start:]``).

    Records arrive keyed by FITID. A FITID that occurs once in the statement keeps
    ``dedupe_key == FITID``. When a FITID repeats (a purchase and its foreign-transaction fee,
    a reward credit reusing the purchase's FITID), every record sharing it gets ``FITID#h``
    with ``h = sha256("date|amount|description")[:8]``; exact duplicates (same FITID, date,
    amount and description) get ``-2``, ``-3``… in file order. The key does not depend on a
    record's position except among exact duplicates, so overlapping statements agree.

    Args:
        records: the list holding the statement's transactions (modified in place).
        start: index of the statement's first transaction in ``records``.
        repeated: the repeating FITIDs when already known (else counted here).
    """
    if repeated is None:
        counts = Counter(r.provider_transaction_id for r in islice(records, start, None))
        repeated = {fitid for fitid, n in counts.items() if n > 1}
    if not repeated:
        return
    seen: Counter[str] = Counter()
    for index in range(start, len(records)):
        record = records[index]
        fitid = record.provider_transaction_id
        if fitid not in repeated:
            continue
        key = f"{fitid}#{record_hash(record)}"
        seen[key] += 1
        if seen[key] > 1:
            key = f"{key}-{seen[key]}"
        records[index] = replace(record, dedupe_key=key)


def record_hash(record: ProviderTransaction) -> str:
    """The disambiguator of a repeated FITID: sha256(date|amount|description)[:8]."""
    return short_hash(record.date.isoformat(), amount_text(record.amount), record.description)


def csv_transaction_id(day: date, amount: Decimal, description: str, occurrence: int) -> str:
    """Id of a CSV row: ``csv:`` + sha256(date|amount|description)[:16], ``-n`` for repeats.

    ``occurrence`` is 1 for the first row with those exact values in the file, 2 for the next…
    """
    digest = hashlib.sha256(
        f"{day.isoformat()}|{amount_text(amount)}|{collapse(description)}".encode()
    ).hexdigest()[:16]
    return f"csv:{digest}" if occurrence == 1 else f"csv:{digest}-{occurrence}"


__all__ = [
    "ACCOUNT_TYPES",
    "Kind",
    "RepeatFinder",
    "amount_text",
    "assign_dedupe_keys",
    "classify_card_csv",
    "classify_checking_csv",
    "classify_ofx",
    "classify_ofx_sign",
    "collapse",
    "csv_transaction_id",
    "record_hash",
    "short_hash",
    "signed",
]
