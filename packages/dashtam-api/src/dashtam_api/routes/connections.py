"""Provider connections: create (API key or OAuth), list, read, rename, disconnect, repair.

* API-key providers: the keys are checked with the provider before anything is stored (bad keys
  → 422 ``invalid_credentials``, nothing written); the connection is ``active`` and its initial
  sync starts at once (``sync_id``).
* OAuth providers: a ``pending`` connection plus the authorization URL and its one-time
  ``state``; the browser callback (:mod:`dashtam_api.routes.oauth`) activates it.
* ``POST .../reauthorizations`` repairs an OAuth connection in place (same connection and
  account ids).

Every change is audited by the application service in its own transaction, with the caller's
origin: ``connection.create``, ``connection.reauthorize``, ``connection.rename``,
``connection.disconnect`` and the initial ``sync.start`` (refusals as failures).

Another user's connection answers 404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import Request, Response

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.idempotency import json_fingerprint, run_idempotent
from dashtam_api.registry import RouteSpec
from dashtam_api.routes._runtime import Runtime, RuntimeDep
from dashtam_api.routes.data import AUTH_ERRORS, EngineDep
from dashtam_api.schemas.connections import (
    ConnectionCreate,
    ConnectionCreated,
    ConnectionList,
    ConnectionOut,
    ConnectionPatch,
    ReauthorizationOut,
)
from dashtam_core.application import queries
from dashtam_core.application.audit import Origin
from dashtam_core.application.connections import (
    connect_api_key,
    disconnect,
    rename,
    start_oauth,
)
from dashtam_core.domain.connection import AuthType, ProviderConnection
from dashtam_core.errors import DashtamError, FieldError, NotFound, ValidationError
from dashtam_core.result import Err

_MISSING = "connection not found"
IDEMPOTENCY_ERRORS = ("idempotency_key_reused", "idempotency_in_progress")


async def owned_connection(
    runtime: Runtime, user_id: UUID, connection_id: UUID
) -> ProviderConnection:
    """The caller's connection or ``NotFound`` (also for someone else's)."""
    async with runtime.container.uow_factory() as uow:
        conn = await uow.connections.get_for_user(connection_id, user_id)
    if conn is None:
        raise NotFound(_MISSING)
    return conn


async def list_connections(principal: CurrentPrincipal, engine: EngineDep) -> ConnectionList:
    """The caller's connections with their health."""
    async with engine.connect() as conn:
        found = await queries.list_connections(conn, principal.user_id)
    return ConnectionList(data=[ConnectionOut.of(c) for c in found])


async def get_connection(
    principal: CurrentPrincipal, runtime: RuntimeDep, id: UUID
) -> ConnectionOut:
    """One of the caller's connections."""
    return ConnectionOut.of(await owned_connection(runtime, principal.user_id, id))


def _unknown_provider(slug: str) -> ValidationError:
    return ValidationError(
        f"no provider {slug!r} is installed",
        errors=[FieldError("provider", "unknown_provider", f"no provider {slug!r}")],
    )


async def _create(
    runtime: Runtime, user_id: UUID, body: ConnectionCreate, origin: Origin
) -> dict[str, Any]:
    container = runtime.container
    if body.provider not in container.plugins.providers:
        raise _unknown_provider(body.provider)
    auth_type = container.registered(body.provider).spec.auth_type
    if auth_type == AuthType.API_KEY:
        if not body.credentials:
            raise ValidationError(
                "this provider needs credentials",
                errors=[FieldError("credentials", "missing", "API keys are required")],
            )
        made = await connect_api_key(
            container,
            user_id,
            body.provider,
            body.credentials,
            options=body.options,
            alias=body.alias,
            origin=origin,
        )
        if isinstance(made, Err):
            raise made.error
        run = await runtime.start_sync(made.value.id, origin=origin)
        await runtime.dispatch()
        out = ConnectionCreated(connection=ConnectionOut.of(made.value), sync_id=run.id)
        return out.model_dump(mode="json")
    if auth_type == AuthType.OAUTH2:
        if body.credentials:
            raise ValidationError(
                "OAuth providers take no credentials; follow authorization_url",
                errors=[FieldError("credentials", "not_allowed", "not used by OAuth providers")],
            )
        started = await start_oauth(
            container, user_id, body.provider, alias=body.alias, origin=origin
        )
        if isinstance(started, Err):
            raise started.error
        await runtime.dispatch()
        flow = started.value
        out = ConnectionCreated(
            connection=ConnectionOut.of(flow.connection),
            authorization_url=flow.authorization_url,
            state=flow.state,
            expires_in=flow.expires_in,
        )
        return out.model_dump(mode="json")
    raise ValidationError(
        f"{body.provider!r} imports statement files: use POST /api/v1/imports",
        errors=[FieldError("provider", "file_import", "statement providers are not connected")],
    )


