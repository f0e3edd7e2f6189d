"""Sync runs: queued → running → succeeded | failed, at most one active run per connection.

The partial unique index ``uq_sync_runs_active_connection`` (connection_id WHERE status IN
('queued', 'running')) makes "a sync requested while one runs returns the running one" hold
across processes: :func:`queue_sync_run` inserts with ``ON CONFLICT DO NOTHING`` and otherwise
returns the active run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import sync_runs
from dashtam_core.domain.ids import uuid7
from dashtam_core.sync.upsert import insert_for

_ACTIVE_WHERE = "status IN ('queued', 'running')"


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
    "ACTIVE_STATUSES",
    "SyncRun",
    "SyncStatus",
    "active_sync_run",
    "finish_sync_run",
    "get_sync_run",
    "queue_sync_run",
    "start_sync_run",
]
