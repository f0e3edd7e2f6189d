"""``Money``: an exact Decimal amount in one ISO 4217 currency.

Amounts are stored exactly as the provider gave them; :meth:`Money.rounded` rounds to the
currency's minor unit (banker's rounding is *not* used: financial statements round half up).
Arithmetic across currencies raises :class:`CurrencyMismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor units for the currencies we meet; others default to 2.
MINOR_UNITS: dict[str, int] = {
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "CNY": 2,
    "HKD": 2,
    "INR": 2,
    "MXN": 2,
    "NZD": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "SGD": 2,
    "ZAR": 2,
    "BRL": 2,
    "PLN": 2,
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "CLP": 0,
    "VND": 0,
    "HUF": 2,
    "KWD": 3,
    "BHD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
    "IQD": 3,
    "LYD": 3,
}


class CurrencyMismatch(ValueError):
    """Arithmetic between two different currencies."""


class InvalidMoney(ValueError):
    """A value that is not an exact finite decimal, or a malformed currency code."""


def _check_currency(code: str) -> str:
    if len(code) != 3 or not code.isascii() or not code.isalpha() or not code.isupper():
        raise InvalidMoney(f"currency must be a 3-letter upper-case ISO 4217 code, got {code!r}")
    return code


def to_decimal(value: Decimal | int | str) -> Decimal:
    """Convert an exact value to Decimal; floats are refused (they are not exact)."""
    if isinstance(value, bool | float):
        raise InvalidMoney(f"refusing inexact value {value!r}; pass a str or Decimal")
    try:
        result = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, ValueError) as exc:
        raise InvalidMoney(f"not a decimal number: {value!r}") from exc
    if not result.is_finite():
        raise InvalidMoney(f"not a finite number: {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount))
        _check_currency(self.currency)

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str = "USD") -> Money:
        """Build from an exact value (``Money.of("12.34", "USD")``)."""
        return cls(to_decimal(amount), currency)

    @classmethod
    def zero(cls, currency: str = "USD") -> Money:
        """Zero in ``currency``."""
        return cls(Decimal(0), currency)

    @property
    def minor_units(self) -> int:
        """Digits after the decimal point for this currency."""
        return MINOR_UNITS.get(self.currency, 2)

    def rounded(self) -> Money:
        """Round half-up to the currency's minor unit."""
        quantum = Decimal(1).scaleb(-self.minor_units)
        return Money(self.amount.quantize(quantum, rounding=ROUND_HALF_UP), self.currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, bool | float) or not isinstance(factor, Decimal | int):
            raise TypeError("Money can be multiplied by an int or Decimal only")
        return Money(self.amount * factor, self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def is_zero(self) -> bool:
        """True when the amount is zero."""
        return self.amount == 0

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


__all__ = ["MINOR_UNITS", "CurrencyMismatch", "InvalidMoney", "Money", "to_decimal"]
