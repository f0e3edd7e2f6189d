"""Security headers added to every HTTP response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BASE_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_CSP_KEY = b"content-security-policy"
#: API responses are data, never documents; /docs and the OAuth pages set their own policy.
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_NO_CSP_PREFIXES = ("/docs", "/redoc", "/oauth/", "/sandbox/")


class SecurityHeadersMiddleware:
    """Pure ASGI middleware adding ``nosniff``, ``DENY`` framing, referrer and CSP headers.

    Args:
        app: the wrapped application.
        hsts: also send ``Strict-Transport-Security`` (enable when served over TLS).
    """

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = (*_BASE_HEADERS, _HSTS) if hsts else _BASE_HEADERS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        add_csp = not path.startswith(_NO_CSP_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in self.headers if h[0] not in present)
                if add_csp and _CSP_KEY not in present:
                    headers.append((_CSP_KEY, _API_CSP))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


__all__ = ["SecurityHeadersMiddleware"]
