"""Money: exact, same-currency arithmetic, rounding to the minor unit (hypothesis properties)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashtam_core.domain.money import CurrencyMismatch, InvalidMoney, Money

amounts = st.decimals(
    min_value=Decimal("-1e12"),
    max_value=Decimal("1e12"),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)
currencies = st.sampled_from(["USD", "EUR", "JPY", "KWD"])


@given(amounts, amounts, currencies)
def test_addition_is_commutative_and_exact(a: Decimal, b: Decimal, cur: str) -> None:
    x, y = Money(a, cur), Money(b, cur)
    assert x + y == y + x
    assert (x + y).amount == a + b


@given(amounts, currencies)
def test_subtracting_self_is_zero_and_negation_inverts(a: Decimal, cur: str) -> None:
    m = Money(a, cur)
    assert (m - m).is_zero()
    assert -m.__neg__() == m
    assert m + (-m) == Money.zero(cur)


@given(amounts, currencies)
def test_rounding_uses_minor_units_and_is_idempotent(a: Decimal, cur: str) -> None:
    r = Money(a, cur).rounded()
    exponent = r.amount.as_tuple().exponent
    assert isinstance(exponent, int)
    assert -exponent == r.minor_units
    assert r.rounded() == r
    assert abs(r.amount - a) <= Decimal(1).scaleb(-r.minor_units) / 2


def test_rounding_is_half_up() -> None:
    assert Money.of("0.125").rounded().amount == Decimal("0.13")
    assert Money.of("-0.125").rounded().amount == Decimal("-0.13")
    assert Money.of("1.5", "JPY").rounded().amount == Decimal("2")
    assert Money.of("1.0005", "KWD").rounded().amount == Decimal("1.001")


def test_currency_mismatch_is_refused() -> None:
    with pytest.raises(CurrencyMismatch):
        _ = Money.of("1", "USD") + Money.of("1", "EUR")
    with pytest.raises(CurrencyMismatch):
        _ = Money.of("1", "USD") < Money.of("1", "EUR")


@pytest.mark.parametrize("bad", [1.5, "abc", "NaN", "Infinity", True])
def test_inexact_or_invalid_amounts_are_refused(bad: object) -> None:
    with pytest.raises(InvalidMoney):
        Money.of(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "12$", ""])
def test_bad_currency_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidMoney):
        Money.of("1", code)


def test_scale_is_kept_exactly() -> None:
    assert str(Money.of("12.30").amount) == "12.30"
    assert str(Money.of("0.123456789").amount) == "0.123456789"


def test_multiplication_by_int_and_decimal_only() -> None:
    assert Money.of("2.50") * 3 == Money.of("7.50")
    assert Decimal("0.5") * Money.of("3") == Money.of("1.5")
    with pytest.raises(TypeError):
        _ = Money.of("1") * 1.5  # type: ignore[operator]
