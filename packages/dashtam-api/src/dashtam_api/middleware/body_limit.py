"""Request body size limit answered with a 413 ``payload_too_large`` problem."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashtam_api.problems import PayloadTooLarge, make_problem, problem_response, trace_id_of


class BodyLimitMiddleware:
    """Pure ASGI middleware refusing request bodies larger than ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before the body is read; a
    streamed (chunked) body is counted as it arrives and reading past the limit raises
    :class:`~dashtam_api.problems.PayloadTooLarge`, which the problem handlers answer.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await self._refuse(scope, receive, send)
                    return
                break
        received = 0
        exceeded = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise PayloadTooLarge(f"The request body exceeds {limit} bytes.")
            return message

        async def guarded_send(message: Message) -> None:
            # Once the limit is hit, whatever the app answers (FastAPI turns a failed body
            # read into a 400) is replaced by the 413 problem sent below.
            nonlocal started
            if exceeded and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = make_problem(
            413,
            PayloadTooLarge.code,
            f"The request body exceeds {self.max_bytes} bytes.",
            instance=scope.get("path"),
            trace_id=trace_id_of(scope),
        )
        await problem_response(problem, {"Connection": "close"})(scope, receive, send)


__all__ = ["BodyLimitMiddleware"]
