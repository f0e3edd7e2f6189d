"""Map Schwab Trader API JSON to Dashtam's normalized provider records.

Schwab sends every amount and quantity as a JSON number (a double). :func:`decode_json`
parses them straight into exact ``Decimal`` values (``parse_float=Decimal``), never through
``float``. Parsing is lenient: unknown keys and enum values are tolerated and optional fields
may be missing; only what a record cannot exist without (an id, an amount, a date) is
required, and its absence is an ``Err(ProviderProtocolError)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.holding import AssetType, CostBasis
from dashtam_core.errors import ProviderProtocolError
from dashtam_core.ports.provider import ProviderAccount, ProviderHolding
from dashtam_core.result import Err, Ok, Result

#: Schwab's option contract multiplier when a position does not state one.
DEFAULT_OPTION_MULTIPLIER = Decimal(100)
_PRICE_QUANTUM = Decimal("1E-8")
_ETF_TYPES = frozenset({"EXCHANGE_TRADED_FUND", "EXCHANGE_TRADED_NOTE", "ETF"})


class MappingError(ValueError):
    """A payload lacks something a record needs (turned into ``ProviderProtocolError``)."""


def _reject_constant(name: str) -> Decimal:
    raise ValueError(f"non-finite number {name} in JSON")


def decode_json(content: bytes) -> Result[Any, ProviderProtocolError]:
    """Decode a Schwab JSON body with every non-integer number as an exact ``Decimal``.

    Args:
        content: the raw response body.

    Returns:
        ``Ok(value)`` or ``Err(ProviderProtocolError)`` for invalid JSON, NaN or Infinity.
    """
    try:
        return Ok(json.loads(content, parse_float=Decimal, parse_constant=_reject_constant))
    except json.JSONDecodeError as exc:
        return Err(ProviderProtocolError(f"invalid JSON from Schwab: {exc.msg}"))
    except UnicodeDecodeError:
        return Err(ProviderProtocolError("invalid JSON from Schwab: not UTF-8"))
    except ValueError as exc:
        return Err(ProviderProtocolError(f"invalid JSON from Schwab: {exc}"))


def to_decimal(value: object, *, field: str = "number") -> Decimal | None:
    """An exact Decimal from a decoded JSON value (``None`` stays ``None``).

    Raises:
        MappingError: for booleans, floats, and strings that are not finite numbers.
    """
    if value is None:
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            raise MappingError(f"{field} is not a number") from exc
    else:
        raise MappingError(f"{field} is not an exact number ({type(value).__name__})")
    if not result.is_finite():
        raise MappingError(f"{field} is not finite")
    return result


def parse_timestamp(value: object) -> datetime | None:
    """Parse Schwab's timestamps (``2025-01-02T00:00:00+0000``, ``...000Z``, ``+00:00``).

    Returns:
        An aware datetime in its own offset (naive values are taken as UTC), or ``None``
        when ``value`` is missing or unparseable.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for pattern in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            try:
                parsed = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        else:
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MappingError(f"{what} is not an object")
    return value


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def map_account_numbers(data: object) -> Result[dict[str, str], ProviderProtocolError]:
    """``GET /accounts/accountNumbers`` → ``{accountNumber: hashValue}``."""
    if not isinstance(data, list):
        return Err(ProviderProtocolError("accountNumbers: expected a JSON array"))
    hashes: dict[str, str] = {}
    for entry in data:
        if not isinstance(entry, Mapping):
            return Err(ProviderProtocolError("accountNumbers: entry is not an object"))
        number, hash_value = _text(entry.get("accountNumber")), _text(entry.get("hashValue"))
        if number is None or hash_value is None:
            return Err(ProviderProtocolError("accountNumbers: entry lacks accountNumber/hashValue"))
        hashes[number] = hash_value
    return Ok(hashes)


def account_type(schwab_type: str | None) -> tuple[AccountType, str | None]:
    """Schwab's account ``type`` → (Dashtam type, subtype). MARGIN/CASH are brokerage."""
    if not schwab_type:
        return AccountType.BROKERAGE, None
    upper = schwab_type.upper()
    if "ROTH" in upper:
        return AccountType.ROTH_IRA, upper.lower()
    if "IRA" in upper:
        return AccountType.IRA, upper.lower()
    return AccountType.BROKERAGE, upper.lower()


