"""Request context: ``X-Request-ID``, trace id, structlog binding and the last-resort 500."""

from __future__ import annotations

import re

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashtam_api.problems import problem_for_exception, problem_response
from dashtam_core.domain.ids import uuid7

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER_KEY = b"x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


def incoming_request_id(scope: Scope) -> str | None:
    """A valid ``X-Request-ID`` sent by the client (1-128 of ``[A-Za-z0-9._-]``), else None."""
    for key, value in scope.get("headers", ()):
        if key == _HEADER_KEY:
            return value.decode("ascii") if _VALID_ID.fullmatch(value) else None
    return None


class RequestContextMiddleware:
    """Pure ASGI middleware giving every HTTP request an id and a problem-details safety net.

    * echoes a valid incoming ``X-Request-ID`` or generates a UUIDv7, stores it as
      ``request.state.request_id`` and ``request.state.trace_id`` and sends it back on every
      response (including errors);
    * binds ``request_id``/``trace_id`` in structlog's contextvars for the request;
    * turns any exception that escaped the application into a 500 ``internal_error`` problem
      (logged with the trace id, never echoing the exception) instead of letting it reach the
      server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or str(uuid7())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["trace_id"] = request_id
        header_value = request_id.encode("ascii")
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", ()) if k != _HEADER_KEY]
                headers.append((_HEADER_KEY, header_value))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id, trace_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                if started:
                    raise
                problem, headers = problem_for_exception(
                    exc,
                    instance=scope.get("path"),
                    trace_id=request_id,
                    method=scope.get("method", ""),
                )
                await problem_response(problem, headers)(scope, receive, send_with_id)


__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware", "incoming_request_id"]
