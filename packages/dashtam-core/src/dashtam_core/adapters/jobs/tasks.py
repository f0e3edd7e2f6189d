"""The background jobs: tasks, their schedules, and how a process runs them.

:class:`JobQueue` registers the tasks on a broker, bound to one application container:

=============================== ============== =================================================
task                            schedule       what it does (each is safe to run twice / kill)
=============================== ============== =================================================
``dashtam.sync_connection``     on demand      runs a queued ``sync_runs`` row (only one process
                                               can move it to ``running``)
``dashtam.scheduled_syncs``     every 15 min   fails ``running`` runs without a heartbeat
                                               for ``stale_after`` (their worker died) and
                                               re-syncs their connections; queues syncs of
                                               connections not synced for ``sync_interval``;
                                               re-kicks queued runs nobody started
``dashtam.refresh_tokens``      every 5 min    refreshes OAuth access tokens expiring soon
                                               (serialized per connection)
``dashtam.expiry_warnings``     hourly         ``ConnectionExpiring`` days ahead (once each)
``dashtam.dispatch_outbox``     every minute   publishes outbox events on the message bus
``dashtam.prune``               daily          deletes expired OAuth states, one-time tokens,
                                               long-expired sessions, dispatched outbox rows
                                               older than ``event_retention_days``
=============================== ============== =================================================

Run modes: :meth:`JobQueue.run_worker` (``dashtam worker``), :meth:`JobQueue.run_scheduler`
(``dashtam scheduler``) and :meth:`JobQueue.start_in_process` (embedded default inside
``dashtam serve``: the in-memory broker runs what the in-process scheduler kicks).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import delete, select
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, TaskiqScheduler
from taskiq.api import run_receiver_task, run_scheduler_task
from taskiq.schedule_sources import LabelScheduleSource

from dashtam_core.adapters.jobs.broker import build_broker
from dashtam_core.adapters.sqlalchemy.tables import (
    oauth_states,
    one_time_tokens,
    provider_connections,
    sessions,
)
from dashtam_core.adapters.sqlalchemy.tables_data import outbox, sync_runs
from dashtam_core.application.audit import Origin, origin_from_job, origin_to_job
from dashtam_core.application.connections import expiry_warnings, refresh_credentials
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import (
    HEARTBEAT_EVERY,
    STALE_AFTER,
    fail_stale_runs,
    queue_sync,
    run_sync,
)
from dashtam_core.domain.connection import AuthType, ConnectionStatus
from dashtam_core.errors import DashtamError
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.runs import SyncRun, SyncStatus

log = structlog.get_logger(__name__)

#: A connection is synced by the scheduler when its last sync is older than this.
DEFAULT_SYNC_INTERVAL = timedelta(hours=6)
#: A queued run nobody started within this time is kicked again.
REKICK_AFTER = timedelta(minutes=5)
#: OAuth access tokens expiring within this window are refreshed ahead of time.
REFRESH_AHEAD = timedelta(minutes=10)
#: Days of warning before an OAuth authorization dies.
EXPIRY_WARNING_DAYS = 2
#: Retention of expired sessions (dispatched outbox rows: ``settings.event_retention_days``).
RETENTION = timedelta(days=30)


_CountTask = AsyncTaskiqDecoratedTask[[], Coroutine[Any, Any, int]]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Tasks:
    """The registered tasks (kick them with ``await task.kiq(...)``)."""

    #: ``(sync_id, scope=None, force=False, start_date=None, requested_by=None)`` (ISO date
    #: string; ``requested_by``: the audit origin of whoever asked, see ``origin_to_job``).
    sync_connection: AsyncTaskiqDecoratedTask[..., Coroutine[Any, Any, dict[str, Any]]]
    scheduled_syncs: _CountTask
    refresh_tokens: _CountTask
    expiry_warnings: _CountTask
    dispatch_outbox: _CountTask
    prune: _CountTask


class JobQueue:
    """Background jobs of one process, bound to its container.

    Args:
        container: the process's application container.
        broker: a taskiq broker (default: :func:`build_broker` for the container's settings).
        sync_interval: how often the scheduler syncs each connection.
        scheduled_origin: the audit origin of scheduled syncs (``SYSTEM`` in ``dashtam
            worker`` and the in-process scheduler; ``None``: not audited).
        heartbeat_every: how often a sync run by this process stamps its ``heartbeat_at``.
        stale_after: a ``running`` run without a heartbeat for this long lost its worker and
            is failed as abandoned (by the scheduler, or when a new sync is asked for).
    """

    def __init__(
        self,
        container: Container,
        broker: AsyncBroker | None = None,
        *,
        sync_interval: timedelta = DEFAULT_SYNC_INTERVAL,
        scheduled_origin: Origin | None = None,
        heartbeat_every: timedelta = HEARTBEAT_EVERY,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self.container = container
        self.scheduled_origin = scheduled_origin
        self.broker = broker or build_broker(container.settings)
        self.sync_interval = sync_interval
        self.heartbeat_every = heartbeat_every
        self.stale_after = stale_after
        self.tasks = self._register()
        self._background: asyncio.Task[None] | None = None

    # -- task bodies ---------------------------------------------------------------------------

    async def _sync(
        self,
        sync_id: str,
        scope: list[str] | None = None,
        force: bool = False,
        start_date: str | None = None,
        requested_by: dict[str, str | None] | None = None,
    ) -> dict[str, Any]:
        result = await run_sync(
            self.container,
            UUID(sync_id),
            scope=scope,
            force=force,
            start_date=date.fromisoformat(start_date) if start_date else None,
            origin=origin_from_job(requested_by),
            heartbeat_every=self.heartbeat_every,
        )
        if isinstance(result, Err):
            return {"id": sync_id, "status": "missing", "error": result.error.message}
        run = result.value
        return {"id": str(run.id), "status": str(run.status), "error": run.error}

    async def _scheduled_syncs(self) -> int:
        """Fail abandoned runs, queue due syncs (and syncs of the connections whose run was
        abandoned), re-kick orphaned queued runs; return how many were kicked."""
        c = self.container
        abandoned = await fail_stale_runs(
            c, stale_after=self.stale_after, origin=self.scheduled_origin
        )
        now = _now()
        pc = provider_connections
        api_slugs = [
            p.spec.slug for p in c.plugins.providers if p.spec.auth_type != AuthType.FILE_IMPORT
        ]
        async with c.engine.connect() as db:
            due = (
                (
                    await db.execute(
                        select(pc.c.id).where(
                            pc.c.status.in_(
                                [str(ConnectionStatus.ACTIVE), str(ConnectionStatus.ERROR)]
                            ),
                            pc.c.provider.in_(api_slugs),
                            (pc.c.last_synced_at.is_(None))
                            | (pc.c.last_synced_at < now - self.sync_interval),
                        )
                    )
                )
                .scalars()
                .all()
            )
            orphans = (
                (
                    await db.execute(
                        select(sync_runs.c.id).where(
                            sync_runs.c.status == str(SyncStatus.QUEUED),
                            sync_runs.c.created_at < now - REKICK_AFTER,
                        )
                    )
                )
                .scalars()
                .all()
            )
        kicked = {str(r) for r in orphans}
        for connection_id in sorted({*due, *abandoned}):
            queued = await queue_sync(
                c, connection_id, origin=self.scheduled_origin, stale_after=self.stale_after
            )
            if isinstance(queued, Ok) and queued.value.status == SyncStatus.QUEUED:
                kicked.add(str(queued.value.id))
        requested_by = origin_to_job(self.scheduled_origin)
        for sync_id in sorted(kicked):
            await self.tasks.sync_connection.kiq(sync_id, None, False, None, requested_by)
        return len(kicked)

    async def _refresh_tokens(self) -> int:
        c = self.container
        pc = provider_connections
        oauth = [p.spec.slug for p in c.plugins.providers if p.spec.auth_type == AuthType.OAUTH2]
        async with c.engine.connect() as db:
            ids = (
                (
                    await db.execute(
                        select(pc.c.id).where(
                            pc.c.status == str(ConnectionStatus.ACTIVE),
                            pc.c.provider.in_(oauth),
                            pc.c.access_expires_at.is_not(None),
                            pc.c.access_expires_at < _now() + REFRESH_AHEAD,
                        )
                    )
                )
                .scalars()
                .all()
            )
        done = 0
        for connection_id in ids:
            result = await refresh_credentials(c, connection_id)
            done += isinstance(result, Ok)
        return done

    async def _expiry_warnings(self) -> int:
        return len(await expiry_warnings(self.container, days=EXPIRY_WARNING_DAYS))

    async def _dispatch_outbox(self) -> int:
        total = 0
        while True:
            before = await self._undispatched()
            if not before:
                return total
            await self.container.dispatch_outbox()
            after = await self._undispatched()
            total += before - after
            if after >= before:
                return total

    async def _undispatched(self) -> int:
        from sqlalchemy import func

        async with self.container.engine.connect() as db:
            return int(
                (
                    await db.execute(
                        select(func.count())
                        .select_from(outbox)
                        .where(outbox.c.dispatched_at.is_(None))
                    )
                ).scalar_one()
            )

    async def _prune(self) -> int:
        now = _now()
        # Dispatched events stay replayable (SSE Last-Event-ID resume) for the retention window.
        events_kept = timedelta(days=self.container.settings.event_retention_days)
        removed = 0
        async with self.container.engine.begin() as db:
            for stmt in (
                delete(oauth_states).where(oauth_states.c.expires_at < now - timedelta(days=1)),
                delete(one_time_tokens).where(
                    one_time_tokens.c.expires_at < now - timedelta(days=1)
                ),
                delete(sessions).where(sessions.c.expires_at < now - RETENTION),
                delete(outbox).where(
                    outbox.c.dispatched_at.is_not(None), outbox.c.dispatched_at < now - events_kept
                ),
            ):
                removed += int((await db.execute(stmt)).rowcount)
        return removed

    def _register(self) -> Tasks:
        b = self.broker

        async def sync_connection(
            sync_id: str,
            scope: list[str] | None = None,
            force: bool = False,
            start_date: str | None = None,
            requested_by: dict[str, str | None] | None = None,
        ) -> dict[str, Any]:
            return await self._sync(sync_id, scope, force, start_date, requested_by)

        async def scheduled_syncs() -> int:
            return await self._scheduled_syncs()

        async def refresh_tokens() -> int:
            return await self._refresh_tokens()

        async def expiry_warnings_task() -> int:
            return await self._expiry_warnings()

        async def dispatch_outbox() -> int:
            return await self._dispatch_outbox()

        async def prune() -> int:
            return await self._prune()

        def every(cron: str) -> list[dict[str, str]]:
            return [{"cron": cron}]

        return Tasks(
            sync_connection=b.register_task(sync_connection, "dashtam.sync_connection"),
            scheduled_syncs=b.register_task(
                scheduled_syncs, "dashtam.scheduled_syncs", schedule=every("*/15 * * * *")
            ),
            refresh_tokens=b.register_task(
                refresh_tokens, "dashtam.refresh_tokens", schedule=every("*/5 * * * *")
            ),
            expiry_warnings=b.register_task(
                expiry_warnings_task, "dashtam.expiry_warnings", schedule=every("7 * * * *")
            ),
            dispatch_outbox=b.register_task(
                dispatch_outbox, "dashtam.dispatch_outbox", schedule=every("* * * * *")
            ),
            prune=b.register_task(prune, "dashtam.prune", schedule=every("17 3 * * *")),
        )

    # -- API for callers -----------------------------------------------------------------------

    async def enqueue_sync(
        self,
        connection_id: UUID,
        *,
        scope: Sequence[str] | None = None,
        force: bool = False,
        start_date: date | None = None,
        origin: Origin | None = None,
    ) -> Result[SyncRun, DashtamError]:
        """Queue a sync (or return the active one) and kick a worker for a queued run.

        Args:
            connection_id: the connection.
            scope: stages to run (default: all).
            force: refresh OAuth tokens first.
            start_date: fetch transactions from this date instead of the watermark.
            origin: who asks (audited: ``sync.start`` now, ``sync.finish`` by the worker).
        """
        queued = await queue_sync(
            self.container, connection_id, origin=origin, stale_after=self.stale_after
        )
        if isinstance(queued, Ok) and queued.value.status == SyncStatus.QUEUED:
            await self.tasks.sync_connection.kiq(
                str(queued.value.id),
                list(scope) if scope else None,
                force,
                start_date.isoformat() if start_date else None,
                origin_to_job(origin),
            )
        return queued

    def scheduler(self) -> TaskiqScheduler:
        """A taskiq scheduler kicking the labelled periodic tasks on this broker."""
        return TaskiqScheduler(self.broker, sources=[LabelScheduleSource(self.broker)])

    async def run_worker(self, *, max_async_tasks: int = 10) -> None:
        """Consume the queue until cancelled (``dashtam worker``)."""
        await self.broker.startup()
        try:
            await run_receiver_task(self.broker, max_async_tasks=max_async_tasks)
        finally:
            await self.broker.shutdown()

    async def run_scheduler(self) -> None:
        """Kick periodic tasks until cancelled (``dashtam scheduler``)."""
        await self.broker.startup()
        try:
            await run_scheduler_task(self.scheduler())
        finally:
            await self.broker.shutdown()

    async def start_in_process(self) -> None:
        """Start the broker and an in-process scheduler (embedded default); see :meth:`stop`."""
        await self.broker.startup()
        self._background = asyncio.create_task(run_scheduler_task(self.scheduler()))

    async def stop(self) -> None:
        """Stop the in-process scheduler and shut the broker down."""
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
            self._background = None
        await self.broker.shutdown()


__all__ = [
    "DEFAULT_SYNC_INTERVAL",
    "EXPIRY_WARNING_DAYS",
    "REFRESH_AHEAD",
    "REKICK_AFTER",
    "RETENTION",
    "JobQueue",
    "Tasks",
]
