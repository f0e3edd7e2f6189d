"""Request context in logs, sandbox URL mapping and provider settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from pydantic_settings import BaseSettings
from structlog.testing import capture_logs

from dashtam_api.provider_config import ProviderConfigs, sandbox_overrides
from dashtam_api.registry import RouteSpec
from dashtam_core.plugins.manager import build_plugin_manager


async def whoami() -> dict[str, Any]:
    """The structlog context bound for this request."""
    return dict(structlog.contextvars.get_contextvars())


async def crash() -> None:
    """A bug."""
    raise ZeroDivisionError("x")


EXTRA = (
    RouteSpec(
        name="test.whoami",
        method="GET",
        path="/test/whoami",
        handler=whoami,
        auth="public",
        rate_limit="read_user",
    ),
    RouteSpec(
        name="test.crash",
        method="GET",
        path="/test/crash",
        handler=crash,
        auth="public",
        rate_limit="read_user",
    ),
)


async def test_request_id_is_bound_in_structlog_context(make_client: Callable[..., Any]) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    response = await client.get("/test/whoami", headers={"X-Request-ID": "ctx-1"})
    assert response.json() == {"request_id": "ctx-1", "trace_id": "ctx-1"}
    assert structlog.contextvars.get_contextvars() == {}


async def test_unhandled_exception_is_logged_with_trace_id(
    make_client: Callable[..., Any],
) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    with capture_logs() as logs:
        response = await client.get("/test/crash", headers={"X-Request-ID": "crash-1"})
    assert response.status_code == 500
    events = [e for e in logs if e["event"] == "unhandled_exception"]
    assert len(events) == 1
    assert events[0]["trace_id"] == "crash-1"
    assert events[0]["exc_type"] == "ZeroDivisionError"
    assert events[0]["log_level"] == "error"


class _Plain(BaseSettings):
    token_url: str = "https://x.invalid"


class _WithBase(BaseSettings):
    base_url: str = "https://x.invalid"


def test_sandbox_overrides_for_first_party_providers() -> None:
    base = "http://127.0.0.1:8000/"
    assert sandbox_overrides("schwab", _Plain, base) == {
        "api_base_url": "http://127.0.0.1:8000/sandbox/schwab/trader/v1",
        "auth_base_url": "http://127.0.0.1:8000/sandbox/schwab/v1/oauth",
    }
    assert sandbox_overrides("alpaca", _Plain, base) == {
        "paper_base_url": "http://127.0.0.1:8000/sandbox/alpaca",
        "live_base_url": "http://127.0.0.1:8000/sandbox/alpaca",
    }
    assert sandbox_overrides("other", _WithBase, base) == {
        "base_url": "http://127.0.0.1:8000/sandbox/other"
    }
    assert sandbox_overrides("other", _Plain, base) == {}


def test_installed_sandboxed_providers_get_sandbox_urls() -> None:
    installed = build_plugin_manager()
    configs = ProviderConfigs(
        installed.providers, sandbox=True, public_base_url="http://127.0.0.1:9999"
    )
    plain = ProviderConfigs(installed.providers, sandbox=False, public_base_url="http://x")
    for provider in installed.providers:
        overrides = configs.overrides(provider)
        if provider.spec.sandbox is None:
            assert overrides == {}
            continue
        settings = configs.get(provider.spec.slug)
        for field, url in overrides.items():
            assert getattr(settings, field) == url
            assert url.startswith(f"http://127.0.0.1:9999/sandbox/{provider.spec.slug}")
        assert plain.overrides(provider) == {}
        assert configs.get(provider.spec.slug) is settings