def _balance(account: Mapping[str, Any], *names: str) -> Decimal | None:
    for section in ("currentBalances", "initialBalances"):
        balances = account.get(section)
        if not isinstance(balances, Mapping):
            continue
        for name in names:
            value = to_decimal(balances.get(name), field=f"{section}.{name}")
            if value is not None:
                return value
    return None


def securities_account(entry: object) -> Mapping[str, Any]:
    """The ``securitiesAccount`` of one ``/accounts`` element (or the element itself)."""
    element = _mapping(entry, "account")
    inner = element.get("securitiesAccount", element)
    return _mapping(inner, "securitiesAccount")


def map_account(
    entry: object, hash_value: str, *, as_of: datetime, currency: str = "USD"
) -> ProviderAccount:
    """One ``/accounts`` element → :class:`ProviderAccount`.

    ``balance_current`` is ``liquidationValue`` (cash plus positions) and
    ``balance_available`` the uninvested ``cashBalance``.

    Raises:
        MappingError: when the element is not an account object.
    """
    account = securities_account(entry)
    number = _text(account.get("accountNumber")) or ""
    kind, subtype = account_type(_text(account.get("type")))
    mask = number[-4:] if number else None
    label = (subtype or "brokerage").replace("_", " ").title()
    return ProviderAccount(
        provider_account_id=hash_value,
        name=f"Schwab {label} ...{mask}" if mask else f"Schwab {label}",
        type=kind,
        currency=currency,
        subtype=subtype,
        mask=mask,
        balance_current=_balance(account, "liquidationValue", "accountValue"),
        balance_available=_balance(account, "cashBalance", "totalCash"),
        balance_as_of=as_of,
    )


def map_accounts(
    data: object, hashes: Mapping[str, str], *, as_of: datetime, currency: str = "USD"
) -> Result[list[ProviderAccount], ProviderProtocolError]:
    """A ``GET /accounts`` answer → accounts, each addressed by its ``hashValue``.

    Args:
        data: the decoded answer (a JSON array of accounts).
        hashes: ``{accountNumber: hashValue}`` from ``/accounts/accountNumbers``.
        as_of: when the balances were read (the fetch time).
        currency: the settings' currency.
    """
    if not isinstance(data, list):
        return Err(ProviderProtocolError("Schwab /accounts: expected a JSON array"))
    accounts: list[ProviderAccount] = []
    try:
        for entry in data:
            number = str(securities_account(entry).get("accountNumber") or "")
            hash_value = hashes.get(number)
            if hash_value is None:
                return Err(
                    ProviderProtocolError(
                        f"Schwab account ...{number[-4:]} has no hashValue in accountNumbers"
                    )
                )
            accounts.append(map_account(entry, hash_value, as_of=as_of, currency=currency))
    except MappingError as exc:
        return Err(ProviderProtocolError(f"Schwab /accounts: {exc}"))
    return Ok(accounts)


def asset_type(instrument: Mapping[str, Any]) -> AssetType:
    """Schwab's ``assetType`` (+ ``type``) → :class:`AssetType`.

    ETFs arrive as ``COLLECTIVE_INVESTMENT``/``EXCHANGE_TRADED_FUND``; money-market funds as
    ``CASH_EQUIVALENT``/``MONEY_MARKET_FUND`` (or possibly ``MUTUAL_FUND`` with that type).
    """
    kind = (_text(instrument.get("assetType")) or "").upper()
    sub = (_text(instrument.get("type")) or "").upper()
    if kind == "EQUITY":
        return AssetType.EQUITY
    if kind == "COLLECTIVE_INVESTMENT":
        return AssetType.ETF if sub in _ETF_TYPES else AssetType.OTHER
    if kind == "OPTION":
        return AssetType.OPTION
    if kind == "MUTUAL_FUND":
        return AssetType.MONEY_MARKET if sub == "MONEY_MARKET_FUND" else AssetType.MUTUAL_FUND
    if kind == "CASH_EQUIVALENT":
        return AssetType.MONEY_MARKET if sub == "MONEY_MARKET_FUND" else AssetType.CASH_EQUIVALENT
    if kind == "FIXED_INCOME":
        return AssetType.FIXED_INCOME
    if kind == "CURRENCY":
        return AssetType.CASH_EQUIVALENT
    return AssetType.OTHER


