"""RFC 9457 problem details: the ONE place where errors become HTTP responses.

Every error the service answers — a :class:`~dashtam_core.errors.DashtamError`, the framework's
own 404/405/422, a request that is too large, an unhandled exception — is translated here into
an ``application/problem+json`` body::

    {"type", "title", "status", "detail", "instance", "code", "trace_id", "errors": [...]}

``code`` is stable and machine-readable; ``trace_id`` equals the request's ``X-Request-ID``.
Unhandled exceptions are logged with the trace id and answered as ``internal_error`` without
any exception text, stack trace or secret.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from dashtam_core.errors import DashtamError, RateLimitExceeded

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:dashtam:problem:"

_log = structlog.get_logger("dashtam_api.problems")


class PayloadTooLarge(DashtamError):
    """The request body exceeds the configured limit."""

    code = "payload_too_large"
    status = 413


class ServiceNotReady(DashtamError):
    """A dependency (database, Redis) does not answer; the instance should get no traffic."""

    code = "not_ready"
    status = 503


class ProblemFieldError(BaseModel):
    """One field-level problem inside ``errors[]``."""

    field: str = Field(description="Dotted path of the offending field, e.g. `query.limit`.")
    code: str = Field(description="Stable machine-readable reason.")
    message: str = Field(description="Human-readable explanation.")


class ProblemDetails(BaseModel):
    """An RFC 9457 problem details body (media type ``application/problem+json``)."""

    type: str = Field(description="URI identifying the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="HTTP status code.")
    detail: str | None = Field(default=None, description="Explanation of this occurrence.")
    instance: str | None = Field(default=None, description="The request path.")
    code: str = Field(description="Stable machine-readable error code.")
    trace_id: str | None = Field(default=None, description="Equals the X-Request-ID header.")
    errors: list[ProblemFieldError] = Field(default_factory=list)


#: Codes produced by the service itself (not by a DashtamError subclass).
_FRAMEWORK_CODES: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "method_not_allowed": 405,
    "not_acceptable": 406,
    "unsupported_media_type": 415,
    "internal_error": 500,
}

_HTTP_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "not_ready",
}

_extra_codes: dict[str, set[int]] = {}


def register_error_code(code: str, status: int) -> None:
    """Document an error code that is not a ``DashtamError`` subclass attribute.

    Args:
        code: the stable ``code`` value.
        status: the HTTP status it is answered with.
    """
    _extra_codes.setdefault(code, set()).add(status)


def _subclasses(cls: type[DashtamError]) -> Iterable[type[DashtamError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def error_catalog() -> dict[str, frozenset[int]]:
    """Every known error code and the HTTP statuses it can be answered with.

    Built from the loaded :class:`DashtamError` subclasses, the service's own codes and
    :func:`register_error_code`, so a new error class is documented without editing this file.
    """
    catalog: dict[str, set[int]] = {}
    classes: list[type[DashtamError]] = [DashtamError, *_subclasses(DashtamError)]
    for cls in classes:
        catalog.setdefault(cls.code, set()).add(cls.status)
    for code, status in _FRAMEWORK_CODES.items():
        catalog.setdefault(code, set()).add(status)
    for code, statuses in _extra_codes.items():
        catalog.setdefault(code, set()).update(statuses)
    return {code: frozenset(statuses) for code, statuses in catalog.items()}


def title_for(code: str) -> str:
    """The problem title of ``code`` (``"not_found"`` → ``"Not found"``)."""
    return code.replace("_", " ").capitalize()


def make_problem(
    status: int,
    code: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    trace_id: str | None = None,
    errors: Iterable[ProblemFieldError] = (),
) -> ProblemDetails:
    """Build a :class:`ProblemDetails` with the conventional ``type`` and ``title``."""
    return ProblemDetails(
        type=f"{PROBLEM_TYPE_PREFIX}{code}",
        title=title_for(code),
        status=status,
        detail=detail,
        instance=instance,
        code=code,
        trace_id=trace_id,
        errors=list(errors),
    )


def problem_response(problem: ProblemDetails, headers: Mapping[str, str] | None = None) -> Response:
    """Serialize ``problem`` as an ``application/problem+json`` response."""
    return Response(
        content=problem.model_dump_json(),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def trace_id_of(scope: Mapping[str, Any]) -> str | None:
    """The trace id the request-context middleware stored in the ASGI scope."""
    state = scope.get("state")
    if isinstance(state, Mapping):
        value = state.get("trace_id")
        return value if isinstance(value, str) else None
    return None


def _retry_after_header(exc: DashtamError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitExceeded):  # IETF RateLimit headers on the 429 too
        headers.update(
            {k: v for k, v in exc.headers.items() if k in ("RateLimit-Policy", "RateLimit")}
        )
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after >= 0:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return headers


def _field_path(loc: Iterable[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:] or ["body"]
    return ".".join(parts)


def problem_for_exception(
    exc: BaseException, *, instance: str | None, trace_id: str | None, method: str = ""
) -> tuple[ProblemDetails, dict[str, str]]:
    """Translate any exception into problem details plus extra response headers.

    Args:
        exc: the exception raised while handling the request.
        instance: the request path.
        trace_id: the request id.
        method: the HTTP method (used in the 404/405 detail).

    Returns:
        The problem and the headers to send with it (``Retry-After``, ``Allow``).
    """
    if isinstance(exc, DashtamError):
        errors = [
            ProblemFieldError(field=e.field, code=e.code, message=e.message) for e in exc.errors
        ]
        problem = make_problem(
            exc.status,
            exc.code,
            exc.message,
            instance=instance,
            trace_id=trace_id,
            errors=errors,
        )
        return problem, _retry_after_header(exc)
    if isinstance(exc, RequestValidationError):
        field_errors = [
            ProblemFieldError(
                field=_field_path(err.get("loc", ())),
                code=str(err.get("type", "invalid")),
                message=str(err.get("msg", "invalid value")),
            )
            for err in exc.errors()
        ]
        problem = make_problem(
            422,
            "validation_error",
            "The request is invalid; see errors[] for each field.",
            instance=instance,
            trace_id=trace_id,
            errors=field_errors,
        )
        return problem, {}
    if isinstance(exc, StarletteHTTPException) and exc.status_code == 400:
        # The framework's only 400 is a body it could not parse (not JSON, bad encoding):
        # that is invalid input like any other, so it is a documented 422 validation_error.
        problem = make_problem(
            422,
            "validation_error",
            "The request body could not be parsed.",
            instance=instance,
            trace_id=trace_id,
            errors=[
                ProblemFieldError(
                    field="body", code="malformed_body", message=str(exc.detail or "")
                )
            ],
        )
        return problem, {}
    if isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        code = _HTTP_STATUS_CODES.get(status, f"http_{status}")
        detail: str | None = str(exc.detail) if exc.detail else None
        default_phrase = (
            HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        )
        if status == 404 and detail in (None, default_phrase):
            detail = f"No resource at {instance}."
        elif status == 405 and detail in (None, default_phrase):
            detail = f"Method {method} is not allowed on {instance}."
        headers = {
            k: v
            for k, v in (exc.headers or {}).items()
            if k.lower() in {"allow", "www-authenticate", "retry-after"}
        }
        return make_problem(status, code, detail, instance=instance, trace_id=trace_id), headers
    _log.error(
        "unhandled_exception",
        trace_id=trace_id,
        path=instance,
        exc_type=type(exc).__name__,
        exc_info=exc,
    )
    problem = make_problem(
        500,
        "internal_error",
        "An unexpected error occurred; quote the trace id when reporting it.",
        instance=instance,
        trace_id=trace_id,
    )
    return problem, {}


async def _handle(request: Request, exc: Exception) -> Response:
    problem, headers = problem_for_exception(
        exc,
        instance=request.url.path,
        trace_id=trace_id_of(request.scope),
        method=request.method,
    )
    return problem_response(problem, headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Register the problem-details handlers on ``app`` (errors, 404/405, 422, anything else)."""
    app.add_exception_handler(DashtamError, _handle)
    app.add_exception_handler(StarletteHTTPException, _handle)
    app.add_exception_handler(RequestValidationError, _handle)
    app.add_exception_handler(Exception, _handle)


