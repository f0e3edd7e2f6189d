"""HTTP plumbing for API providers: error mapping, retries, budgets, redaction."""

from dashtam_core.adapters.http.budget import (
    RateLimiterBudget,
    RequestBudget,
    TokenBucketBudget,
)
from dashtam_core.adapters.http.client import build_provider_client
from dashtam_core.adapters.http.errors import (
    map_http_error,
    map_transport_error,
    parse_json,
    parse_retry_after,
)
from dashtam_core.adapters.http.redaction import (
    SECRETS,
    RedactingFilter,
    SecretRegistry,
    logging_event_hooks,
    redact,
    redact_headers,
    redact_url,
    structlog_redactor,
)
from dashtam_core.adapters.http.retry import RetryPolicy, RetryTransport

__all__ = [
    "SECRETS",
    "RateLimiterBudget",
    "RedactingFilter",
    "RequestBudget",
    "RetryPolicy",
    "RetryTransport",
    "SecretRegistry",
    "TokenBucketBudget",
    "build_provider_client",
    "logging_event_hooks",
    "map_http_error",
    "map_transport_error",
    "parse_json",
    "parse_retry_after",
    "redact",
    "redact_headers",
    "redact_url",
    "structlog_redactor",
]
