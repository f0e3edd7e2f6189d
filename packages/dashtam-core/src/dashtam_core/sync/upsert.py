"""Set-based transaction writes: one state read per call, one multi-row upsert per batch.

PostgreSQL (all rows of a batch as one array per column)::

    INSERT INTO transactions (...) SELECT ... FROM unnest($1::uuid[], $2::text[], ...) AS src(...)
    ON CONFLICT (account_id, dedupe_key) DO UPDATE SET ...
    WHERE transactions.removed_reason IS DISTINCT FROM 'settled'
      AND (transactions.content_hash IS DISTINCT FROM excluded.content_hash
           OR transactions.removed_at IS NOT NULL)
    RETURNING id, dedupe_key

SQLite: the same upsert (``IS NOT``) as multi-row ``VALUES`` pages. :func:`stored_state` reads
the content hash of every key first, so records whose stored hash already matches never reach the
statement: an identical re-sync only reads and writes nothing. The ``WHERE`` clause keeps the
statement correct even if a concurrent writer got there first. Each row carries a fresh UUIDv7:
when RETURNING gives that id back the row was inserted, otherwise the existing row was updated
(the same on both databases; ``xmax = 0`` is not needed).

A row the provider withdrew (``removed_reason = 'withdrawn'``) that comes back is revived and
reported ``added``; a pending row settled by its posted row (``'settled'``) is frozen forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    String,
    and_,
    bindparam,
    func,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import ConfigurationError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.sync.bulk import unnest_select
from dashtam_core.sync.changes import ADDED, MODIFIED

SETTLED = "settled"
WITHDRAWN = "withdrawn"

#: Columns overwritten when a stored transaction's content changed.
CONTENT_COLUMNS = (
    "provider_transaction_id",
    "date",
    "posted_at",
    "amount",
    "currency",
    "description",
    "merchant",
    "type",
    "subtype",
    "status",
    "pending_link",
    "security_symbol",
    "security_quantity",
    "security_price",
    "security_asset_type",
    "fees",
    "content_hash",
)
_IN_CHUNK = 900
_PG_KEYS_CHUNK = 20000


@dataclass(frozen=True, slots=True)
class Written:
    """A transaction row written by an upsert."""

    id: UUID
    kind: str  # added | modified
    status: str
    date: date
    key: str = ""  # the row's dedupe_key


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one batch upsert did."""

    written: list[Written]
    unchanged: int


