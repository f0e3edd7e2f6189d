"""Explicit row → domain mapping for the financial data tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.domain.holding import AssetType, CostBasisUnit, Holding
from dashtam_core.domain.transaction import (
    SecurityLeg,
    Transaction,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)


def select_transactions() -> Select[Any]:
    """A SELECT of every transaction column (add your own WHERE / ORDER BY)."""
    return select(transactions)


def transaction_from_row(row: Any) -> Transaction:
    """Map a ``transactions`` row (mapping access) to the domain :class:`Transaction`."""
    m = row._mapping if hasattr(row, "_mapping") else row
    security = None
    if m["security_symbol"] is not None:
        security = SecurityLeg(
            symbol=m["security_symbol"],
            quantity=m["security_quantity"],
            price=m["security_price"],
            asset_type=m["security_asset_type"],
        )
    return Transaction(
        id=m["id"],
        account_id=m["account_id"],
        provider_transaction_id=m["provider_transaction_id"],
        dedupe_key=m["dedupe_key"],
        date=m["date"],
        amount=m["amount"],
        currency=m["currency"],
        description=m["description"],
        type=TransactionType(m["type"]),
        subtype=TransactionSubtype(m["subtype"]),
        status=TransactionStatus(m["status"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        posted_at=m["posted_at"],
        merchant=m["merchant"],
        pending_transaction_id=m["pending_transaction_id"],
        security=security,
        fees=m["fees"],
        removed_at=m["removed_at"],
        content_hash=m["content_hash"],
    )


def holding_from_row(row: Any) -> Holding:
    """Map a ``holdings`` row to the domain :class:`Holding`."""
    m = row._mapping if hasattr(row, "_mapping") else row
    reported = m["cost_basis_reported"]
    return Holding(
        id=m["id"],
        account_id=m["account_id"],
        instrument_id=m["instrument_id"],
        symbol=m["symbol"],
        asset_type=AssetType(m["asset_type"]),
        quantity=m["quantity"],
        currency=m["currency"],
        as_of=m["as_of"],
        name=m["name"],
        cost_basis_total=m["cost_basis_total"],
        cost_basis_per_unit=m["cost_basis_per_unit"],
        cost_basis_reported=None if reported is None else CostBasisUnit(reported),
        price=m["price"],
        market_value=m["market_value"],
        closed_at=m["closed_at"],
    )


__all__ = ["holding_from_row", "select_transactions", "transaction_from_row"]
