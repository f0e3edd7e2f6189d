"""Rate limiting through HTTP: IETF headers, 429 + Retry-After, parameterized paths, Redis down."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

import dashtam_api_test_support as support
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD
Factory = Callable[..., Awaitable[tuple[DashtamApp, httpx.AsyncClient]]]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    """``await make(rate_limits=..., redis_url=..., **options)`` → (app, client) on one database."""
    stack: list[Any] = []

    async def factory(
        *, rate_limits: str | None = None, redis_url: str | None = None, **options: Any
    ) -> tuple[DashtamApp, httpx.AsyncClient]:
        settings = ApiSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
            secret_dir=tmp_path / "keys",
            mail_outbox=tmp_path / "outbox",
            rate_limits=rate_limits,
            redis_url=redis_url,
        )
        app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
        app.state.security_options = {
            "hasher": support.fast_hasher(),
            "send_login_notices": False,
            "login_delay_base": 0.0,
            **options,
        }
        context = support.asgi_client(app)
        client = await context.__aenter__()
        stack.append(context)
        return app, client

    yield factory
    for context in reversed(stack):
        await context.__aexit__(None, None, None)


async def _user(app: DashtamApp, email: str = "u@example.com") -> None:
    await support.register(app, email)


async def _login(client: httpx.AsyncClient, email: str = "u@example.com") -> httpx.Response:
    return await client.post("/api/v1/sessions", json={"email": email, "password": PASSWORD})


async def test_login_headers_and_429_with_retry_after(make: Factory) -> None:
    app, client = await make()
    await _user(app)
    first = await _login(client)
    assert first.status_code == 201
    assert first.headers["RateLimit-Policy"] == '"login_ip";q=10;w=60, "login_email";q=5;w=60'
    assert first.headers["RateLimit"].startswith('"login_ip";r=9;t=')
    assert '"login_email";r=4;t=' in first.headers["RateLimit"]
    statuses = [first.status_code]
    for n in range(12):
        email = f"nobody{n}@example.com"  # different emails: only the IP rule applies
        response = await client.post(
            "/api/v1/sessions", json={"email": email, "password": "wrong password here"}
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [201] + [401] * 9
    assert set(statuses[10:]) == {429}
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 7
    assert response.headers["RateLimit-Policy"] == '"login_ip";q=10;w=60'
    assert response.headers["RateLimit"].startswith('"login_ip";r=0;t=')


async def test_login_is_limited_per_email(make: Factory) -> None:
    app, client = await make(rate_limits="login_ip=1000/min")
    await _user(app)
    codes = [
        (await client.post("/api/v1/sessions", json={"email": "u@example.com", "password": "x"}))
        for _ in range(6)
    ]
    assert [r.status_code for r in codes] == [401] * 5 + [429]
    other = await client.post("/api/v1/sessions", json={"email": "v@example.com", "password": "x"})
    assert other.status_code == 401


async def test_parameterized_paths_share_the_users_budget(make: Factory) -> None:
    app, client = await make(rate_limits="write_user=3/min")
    await _user(app)
    token = (await _login(client)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    codes = []
    for _ in range(5):
        ident = "01890000-0000-7000-8000-" + secrets.token_hex(6)
        response = await client.delete(f"/api/v1/sessions/{ident}", headers=headers)
        codes.append(response.status_code)
    assert codes == [404, 404, 404, 429, 429]
    assert "Retry-After" in response.headers


async def test_every_rate_limited_route_applies_its_rule(make: Factory) -> None:
    app, _ = await make()
    routes = {r.name: r for r in app.router.routes if isinstance(r, APIRoute)}
    missing = []
    for spec in app.route_registry:
        if spec.rate_limit == "none":
            continue
        names = {getattr(d.call, "__name__", "") for d in routes[spec.name].dependant.dependencies}
        manual = spec.name == "tokens.refresh"  # keyed by the token's session, in the handler
        if not ({"authenticated", "rate_limited"} & names or manual):
            missing.append(spec.name)
    assert missing == []


async def test_redis_down_security_rules_fall_back_capacity_rules_fail_open(
    make: Factory,
) -> None:
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    app, client = await make(redis_url=dead, rate_limits="read_user=2/min,login_email=1000/min")
    await _user(app)
    token = (await _login(client)).json()["access_token"]
    reads = [
        (await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}))
        for _ in range(5)
    ]
    assert [r.status_code for r in reads] == [200] * 5  # capacity: fail open
    codes = [(await _login(client)).status_code for _ in range(12)]
    assert codes[:9] == [201] * 9
    assert 429 in codes  # security: the local limiter still counts


@pytest.mark.skipif(
    not os.environ.get("DASHTAM_TEST_REDIS_URL")
    and os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") != "1",
    reason="DASHTAM_TEST_REDIS_URL is not set",
)
async def test_redis_limits_are_shared_between_processes(make: Factory) -> None:
    from dashtam_core.adapters.redis.rate_limiter import RedisRateLimiter

    url = os.environ["DASHTAM_TEST_REDIS_URL"]
    prefix = f"test:{secrets.token_hex(6)}:"
    limiters = [RedisRateLimiter.from_url(url, prefix=prefix) for _ in range(2)]
    try:
        app_a, client_a = await make(redis_url=url, rate_limiter=limiters[0])
        _, client_b = await make(redis_url=url, rate_limiter=limiters[1])
        await _user(app_a)
        codes = []
        for n in range(12):
            client = client_a if n % 2 == 0 else client_b
            codes.append(
                (
                    await client.post(
                        "/api/v1/password-reset-tokens", json={"email": "u@example.com"}
                    )
                ).status_code
            )
        assert codes[:5] == [202] * 5
        assert codes[5:] == [429] * 7  # reset_ip: 5/min across both app instances
    finally:
        for limiter in limiters:
            await limiter.aclose()


@pytest.mark.skipif(
    not os.environ.get("DASHTAM_TEST_REDIS_URL")
    and os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") != "1",
    reason="DASHTAM_TEST_REDIS_URL is not set",
)
async def test_shutdown_closes_the_limiters_redis_connections(tmp_path: Path) -> None:
    settings = ApiSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        redis_url=os.environ["DASHTAM_TEST_REDIS_URL"],
    )
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    app.state.security_options = {
        "hasher": support.fast_hasher(),
        "send_login_notices": False,
        "login_delay_base": 0.0,
    }
    async with support.asgi_client(app) as client:
        await _user(app)
        assert (await _login(client)).status_code == 201
        kit = app.state.security
        pool = kit.rate_limiter._client.connection_pool
        connections = [*pool._available_connections, *pool._in_use_connections]
        assert any(c.is_connected for c in connections)
    assert not any(c.is_connected for c in connections)  # the limiter's own client was closed
    assert app.state.security is None
