"""Holdings snapshots: replace an account's positions set-based, keep history, refuse silent wipes.

Rules (sync.md 6 and 10):

* The provider's answer is the account's complete set of positions. Positions in the answer are
  upserted (one multi-row ``INSERT ... ON CONFLICT (account_id, instrument_id) DO UPDATE ...
  WHERE content_hash IS DISTINCT FROM excluded.content_hash OR closed_at IS NOT NULL``); stored open
  positions missing from it are closed: quantity 0, market value 0, ``closed_at`` set (price and
  cost basis keep their last known values).
* An **empty** answer while open positions exist is refused with
  :class:`SuspiciousEmptyAnswer` unless the caller passes ``allow_empty=True`` and a ``reason``,
  which is recorded on every closing history row.
* Every opened, changed or closed position appends one ``holding_snapshots`` row (the history).
  Identical re-snapshots write nothing and publish nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import insert, null, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import holding_snapshots, holdings
from dashtam_core.domain.events import HoldingsSnapshotted
from dashtam_core.domain.holding import Holding
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import Conflict, ValidationError
from dashtam_core.ports.provider import ProviderHolding
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.identity import holding_hash, invalid, validate_holdings
from dashtam_core.sync.outbox import write_events
from dashtam_core.sync.rows import holding_from_row
from dashtam_core.sync.upsert import insert_for

_CONTENT = (
    "symbol",
    "name",
    "asset_type",
    "quantity",
    "cost_basis_total",
    "cost_basis_per_unit",
    "cost_basis_reported",
    "price",
    "market_value",
    "currency",
    "as_of",
    "content_hash",
)


class SuspiciousEmptyAnswer(Conflict):
    """A provider answered "no positions" for an account that has some (nothing was wiped)."""

    code = "suspicious_empty_answer"


@dataclass(frozen=True, slots=True)
class HoldingsCounts:
    """What one holdings snapshot did; ``open_positions`` is the count after it."""

    opened: int = 0
    changed: int = 0
    closed: int = 0
    unchanged: int = 0
    open_positions: int = 0

    @property
    def written(self) -> bool:
        """True when any position changed."""
        return bool(self.opened or self.changed or self.closed)


def _row(account_id: UUID, h: ProviderHolding, digest: str, now: datetime) -> dict[str, Any]:
    basis = h.cost_basis
    return {
        "id": uuid7(),
        "account_id": account_id,
        "instrument_id": h.instrument_id,
        "symbol": h.symbol,
        "name": h.name,
        "asset_type": str(h.asset_type),
        "quantity": h.quantity,
        "cost_basis_total": None if basis is None else basis.total,
        "cost_basis_per_unit": None if basis is None else basis.per_unit,
        "cost_basis_reported": None if basis is None else str(basis.reported),
        "price": h.price,
        "market_value": h.market_value,
        "currency": h.currency,
        "as_of": h.as_of,
        "content_hash": digest,
        "created_at": now,
        "updated_at": now,
    }


def _history(row: dict[str, Any], change: str, reason: str | None, now: datetime) -> dict[str, Any]:
    return {
        "id": uuid7(),
        "account_id": row["account_id"],
        "instrument_id": row["instrument_id"],
        "symbol": row["symbol"],
        "quantity": row["quantity"],
        "cost_basis_total": row["cost_basis_total"],
        "cost_basis_per_unit": row["cost_basis_per_unit"],
        "price": row["price"],
        "market_value": row["market_value"],
        "currency": row["currency"],
        "as_of": row["as_of"],
        "change": change,
        "reason": reason,
        "recorded_at": now,
    }


async def snapshot_holdings(
    conn: AsyncConnection,
    *,
    user_id: UUID,
    account_id: UUID,
    records: Sequence[ProviderHolding],
    allow_empty: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> Result[HoldingsCounts, ValidationError | SuspiciousEmptyAnswer]:
    """Replace the account's positions with ``records`` (inside the caller's transaction).

    Args:
        conn: a connection inside an open transaction.
        user_id: the owner (for the ``HoldingsSnapshotted`` event).
        account_id: the stored account.
        records: the provider's complete list of positions for the account.
        allow_empty: accept an empty answer that closes every open position.
        reason: why an empty answer is trusted (required with ``allow_empty``; recorded).
        now: the unit's timestamp.

    Returns:
        ``Ok(HoldingsCounts)``, ``Err(ValidationError)`` for malformed records, or
        ``Err(SuspiciousEmptyAnswer)`` when an empty answer would wipe positions.
    """
    problems = validate_holdings(list(records))
    if problems:
        return Err(invalid(problems, "holdings"))
    if allow_empty and not reason:
        raise ValueError("allow_empty=True needs a reason to record")
    now = now or datetime.now(UTC)
    h = holdings
    stored = {
        r.instrument_id: r
        for r in (await conn.execute(select(h).where(h.c.account_id == account_id))).all()
    }
    open_stored = {k: r for k, r in stored.items() if r.closed_at is None}
    if not records and open_stored and not allow_empty:
        return Err(
            SuspiciousEmptyAnswer(
                f"the provider returned no positions but {len(open_stored)} are open; kept them"
            )
        )

    rows: list[dict[str, Any]] = []
    unchanged = 0
    for rec in records:
        digest = holding_hash(rec)
        old = stored.get(rec.instrument_id)
        if old is not None and old.closed_at is None and old.content_hash == digest:
            unchanged += 1
            continue
        rows.append(_row(account_id, rec, digest, now))

    history: list[dict[str, Any]] = []
    opened = changed = 0
    if rows:
        ins = insert_for(conn, h)
        set_: dict[str, Any] = {c: ins.excluded[c] for c in _CONTENT}
        set_.update(updated_at=ins.excluded.updated_at, closed_at=null())
        stmt = ins.on_conflict_do_update(
            index_elements=[h.c.account_id, h.c.instrument_id],
            set_=set_,
            where=h.c.content_hash.is_distinct_from(ins.excluded.content_hash)
            | h.c.closed_at.is_not(None),
        ).returning(h.c.instrument_id)
        by_key = {r["instrument_id"]: r for r in rows}
        for (key,) in await conn.execute(stmt, rows):
            old = stored.get(key)
            change = "opened" if old is None or old.closed_at is not None else "changed"
            opened += change == "opened"
            changed += change == "changed"
            history.append(_history(by_key[key], change, None, now))

    seen = {rec.instrument_id for rec in records}
    vanished = [r for k, r in open_stored.items() if k not in seen]
    if vanished:
        await conn.execute(
            update(h)
            .where(h.c.id.in_([r.id for r in vanished]), h.c.closed_at.is_(None))
            .values(quantity=Decimal(0), market_value=Decimal(0), closed_at=now, updated_at=now)
        )
        close_reason = reason if not records else "not in the provider's answer"
        for r in vanished:
            row = dict(r._mapping)
            row.update(quantity=Decimal(0), market_value=Decimal(0), as_of=now)
            history.append(_history(row, "closed", close_reason, now))
    if history:
        await conn.execute(insert(holding_snapshots), history)

    open_after = len(seen)
    counts = HoldingsCounts(opened, changed, len(vanished), unchanged, open_after)
    if counts.written:
        event = HoldingsSnapshotted(
            user_id=user_id,
            occurred_at=now,
            account_id=account_id,
            open_positions=open_after,
            closed_positions=len(vanished),
        )
        await write_events(conn, [event], now=now)
    return Ok(counts)


async def list_holdings(
    conn: AsyncConnection, account_id: UUID, *, include_closed: bool = False
) -> list[Holding]:
    """The account's positions ordered by symbol (open ones only unless ``include_closed``)."""
    h = holdings
    stmt = select(h).where(h.c.account_id == account_id)
    if not include_closed:
        stmt = stmt.where(h.c.closed_at.is_(None))
    return [holding_from_row(r) for r in await conn.execute(stmt.order_by(h.c.symbol, h.c.id))]


__all__ = ["HoldingsCounts", "SuspiciousEmptyAnswer", "list_holdings", "snapshot_holdings"]