async def create_connection(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    body: ConnectionCreate,
) -> Any:
    """Connect a provider: API keys are validated first; OAuth returns the authorization URL."""

    async def produce() -> tuple[int, Any]:
        return 201, await _create(runtime, principal.user_id, body, principal.origin)

    fingerprint = json_fingerprint(await request.body())
    return await run_idempotent(
        request,
        runtime.container.engine,
        principal.user_id,
        fingerprint,
        produce,
        headers=response.headers,
    )


async def rename_connection(
    principal: CurrentPrincipal, runtime: RuntimeDep, id: UUID, body: ConnectionPatch
) -> ConnectionOut:
    """Rename a connection (``alias``)."""
    done = await rename(
        runtime.container, principal.user_id, id, body.alias, origin=principal.origin
    )
    if isinstance(done, Err):
        raise done.error
    return ConnectionOut.of(done.value)


async def delete_connection(
    principal: CurrentPrincipal, runtime: RuntimeDep, id: UUID
) -> ConnectionOut:
    """Disconnect: credentials destroyed, data kept; the connection stays listed."""
    done = await disconnect(runtime.container, principal.user_id, id, origin=principal.origin)
    if isinstance(done, Err):
        raise done.error
    await runtime.dispatch()
    return ConnectionOut.of(done.value)


async def reauthorize_connection(
    request: Request, response: Response, principal: CurrentPrincipal, runtime: RuntimeDep, id: UUID
) -> Any:
    """Repair an OAuth connection in place: a new authorization URL for the same connection."""
    conn = await owned_connection(runtime, principal.user_id, id)

    async def produce() -> tuple[int, Any]:
        started = await start_oauth(
            runtime.container,
            principal.user_id,
            conn.provider,
            connection_id=conn.id,
            origin=principal.origin,
        )
        if isinstance(started, Err):
            error: DashtamError = started.error
            raise error
        flow = started.value
        out = ReauthorizationOut(
            authorization_url=flow.authorization_url, state=flow.state, expires_in=flow.expires_in
        )
        return 201, out.model_dump(mode="json")

    return await run_idempotent(
        request,
        runtime.container.engine,
        principal.user_id,
        str(id).encode(),
        produce,
        headers=response.headers,
    )


_TAGS = ("connections",)
ROUTES = (
    RouteSpec(
        name="connections.list",
        method="GET",
        path="/api/v1/connections",
        handler=list_connections,
        auth="user",
        rate_limit="read_user",
        policy=("connections", "read"),
        response_model=ConnectionList,
        errors=AUTH_ERRORS,
        tags=_TAGS,
    ),
    RouteSpec(
        name="connections.create",
        method="POST",
        path="/api/v1/connections",
        handler=create_connection,
        auth="user",
        rate_limit="write_user",
        policy=("connections", "write"),
        response_model=ConnectionCreated,
        status_code=201,
        errors=(
            *AUTH_ERRORS,
            "invalid_credentials:422",
            "provider_unavailable",
            "provider_error",
            *IDEMPOTENCY_ERRORS,
        ),
        tags=_TAGS,
    ),
    RouteSpec(
        name="connections.get",
        method="GET",
        path="/api/v1/connections/{id}",
        handler=get_connection,
        auth="user",
        rate_limit="read_user",
        policy=("connections", "read"),
        response_model=ConnectionOut,
        errors=(*AUTH_ERRORS, "not_found"),
        tags=_TAGS,
    ),
    RouteSpec(
        name="connections.rename",
        method="PATCH",
        path="/api/v1/connections/{id}",
        handler=rename_connection,
        auth="user",
        rate_limit="write_user",
        policy=("connections", "write"),
        response_model=ConnectionOut,
        errors=(*AUTH_ERRORS, "not_found"),
        tags=_TAGS,
    ),
    RouteSpec(
        name="connections.disconnect",
        method="DELETE",
        path="/api/v1/connections/{id}",
        handler=delete_connection,
        auth="user",
        rate_limit="write_user",
        policy=("connections", "write"),
        response_model=ConnectionOut,
        errors=(*AUTH_ERRORS, "not_found"),
        tags=_TAGS,
    ),
    RouteSpec(
        name="connections.reauthorize",
        method="POST",
        path="/api/v1/connections/{id}/reauthorizations",
        handler=reauthorize_connection,
        auth="user",
        rate_limit="write_user",
        policy=("connections", "write"),
        response_model=ReauthorizationOut,
        status_code=201,
        errors=(*AUTH_ERRORS, "not_found", "validation_error", *IDEMPOTENCY_ERRORS),
        tags=_TAGS,
    ),
)

__all__ = [
    "IDEMPOTENCY_ERRORS",
    "ROUTES",
    "create_connection",
    "delete_connection",
    "get_connection",
    "list_connections",
    "owned_connection",
    "reauthorize_connection",
    "rename_connection",
]
