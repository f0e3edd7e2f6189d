"""The service skeleton: health, readiness, X-Request-ID, security headers, providers, OpenAPI."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import httpx
import pytest

from dashtam_api import __version__
from dashtam_api.main import create_app
from dashtam_api.schemas.providers import provider_listing
from dashtam_api.settings import ApiSettings
from dashtam_core.plugins.manager import build_plugin_manager

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_health_is_ok_with_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "sandbox": False}
    assert response.headers["content-type"] == "application/json"


async def test_generated_request_id_is_uuid7_and_unique(client: httpx.AsyncClient) -> None:
    first = (await client.get("/health")).headers["x-request-id"]
    second = (await client.get("/health")).headers["x-request-id"]
    assert UUID7.fullmatch(first)
    assert UUID7.fullmatch(second)
    assert first != second


@pytest.mark.parametrize("incoming", ["abc-123", "A.b_c-9", "x" * 128])
async def test_valid_request_id_is_echoed(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": incoming})
    assert response.headers["x-request-id"] == incoming


@pytest.mark.parametrize("incoming", ["x" * 129, "has space", "semi;colon", "slash/x", ""])
async def test_invalid_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": incoming})
    assert UUID7.fullmatch(response.headers["x-request-id"])


async def test_security_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/providers")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "strict-transport-security" not in response.headers
    docs = await client.get("/docs")
    assert "content-security-policy" not in docs.headers


async def test_hsts_when_enabled(make_client: Callable[..., Any]) -> None:
    _, client = await make_client(hsts=True)
    response = await client.get("/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_ready_checks_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def test_ready_is_503_problem_when_redis_is_down(make_client: Callable[..., Any]) -> None:
    _, client = await make_client(
        redis_url=f"redis://127.0.0.1:{_closed_port()}/0", readiness_timeout_seconds=1.0
    )
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["detail"].startswith("redis did not answer")
    assert "127.0.0.1" not in body["detail"]


@pytest.mark.redis
async def test_ready_pings_real_redis(make_client: Callable[..., Any]) -> None:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL")
    if not url:
        if os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail("DASHTAM_TEST_REDIS_URL is required")
        pytest.skip("DASHTAM_TEST_REDIS_URL is not set")
    _, client = await make_client(redis_url=url)
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_providers_lists_the_test_plugin(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/providers")
    assert response.status_code == 200
    assert response.json() == {
        "data": [
            {
                "slug": "testbank",
                "name": "Test Bank",
                "auth_type": "api_key",
                "capabilities": ["accounts", "balances", "transactions"],
                "distribution": "testbank",
                "version": "0",
            }
        ],
        "next_cursor": None,
    }


async def test_providers_lists_installed_plugins(make_client: Callable[..., Any]) -> None:
    installed = build_plugin_manager(load_only=None)
    _, client = await make_client(plugins=installed)
    body = (await client.get("/api/v1/providers")).json()
    assert body == provider_listing(installed.providers).model_dump(mode="json")
    assert [p["slug"] for p in body["data"]] == installed.providers.slugs()
    for provider in body["data"]:
        assert provider["version"] == version(provider["distribution"])
        assert provider["capabilities"] == sorted(provider["capabilities"])


async def test_openapi_and_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["version"] == __version__
    assert "ProblemDetails" in spec["components"]["schemas"]
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


async def test_sandbox_mode_mounts_simulators_and_points_settings(
    make_client: Callable[..., Any],
) -> None:
    app, client = await make_client(sandbox=True, public_base_url="http://127.0.0.1:8123")
    response = await client.get("/sandbox/testbank/ping")
    assert response.status_code == 200
    assert response.json() == {"sandbox": "testbank", "path": "/sandbox/testbank/ping"}
    config = app.state.provider_configs.get("testbank")
    assert config.base_url == "http://127.0.0.1:8123/sandbox/testbank"


async def test_without_sandbox_nothing_is_mounted(make_client: Callable[..., Any]) -> None:
    app, client = await make_client()
    assert (await client.get("/sandbox/testbank/ping")).status_code == 404
    assert app.state.provider_configs.get("testbank").base_url == "https://api.testbank.invalid"


def test_create_app_reads_settings_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("DASHTAM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("DASHTAM_SANDBOX", "true")
    app = create_app(plugins=build_plugin_manager(load_only=[]))
    settings = app.state.settings
    assert isinstance(settings, ApiSettings)
    assert settings.sandbox is True
    assert settings.database_url.endswith("env.db")
