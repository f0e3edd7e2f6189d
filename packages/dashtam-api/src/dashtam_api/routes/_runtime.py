"""What the financial-data routes share at run time: the application container, the SSE hub
and the in-process sync runner.

:func:`get_runtime` builds a :class:`Runtime` on first use from ``app.state`` (the engine the
lifespan opened, the loaded plugins, the settings, the Redis client) and keeps it on
``app.state.runtime``; :func:`close_runtime` cancels running background syncs, stops the SSE
listener and closes the container's HTTP clients (call it before the engine is disposed).

Syncs requested over HTTP run as background tasks of this process on the embedded default; when
``DASHTAM_REDIS_URL`` is set they are queued on the Redis job broker
(:class:`~dashtam_core.adapters.jobs.tasks.JobQueue`) for ``dashtam worker`` processes. After
every command and every in-process sync the outbox is dispatched, so connection and data events
reach the SSE streams right away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any
from uuid import UUID

import structlog
from fastapi import Depends, Request

from dashtam_api.events_hub import EventsHub
from dashtam_core.adapters.jobs.tasks import JobQueue
from dashtam_core.application.audit import SYSTEM, Origin
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import queue_sync, run_sync
from dashtam_core.errors import DashtamError
from dashtam_core.result import Err
from dashtam_core.sync.runs import SyncRun

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """Per-application state of the data routes."""

    container: Container
    hub: EventsHub
    jobs: JobQueue | None = None
    periodic: JobQueue | None = None  # in-process scheduler (embedded default only)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def dispatch(self) -> None:
        """Publish pending outbox events (SSE, audit, plugins); failures are only logged."""
        try:
            await self.container.dispatch_outbox()
        except Exception as exc:  # the events stay in the outbox for the next dispatch
            log.warning("outbox_dispatch_failed", error_type=type(exc).__name__)

    async def start_sync(
        self,
        connection_id: UUID,
        *,
        scope: Sequence[str] | None = None,
        force: bool = False,
        start_date: date | None = None,
        origin: Origin | None = None,
    ) -> SyncRun:
        """Queue a sync (or return the active one) and run it in the background.

        With a job queue (Redis) a worker runs it with the default scope; otherwise it runs
        as a task of this process. ``origin`` (the requester) is audited: ``sync.start`` now,
        ``sync.finish`` when the run ends.

        Raises:
            DashtamError: the connection cannot be synced.
        """
        if self.jobs is not None:
            enqueued = await self.jobs.enqueue_sync(connection_id, origin=origin)
            if isinstance(enqueued, Err):
                raise enqueued.error
            return enqueued.value
        queued = await queue_sync(self.container, connection_id, origin=origin)
        if isinstance(queued, Err):
            raise queued.error
        run = queued.value
        if run.status == "queued" and run.started_at is None:
            task = asyncio.create_task(
                self._run(run.id, scope=scope, force=force, start_date=start_date, origin=origin),
                name=f"dashtam-sync-{run.id}",
            )
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return run

    async def _run(
        self,
        sync_id: UUID,
        *,
        scope: Sequence[str] | None,
        force: bool,
        start_date: date | None,
        origin: Origin | None,
    ) -> None:
        try:
            await run_sync(
                self.container,
                sync_id,
                scope=scope,
                force=force,
                start_date=start_date,
                origin=origin,
            )
        except DashtamError as exc:
            log.warning("background_sync_failed", sync_id=str(sync_id), code=exc.code)
        except Exception as exc:
            log.error("background_sync_crashed", sync_id=str(sync_id), error=type(exc).__name__)
        finally:
            await self.dispatch()

    async def wait_idle(self, seconds: float = 30.0) -> None:
        """Wait until no background sync runs (tests, graceful shutdown)."""
        async with asyncio.timeout(seconds):
            while self.tasks:
                await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel background syncs, stop the hub, close the container's clients."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.hub.aclose()
        if self.jobs is not None:
            await self.jobs.stop()
        if self.periodic is not None:
            await self.periodic.stop()
        await self.container.aclose()


_LOCK_ATTR = "runtime_lock"


async def build_runtime(state: Any) -> Runtime:
    """A :class:`Runtime` from an application's ``state`` (engine, plugins, settings, redis)."""
    container = await Container.create(
        state.settings,
        engine=state.engine,
        plugins=state.plugins,
        migrate=False,
        sandbox_transport="http",
    )
    hub = EventsHub(
        redis=getattr(state, "redis", None),
        heartbeat_seconds=float(getattr(state, "sse_heartbeat_seconds", 15.0)),
    )
    container.bus.subscribe_role("notify", hub.publish)
    jobs: JobQueue | None = None
    try:
        await hub.start()
        if state.settings.redis_url:
            jobs = JobQueue(container)
            await jobs.broker.startup()
    except BaseException:
        await hub.aclose()
        await container.aclose()
        raise
    return Runtime(container, hub, jobs)


async def get_runtime(request: Request) -> Runtime:
    """The application's :class:`Runtime` (built once, on first use)."""
    state = request.app.state
    runtime: Runtime | None = getattr(state, "runtime", None)
    if runtime is not None:
        return runtime
    lock: asyncio.Lock | None = getattr(state, _LOCK_ATTR, None)
    if lock is None:
        lock = asyncio.Lock()
        setattr(state, _LOCK_ATTR, lock)
    async with lock:
        runtime = getattr(state, "runtime", None)
        if runtime is None:
            runtime = await build_runtime(state)
            state.runtime = runtime
    return runtime


async def start_inprocess_jobs(app: Any) -> None:
    """Run the periodic jobs inside this process (embedded default, no Redis).

    Builds the runtime now (instead of on the first request) and starts the job queue's
    in-memory broker with its scheduler; :func:`close_runtime` stops them.
    """
    state = app.state
    runtime: Runtime | None = getattr(state, "runtime", None)
    if runtime is None:
        runtime = await build_runtime(state)
        state.runtime = runtime
    if runtime.periodic is None:
        periodic = JobQueue(runtime.container, scheduled_origin=SYSTEM)
        await periodic.start_in_process()
        runtime.periodic = periodic


async def close_runtime(app: Any) -> None:
    """Close ``app``'s runtime if one was built (call before disposing the engine)."""
    runtime: Runtime | None = getattr(app.state, "runtime", None)
    if runtime is not None:
        app.state.runtime = None
        await runtime.aclose()


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

__all__ = [
    "Runtime",
    "RuntimeDep",
    "build_runtime",
    "close_runtime",
    "get_runtime",
    "start_inprocess_jobs",
]