def problem_schemas() -> dict[str, Any]:
    """JSON schemas of :class:`ProblemDetails` and its parts, keyed for ``components.schemas``."""
    schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    return {**defs, "ProblemDetails": schema}


def openapi_error_responses(codes: Iterable[str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``codes``, grouped by HTTP status.

    Each entry is ``code`` (every status the catalog knows for it) or ``code:status``. Every code
    becomes a named example of the ``application/problem+json`` body.

    Raises:
        KeyError: an unknown code (register it with :func:`register_error_code`).
    """
    catalog = error_catalog()
    by_status: dict[int, list[str]] = {}
    for entry in codes:
        code, _, fixed = entry.partition(":")
        if code not in catalog:
            raise KeyError(f"undocumented error code {code!r}")
        statuses = [int(fixed)] if fixed else sorted(catalog[code])
        for status in statuses:
            bucket = by_status.setdefault(status, [])
            if code not in bucket:
                bucket.append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(by_status):
        examples = {
            code: {
                "summary": title_for(code),
                "value": make_problem(status, code, instance="/", trace_id="0").model_dump(),
            }
            for code in by_status[status]
        }
        responses[status] = {
            "description": "Problem: " + ", ".join(f"`{c}`" for c in by_status[status]),
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "schema": {"$ref": "#/components/schemas/ProblemDetails"},
                    "examples": examples,
                }
            },
        }
    return responses


__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_PREFIX",
    "PayloadTooLarge",
    "ProblemDetails",
    "ProblemFieldError",
    "ServiceNotReady",
    "error_catalog",
    "install_problem_handlers",
    "make_problem",
    "openapi_error_responses",
    "problem_for_exception",
    "problem_response",
    "register_error_code",
    "title_for",
    "trace_id_of",
]
