"""Holdings: signed quantities, cost basis with explicit units."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID


class AssetType(StrEnum):
    """Instrument classes."""

    EQUITY = "equity"
    ETF = "etf"
    MUTUAL_FUND = "mutual_fund"
    MONEY_MARKET = "money_market"
    OPTION = "option"
    FIXED_INCOME = "fixed_income"
    CRYPTO = "crypto"
    CASH_EQUIVALENT = "cash_equivalent"
    OTHER = "other"


class CostBasisUnit(StrEnum):
    """Which cost-basis figure a provider reports natively (the other is derived)."""

    TOTAL = "total"
    PER_UNIT = "per_unit"


@dataclass(frozen=True, slots=True)
class CostBasis:
    """Cost basis in both units; ``reported`` says which one came from the provider."""

    total: Decimal | None
    per_unit: Decimal | None
    reported: CostBasisUnit

    @classmethod
    def from_total(cls, total: Decimal, quantity: Decimal) -> CostBasis:
        """Derive per-unit (always positive) from a reported total (signed like the quantity)."""
        per = abs(total) / abs(quantity) if quantity else None
        return cls(total=total, per_unit=per, reported=CostBasisUnit.TOTAL)

    @classmethod
    def from_per_unit(cls, per_unit: Decimal, quantity: Decimal) -> CostBasis:
        """Derive the total (signed like the quantity) from a reported per-unit cost."""
        return cls(total=per_unit * quantity, per_unit=per_unit, reported=CostBasisUnit.PER_UNIT)


@dataclass(slots=True)
class Holding:
    """A current or closed position (quantity 0 once it vanishes from the provider)."""

    id: UUID
    account_id: UUID
    instrument_id: str
    symbol: str
    asset_type: AssetType
    quantity: Decimal
    currency: str
    as_of: datetime
    name: str | None = None
    cost_basis_total: Decimal | None = None
    cost_basis_per_unit: Decimal | None = None
    cost_basis_reported: CostBasisUnit | None = None
    price: Decimal | None = None
    market_value: Decimal | None = None
    closed_at: datetime | None = None

    @property
    def unrealized_gain(self) -> Decimal | None:
        """Market value minus total cost basis, when both are known.

        Both figures carry the sign of the quantity (a short position has a negative market
        value and a negative cost basis), so the same subtraction holds for longs and shorts.
        """
        if self.market_value is None or self.cost_basis_total is None:
            return None
        return self.market_value - self.cost_basis_total


__all__ = ["AssetType", "CostBasis", "CostBasisUnit", "Holding"]
