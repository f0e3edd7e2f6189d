"""``sync_connection``: fetch a connection's data from its provider and store it (sync.md).

One ``sync_runs`` row per sync; a sync requested while one is queued or running for the same
connection returns that one (a partial unique index makes this hold across processes). While a
run executes, a background task stamps its ``heartbeat_at`` every :data:`HEARTBEAT_EVERY`, each
in a short transaction of its own. A ``running`` run not heard from for :data:`STALE_AFTER`
(``coalesce(heartbeat_at, started_at)``; a few missed heartbeats: its worker was killed) is
marked failed as abandoned by the next :func:`queue_sync` of its connection or by
:func:`fail_stale_runs` (the scheduler), and a new one may start; a long sync whose heartbeats
keep coming is never failed. Every stage is its own database transaction (accounts + balances;
holdings per account; transactions per account with its watermark), so a killed sync leaves
complete units only and the next run finishes the work.

Stages: accounts (upsert + balance snapshots) → holdings (engine snapshot) → transactions (first
sync ``settings.sync_history_days`` back, later syncs from the watermark minus
``settings.sync_overlap_days``; the answer is authoritative for its window, so withdrawn rows are
detected). Every raw page is archived with the stage that stored it. OAuth tokens are refreshed
ahead of expiry, and once more (with the refused token) when the provider says they expired.

Events: data events (``TransactionsChanged``, ``HoldingsSnapshotted`` ...) go through the outbox
with the data; ``SyncStarted`` / ``SyncProgressed`` / ``SyncFinished`` are progress notifications
published directly on the bus after each commit (an identical re-sync writes no outbox row).

Audit (security.md): given an ``origin``, queuing a new run records ``sync.start`` in the
transaction that inserts it (a refused request records a failure in a transaction of its own;
asking while a run is active changes nothing and records nothing), and running it records
``sync.finish`` (outcome ``failure`` when the run failed) in the transaction that finishes the
run. Both are on object ``connection`` with the run's id in ``sync_id``. The actor is the user
who asked (a worker receives the requester with the job), or the system for scheduled syncs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.application.audit import SYSTEM, Origin
from dashtam_core.application.connections import audit_refusal, mark_needs_reauth
from dashtam_core.application.container import Container
from dashtam_core.application.stages import (
    TRANSACTIONS_WATERMARK,
    ProgressCallback,
    SyncCounts,
    SyncWorker,
    upsert_accounts,
)
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.domain.connection import AuthType, ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import (
    ConnectionStatusChanged,
    DomainEvent,
    SyncFinished,
    SyncStarted,
)
from dashtam_core.errors import (
    AuthExpired,
    DashtamError,
    InvalidCredentials,
    NotFound,
    ValidationError,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.outbox import write_events
from dashtam_core.sync.runs import (
    SyncRun,
    SyncStatus,
    abandon_stale_runs,
    beat_sync_run,
    finish_sync_run,
    get_sync_run,
    queue_sync_run,
    start_sync_run,
)

log = structlog.get_logger(__name__)

#: How often a running sync stamps its ``heartbeat_at``.
HEARTBEAT_EVERY = timedelta(seconds=15)
#: A ``running`` run not heard from for this long (a few missed heartbeats) lost its worker.
STALE_AFTER = timedelta(minutes=2)
#: Name prefix of the heartbeat tasks (``asyncio.Task.get_name()``), followed by the sync id.
HEARTBEAT_TASK_PREFIX = "dashtam-sync-heartbeat-"
SCOPES = ("accounts", "balances", "holdings", "transactions")


class SyncFailed(DashtamError):
    """A stage of a sync failed (the run is recorded as failed; earlier stages are kept)."""

    code = "sync_failed"


def _now() -> datetime:
    return datetime.now(UTC)


async def queue_sync(
    container: Container,
    connection_id: UUID,
    *,
    origin: Origin | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> Result[SyncRun, DashtamError]:
    """Queue a sync of the connection, or return the one already queued or running.

    A ``running`` run not heard from for ``stale_after`` is failed first (its worker died),
    audited as ``sync.finish`` with outcome ``failure`` and reason ``abandoned``.

    Args:
        container: the application container.
        connection_id: the connection to sync.
        origin: who asks and from where (``None``: not audited).
        stale_after: how long a running run may go without a heartbeat.
    """
    if origin is not None:
        container.audit_key  # noqa: B018 - loads (or refuses) the key before anything happens
    queued = await _queue(container, connection_id, origin, stale_after)
    return await audit_refusal(
        container,
        origin,
        "sync.start",
        queued,
        object_type="connection",
        object_id=connection_id,
    )


async def _queue(
    container: Container, connection_id: UUID, origin: Origin | None, stale_after: timedelta
) -> Result[SyncRun, DashtamError]:
    now = _now()
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        if conn is None:
            return Err(NotFound("connection not found"))
        problem = _unsyncable(container, conn)
        if problem is not None:
            return Err(problem)
        run, created = await queue_sync_run(uow.connection, connection_id, now=now)
        if not created and run.status == SyncStatus.RUNNING:
            abandoned = await abandon_stale_runs(
                uow.connection, cutoff=now - stale_after, sync_id=run.id, now=now
            )
            if abandoned:
                await _audit_abandoned(container, uow.connection, origin, run.id, connection_id)
                run, created = await queue_sync_run(uow.connection, connection_id, now=now)
        if created:
            await container.audit(
                uow.connection,
                origin,
                "sync.start",
                object_type="connection",
                object_id=connection_id,
                details={"sync_id": run.id, "provider": conn.provider},
            )
        await uow.commit()
    return Ok(run)


async def fail_stale_runs(
    container: Container,
    *,
    stale_after: timedelta = STALE_AFTER,
    origin: Origin | None = None,
) -> list[UUID]:
    """Fail every ``running`` run not heard from for ``stale_after`` (the scheduler's sweep).

    Each is audited as :func:`queue_sync` audits an abandoned run (``sync.finish``, outcome
    ``failure``, reason ``abandoned``), in the transaction that fails it.

    Args:
        container: the application container.
        stale_after: how long a running run may go without a heartbeat.
        origin: ``None``: not audited; otherwise the actor is the system.

    Returns:
        The ids of the connections whose run was abandoned (sorted, each once).
    """
    if origin is not None:
        container.audit_key  # noqa: B018 - loads (or refuses) the key before anything happens
    now = _now()
    async with container.uow_factory() as uow:
        abandoned = await abandon_stale_runs(uow.connection, cutoff=now - stale_after, now=now)
        for sync_id, connection_id in abandoned:
            await _audit_abandoned(container, uow.connection, origin, sync_id, connection_id)
        await uow.commit()
    for sync_id, connection_id in abandoned:
        log.warning("sync_abandoned", sync_id=str(sync_id), connection_id=str(connection_id))
    return sorted({connection_id for _, connection_id in abandoned})


async def _audit_abandoned(
    container: Container,
    db: AsyncConnection,
    origin: Origin | None,
    sync_id: UUID,
    connection_id: UUID,
) -> None:
    await container.audit(
        db,
        None if origin is None else SYSTEM,
        "sync.finish",
        outcome=AuditOutcome.FAILURE,
        object_type="connection",
        object_id=connection_id,
        details={"sync_id": sync_id, "status": SyncStatus.FAILED, "reason": "abandoned"},
    )


def _unsyncable(container: Container, conn: ProviderConnection) -> DashtamError | None:
    if conn.status in (ConnectionStatus.DISCONNECTED, ConnectionStatus.PENDING):
        return ValidationError(f"connection is {conn.status.value}; it cannot be synced")
    if conn.provider not in container.plugins.providers:
        return NotFound(f"provider {conn.provider!r} is not installed")
    if container.registered(conn.provider).spec.auth_type == AuthType.FILE_IMPORT:
        return ValidationError("file connections are updated by importing statements")
    return None


async def sync_connection(
    container: Container,
    connection_id: UUID,
    *,
    scope: Sequence[str] | None = None,
    force: bool = False,
    start_date: date | None = None,
    progress: ProgressCallback | None = None,
    origin: Origin | None = None,
    heartbeat_every: timedelta = HEARTBEAT_EVERY,
    stale_after: timedelta = STALE_AFTER,
) -> Result[SyncRun, DashtamError]:
    """Sync a connection now and return the finished run (or the one already running).

    Args:
        container: the application container.
        connection_id: the connection to sync.
        scope: stages to run (default: all the provider supports).
        force: refresh OAuth tokens first even if they look fresh.
        start_date: fetch transactions from this date instead of the watermark.
        progress: called with every ``SyncProgressed`` (CLI progress bars).
        origin: who asks and from where (``None``: not audited); it records both the start
            and the finish.
        heartbeat_every: how often the run stamps its ``heartbeat_at`` while it executes.
        stale_after: how long an active running run may go without a heartbeat before it is
            failed as abandoned (see :func:`queue_sync`).
    """
    queued = await queue_sync(container, connection_id, origin=origin, stale_after=stale_after)
    if isinstance(queued, Err):
        return queued
    return await run_sync(
        container,
        queued.value.id,
        scope=scope,
        force=force,
        start_date=start_date,
        progress=progress,
        origin=origin,
        heartbeat_every=heartbeat_every,
    )


async def run_sync(
    container: Container,
    sync_id: UUID,
    *,
    scope: Sequence[str] | None = None,
    force: bool = False,
    start_date: date | None = None,
    progress: ProgressCallback | None = None,
    origin: Origin | None = None,
    heartbeat_every: timedelta = HEARTBEAT_EVERY,
) -> Result[SyncRun, DashtamError]:
    """Run a queued sync (a job's entry point); an already started run is returned as is.

    With an ``origin`` (the requester, or :data:`~dashtam_core.application.audit.SYSTEM` for
    a scheduled sync) the outcome is audited as ``sync.finish`` in the transaction that
    finishes the run. While the stages run, ``heartbeat_at`` is stamped every
    ``heartbeat_every`` (the first stamp one interval after ``started_at``); the heartbeat
    task is stopped and awaited before the run is finished, whatever the outcome.
    """
    if origin is not None:
        container.audit_key  # noqa: B018 - loads (or refuses) the key before the run starts
    async with container.uow_factory() as uow:
        run = await get_sync_run(uow.connection, sync_id)
        if run is None:
            return Err(NotFound("sync not found"))
        started = await start_sync_run(uow.connection, sync_id)
        conn = await uow.connections.get(run.connection_id)
        await uow.commit()
    if not started or conn is None:
        return Ok(run)
    await container.bus.publish(
        SyncStarted(user_id=conn.user_id, sync_id=sync_id, connection_id=conn.id)
    )
    counts = SyncCounts()
    worker = SyncWorker(container, conn, sync_id, counts, progress)
    error: DashtamError | None = None
    try:
        async with _heartbeat(container, sync_id, heartbeat_every):
            outcome = await worker.run(set(scope or SCOPES), force=force, start_date=start_date)
        if isinstance(outcome, Err):
            error = outcome.error
    except Exception as exc:
        log.error("sync_crashed", sync_id=str(sync_id), error_type=type(exc).__name__)
        error = SyncFailed(f"internal error ({type(exc).__name__})")
        await _finish(container, conn, sync_id, counts, error, origin)
        raise
    return Ok(await _finish(container, conn, sync_id, counts, error, origin))


@asynccontextmanager
async def _heartbeat(container: Container, sync_id: UUID, every: timedelta) -> AsyncIterator[None]:
    """Stamp the run's ``heartbeat_at`` every ``every`` while the body runs.

    The task is stopped and awaited on the way out, whatever the outcome: a stamp in flight
    completes (its short transaction is never cut in half), then the task ends.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(
        _beat(container, sync_id, every, stop), name=f"{HEARTBEAT_TASK_PREFIX}{sync_id}"
    )
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:  # we are cancelled while waiting: do not leave it behind
            task.cancel()
            raise


async def _beat(container: Container, sync_id: UUID, every: timedelta, stop: asyncio.Event) -> None:
    """The heartbeat loop: one short transaction per stamp; errors are logged, never raised."""
    while True:
        try:
            await asyncio.wait_for(stop.wait(), every.total_seconds())
            return
        except TimeoutError:
            pass
        try:
            async with container.uow_factory() as uow:
                alive = await beat_sync_run(uow.connection, sync_id)
                await uow.commit()
        except Exception as exc:  # a missed stamp; the next one may get through
            log.warning(
                "sync_heartbeat_failed", sync_id=str(sync_id), error_type=type(exc).__name__
            )
            continue
        if not alive:  # failed as abandoned (a stall longer than the stale window) or finished
            log.warning("sync_heartbeat_lost", sync_id=str(sync_id))
            return


async def _finish(
    container: Container,
    conn: ProviderConnection,
    sync_id: UUID,
    counts: SyncCounts,
    error: DashtamError | None,
    origin: Origin | None,
) -> SyncRun:
    now = _now()
    if isinstance(error, AuthExpired | InvalidCredentials):
        await mark_needs_reauth(container, conn.id, error.message)
    async with container.uow_factory() as uow:
        await finish_sync_run(
            uow.connection,
            sync_id,
            succeeded=error is None,
            counts=counts.as_dict(),
            error=None if error is None else f"{error.code}: {error.message}",
            now=now,
        )
        current = await uow.connections.get(conn.id)
        events: list[DomainEvent] = []
        if current is not None and current.status != ConnectionStatus.DISCONNECTED:
            old = current.status
            if error is None:
                current.last_synced_at = now
                if current.status != ConnectionStatus.ACTIVE:
                    current.transition(ConnectionStatus.ACTIVE)
                current.last_error = None
            elif not isinstance(error, AuthExpired | InvalidCredentials):
                current.transition(ConnectionStatus.ERROR, error=error.message)
            await uow.connections.update(current)
            if current.status != old:
                events.append(
                    ConnectionStatusChanged(
                        user_id=current.user_id,
                        connection_id=current.id,
                        old_status=str(old),
                        new_status=str(current.status),
                        reason=current.last_error,
                    )
                )
        if events:
            await write_events(uow.connection, events, now=now)
        finished = await get_sync_run(uow.connection, sync_id)
        assert finished is not None
        tallies = {k: v for k, v in counts.as_dict().items() if k != "warnings"}
        outcome = {"sync_id": sync_id, "status": finished.status, **tallies}
        if error is not None:
            outcome["reason"] = error.code
        await container.audit(
            uow.connection,
            origin,
            "sync.finish",
            outcome=AuditOutcome.SUCCESS if error is None else AuditOutcome.FAILURE,
            object_type="connection",
            object_id=conn.id,
            details=outcome,
        )
        await uow.commit()
    # The run's data events (outbox, ids older than SyncFinished's) go out first: a client that
    # saw sync.finished has seen its data events, and resuming after it misses none of them.
    # Only this run's: an identical re-sync writes (and here updates) nothing.
    try:
        await container.dispatch_outbox(user_id=conn.user_id, since=finished.started_at)
    except Exception as exc:  # they stay in the outbox for the periodic dispatcher
        log.warning("outbox_dispatch_failed", error_type=type(exc).__name__)
    await container.bus.publish(
        SyncFinished(
            user_id=conn.user_id,
            sync_id=sync_id,
            connection_id=conn.id,
            status=str(finished.status),
            transactions_added=counts.transactions_added,
            transactions_modified=counts.transactions_modified,
            transactions_removed=counts.transactions_removed,
            error=finished.error,
        )
    )
    return finished


__all__ = [
    "HEARTBEAT_EVERY",
    "HEARTBEAT_TASK_PREFIX",
    "SCOPES",
    "STALE_AFTER",
    "TRANSACTIONS_WATERMARK",
    "ProgressCallback",
    "SyncFailed",
    "fail_stale_runs",
    "queue_sync",
    "run_sync",
    "sync_connection",
    "upsert_accounts",
]
