"""Pure ASGI middleware: request context, security headers, body size limit."""

from dashtam_api.middleware.body_limit import BodyLimitMiddleware
from dashtam_api.middleware.request_context import (
    REQUEST_ID_HEADER,
    RequestContextMiddleware,
    incoming_request_id,
)
from dashtam_api.middleware.security_headers import SecurityHeadersMiddleware

__all__ = [
    "REQUEST_ID_HEADER",
    "BodyLimitMiddleware",
    "RequestContextMiddleware",
    "SecurityHeadersMiddleware",
    "incoming_request_id",
]