def option_multiplier(instrument: Mapping[str, Any]) -> Decimal:
    """Shares per contract (``optionMultiplier``/``optionPremiumMultiplier``, else 100)."""
    for name in ("optionMultiplier", "optionPremiumMultiplier"):
        value = to_decimal(instrument.get(name), field=name)
        if value:
            return value
    return DEFAULT_OPTION_MULTIPLIER


def _derived_price(market_value: Decimal | None, units: Decimal) -> Decimal | None:
    if market_value is None or not units:
        return None
    price = abs(market_value) / abs(units)
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        price = price.quantize(_PRICE_QUANTUM)
    return price


def map_position(
    position: object, hash_value: str, *, as_of: datetime, currency: str = "USD"
) -> ProviderHolding:
    """One ``positions[]`` element → :class:`ProviderHolding`.

    Quantity is ``longQuantity - shortQuantity`` (options in contracts); ``instrument_id`` is
    the OCC symbol for options and the CUSIP (else the symbol) otherwise. ``averagePrice`` is
    per share, so an option's per-unit (per-contract) cost is ``averagePrice * multiplier``.
    ``price`` is per share, derived from ``marketValue``, which is signed like the quantity.

    Raises:
        MappingError: when the position has no instrument or no symbol.
    """
    data = _mapping(position, "position")
    instrument = _mapping(data.get("instrument"), "position.instrument")
    symbol = _text(instrument.get("symbol"))
    if symbol is None:
        raise MappingError("position.instrument has no symbol")
    kind = asset_type(instrument)
    long_qty = to_decimal(data.get("longQuantity"), field="longQuantity") or Decimal(0)
    short_qty = to_decimal(data.get("shortQuantity"), field="shortQuantity") or Decimal(0)
    quantity = long_qty - short_qty
    multiplier = option_multiplier(instrument) if kind is AssetType.OPTION else Decimal(1)
    market_value = to_decimal(data.get("marketValue"), field="marketValue")
    if market_value is not None and quantity < 0 < market_value:
        market_value = -market_value
    average_name = "averageShortPrice" if quantity < 0 else "averageLongPrice"
    average = to_decimal(data.get(average_name), field=average_name)
    if average is None:
        average = to_decimal(data.get("averagePrice"), field="averagePrice")
    cost_basis = (
        CostBasis.from_per_unit(average * multiplier, quantity)
        if average is not None and quantity
        else None
    )
    cusip = _text(instrument.get("cusip"))
    instrument_id = symbol if kind is AssetType.OPTION else (cusip or symbol)
    return ProviderHolding(
        provider_account_id=hash_value,
        instrument_id=instrument_id,
        symbol=symbol,
        asset_type=kind,
        quantity=quantity,
        currency=currency,
        as_of=as_of,
        name=_text(instrument.get("description")),
        cost_basis=cost_basis,
        price=_derived_price(market_value, quantity * multiplier),
        market_value=market_value,
    )


def map_positions(
    entry: object, hash_value: str, *, as_of: datetime, currency: str = "USD"
) -> Result[list[ProviderHolding], ProviderProtocolError]:
    """Every position of one ``/accounts/{hash}?fields=positions`` answer."""
    try:
        account = securities_account(entry)
        positions = account.get("positions") or []
        if not isinstance(positions, list):
            raise MappingError("securitiesAccount.positions is not an array")
        return Ok([map_position(p, hash_value, as_of=as_of, currency=currency) for p in positions])
    except MappingError as exc:
        return Err(ProviderProtocolError(f"Schwab positions: {exc}"))


__all__ = [
    "DEFAULT_OPTION_MULTIPLIER",
    "MappingError",
    "account_type",
    "asset_type",
    "decode_json",
    "map_account",
    "map_account_numbers",
    "map_accounts",
    "map_position",
    "map_positions",
    "option_multiplier",
    "parse_timestamp",
    "securities_account",
    "to_decimal",
]
