"""Record validation and content hashes: what makes two versions of a record "the same".

The content hash covers every normalized field that is stored and shown (never the lineage the
engine adds itself, never timestamps of our own). Equal hash = nothing to write; that is how a
re-sync of identical data writes zero rows. Decimals are hashed as the provider gave them
(``"12.30"`` and ``"12.3"`` differ: storage keeps the provider's scale, so a new scale is a change).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from dashtam_core.domain.holding import AssetType, CostBasisUnit
from dashtam_core.domain.transaction import TransactionStatus, TransactionSubtype, TransactionType
from dashtam_core.errors import FieldError, ValidationError
from dashtam_core.ports.provider import ProviderHolding, ProviderTransaction

_CURRENCY = re.compile(r"[A-Z]{3}")
_SEP = "\x1f"
_MAX_KEY = 255


def _dec(value: Decimal | None) -> str:
    return "" if value is None else str(value)


def _digest(parts: list[str]) -> str:
    return hashlib.blake2b(_SEP.join(parts).encode(), digest_size=16).hexdigest()


def transaction_hash(record: ProviderTransaction) -> str:
    """Return the content hash of a normalized transaction (32 hex characters).

    Args:
        record: the provider's normalized transaction.

    Returns:
        A stable digest of every stored field of the record.
    """
    sec = record.security
    return _digest(
        [
            record.provider_transaction_id,
            record.date.isoformat(),
            "" if record.posted_at is None else record.posted_at.isoformat(),
            str(record.amount),
            record.currency,
            record.description,
            record.merchant or "",
            str(record.type),
            str(record.subtype),
            str(record.status),
            record.pending_link or "",
            "" if sec is None else sec.symbol,
            "" if sec is None else _dec(sec.quantity),
            "" if sec is None else _dec(sec.price),
            "" if sec is None else (sec.asset_type or ""),
            _dec(record.fees),
        ]
    )


def holding_hash(record: ProviderHolding) -> str:
    """Return the content hash of a position (quantity, prices, cost basis, as-of, names)."""
    basis = record.cost_basis
    return _digest(
        [
            record.instrument_id,
            record.symbol,
            record.name or "",
            str(record.asset_type),
            str(record.quantity),
            "" if basis is None else _dec(basis.total),
            "" if basis is None else _dec(basis.per_unit),
            "" if basis is None else str(basis.reported),
            _dec(record.price),
            _dec(record.market_value),
            record.currency,
            record.as_of.isoformat(),
        ]
    )


def _check_decimal(
    errors: list[FieldError], p: str, name: str, value: object, *, required: bool = False
) -> None:
    if value is None:
        if required:
            errors.append(FieldError(f"{p}.{name}", "missing", "a decimal value is required"))
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        errors.append(
            FieldError(f"{p}.{name}", "not_decimal", f"expected a finite Decimal: {value!r}")
        )


def _check_currency(errors: list[FieldError], p: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        errors.append(
            FieldError(f"{p}.{name}", "invalid_currency", f"not an ISO 4217 code: {value!r}")
        )


def _check_key(errors: list[FieldError], p: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value or len(value) > _MAX_KEY:
        errors.append(FieldError(f"{p}.{name}", "invalid_key", f"1-{_MAX_KEY} characters required"))


def _check_aware(
    errors: list[FieldError], p: str, name: str, value: object, *, required: bool = False
) -> None:
    if value is None and required:
        errors.append(FieldError(f"{p}.{name}", "missing", "a timestamp is required"))
    elif value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        errors.append(
            FieldError(f"{p}.{name}", "naive_datetime", "a timezone-aware datetime is required")
        )


def _check_text(errors: list[FieldError], p: str, name: str, value: object) -> None:
    if not isinstance(value, str):
        errors.append(FieldError(f"{p}.{name}", "invalid", "a string is required"))


def _check_enum(errors: list[FieldError], p: str, name: str, value: object, enum: type) -> None:
    if type(value) is enum:
        return
    try:
        enum(value)
    except ValueError:
        errors.append(FieldError(f"{p}.{name}", "invalid_choice", f"unknown value {value!r}"))


def validate_transactions(records: list[ProviderTransaction]) -> list[FieldError]:
    """Check every record; return the problems (an empty list when all are valid).

    Rules: ISO 4217 currency, exact finite ``Decimal`` money, a real ``date`` (not a datetime),
    aware ``posted_at``, non-empty keys of at most 255 characters, known type/subtype/status,
    one provider account per batch, and one content per ``dedupe_key``.
    """
    return checked_transactions(records)[0]


def checked_transactions(
    records: Sequence[ProviderTransaction],
) -> tuple[list[FieldError], list[tuple[ProviderTransaction, str]]]:
    """Validate and hash in one pass.

    Returns:
        The problems, and (when there are none) each distinct record once with its content
        hash, in first-seen order (identical repeats collapse).
    """
    errors: list[FieldError] = []
    seen: dict[str, str] = {}
    unique: list[tuple[ProviderTransaction, str]] = []
    accounts = {r.provider_account_id for r in records}
    if len(accounts) > 1:
        errors.append(FieldError("provider_account_id", "mixed_accounts", "one account per batch"))
    for i, r in enumerate(records):
        p = f"transactions[{i}]"
        _check_key(errors, p, "dedupe_key", r.dedupe_key)
        _check_key(errors, p, "provider_transaction_id", r.provider_transaction_id)
        if not isinstance(r.date, date) or isinstance(r.date, datetime):
            errors.append(FieldError(f"{p}.date", "invalid_date", "a calendar date is required"))
        _check_aware(errors, p, "posted_at", r.posted_at)
        _check_decimal(errors, p, "amount", r.amount, required=True)
        _check_decimal(errors, p, "fees", r.fees)
        _check_currency(errors, p, "currency", r.currency)
        _check_text(errors, p, "description", r.description)
        _check_enum(errors, p, "type", r.type, TransactionType)
        _check_enum(errors, p, "subtype", r.subtype, TransactionSubtype)
        _check_enum(errors, p, "status", r.status, TransactionStatus)
        if r.security is not None:
            _check_decimal(errors, p, "security.quantity", r.security.quantity)
            _check_decimal(errors, p, "security.price", r.security.price)
        if errors:
            continue
        digest = transaction_hash(r)
        known = seen.get(r.dedupe_key)
        if known is None:
            seen[r.dedupe_key] = digest
            unique.append((r, digest))
        elif known != digest:
            errors.append(
                FieldError(f"{p}.dedupe_key", "duplicate_key", "two different records share a key")
            )
    return errors, ([] if errors else unique)


def validate_holdings(records: list[ProviderHolding]) -> list[FieldError]:
    """Check positions: Decimal quantities and prices, currency, aware as-of, unique instruments."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, h in enumerate(records):
        p = f"holdings[{i}]"
        _check_key(errors, p, "instrument_id", h.instrument_id)
        _check_key(errors, p, "symbol", h.symbol)
        _check_decimal(errors, p, "quantity", h.quantity, required=True)
        _check_decimal(errors, p, "price", h.price)
        _check_decimal(errors, p, "market_value", h.market_value)
        if h.cost_basis is not None:
            _check_decimal(errors, p, "cost_basis.total", h.cost_basis.total)
            _check_decimal(errors, p, "cost_basis.per_unit", h.cost_basis.per_unit)
            _check_enum(errors, p, "cost_basis.reported", h.cost_basis.reported, CostBasisUnit)
        _check_currency(errors, p, "currency", h.currency)
        _check_enum(errors, p, "asset_type", h.asset_type, AssetType)
        _check_aware(errors, p, "as_of", h.as_of, required=True)
        if h.instrument_id in seen:
            errors.append(
                FieldError(f"{p}.instrument_id", "duplicate_key", "instrument listed twice")
            )
        seen.add(h.instrument_id)
    return errors


def invalid(errors: list[FieldError], what: str) -> ValidationError:
    """Build the ValidationError returned for a rejected batch (first problems in the message)."""
    head = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
    return ValidationError(f"invalid {what}: {head}", errors=errors)


__all__ = [
    "checked_transactions",
    "holding_hash",
    "invalid",
    "transaction_hash",
    "validate_holdings",
    "validate_transactions",
]
