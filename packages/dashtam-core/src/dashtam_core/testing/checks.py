"""Record-level checks shared by the integration and statement kits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.holding import AssetType, CostBasisUnit
from dashtam_core.domain.transaction import (
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from dashtam_core.ports.provider import ProviderAccount, ProviderHolding, ProviderTransaction
from dashtam_core.testing.support import check_currency, check_money

#: Subtypes whose sign is fixed by the convention (amount > 0 is money into the account).
#: ``None`` amounts of zero are allowed either way.
SIGNED_SUBTYPES: dict[TransactionSubtype, int] = {
    TransactionSubtype.BUY: -1,
    TransactionSubtype.SELL: 1,
    TransactionSubtype.DEPOSIT: 1,
    TransactionSubtype.WITHDRAWAL: -1,
    TransactionSubtype.FEE: -1,
    TransactionSubtype.COMMISSION: -1,
    TransactionSubtype.PURCHASE: -1,
    TransactionSubtype.REFUND: 1,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_account(account: ProviderAccount) -> None:
    """Id, name, type, ISO currency and Decimal balances."""
    assert account.provider_account_id, "an account without provider_account_id"
    assert isinstance(account.type, AccountType), account.type
    check_currency(account.currency, f"account {account.provider_account_id}")
    for label in ("balance_current", "balance_available"):
        value = getattr(account, label)
        if value is not None:
            check_money(value, f"account {account.provider_account_id} {label}")


def check_transaction(txn: ProviderTransaction) -> None:
    """Types, ISO currency, Decimal money, the sign convention and a dedupe key."""
    where = f"transaction {txn.provider_transaction_id}"
    assert txn.provider_transaction_id, "a transaction without provider_transaction_id"
    assert txn.dedupe_key, f"{where} has no dedupe_key"
    assert isinstance(txn.date, date), f"{where}: date must be a datetime.date"
    assert not isinstance(txn.date, datetime), f"{where}: date must be a date, not a datetime"
    assert isinstance(txn.type, TransactionType), txn.type
    assert isinstance(txn.subtype, TransactionSubtype), txn.subtype
    assert isinstance(txn.status, TransactionStatus), txn.status
    check_money(txn.amount, f"{where} amount")
    check_currency(txn.currency, where)
    if txn.fees is not None:
        check_money(txn.fees, f"{where} fees")
    if txn.security is not None:
        assert txn.security.symbol, f"{where}: a security leg without a symbol"
        for label in ("quantity", "price"):
            value = getattr(txn.security, label)
            if value is not None:
                check_money(value, f"{where} security {label}")
    sign = SIGNED_SUBTYPES.get(txn.subtype)
    if sign is not None and txn.amount != 0:
        assert (txn.amount > 0) == (sign > 0), (
            f"{where}: a {txn.subtype.value} of {txn.amount} breaks the sign convention "
            "(amount > 0 is money into the account)"
        )


def check_dedupe_keys(transactions: Iterable[ProviderTransaction]) -> None:
    """Dedupe keys are unique inside each account."""
    counts = Counter((t.provider_account_id, t.dedupe_key) for t in transactions)
    repeated = [key for key, n in counts.items() if n > 1]
    assert not repeated, f"dedupe keys repeat inside an account: {repeated[:5]}"


def check_holding(holding: ProviderHolding, unit: CostBasisUnit | None) -> None:
    """Instrument id, Decimal quantity and money, ISO currency, declared cost-basis unit."""
    where = f"holding {holding.instrument_id or holding.symbol}"
    assert holding.instrument_id, f"{where} has no instrument_id"
    assert isinstance(holding.asset_type, AssetType), holding.asset_type
    check_money(holding.quantity, f"{where} quantity")
    check_currency(holding.currency, where)
    for label in ("price", "market_value"):
        value = getattr(holding, label)
        if value is not None:
            check_money(value, f"{where} {label}")
    if holding.cost_basis is not None:
        assert holding.cost_basis.reported == unit, (
            f"{where}: cost basis reported as {holding.cost_basis.reported}, "
            f"the spec declares {unit}"
        )
        for label in ("total", "per_unit"):
            value = getattr(holding.cost_basis, label)
            if value is not None:
                check_money(value, f"{where} cost basis {label}")


def comparable_account(account: ProviderAccount) -> ProviderAccount:
    """The account without its observation time."""
    return replace(account, balance_as_of=None)


def comparable_holding(holding: ProviderHolding) -> ProviderHolding:
    """The holding without its observation time."""
    return replace(holding, as_of=_EPOCH)


def by_key(transactions: Iterable[ProviderTransaction]) -> dict[tuple[str, str], Decimal]:
    """``(account, dedupe_key) → amount``."""
    return {(t.provider_account_id, t.dedupe_key): t.amount for t in transactions}


__all__ = [
    "SIGNED_SUBTYPES",
    "by_key",
    "check_account",
    "check_dedupe_keys",
    "check_holding",
    "check_transaction",
    "comparable_account",
    "comparable_holding",
]
