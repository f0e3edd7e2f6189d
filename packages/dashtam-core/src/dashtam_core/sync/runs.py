"""Sync runs: queued → running → succeeded | failed, at most one active run per connection.

The partial unique index ``uq_sync_runs_active_connection`` (connection_id WHERE status IN
('queued', 'running')) makes "a sync requested while one runs returns the running one" hold
across processes: :func:`queue_sync_run` inserts with ``ON CONFLICT DO NOTHING`` and otherwise
returns the active run.

Liveness: while a run executes, its worker stamps ``heartbeat_at`` every few seconds
(:func:`beat_sync_run`). A ``running`` run whose ``coalesce(heartbeat_at, started_at)`` is older
than a cut-off has lost its worker (SIGKILL, OOM, host loss); :func:`abandon_stale_runs` fails
it with one conditional ``UPDATE`` (the same SQL on SQLite and PostgreSQL), so a heartbeat that
commits first keeps the run alive and a run is never failed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import sync_runs
from dashtam_core.domain.ids import uuid7
from dashtam_core.sync.upsert import insert_for

_ACTIVE_WHERE = "status IN ('queued', 'running')"
#: The ``error`` of a run failed because its worker stopped sending heartbeats.
ABANDONED_ERROR = "abandoned (worker stopped)"


class SyncStatus(StrEnum):
    """Lifecycle of a sync run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


ACTIVE_STATUSES = (SyncStatus.QUEUED, SyncStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class SyncRun:
    """One sync of a connection (``GET /api/v1/syncs/{id}``)."""

    id: UUID
    connection_id: UUID
    status: SyncStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    heartbeat_at: datetime | None = None


def _run(r: Any) -> SyncRun:
    return SyncRun(
        id=r.id,
        connection_id=r.connection_id,
        status=SyncStatus(r.status),
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        counts=dict(r.counts or {}),
        error=r.error,
        heartbeat_at=r.heartbeat_at,
    )


async def get_sync_run(conn: AsyncConnection, sync_id: UUID) -> SyncRun | None:
    """One run by id (None when absent)."""
    r = (await conn.execute(select(sync_runs).where(sync_runs.c.id == sync_id))).one_or_none()
    return None if r is None else _run(r)


async def active_sync_run(conn: AsyncConnection, connection_id: UUID) -> SyncRun | None:
    """The connection's queued or running sync, if any."""
    r = (
        await conn.execute(
            select(sync_runs).where(
                sync_runs.c.connection_id == connection_id,
                sync_runs.c.status.in_([str(s) for s in ACTIVE_STATUSES]),
            )
        )
    ).one_or_none()
    return None if r is None else _run(r)


async def queue_sync_run(
    conn: AsyncConnection, connection_id: UUID, *, now: datetime | None = None
) -> tuple[SyncRun, bool]:
    """Queue a sync unless one is active; return ``(run, created)``."""
    now = now or datetime.now(UTC)
    for _ in range(3):
        ins = insert_for(conn, sync_runs)
        stmt = (
            ins.values(
                id=uuid7(),
                connection_id=connection_id,
                status=str(SyncStatus.QUEUED),
                counts={},
                created_at=now,
            )
            .on_conflict_do_nothing(
                index_elements=[sync_runs.c.connection_id], index_where=text(_ACTIVE_WHERE)
            )
            .returning(sync_runs.c.id)
        )
        new_id = (await conn.execute(stmt)).scalar_one_or_none()
        if new_id is not None:
            run = await get_sync_run(conn, new_id)
            assert run is not None
            return run, True
        active = await active_sync_run(conn, connection_id)
        if active is not None:
            return active, False
    raise RuntimeError("could not queue a sync run (the active run kept changing)")


async def start_sync_run(
    conn: AsyncConnection, sync_id: UUID, *, now: datetime | None = None
) -> bool:
    """Move a queued run to running; False when it was not queued."""
    result = await conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == sync_id, sync_runs.c.status == str(SyncStatus.QUEUED))
        .values(status=str(SyncStatus.RUNNING), started_at=now or datetime.now(UTC))
    )
    return bool(result.rowcount)


async def beat_sync_run(
    conn: AsyncConnection, sync_id: UUID, *, now: datetime | None = None
) -> bool:
    """Stamp a running run's ``heartbeat_at``; False when it is no longer running."""
    result = await conn.execute(
        update(sync_runs)
        .where(sync_runs.c.id == sync_id, sync_runs.c.status == str(SyncStatus.RUNNING))
        .values(heartbeat_at=now or datetime.now(UTC))
    )
    return bool(result.rowcount)


def stale_run(cutoff: datetime) -> ColumnElement[bool]:
    """The condition "a running run whose last sign of life is older than ``cutoff``"."""
    last_seen = func.coalesce(sync_runs.c.heartbeat_at, sync_runs.c.started_at)
    return (sync_runs.c.status == str(SyncStatus.RUNNING)) & (last_seen < cutoff)


async def abandon_stale_runs(
    conn: AsyncConnection,
    *,
    cutoff: datetime,
    sync_id: UUID | None = None,
    now: datetime | None = None,
) -> list[tuple[UUID, UUID]]:
    """Fail the running runs not heard from since ``cutoff``; return their ``(id, connection_id)``.

    Args:
        conn: the connection of the caller's open transaction.
        cutoff: runs whose ``coalesce(heartbeat_at, started_at)`` is older are abandoned.
        sync_id: only this run (``None``: every stale run).
        now: the ``finished_at`` to record.
    """
    condition = stale_run(cutoff)
    if sync_id is not None:
        condition = condition & (sync_runs.c.id == sync_id)
    rows = await conn.execute(
        update(sync_runs)
        .where(condition)
        .values(
            status=str(SyncStatus.FAILED),
            finished_at=now or datetime.now(UTC),
            error=ABANDONED_ERROR,
        )
        .returning(sync_runs.c.id, sync_runs.c.connection_id)
    )
    return sorted((r.id, r.connection_id) for r in rows)


async def finish_sync_run(
    conn: AsyncConnection,
    sync_id: UUID,
    *,
    succeeded: bool,
    counts: dict[str, Any] | None = None,
    error: str | None = None,
    now: datetime | None = None,
) -> bool:
    """End an active run as succeeded or failed; False when it was not active."""
    result = await conn.execute(
        update(sync_runs)
        .where(
            sync_runs.c.id == sync_id,
            sync_runs.c.status.in_([str(s) for s in ACTIVE_STATUSES]),
        )
        .values(
            status=str(SyncStatus.SUCCEEDED if succeeded else SyncStatus.FAILED),
            finished_at=now or datetime.now(UTC),
            counts=counts or {},
            error=error,
        )
    )
    return bool(result.rowcount)


__all__ = [
    "ABANDONED_ERROR",
    "ACTIVE_STATUSES",
    "SyncRun",
    "SyncStatus",
    "abandon_stale_runs",
    "active_sync_run",
    "beat_sync_run",
    "finish_sync_run",
    "get_sync_run",
    "queue_sync_run",
    "stale_run",
    "start_sync_run",
]
