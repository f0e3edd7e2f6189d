"""Map Alpaca Trading API v2 wire objects to Dashtam's normalized provider records.

Conventions (provider-wire-formats.md section 2):

* Decimals arrive as JSON strings and are converted with ``Decimal(str)``, exactly; a JSON
  number is accepted too (the body is decoded with ``parse_float=Decimal``).
* Sign convention: ``amount`` > 0 is money into the account. A ``FILL`` buy is
  ``-(qty x price)``, a sell ``+(qty x price)`` (x 100 for an option contract), rounded half
  up to the cent; non-trade activities keep their signed ``net_amount`` as given.
* Dates: a non-trade activity has a ``date``; a ``FILL`` is dated on the America/New_York
  calendar day of its ``transaction_time`` (the day Alpaca encodes in the id's timestamp),
  and ``posted_at`` is the ``transaction_time`` in UTC.
* A ``partial_fill`` and the ``fill`` of the same order are separate transactions: each
  activity id is its own ``dedupe_key``.
* Activities with ``status: canceled`` never moved money and are skipped; ``pending`` ones
  map to ``TransactionStatus.PENDING``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.holding import AssetType, CostBasis
from dashtam_core.domain.transaction import (
    SecurityLeg,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from dashtam_core.errors import ProviderProtocolError
from dashtam_core.ports.provider import ProviderAccount, ProviderHolding, ProviderTransaction
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_alpaca.activity_types import kind_of

NEW_YORK = ZoneInfo("America/New_York")
CENT = Decimal("0.01")
OPTION_MULTIPLIER = Decimal(100)
_OCC_SYMBOL = re.compile(r"^[A-Z0-9.]{1,6}\d{6}[CP]\d{8}$")
_ID_DATE = re.compile(r"^(\d{8})")
_FRACTION = re.compile(r"\.(\d+)")

_ASSET_CLASSES: dict[str, AssetType] = {
    "us_equity": AssetType.EQUITY,
    "us_option": AssetType.OPTION,
    "crypto": AssetType.CRYPTO,
    "crypto_perp": AssetType.CRYPTO,
}


class WireFormatError(ValueError):
    """A wire object lacks a required field or has an unusable value (internal)."""


def decode_json(content: bytes) -> Result[Any, ProviderProtocolError]:
    """Decode a JSON body, keeping any JSON number with a fraction as an exact ``Decimal``."""
    try:
        return Ok(json.loads(content, parse_float=Decimal))
    except json.JSONDecodeError as exc:
        return Err(ProviderProtocolError(f"invalid JSON from Alpaca: {exc.msg}"))
    except UnicodeDecodeError:
        return Err(ProviderProtocolError("invalid JSON from Alpaca: not UTF-8"))


def to_decimal(raw: Mapping[str, Any], key: str) -> Decimal | None:
    """The exact Decimal in ``raw[key]`` (a string or JSON number); None when absent or empty."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        raise WireFormatError(f"field {key!r} is not an exact decimal")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise WireFormatError(f"field {key!r} is not a decimal number") from None
    if not number.is_finite():
        raise WireFormatError(f"field {key!r} is not a finite number")
    return number


def _required_decimal(raw: Mapping[str, Any], key: str) -> Decimal:
    value = to_decimal(raw, key)
    if value is None:
        raise WireFormatError(f"field {key!r} is missing")
    return value


