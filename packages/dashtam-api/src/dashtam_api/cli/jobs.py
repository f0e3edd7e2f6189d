"""``dashtam worker`` / ``dashtam scheduler``: background jobs on the Redis broker.

Both run taskiq in-process (no ``taskiq`` command line needed) against ``DASHTAM_REDIS_URL``.
Run any number of workers and one scheduler; every job is safe to run twice and safe to kill
(the database is the truth). On the embedded default (no Redis) jobs run inside
``dashtam serve`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

import typer


def _redis_or_exit() -> None:
    from dashtam_api.settings import ApiSettings
    from dashtam_core.errors import ConfigurationError

    if not ApiSettings().redis_url:
        raise ConfigurationError(
            "this command needs DASHTAM_REDIS_URL (on the embedded default, jobs run "
            "inside dashtam serve)"
        )


async def _run(kind: str, concurrency: int) -> None:
    from dashtam_api.settings import ApiSettings
    from dashtam_core.adapters.jobs.tasks import JobQueue
    from dashtam_core.application.container import Container

    settings = ApiSettings()
    container = await Container.create(settings, sandbox_transport="http")
    redis: Any = None
    try:
        if kind == "worker" and settings.redis_url:
            # Events of the syncs this worker runs must reach the API replica holding the
            # user's SSE stream: publish user-visible events over Redis pub/sub.
            from redis.asyncio import Redis

            from dashtam_api.events_hub import redis_notify_handler

            redis = Redis.from_url(settings.redis_url)
            container.bus.subscribe_role("notify", redis_notify_handler(redis))
        from dashtam_core.application.audit import SYSTEM

        queue = JobQueue(container, scheduled_origin=SYSTEM)
        if kind == "worker":
            typer.echo(f"dashtam worker: consuming jobs (concurrency {concurrency})", err=True)
            await queue.run_worker(max_async_tasks=concurrency)
        else:
            typer.echo("dashtam scheduler: kicking periodic jobs", err=True)
            await queue.run_scheduler()
    finally:
        if redis is not None:
            await redis.aclose()
        await container.aclose()


def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=100, help="Jobs run at once.")
    ] = 4,
) -> None:
    """Run a background job worker (Redis broker)."""
    _redis_or_exit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run("worker", concurrency))


def scheduler() -> None:
    """Run the periodic job scheduler (one per deployment, Redis broker)."""
    _redis_or_exit()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run("scheduler", 1))


__all__ = ["scheduler", "worker"]
