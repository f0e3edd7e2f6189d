"""``GET /api/v1/events``: the caller's server-sent events (see :mod:`dashtam_api.events_hub`).

Messages: ``sync.started``, ``sync.progress``, ``sync.finished``, ``connection.*``,
``import.finished``, ``transactions.changed``, ``transactions.pending_posted``,
``holdings.updated``. Each carries ``id`` (the event's UUIDv7): reconnect with ``Last-Event-ID``
(header, or the ``last_event_id`` query parameter for clients that cannot set headers) to
receive what was missed. Connection, import and data events are replayed from the database (also
after a restart or on another replica, within ``DASHTAM_EVENT_RETENTION_DAYS``); the ``sync.*``
progress messages only from the serving process's memory. A value that is not a UUID is ignored
(live messages only). ``: ping`` comments are sent when the stream is idle.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query, Request
from starlette.responses import StreamingResponse

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.registry import RouteSpec
from dashtam_api.routes._runtime import RuntimeDep
from dashtam_api.routes.data import AUTH_ERRORS

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response (documented as such in OpenAPI)."""

    media_type = "text/event-stream"


async def events(
    request: Request,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    resume: Annotated[
        str | None, Query(alias="last_event_id", max_length=64, include_in_schema=True)
    ] = None,
) -> EventStreamResponse:
    """Server-sent events for the caller (sync, connection and import progress)."""
    stream = runtime.hub.stream(
        principal.user_id,
        last_event_id or resume,
        is_disconnected=request.is_disconnected,
        engine=runtime.container.engine,
    )
    return EventStreamResponse(stream, headers=SSE_HEADERS)


ROUTES = (
    RouteSpec(
        name="events.stream",
        method="GET",
        path="/api/v1/events",
        handler=events,
        auth="user",
        rate_limit="read_user",
        policy=("events", "read"),
        response_class=EventStreamResponse,
        errors=AUTH_ERRORS,
        tags=("events",),
    ),
)

__all__ = ["ROUTES", "SSE_HEADERS", "EventStreamResponse", "events"]
