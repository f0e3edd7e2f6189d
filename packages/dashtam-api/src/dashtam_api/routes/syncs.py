"""Syncs as jobs: ``POST /api/v1/connections/{id}/syncs`` (202) and ``GET /api/v1/syncs/{id}``.

A sync requested while one is queued or running for the connection answers 202 with that
sync's id (no second sync). Sync starts are throttled per connection (rule ``sync_connection``,
10/hour by default: 429 with ``Retry-After``).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import Body, Request, Response
from sqlalchemy import select

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.idempotency import json_fingerprint, run_idempotent
from dashtam_api.registry import RouteSpec
from dashtam_api.routes._runtime import RuntimeDep
from dashtam_api.routes.connections import IDEMPOTENCY_ERRORS, owned_connection
from dashtam_api.routes.data import AUTH_ERRORS
from dashtam_api.schemas.connections import SyncOut, SyncRequest, SyncStarted
from dashtam_core.adapters.sqlalchemy.tables import provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import sync_runs
from dashtam_core.errors import NotFound
from dashtam_core.sync.runs import get_sync_run


async def start_sync(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    id: UUID,
    body: SyncRequest | None = Body(default=None),
) -> Any:
    """Start a sync of the connection (or return the one already running): 202 with its id."""
    conn = await owned_connection(runtime, principal.user_id, id)
    params = body or SyncRequest()

    async def produce() -> tuple[int, Any]:
        run = await runtime.start_sync(
            conn.id,
            scope=params.scope,
            force=params.force,
            start_date=params.start_date,
            origin=principal.origin,
        )
        out = SyncStarted(id=run.id, status=run.status, connection_id=run.connection_id)
        return 202, out.model_dump(mode="json")

    fingerprint = json_fingerprint(await request.body())
    return await run_idempotent(
        request,
        runtime.container.engine,
        principal.user_id,
        fingerprint,
        produce,
        headers=response.headers,
    )


async def get_sync(principal: CurrentPrincipal, runtime: RuntimeDep, id: UUID) -> SyncOut:
    """A sync's status, timing and counts."""
    s, pc = sync_runs, provider_connections
    async with runtime.container.engine.connect() as conn:
        owner = (
            await conn.execute(
                select(pc.c.user_id)
                .select_from(s.join(pc, s.c.connection_id == pc.c.id))
                .where(s.c.id == id)
            )
        ).scalar_one_or_none()
        run = await get_sync_run(conn, id) if owner == principal.user_id else None
    if run is None:
        raise NotFound("sync not found")
    return SyncOut.of(run)


ROUTES = (
    RouteSpec(
        name="syncs.start",
        method="POST",
        path="/api/v1/connections/{id}/syncs",
        handler=start_sync,
        auth="user",
        rate_limit="sync_connection",
        policy=("syncs", "write"),
        response_model=SyncStarted,
        status_code=202,
        errors=(*AUTH_ERRORS, "not_found", "validation_error", *IDEMPOTENCY_ERRORS),
        tags=("syncs",),
    ),
    RouteSpec(
        name="syncs.get",
        method="GET",
        path="/api/v1/syncs/{id}",
        handler=get_sync,
        auth="user",
        rate_limit="read_user",
        policy=("syncs", "read"),
        response_model=SyncOut,
        errors=(*AUTH_ERRORS, "not_found"),
        tags=("syncs",),
    ),
)

__all__ = ["ROUTES", "get_sync", "start_sync"]
