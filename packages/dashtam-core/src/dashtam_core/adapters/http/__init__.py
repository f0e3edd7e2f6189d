"""HTTP plumbing for API providers: error mapping, retries, budgets, redaction."""

from dashtam_core.adapters.http.errors import (
    map_http_error,
    map_transport_error,
    parse_json,
    parse_retry_after,
)

__all__ = ["map_http_error", "map_transport_error", "parse_json", "parse_retry_after"]
