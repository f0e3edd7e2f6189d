"""How each Alpaca account-activity type maps to a Dashtam transaction type and subtype.

Alpaca's list (provider-wire-formats.md 2.5) keeps growing, so unknown types are tolerated:
they map to ``other``/``other`` with the signed ``net_amount`` as given. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashtam_core.domain.transaction import TransactionSubtype as Sub
from dashtam_core.domain.transaction import TransactionType as Typ


@dataclass(frozen=True, slots=True)
class ActivityKind:
    """The normalized classification of one activity type.

    Attributes:
        type: Dashtam transaction type.
        subtype: Dashtam subtype.
        label: a readable description used when Alpaca's ``description`` is empty.
    """

    type: Typ
    subtype: Sub
    label: str


def _k(type_: Typ, subtype: Sub, label: str) -> ActivityKind:
    return ActivityKind(type_, subtype, label)


#: Every documented activity type (SPEC list plus alpaca-py's newer enum members).
ACTIVITY_KINDS: dict[str, ActivityKind] = {
    # Trades (FILL is mapped from its own shape; the kind gives the fallback label).
    "FILL": _k(Typ.TRADE, Sub.OTHER, "Order fill"),
    "OPTRD": _k(Typ.TRADE, Sub.OTHER, "Option trade"),
    "EXTRD": _k(Typ.TRADE, Sub.OTHER, "Extended trade"),
    "FXTRD": _k(Typ.TRADE, Sub.OTHER, "Currency exchange"),
    # Cash movements.
    "CSD": _k(Typ.TRANSFER, Sub.DEPOSIT, "Cash deposit"),
    "CSW": _k(Typ.TRANSFER, Sub.WITHDRAWAL, "Cash withdrawal"),
    "TRANS": _k(Typ.TRANSFER, Sub.TRANSFER, "Cash transfer"),
    "ACATC": _k(Typ.TRANSFER, Sub.TRANSFER, "ACATS cash transfer"),
    "ACATS": _k(Typ.TRANSFER, Sub.TRANSFER, "ACATS securities transfer"),
    "SWP": _k(Typ.TRANSFER, Sub.TRANSFER, "Cash sweep"),
    "JNL": _k(Typ.TRANSFER, Sub.JOURNAL, "Journal entry"),
    "JNLC": _k(Typ.TRANSFER, Sub.JOURNAL, "Cash journal"),
    "JNLS": _k(Typ.TRANSFER, Sub.JOURNAL, "Stock journal"),
    # Fees and pass-through charges.
    "FEE": _k(Typ.FEE, Sub.FEE, "Fee"),
    "CFEE": _k(Typ.FEE, Sub.FEE, "Crypto fee"),
    "DIVFEE": _k(Typ.FEE, Sub.FEE, "Dividend fee"),
    "PTC": _k(Typ.FEE, Sub.FEE, "Pass-through charge"),
    "PTR": _k(Typ.FEE, Sub.ADJUSTMENT, "Pass-through rebate"),
    "INTPNL": _k(Typ.FEE, Sub.FEE, "Interest penalty"),
    # Dividends and their adjustments.
    "DIV": _k(Typ.INCOME, Sub.DIVIDEND, "Dividend"),
    "DIVCGL": _k(Typ.INCOME, Sub.CAPITAL_GAIN, "Long-term capital gain distribution"),
    "DIVCGS": _k(Typ.INCOME, Sub.CAPITAL_GAIN, "Short-term capital gain distribution"),
    "DIVROC": _k(Typ.INCOME, Sub.DIVIDEND, "Dividend (return of capital)"),
    "DIVTXEX": _k(Typ.INCOME, Sub.DIVIDEND, "Dividend (tax exempt)"),
    "DIVFT": _k(Typ.FEE, Sub.ADJUSTMENT, "Dividend foreign tax withheld"),
    "DIVNRA": _k(Typ.FEE, Sub.ADJUSTMENT, "Dividend NRA tax withheld"),
    "DIVTW": _k(Typ.FEE, Sub.ADJUSTMENT, "Dividend TEFRA tax withheld"),
    "DIVWH": _k(Typ.FEE, Sub.ADJUSTMENT, "Dividend tax withheld"),
    "WH": _k(Typ.FEE, Sub.ADJUSTMENT, "Tax withheld"),
    # Interest.
    "INT": _k(Typ.INCOME, Sub.INTEREST, "Interest"),
    "INTNRA": _k(Typ.FEE, Sub.ADJUSTMENT, "Interest NRA tax withheld"),
    "INTTW": _k(Typ.FEE, Sub.ADJUSTMENT, "Interest TEFRA tax withheld"),
    # Corporate actions.
    "MA": _k(Typ.OTHER, Sub.ADJUSTMENT, "Merger/acquisition"),
    "NC": _k(Typ.OTHER, Sub.ADJUSTMENT, "Name change"),
    "REORG": _k(Typ.OTHER, Sub.ADJUSTMENT, "Reorganization"),
    "SC": _k(Typ.OTHER, Sub.ADJUSTMENT, "Symbol change"),
    "SSO": _k(Typ.OTHER, Sub.ADJUSTMENT, "Stock spinoff"),
    "SSP": _k(Typ.OTHER, Sub.ADJUSTMENT, "Stock split"),
    "SPIN": _k(Typ.OTHER, Sub.ADJUSTMENT, "Spinoff"),
    "SPLIT": _k(Typ.OTHER, Sub.ADJUSTMENT, "Split"),
    "VOF": _k(Typ.OTHER, Sub.ADJUSTMENT, "Voluntary offering"),
    # Options lifecycle.
    "OPASN": _k(Typ.TRADE, Sub.OTHER, "Option assignment"),
    "OPEXP": _k(Typ.TRADE, Sub.OTHER, "Option expiration"),
    "OPXRC": _k(Typ.TRADE, Sub.OTHER, "Option exercise"),
    "OPEXC": _k(Typ.TRADE, Sub.OTHER, "Option exercise"),
    "OPCSH": _k(Typ.TRADE, Sub.OTHER, "Option cash settlement"),
    # Miscellaneous.
    "MISC": _k(Typ.OTHER, Sub.OTHER, "Miscellaneous"),
    "MEM": _k(Typ.OTHER, Sub.OTHER, "Memo"),
    "OCT": _k(Typ.OTHER, Sub.OTHER, "Other"),
}

#: The fallback for a type Alpaca adds after this table was written.
UNKNOWN_KIND = _k(Typ.OTHER, Sub.OTHER, "Account activity")


def kind_of(activity_type: str) -> ActivityKind:
    """Classify ``activity_type`` (case-insensitive); unknown types give :data:`UNKNOWN_KIND`."""
    return ACTIVITY_KINDS.get(activity_type.upper(), UNKNOWN_KIND)


__all__ = ["ACTIVITY_KINDS", "UNKNOWN_KIND", "ActivityKind", "kind_of"]