def insert_for(conn: AsyncConnection, table: Any) -> Any:
    """The dialect's ``INSERT`` construct that supports ``ON CONFLICT`` (PostgreSQL, SQLite)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ConfigurationError(f"the sync engine does not support the {name!r} database")


def _row(
    account_id: UUID, record: ProviderTransaction, digest: str, now: datetime
) -> dict[str, Any]:
    sec = record.security
    return {
        "id": uuid7(),
        "account_id": account_id,
        "provider_transaction_id": record.provider_transaction_id,
        "dedupe_key": record.dedupe_key,
        "date": record.date,
        "posted_at": record.posted_at,
        "amount": record.amount,
        "currency": record.currency,
        "description": record.description,
        "merchant": record.merchant,
        "type": str(record.type),
        "subtype": str(record.subtype),
        "status": str(record.status),
        "pending_link": record.pending_link,
        "security_symbol": None if sec is None else sec.symbol,
        "security_quantity": None if sec is None else sec.quantity,
        "security_price": None if sec is None else sec.price,
        "security_asset_type": None if sec is None else sec.asset_type,
        "fees": record.fees,
        "content_hash": digest,
        "created_at": now,
        "updated_at": now,
    }


@dataclass(frozen=True, slots=True)
class Stored:
    """The stored state of a key that matters to the upsert."""

    content_hash: str
    removed: bool
    removed_reason: str | None


async def stored_state(
    conn: AsyncConnection, account_id: UUID, keys: Sequence[str]
) -> dict[str, Stored]:
    """Read the stored state of ``keys`` in the account, in a few set-based queries.

    PostgreSQL joins the table with ``unnest($keys)`` (a hash or index join whatever the
    statistics say: a first sync writes into a table that was never analyzed, where a long
    ``= ANY(...)`` filter would be checked row by row); SQLite uses ``IN`` lists on the unique
    index.
    """
    t = transactions
    cols = (t.c.dedupe_key, t.c.content_hash, t.c.removed_at, t.c.removed_reason)
    found: dict[str, Stored] = {}
    pg = conn.dialect.name == "postgresql"
    step = _PG_KEYS_CHUNK if pg else _IN_CHUNK
    for i in range(0, len(keys), step):
        chunk = list(keys[i : i + step])
        if pg:
            wanted = (
                func.unnest(bindparam(None, chunk, type_=postgresql.ARRAY(String())))
                .table_valued("key")
                .render_derived()
            )
            stmt = (
                select(*cols)
                .select_from(t.join(wanted, t.c.dedupe_key == wanted.c.key))
                .where(t.c.account_id == account_id)
            )
        else:
            stmt = select(*cols).where(t.c.account_id == account_id, t.c.dedupe_key.in_(chunk))
        for key, digest, removed_at, reason in await conn.execute(stmt):
            found[key] = Stored(digest, removed_at is not None, reason)
    return found


async def upsert_batch(
    conn: AsyncConnection,
    account_id: UUID,
    batch: Sequence[tuple[ProviderTransaction, str]],
    now: datetime,
    existing: dict[str, Stored],
) -> BatchResult:
    """Write one batch of ``(record, content_hash)`` pairs (keys unique within the batch).

    Args:
        conn: a connection inside the caller's transaction.
        account_id: the stored account the records belong to.
        batch: records with their precomputed content hashes.
        now: the unit's timestamp (``created_at`` / ``updated_at``).
        existing: :func:`stored_state` of (at least) the batch's keys.

    Returns:
        The rows actually written and how many records needed nothing.
    """
    if not batch:
        return BatchResult([], 0)
    t = transactions
    rows: list[dict[str, Any]] = []
    revived: set[str] = set()
    for record, digest in batch:
        old = existing.get(record.dedupe_key)
        if old is not None:
            if old.removed_reason == SETTLED or (old.content_hash == digest and not old.removed):
                continue
            if old.removed:
                revived.add(record.dedupe_key)
        rows.append(_row(account_id, record, digest, now))
    if not rows:
        return BatchResult([], len(batch))

    pg = conn.dialect.name == "postgresql"
    ins = insert_for(conn, t)
    if pg:
        names = list(rows[0])
        ins = ins.from_select(names, unnest_select(t, names, rows))
    set_: dict[str, Any] = {c: ins.excluded[c] for c in CONTENT_COLUMNS}
    # No bound parameters outside VALUES (NULL and the literal are inlined): otherwise
    # SQLAlchemy cannot page the executemany into multi-row VALUES statements.
    set_.update(updated_at=ins.excluded.updated_at, removed_at=null(), removed_reason=null())
    stmt = ins.on_conflict_do_update(
        index_elements=[t.c.account_id, t.c.dedupe_key],
        set_=set_,
        where=and_(
            t.c.removed_reason.is_distinct_from(literal_column(f"'{SETTLED}'")),
            or_(
                t.c.content_hash.is_distinct_from(ins.excluded.content_hash),
                t.c.removed_at.is_not(None),
            ),
        ),
    ).returning(t.c.id, t.c.dedupe_key)
    proposed = {r["dedupe_key"]: r for r in rows}
    written: list[Written] = []
    # PostgreSQL: one INSERT ... SELECT FROM unnest(arrays). SQLite: executemany + RETURNING,
    # which SQLAlchemy's "insertmanyvalues" pages into multi-row VALUES statements from one
    # cached compilation (a literal multi-row .values() would recompile every batch).
    result = await conn.execute(stmt) if pg else await conn.execute(stmt, rows)
    for tx_id, key in result:
        row = proposed[key]
        kind = ADDED if tx_id == row["id"] or key in revived else MODIFIED
        written.append(Written(tx_id, kind, row["status"], row["date"], key))
    return BatchResult(written, len(batch) - len(written))


async def mark_removed(
    conn: AsyncConnection, ids: Sequence[UUID], *, reason: str, now: datetime
) -> None:
    """Set ``removed_at`` / ``removed_reason`` on live rows ``ids`` (chunked IN lists)."""
    for i in range(0, len(ids), _IN_CHUNK):
        await conn.execute(
            update(transactions)
            .where(
                transactions.c.id.in_(list(ids[i : i + _IN_CHUNK])),
                transactions.c.removed_at.is_(None),
            )
            .values(removed_at=now, removed_reason=reason, updated_at=now)
        )


async def missing_in_window(
    conn: AsyncConnection, account_id: UUID, start: date, end: date, seen_keys: set[str]
) -> list[UUID]:
    """Live rows of the account dated in ``[start, end]`` whose key is not in ``seen_keys``."""
    t = transactions
    result = await conn.execute(
        select(t.c.id, t.c.dedupe_key)
        .where(
            t.c.account_id == account_id,
            t.c.removed_at.is_(None),
            t.c.date >= start,
            t.c.date <= end,
        )
        .order_by(t.c.date, t.c.id)
    )
    return [tx_id for tx_id, key in result if key not in seen_keys]


__all__ = [
    "CONTENT_COLUMNS",
    "SETTLED",
    "WITHDRAWN",
    "BatchResult",
    "Stored",
    "Written",
    "insert_for",
    "mark_removed",
    "missing_in_window",
    "stored_state",
    "upsert_batch",
]