def _required_str(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise WireFormatError(f"field {key!r} is missing")
    return value


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp (``Z`` or offset, up to nanoseconds) to an aware UTC datetime."""
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python's parser takes at most microseconds; Alpaca may send nanoseconds.
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise WireFormatError(f"not an RFC 3339 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def new_york_date(moment: datetime) -> date:
    """The America/New_York calendar date of an aware ``moment``."""
    return moment.astimezone(NEW_YORK).date()


def is_option_symbol(symbol: str) -> bool:
    """True for an OCC option symbol without spaces (``AAPL250620C00200000``)."""
    return bool(_OCC_SYMBOL.match(symbol))


def _guess_asset_type(symbol: str) -> AssetType:
    if "/" in symbol:
        return AssetType.CRYPTO
    if is_option_symbol(symbol):
        return AssetType.OPTION
    return AssetType.EQUITY


def _wrap(message: str, exc: WireFormatError) -> ProviderProtocolError:
    return ProviderProtocolError(f"{message}: {exc}")


# --------------------------------------------------------------------------- account


def map_account(
    raw: Any, *, environment: str, as_of: datetime, default_currency: str = "USD"
) -> Result[ProviderAccount, ProviderProtocolError]:
    """Map ``GET /v2/account`` to one brokerage account.

    ``balance_current`` is ``equity`` (cash plus long and short market value; falls back to the
    deprecated ``portfolio_value``) and ``balance_available`` the uninvested ``cash``.
    """
    try:
        if not isinstance(raw, Mapping):
            raise WireFormatError("the account is not a JSON object")
        account_id = _required_str(raw, "id")
        number = _optional_str(raw, "account_number")
        equity = to_decimal(raw, "equity")
        if equity is None:
            equity = to_decimal(raw, "portfolio_value")
        multiplier = to_decimal(raw, "multiplier")
        env = "Live" if environment == "live" else "Paper"
        return Ok(
            ProviderAccount(
                provider_account_id=account_id,
                name=f"Alpaca {env} {number}" if number else f"Alpaca {env}",
                type=AccountType.BROKERAGE,
                currency=_optional_str(raw, "currency") or default_currency,
                subtype="margin" if multiplier is not None and multiplier > 1 else "cash",
                mask=number[-4:] if number else None,
                balance_current=equity,
                balance_available=to_decimal(raw, "cash"),
                balance_as_of=as_of,
            )
        )
    except WireFormatError as exc:
        return Err(_wrap("unexpected account from Alpaca", exc))


# --------------------------------------------------------------------------- positions


def _map_position(
    raw: Mapping[str, Any], account_id: str, as_of: datetime, currency: str
) -> ProviderHolding:
    symbol = _required_str(raw, "symbol")
    quantity = _required_decimal(raw, "qty")
    if raw.get("side") == "short" and quantity > 0:
        quantity = -quantity  # Alpaca sends short qty negative; be lenient if it did not.
    asset_class = _optional_str(raw, "asset_class")
    asset_type = (
        _ASSET_CLASSES.get(asset_class, AssetType.OTHER) if asset_class else AssetType.OTHER
    )
    sign = Decimal(-1) if quantity < 0 else Decimal(1)
    total = to_decimal(raw, "cost_basis")
    cost_basis = None
    if total is not None:
        cost_basis = CostBasis.from_total(abs(total) * sign, quantity)
    market_value = to_decimal(raw, "market_value")
    if market_value is not None:
        market_value = abs(market_value) * sign
    return ProviderHolding(
        provider_account_id=account_id,
        instrument_id=_optional_str(raw, "asset_id") or symbol,
        symbol=symbol,
        asset_type=asset_type,
        quantity=quantity,
        currency=currency,
        as_of=as_of,
        cost_basis=cost_basis,
        price=to_decimal(raw, "current_price"),
        market_value=market_value,
    )


def map_positions(
    raw: Any, *, account_id: str, as_of: datetime, currency: str = "USD"
) -> Result[list[ProviderHolding], ProviderProtocolError]:
    """Map the ``GET /v2/positions`` array.

    Short positions get a negative quantity, and their total cost basis and market value the
    quantity's sign; ``instrument_id`` is Alpaca's ``asset_id``.
    """
    if not isinstance(raw, list):
        return Err(ProviderProtocolError("unexpected positions from Alpaca: not a JSON array"))
    holdings = []
    for index, item in enumerate(raw):
        try:
            if not isinstance(item, Mapping):
                raise WireFormatError("not a JSON object")
            holdings.append(_map_position(item, account_id, as_of, currency))
        except WireFormatError as exc:
            return Err(_wrap(f"unexpected position #{index} from Alpaca", exc))
    return Ok(holdings)


# --------------------------------------------------------------------------- activities

_FILL_SUBTYPES: dict[str, TransactionSubtype] = {
    "buy": TransactionSubtype.BUY,
    "sell": TransactionSubtype.SELL,
    "sell_short": TransactionSubtype.SHORT,
    "short_sell": TransactionSubtype.SHORT,
    "buy_to_cover": TransactionSubtype.COVER,
}


def _map_fill(
    raw: Mapping[str, Any], activity_id: str, account_id: str, currency: str
) -> ProviderTransaction:
    side = _required_str(raw, "side").lower()
    subtype = _FILL_SUBTYPES.get(side)
    if subtype is None:
        raise WireFormatError(f"unknown fill side {side[:20]!r}")
    qty = abs(_required_decimal(raw, "qty"))
    price = _required_decimal(raw, "price")
    symbol = _required_str(raw, "symbol")
    asset_type = _guess_asset_type(symbol)
    gross = qty * price * (OPTION_MULTIPLIER if asset_type is AssetType.OPTION else 1)
    buying = subtype in (TransactionSubtype.BUY, TransactionSubtype.COVER)
    amount = (-gross if buying else gross).quantize(CENT, rounding=ROUND_HALF_UP)
    when = parse_timestamp(_required_str(raw, "transaction_time"))
    partial = str(raw.get("type", "")).lower() == "partial_fill"
    verb = side.replace("_", " ").capitalize()
    suffix = " (partial fill)" if partial else ""
    return ProviderTransaction(
        provider_account_id=account_id,
        provider_transaction_id=activity_id,
        dedupe_key=activity_id,
        date=new_york_date(when),
        amount=amount,
        currency=currency,
        description=f"{verb} {qty.normalize():f} {symbol} @ {price:f}{suffix}",
        type=TransactionType.TRADE,
        subtype=subtype,
        posted_at=when,
        security=SecurityLeg(
            symbol=symbol,
            quantity=qty if buying else -qty,
            price=price,
            asset_type=asset_type.value,
        ),
    )


def _activity_date(raw: Mapping[str, Any], activity_id: str) -> tuple[date, datetime | None]:
    text = _optional_str(raw, "date")
    if text is not None:
        try:
            return date.fromisoformat(text[:10]), None
        except ValueError:
            raise WireFormatError(f"field 'date' is not a date: {text[:20]!r}") from None
    stamp = _optional_str(raw, "transaction_time")
    if stamp is not None:
        when = parse_timestamp(stamp)
        return new_york_date(when), when
    found = _ID_DATE.match(activity_id)
    if found is None:
        raise WireFormatError("activity has neither date nor transaction_time")
    try:
        return datetime.strptime(found.group(1), "%Y%m%d").date(), None
    except ValueError:
        raise WireFormatError("activity id does not start with a date") from None


def _map_non_trade(
    raw: Mapping[str, Any], activity_type: str, activity_id: str, account_id: str, currency: str
) -> ProviderTransaction:
    kind = kind_of(activity_type)
    day, posted_at = _activity_date(raw, activity_id)
    amount = to_decimal(raw, "net_amount")
    symbol = _optional_str(raw, "symbol")
    quantity = to_decimal(raw, "qty")
    price = to_decimal(raw, "per_share_amount")
    if price is None:
        price = to_decimal(raw, "price")
    security = None
    if symbol is not None:
        security = SecurityLeg(
            symbol=symbol,
            quantity=quantity,
            price=price,
            asset_type=_guess_asset_type(symbol).value,
        )
    description = (_optional_str(raw, "description") or "").strip()
    if not description:
        description = f"{kind.label} {symbol}" if symbol else kind.label
    status = (
        TransactionStatus.PENDING
        if str(raw.get("status", "")).lower() == "pending"
        else TransactionStatus.POSTED
    )
    return ProviderTransaction(
        provider_account_id=account_id,
        provider_transaction_id=activity_id,
        dedupe_key=activity_id,
        date=day,
        amount=amount if amount is not None else Decimal(0),
        currency=currency,
        description=description,
        type=kind.type,
        subtype=kind.subtype,
        status=status,
        posted_at=posted_at,
        security=security,
    )


def map_activity(
    raw: Any, *, account_id: str, currency: str = "USD"
) -> Result[ProviderTransaction | None, ProviderProtocolError]:
    """Map one account activity; ``Ok(None)`` for a canceled activity (it moved no money)."""
    try:
        if not isinstance(raw, Mapping):
            raise WireFormatError("not a JSON object")
        activity_id = _required_str(raw, "id")
        activity_type = _required_str(raw, "activity_type").upper()
        if str(raw.get("status", "")).lower() in ("canceled", "cancelled"):
            return Ok(None)
        if activity_type == "FILL":
            return Ok(_map_fill(raw, activity_id, account_id, currency))
        return Ok(_map_non_trade(raw, activity_type, activity_id, account_id, currency))
    except WireFormatError as exc:
        return Err(_wrap("unexpected activity from Alpaca", exc))


def map_activities(
    items: Iterable[Any], *, account_id: str, currency: str = "USD"
) -> Result[list[ProviderTransaction], ProviderProtocolError]:
    """Map many activities in order, skipping canceled ones; the first defect is an ``Err``."""
    mapped: list[ProviderTransaction] = []
    for item in items:
        match map_activity(item, account_id=account_id, currency=currency):
            case Ok(None):
                continue
            case Ok(transaction) if transaction is not None:
                mapped.append(transaction)
            case Err(error):
                return Err(error)
    return Ok(mapped)


__all__ = [
    "NEW_YORK",
    "WireFormatError",
    "decode_json",
    "is_option_symbol",
    "map_account",
    "map_activities",
    "map_activity",
    "map_positions",
    "new_york_date",
    "parse_timestamp",
    "to_decimal",
]
