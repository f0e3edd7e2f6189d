"""System routes: liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import Request
from sqlalchemy import text

from dashtam_api import __version__
from dashtam_api.deps import SettingsDep, get_engine, get_redis
from dashtam_api.problems import ServiceNotReady
from dashtam_api.registry import RouteSpec
from dashtam_api.schemas.system import HealthOut, ReadyOut

_HEALTH = {flag: HealthOut(version=__version__, sandbox=flag) for flag in (False, True)}


async def health(settings: SettingsDep) -> HealthOut:
    """Liveness: the process is up (no I/O); ``sandbox`` says whether simulators are mounted."""
    return _HEALTH[settings.sandbox]


async def ready(request: Request, settings: SettingsDep) -> ReadyOut:
    """Readiness: the database answers `SELECT 1` and Redis (when configured) answers `PING`."""
    timeout = settings.readiness_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            async with get_engine(request).connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise ServiceNotReady(f"database did not answer ({type(exc).__name__})") from exc
    checks: dict[str, Literal["ok"]] = {"database": "ok"}
    client = get_redis(request)
    if client is not None:
        try:
            async with asyncio.timeout(timeout):
                await client.ping()
        except Exception as exc:
            raise ServiceNotReady(f"redis did not answer ({type(exc).__name__})") from exc
        checks["redis"] = "ok"
    return ReadyOut(checks=checks)


ROUTES = (
    RouteSpec(
        name="system.health",
        method="GET",
        path="/health",
        handler=health,
        auth="public",
        rate_limit="none",
        rate_limit_exempt="liveness probe: no I/O, must answer under any load",
        response_model=HealthOut,
        tags=("system",),
    ),
    RouteSpec(
        name="system.ready",
        method="GET",
        path="/health/ready",
        handler=ready,
        auth="public",
        rate_limit="none",
        rate_limit_exempt="readiness probe polled by orchestrators and load balancers",
        response_model=ReadyOut,
        errors=("not_ready",),
        tags=("system",),
    ),
)

__all__ = ["ROUTES", "health", "ready"]
