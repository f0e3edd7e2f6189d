"""``GET /oauth/{provider}/callback``: where the provider sends the browser back.

The answer is always 200 with an HTML page saying connected or why not (api.md). The ``state``
is single use, expires after 10 minutes and names the pending connection (hence the user) it
was issued for; a missing, unknown, used, expired or other-provider ``state`` is refused, and
the provider's own ``error`` parameter is shown. On success the connection becomes active and
its initial sync starts. PKCE: the verifier never left the server; the provider rejects a code
redeemed with another one.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import structlog
from fastapi import Query, Request
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from starlette.responses import HTMLResponse

from dashtam_api.auth import RateLimited, request_origin
from dashtam_api.registry import RouteSpec
from dashtam_api.routes._runtime import RuntimeDep
from dashtam_core.adapters.sqlalchemy.tables import oauth_states
from dashtam_core.application.connections import complete_oauth, hash_state
from dashtam_core.errors import DashtamError
from dashtam_core.result import Err

log = structlog.get_logger(__name__)

_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_Param = Annotated[str | None, Query(max_length=2048)]


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("dashtam_api", "templates"),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )


def render_result(
    *,
    ok: bool,
    provider_name: str,
    reason: str | None = None,
    alias: str | None = None,
    connection_id: str | None = None,
    provider_error: str | None = None,
    provider_error_description: str | None = None,
) -> HTMLResponse:
    """The HTML result page (200; every value escaped)."""
    page = (
        _templates()
        .get_template("oauth_result.html")
        .render(
            ok=ok,
            provider_name=provider_name,
            reason=reason,
            alias=alias,
            connection_id=connection_id,
            provider_error=provider_error,
            provider_error_description=provider_error_description,
        )
    )
    return HTMLResponse(page, status_code=200, headers=_HEADERS)


async def oauth_callback(
    request: Request,
    provider: str,
    runtime: RuntimeDep,
    _: RateLimited,
    code: _Param = None,
    state: _Param = None,
    error: _Param = None,
    error_description: _Param = None,
) -> HTMLResponse:
    """Finish an OAuth connection and show the result page.

    Audited as ``connection.authorize`` (a failure when refused) from the browser's IP and
    user agent, by the user the ``state`` was issued to; the initial sync by that user too.
    """
    container = runtime.container
    if provider not in container.plugins.providers:
        return render_result(
            ok=False, provider_name=provider, reason="This provider is not installed."
        )
    name = container.registered(provider).spec.name

    def failed(reason: str) -> HTMLResponse:
        return render_result(
            ok=False,
            provider_name=name,
            reason=reason,
            provider_error=error,
            provider_error_description=error_description,
        )

    if not state:
        return failed("The authorization response has no state; it cannot be trusted.")
    async with container.engine.connect() as conn:
        issued_for = (
            await conn.execute(
                select(oauth_states.c.provider).where(
                    oauth_states.c.state_hash == hash_state(state)
                )
            )
        ).scalar_one_or_none()
    if issued_for is not None and issued_for != provider:
        return failed("This authorization request was issued for another provider.")
    origin = request_origin(request)
    finished = await complete_oauth(container, state, code=code, error=error, origin=origin)
    await runtime.dispatch()
    if isinstance(finished, Err):
        if error:
            return failed("The provider did not grant access.")
        return failed(finished.error.message)
    conn_obj = finished.value
    try:
        await runtime.start_sync(conn_obj.id, origin=origin.as_actor(conn_obj.user_id))
    except DashtamError as exc:  # connected all the same; the user can sync later
        log.warning("initial_sync_not_started", connection_id=str(conn_obj.id), code=exc.code)
    await runtime.dispatch()
    return render_result(
        ok=True, provider_name=name, alias=conn_obj.alias, connection_id=str(conn_obj.id)
    )


ROUTES = (
    RouteSpec(
        name="oauth.callback",
        method="GET",
        path="/oauth/{provider}/callback",
        handler=oauth_callback,
        auth="browser",
        rate_limit="read_user",
        response_class=HTMLResponse,
        tags=("connections",),
        summary="OAuth redirect target: finishes the connection and shows an HTML result page",
    ),
)

__all__ = ["ROUTES", "oauth_callback", "render_result"]
