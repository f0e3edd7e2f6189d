"""Map HTTP responses and transport failures to typed provider errors."""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime
from typing import Any

import httpx

from dashtam_core.errors import (
    AuthExpired,
    InvalidCredentials,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailable,
    RateLimited,
)
from dashtam_core.result import Err, Ok, Result


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _retry_after(response: httpx.Response) -> float | None:
    parsed = parse_retry_after(response.headers.get("Retry-After"))
    if parsed is not None:
        return parsed
    reset = response.headers.get("X-RateLimit-Reset") or response.headers.get("RateLimit-Reset")
    if reset:
        try:
            number = float(reset)
        except ValueError:
            return None
        # Epoch seconds (Alpaca) vs delta seconds (IETF draft).
        if number > 1_000_000_000:
            return max(0.0, number - datetime.now(UTC).timestamp())
        return max(0.0, number)
    return None


def map_http_error(
    response: httpx.Response, *, unauthorized: type[ProviderError] = AuthExpired
) -> ProviderError | None:
    """Return the typed error for a non-2xx response, or None when it succeeded.

    401 → ``unauthorized`` (``AuthExpired`` for stored tokens, ``InvalidCredentials`` when
    validating fresh keys); 403 → ``InvalidCredentials``; 429 → ``RateLimited`` with
    ``retry_after``; 5xx → ``ProviderUnavailable``; other 4xx → ``ProviderProtocolError``.
    The message carries the status and path only: never the body or headers (secrets).
    """
    status = response.status_code
    if 200 <= status < 300:
        return None
    where = (
        f"{response.request.method} {response.request.url.path}"
        if _has_request(response)
        else "request"
    )
    if status == 401:
        return unauthorized(f"{where} answered 401 Unauthorized")
    if status == 403:
        return InvalidCredentials(f"{where} answered 403 Forbidden")
    if status == 429:
        return RateLimited(
            f"{where} answered 429 Too Many Requests", retry_after=_retry_after(response)
        )
    if status >= 500:
        return ProviderUnavailable(f"{where} answered {status}")
    return ProviderProtocolError(f"{where} answered unexpected status {status}")


def _has_request(response: httpx.Response) -> bool:
    try:
        response.request  # noqa: B018
    except RuntimeError:
        return False
    return True


def map_transport_error(exc: httpx.HTTPError) -> ProviderError:
    """Timeouts and connection failures → ``ProviderUnavailable`` (no URL query, no secrets)."""
    kind = type(exc).__name__
    return ProviderUnavailable(f"provider request failed: {kind}")


def parse_json(response: httpx.Response) -> Result[Any, ProviderError]:
    """Decode a JSON body or return ``ProviderProtocolError``."""
    try:
        return Ok(json.loads(response.content))
    except json.JSONDecodeError as exc:
        return Err(ProviderProtocolError(f"invalid JSON from provider: {exc.msg}"))
    except UnicodeDecodeError:
        return Err(ProviderProtocolError("invalid JSON from provider: not UTF-8"))


__all__ = ["map_http_error", "map_transport_error", "parse_json", "parse_retry_after"]
