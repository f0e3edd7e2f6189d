"""``dashtam serve``: bring the embedded database up to date, then serve the API."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer


def _own_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind (DASHTAM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (DASHTAM_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (DASHTAM_WORKERS).")
    ] = None,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Serve the providers' simulators and use them.")
    ] = False,
) -> None:
    """Migrate the database if needed, then serve the API."""
    from dashtam_api.settings import ApiSettings

    settings = ApiSettings()
    host = host if host is not None else settings.host
    port = port if port is not None else settings.port
    workers = workers if workers is not None else settings.workers
    # The factory runs in each worker and reads the environment: pass the options through it.
    if sandbox:
        os.environ["DASHTAM_SANDBOX"] = "true"
    if "public_base_url" not in settings.model_fields_set:
        os.environ["DASHTAM_PUBLIC_BASE_URL"] = _own_url(host, port)
    if not settings.redis_url and "inprocess_jobs" not in settings.model_fields_set:
        # Embedded default: no `dashtam scheduler`, so periodic jobs run in this process.
        os.environ["DASHTAM_INPROCESS_JOBS"] = "true"
    if settings.is_sqlite:
        from dashtam_core.adapters.sqlalchemy.migrate import ensure_schema

        asyncio.run(ensure_schema(settings.database_url))

    import uvicorn

    typer.echo(f"dashtam: serving on {_own_url(host, port)} ({workers} worker(s))", err=True)
    uvicorn.run(
        "dashtam_api.main:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


__all__ = ["serve"]
