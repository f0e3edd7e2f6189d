"""The Dashtam error tree.

Every expected failure is a subclass of :class:`DashtamError` and carries a stable
machine-readable ``code`` (the ``code`` field of problem details and the CLI's ``--json``
errors). The API maps these to HTTP statuses in exactly one place.

::

    DashtamError
    ├── ValidationError            code=validation_error   (422)
    │   ├── WeakPassword           code=weak_password      (422)
    │   └── StatementParseError    code=invalid_statement  (422, names line/element)
    ├── NotFound                   code=not_found          (404; also another user's object)
    ├── Conflict                   code=conflict           (409)
    │   └── EmailTaken             code=email_taken        (409)
    ├── AuthenticationError        code=invalid_credentials (401)
    ├── PermissionDenied           code=forbidden          (403)
    ├── RateLimitExceeded          code=rate_limited       (429, retry_after)
    ├── InvalidStateTransition     code=invalid_state      (409)
    ├── ProviderError              code=provider_error     (502)
    │   ├── AuthExpired            code=auth_expired
    │   ├── InvalidCredentials     code=invalid_credentials (422 on connect)
    │   ├── RateLimited            code=provider_rate_limited (retry_after)
    │   ├── ProviderUnavailable    code=provider_unavailable
    │   └── ProviderProtocolError  code=provider_protocol_error
    └── ConfigurationError         code=configuration_error (500)
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field-level problem (``errors[]`` in problem details)."""

    field: str
    code: str
    message: str


class DashtamError(Exception):
    """Base of every expected Dashtam failure."""

    code: str = "error"
    status: int = 400

    def __init__(self, message: str = "", *, errors: list[FieldError] | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        self.errors: list[FieldError] = list(errors or [])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ValidationError(DashtamError):
    """Input failed validation."""

    code = "validation_error"
    status = 422


class WeakPassword(ValidationError):
    """The password does not meet the policy; ``message`` says why."""

    code = "weak_password"


class StatementParseError(ValidationError):
    """A statement file is malformed or unsafe; ``line`` / ``element`` locate the problem."""

    code = "invalid_statement"

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        element: str | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        where = []
        if line is not None:
            where.append(f"line {line}")
        if element is not None:
            where.append(f"element <{element}>")
        full = f"{message} ({', '.join(where)})" if where else message
        super().__init__(full, errors=errors)
        self.line = line
        self.element = element


class NotFound(DashtamError):
    """The object does not exist (or belongs to someone else)."""

    code = "not_found"
    status = 404


class Conflict(DashtamError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class EmailTaken(Conflict):
    """A user with that email already exists."""

    code = "email_taken"


class AuthenticationError(DashtamError):
    """Credentials were not accepted."""

    code = "invalid_credentials"
    status = 401


class PermissionDenied(DashtamError):
    """The caller may not do this."""

    code = "forbidden"
    status = 403


class RateLimitExceeded(DashtamError):
    """Too many requests; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    status = 429

    def __init__(
        self,
        message: str = "rate limit exceeded",
        *,
        retry_after: float = 1.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})  # e.g. RateLimit-Policy, RateLimit


class InvalidStateTransition(DashtamError):
    """A state machine refused a transition."""

    code = "invalid_state"
    status = 409


class ConfigurationError(DashtamError):
    """The installation is misconfigured."""

    code = "configuration_error"
    status = 500


class ProviderError(DashtamError):
    """A provider call failed. Subclasses say how; never carries a secret."""

    code = "provider_error"
    status = 502


class AuthExpired(ProviderError):
    """The provider refused the stored authorization; the user must reconnect."""

    code = "auth_expired"


class InvalidCredentials(ProviderError):
    """The credentials given are wrong (bad API keys, a refused authorization code)."""

    code = "invalid_credentials"
    status = 422


class RateLimited(ProviderError):
    """The provider asked us to slow down."""

    code = "provider_rate_limited"
    status = 503

    def __init__(self, message: str = "provider rate limit", *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider is down, timed out or answered 5xx."""

    code = "provider_unavailable"
    status = 503


class ProviderProtocolError(ProviderError):
    """The provider answered something we cannot understand (invalid JSON, missing fields)."""

    code = "provider_protocol_error"


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A serializable summary of an error (used in job results and sync records)."""

    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


__all__ = [
    "AuthExpired",
    "AuthenticationError",
    "ConfigurationError",
    "Conflict",
    "DashtamError",
    "EmailTaken",
    "ErrorInfo",
    "FieldError",
    "InvalidCredentials",
    "InvalidStateTransition",
    "NotFound",
    "PermissionDenied",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderUnavailable",
    "RateLimitExceeded",
    "RateLimited",
    "StatementParseError",
    "ValidationError",
    "WeakPassword",
]
