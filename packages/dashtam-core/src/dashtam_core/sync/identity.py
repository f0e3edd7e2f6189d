"""Record validation and content hashes: what makes two versions of a record "the same".

The content hash covers every normalized field that is stored and shown (never the lineage the
engine adds itself, never timestamps of our own). Equal hash = nothing to write; that is how a
re-sync of identical data writes zero rows. Decimals are hashed as the provider gave them
(``"12.30"`` and ``"12.3"`` differ: storage keeps the provider's scale, so a new scale is a change).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
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


def _finite(value: object) -> bool:
    return type(value) is Decimal and value.is_finite()


def _fast_valid(r: ProviderTransaction) -> bool:
    """True when ``r`` passes every per-record check (exact types only; else see the slow path)."""
    key, ptid, posted, amount, fees, sec = (
        r.dedupe_key,
        r.provider_transaction_id,
        r.posted_at,
        r.amount,
        r.fees,
        r.security,
    )
    return (
        type(key) is str
        and 0 < len(key) <= _MAX_KEY
        and type(ptid) is str
        and 0 < len(ptid) <= _MAX_KEY
        and type(r.date) is date
        and (posted is None or (type(posted) is datetime and posted.tzinfo is not None))
        and type(amount) is Decimal
        and amount.is_finite()
        and (fees is None or (type(fees) is Decimal and fees.is_finite()))
        and type(r.currency) is str
        and r.currency in _KNOWN_CURRENCIES
        and type(r.description) is str
        and type(r.type) is TransactionType
        and type(r.subtype) is TransactionSubtype
        and type(r.status) is TransactionStatus
        and (
            sec is None
            or (
                (
                    sec.quantity is None
                    or (type(sec.quantity) is Decimal and sec.quantity.is_finite())
                )
                and (sec.price is None or (type(sec.price) is Decimal and sec.price.is_finite()))
            )
        )
    )


#: Currencies already seen to match ``[A-Z]{3}`` (at most 26**3 entries).
_KNOWN_CURRENCIES: set[str] = set()


def _record_problems(errors: list[FieldError], i: int, r: ProviderTransaction) -> None:
    """Append the problems of record ``i`` to ``errors`` (nothing when it is valid)."""
    currency = r.currency
    if (
        type(currency) is str
        and currency not in _KNOWN_CURRENCIES
        and _CURRENCY.fullmatch(currency)
    ):
        _KNOWN_CURRENCIES.add(currency)
    if _fast_valid(r):
        return
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


def iter_checked(
    records: Sequence[ProviderTransaction], errors: list[FieldError]
) -> Iterator[tuple[ProviderTransaction, str]]:
    """Validate and hash lazily: yield each distinct record once with its content hash.

    Problems are appended to ``errors``; after the first one nothing more is yielded, but the
    remaining records are still checked so that ``errors`` lists every problem once the
    iterator is exhausted. Identical repeats of a key collapse; a key with two different
    contents is a ``duplicate_key`` problem. The one-account-per-batch rule is not checked here
    (see :func:`checked_transactions`).

    Args:
        records: the provider's normalized records.
        errors: receives the problems.

    Yields:
        ``(record, content_hash)`` in first-seen order, while ``errors`` stays empty.
    """
    seen: dict[str, str] = {}
    for i, r in enumerate(records):
        _record_problems(errors, i, r)
        if errors:
            continue
        digest = transaction_hash(r)
        known = seen.get(r.dedupe_key)
        if known is None:
            seen[r.dedupe_key] = digest
            yield r, digest
        elif known != digest:
            p = f"transactions[{i}]"
            errors.append(
                FieldError(f"{p}.dedupe_key", "duplicate_key", "two different records share a key")
            )


def mixed_accounts(records: Sequence[ProviderTransaction]) -> list[FieldError]:
    """The one-account-per-batch problem, if ``records`` name several provider accounts."""
    if len({r.provider_account_id for r in records}) > 1:
        return [FieldError("provider_account_id", "mixed_accounts", "one account per batch")]
    return []


def checked_transactions(
    records: Sequence[ProviderTransaction],
) -> tuple[list[FieldError], list[tuple[ProviderTransaction, str]]]:
    """Validate and hash in one pass.

    Returns:
        The problems, and (when there are none) each distinct record once with its content
        hash, in first-seen order (identical repeats collapse).
    """
    errors = mixed_accounts(records)
    unique = list(iter_checked(records, errors))
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
    "iter_checked",
    "mixed_accounts",
    "transaction_hash",
    "validate_holdings",
    "validate_transactions",
]
