"""Keep secrets out of logs: masking helpers, a logging filter, a structlog processor, httpx hooks.

What is masked:

* header values of ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` and
  every ``APCA-API-*`` / ``*-Api-Key`` / ``*-Secret*`` / ``*-Token*`` header;
* URL query parameters whose name mentions a token, secret, key, password, code or signature;
* ``Bearer``/``Basic`` credentials and ``name=value`` pairs of secret-looking names in free text;
* any value registered with :meth:`SecretRegistry.add` (for example every
  :meth:`Credentials.secret_values` of a connection being synced).

The httpx event hooks log ``METHOD /path -> status`` only: never the query, headers or body.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any

import httpx

MASK = "***"

_SECRET_NAME = re.compile(
    r"(token|secret|password|passwd|api[-_]?key|apikey|key[-_]?id|signature|assertion)",
    re.IGNORECASE,
)
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "code", "code_verifier"}
)
_SECRET_HEADER_PATTERN = re.compile(r"^(apca-api-.*|.*api-?key.*|.*secret.*|.*token.*)$", re.I)
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_PAIR = re.compile(
    r"(?P<name>[A-Za-z0-9_-]*(?:token|secret|password|api[_-]?key|apikey|key[_-]?id|"
    r"signature)[A-Za-z0-9_-]*|(?<![A-Za-z0-9_-])code)(?P<sep>\s*[=:]\s*|\"\s*:\s*\")(?P<value>[^\s&\",;]+)",
    re.IGNORECASE,
)


class SecretRegistry:
    """A thread-safe set of secret values to mask wherever they show up.

    Values shorter than ``min_length`` are ignored (masking ``"1"`` everywhere would mangle
    logs without protecting anything).
    """

    def __init__(self, *, min_length: int = 6) -> None:
        self.min_length = min_length
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def __repr__(self) -> str:
        return f"SecretRegistry(count={len(self._values)})"

    def __len__(self) -> int:
        return len(self._values)

    def add(self, *values: str) -> None:
        """Register secret values."""
        with self._lock:
            for value in values:
                if value and len(value) >= self.min_length:
                    self._values.add(value)
            self._pattern = None

    def add_all(self, values: Iterable[str]) -> None:
        """Register every value of an iterable (e.g. ``credentials.secret_values()``)."""
        self.add(*values)

    def discard(self, *values: str) -> None:
        """Forget values (a disconnected connection's keys)."""
        with self._lock:
            for value in values:
                self._values.discard(value)
            self._pattern = None

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._values.clear()
            self._pattern = None

    def mask(self, text: str) -> str:
        """``text`` with every registered value replaced by ``***``."""
        with self._lock:
            if not self._values:
                return text
            if self._pattern is None:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            pattern = self._pattern
        return pattern.sub(MASK, text)


#: The process-wide registry used by :func:`redact` when no registry is passed.
SECRETS = SecretRegistry()


def is_secret_name(name: str) -> bool:
    """True for header / parameter / field names that carry secrets."""
    lowered = name.lower()
    return (
        lowered in _SECRET_HEADERS
        or bool(_SECRET_HEADER_PATTERN.match(lowered))
        or bool(_SECRET_NAME.search(lowered))
    )


def redact(text: str, registry: SecretRegistry | None = None) -> str:
    """Mask registered secrets, auth schemes and ``secret_name=value`` pairs in free text."""
    text = (registry or SECRETS).mask(text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _PAIR.sub(lambda m: f"{m.group('name')}{m.group('sep')}{MASK}", text)


def redact_url(url: httpx.URL | str) -> str:
    """The URL with user info dropped and secret query parameter values masked."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if not parsed.query:
        return str(parsed)
    params: list[tuple[str, str | int | float | bool | None]] = [
        (name, MASK if is_secret_name(name) else value)
        for name, value in parsed.params.multi_items()
    ]
    return str(parsed.copy_with(params=httpx.QueryParams(params)))


def redact_headers(headers: Mapping[str, str] | httpx.Headers) -> dict[str, str]:
    """A copy of ``headers`` with secret header values masked."""
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers.items()
    return {name: (MASK if is_secret_name(name) else value) for name, value in items}


def _redact_value(value: Any, registry: SecretRegistry | None) -> Any:
    if isinstance(value, str):
        return redact(value, registry)
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and is_secret_name(k) else _redact_value(v, registry))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, registry) for v in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}", registry)
    return value


class RedactingFilter(logging.Filter):
    """A :class:`logging.Filter` that rewrites each record's message with secrets masked.

    Attach it to handlers (``handler.addFilter(RedactingFilter())``) so that every record
    reaching them is clean, whichever logger produced it.
    """

    def __init__(self, registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        """Format the message, mask it, and drop the args (always keeps the record)."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message, self.registry)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), self.registry
            )
            record.exc_info = None
        return True


def structlog_redactor(
    registry: SecretRegistry | None = None,
) -> Callable[[Any, str, MutableMapping[str, Any]], MutableMapping[str, Any]]:
    """A structlog processor masking secret-named keys and secret values in every field.

    Put it last before the renderer: ``structlog.configure(processors=[..., structlog_redactor(),
    JSONRenderer()])``.
    """

    def processor(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            if key != "event" and is_secret_name(key):
                event_dict[key] = MASK
            else:
                event_dict[key] = _redact_value(event_dict[key], registry)
        return event_dict

    return processor


def logging_event_hooks(
    logger: logging.Logger, *, slug: str = "", level: int = logging.DEBUG
) -> dict[str, list[Callable[..., Awaitable[None]]]]:
    """httpx ``event_hooks`` logging ``METHOD /path`` and ``-> status`` only.

    Args:
        logger: where to log.
        slug: provider slug prefixed to each line.
        level: the log level.
    """
    prefix = f"[{slug}] " if slug else ""

    async def on_request(request: httpx.Request) -> None:
        logger.log(level, "%s%s %s", prefix, request.method, request.url.path)

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        logger.log(
            level,
            "%s%s %s -> %s",
            prefix,
            request.method,
            request.url.path,
            response.status_code,
        )

    return {"request": [on_request], "response": [on_response]}


__all__ = [
    "MASK",
    "SECRETS",
    "RedactingFilter",
    "SecretRegistry",
    "is_secret_name",
    "logging_event_hooks",
    "redact",
    "redact_headers",
    "redact_url",
    "structlog_redactor",
]
