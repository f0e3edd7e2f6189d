"""Map Schwab ``Transaction`` objects to :class:`ProviderTransaction`.

Every one of the 15 ``TransactionType`` values has a mapping; an unknown type maps to
``other``. Cash is always ``netAmount`` (the sum of the legs' ``cost``). For a TRADE the
``transferItems`` hold fee legs (``CURRENCY_USD`` with a ``feeType``; a charged fee has a
negative ``cost``) and one security leg (signed quantity ``amount``, ``price``,
``positionEffect``). ``SMA_ADJUSTMENT`` rows (bookkeeping, netAmount 0) and ``INVALID`` rows
(cancelled) are skipped.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any

from dashtam_core.domain.transaction import (
    SecurityLeg,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from dashtam_core.errors import ProviderProtocolError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_schwab.mapping import (
    MappingError,
    asset_type,
    parse_timestamp,
    to_decimal,
)

#: The 15 values of Schwab's ``TransactionType``; all are requested in ``types``.
TRANSACTION_TYPES: tuple[str, ...] = (
    "TRADE",
    "RECEIVE_AND_DELIVER",
    "DIVIDEND_OR_INTEREST",
    "ACH_RECEIPT",
    "ACH_DISBURSEMENT",
    "CASH_RECEIPT",
    "CASH_DISBURSEMENT",
    "ELECTRONIC_FUND",
    "WIRE_OUT",
    "WIRE_IN",
    "JOURNAL",
    "MEMORANDUM",
    "MARGIN_CALL",
    "MONEY_MARKET",
    "SMA_ADJUSTMENT",
)
_SKIPPED_TYPES = frozenset({"SMA_ADJUSTMENT"})
_T = TransactionType
_S = TransactionSubtype


def _is_cash_leg(item: dict[str, Any]) -> bool:
    instrument = item.get("instrument")
    if not isinstance(instrument, dict):
        return True
    kind = str(instrument.get("assetType") or "").upper()
    symbol = str(instrument.get("symbol") or "").upper()
    return kind == "CURRENCY" or symbol.startswith("CURRENCY_")


def _legs(item: dict[str, Any]) -> list[dict[str, Any]]:
    legs = item.get("transferItems") or []
    if not isinstance(legs, list):
        raise MappingError("transferItems is not an array")
    return [leg for leg in legs if isinstance(leg, dict)]


def _security_leg(legs: list[dict[str, Any]]) -> tuple[SecurityLeg, str] | None:
    """The (last) non-cash leg as a :class:`SecurityLeg`, with its ``positionEffect``."""
    for leg in reversed(legs):
        if _is_cash_leg(leg):
            continue
        instrument = leg["instrument"]
        symbol = str(instrument.get("symbol") or "").strip()
        if not symbol:
            continue
        return (
            SecurityLeg(
                symbol=symbol,
                quantity=to_decimal(leg.get("amount"), field="transferItems.amount"),
                price=to_decimal(leg.get("price"), field="transferItems.price"),
                asset_type=asset_type(instrument).value,
            ),
            str(leg.get("positionEffect") or "").upper(),
        )
    return None


def _fees(legs: list[dict[str, Any]]) -> Decimal:
    """Fees charged, as a positive number (fee legs carry negative ``cost``)."""
    total = Decimal(0)
    for leg in legs:
        if leg.get("feeType") and _is_cash_leg(leg):
            total -= to_decimal(leg.get("cost"), field="transferItems.cost") or Decimal(0)
    return total


def _trade_subtype(quantity: Decimal | None, effect: str, amount: Decimal) -> TransactionSubtype:
    if quantity is None or quantity == 0:
        return _S.BUY if amount < 0 else _S.SELL
    if quantity > 0:
        return _S.COVER if effect == "CLOSING" else _S.BUY
    return _S.SHORT if effect == "OPENING" else _S.SELL


def _income_subtype(description: str) -> TransactionSubtype:
    upper = description.upper()
    if "INTEREST" in upper or "INT" in upper.replace(".", " ").split():
        return _S.INTEREST
    if "CAP GAIN" in upper or "CAPITAL GAIN" in upper:
        return _S.CAPITAL_GAIN
    return _S.DIVIDEND


def _direction(amount: Decimal) -> TransactionSubtype:
    return _S.WITHDRAWAL if amount < 0 else _S.DEPOSIT


def _classify(
    schwab_type: str, amount: Decimal, description: str, leg: tuple[SecurityLeg, str] | None
) -> tuple[TransactionType, TransactionSubtype]:
    quantity = leg[0].quantity if leg else None
    effect = leg[1] if leg else ""
    match schwab_type:
        case "TRADE":
            return _T.TRADE, _trade_subtype(quantity, effect, amount)
        case "DIVIDEND_OR_INTEREST":
            if amount < 0:
                return _T.FEE, _S.INTEREST  # margin interest charged
            return _T.INCOME, _income_subtype(description)
        case "ACH_RECEIPT" | "ACH_DISBURSEMENT":
            return _T.TRANSFER, _direction(amount) if amount else _S.ACH
        case "WIRE_IN" | "WIRE_OUT":
            return _T.TRANSFER, _S.WIRE
        case "JOURNAL":
            if "FEE" in description.upper() and amount < 0:
                return _T.FEE, _S.FEE
            return _T.TRANSFER, _S.JOURNAL
        case "ELECTRONIC_FUND" | "CASH_RECEIPT" | "CASH_DISBURSEMENT":
            return _T.TRANSFER, _direction(amount)
        case "MONEY_MARKET":
            if leg is not None:
                return _T.TRADE, _S.BUY if amount < 0 else _S.SELL
            return _T.TRANSFER, _S.TRANSFER
        case "RECEIVE_AND_DELIVER":
            return _T.TRANSFER, _S.TRANSFER
        case "MARGIN_CALL" | "MEMORANDUM":
            return _T.OTHER, _S.OTHER
        case _:
            return _T.OTHER, _S.OTHER


def _describe(
    schwab_type: str, description: str | None, subtype: TransactionSubtype, leg: SecurityLeg | None
) -> str:
    if description:
        return description
    if leg is not None and leg.quantity is not None:
        verb = {_S.BUY: "Bought", _S.SELL: "Sold", _S.SHORT: "Sold short", _S.COVER: "Covered"}
        quantity = abs(leg.quantity).normalize()
        price = f" @ {leg.price.normalize():f}" if leg.price is not None else ""
        return f"{verb.get(subtype, schwab_type.title())} {quantity:f} {leg.symbol}{price}"
    return schwab_type.replace("_", " ").title()


def map_transaction(
    item: object, hash_value: str, *, currency: str = "USD"
) -> ProviderTransaction | None:
    """One Schwab ``Transaction`` → :class:`ProviderTransaction` (``None`` when skipped).

    ``date`` is the calendar date of ``tradeDate`` (else ``time``) in the offset Schwab
    states; ``posted_at`` is ``time`` in UTC; ``dedupe_key`` is ``activityId`` (else
    ``transactionId``) as a string; ``amount`` is ``netAmount``.

    Raises:
        MappingError: when the id, the amount or the date is missing or malformed.
    """
    if not isinstance(item, dict):
        raise MappingError("transaction is not an object")
    schwab_type = str(item.get("type") or "").upper()
    status_text = str(item.get("status") or "").upper()
    if schwab_type in _SKIPPED_TYPES or status_text == "INVALID":
        return None
    raw_id = item.get("activityId", item.get("transactionId"))
    if raw_id is None or isinstance(raw_id, bool) or str(raw_id).strip() == "":
        raise MappingError("transaction has no activityId")
    transaction_id = str(raw_id).strip()
    amount = to_decimal(item.get("netAmount"), field="netAmount")
    if amount is None:
        raise MappingError(f"transaction {transaction_id} has no netAmount")
    when = parse_timestamp(item.get("tradeDate")) or parse_timestamp(item.get("time"))
    if when is None:
        raise MappingError(f"transaction {transaction_id} has no tradeDate/time")
    posted = parse_timestamp(item.get("time")) or when
    legs = _legs(item)
    leg = _security_leg(legs)
    description = str(item.get("description") or "").strip() or None
    kind, subtype = _classify(schwab_type, amount, description or "", leg)
    fees = _fees(legs) if any(x.get("feeType") for x in legs) else None
    security = leg[0] if leg else None
    return ProviderTransaction(
        provider_account_id=hash_value,
        provider_transaction_id=transaction_id,
        dedupe_key=transaction_id,
        date=when.date(),
        amount=amount,
        currency=currency,
        description=_describe(schwab_type, description, subtype, security),
        type=kind,
        subtype=subtype,
        status=TransactionStatus.PENDING if status_text == "PENDING" else TransactionStatus.POSTED,
        posted_at=posted.astimezone(UTC),
        security=security,
        fees=fees,
    )


def map_transactions(
    data: object, hash_value: str, *, currency: str = "USD"
) -> Result[list[ProviderTransaction], ProviderProtocolError]:
    """A ``/transactions`` answer (a JSON array) → records, skipped rows left out."""
    if not isinstance(data, list):
        return Err(ProviderProtocolError("Schwab transactions: expected a JSON array"))
    records: list[ProviderTransaction] = []
    try:
        for item in data:
            record = map_transaction(item, hash_value, currency=currency)
            if record is not None:
                records.append(record)
    except MappingError as exc:
        return Err(ProviderProtocolError(f"Schwab transactions: {exc}"))
    return Ok(records)


__all__ = ["TRANSACTION_TYPES", "map_transaction", "map_transactions"]
