"""Shared helpers of the dashtam-api tests: ``import dashtam_api_test_support as support``.

The folder of this module is on pytest's ``pythonpath`` (root ``pyproject.toml``); the test
modules themselves cannot import each other (``--import-mode=importlib``). The module name does
not match ``test_*.py``, so pytest does not collect it.

:func:`serve` runs the real application with uvicorn on a free loopback port, in sandbox mode
(the provider simulators mounted on the same server), on the given migrated database. Users
are created through the unit of work with a real argon2id hash and log in through
``POST /api/v1/sessions``.

The in-process helpers serve the tests that drive the app through ``httpx.ASGITransport``:
:func:`asgi_client` (lifespan on), :func:`security_options` (test-speed argon2id, optional Redis
rate limiter on a fresh key prefix), :func:`security_kit` and :func:`register`.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.requests import Request

from dashtam_api.auth import get_security
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.routes._runtime import Runtime, close_runtime
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.security.passwords import TEST_PARAMS, Argon2idHasher
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory
from dashtam_core.application import identity
from dashtam_core.application.audit import SYSTEM
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import Role, User

FIXTURES = Path(__file__).parent.parent / "fixtures"
PASSWORD = "correct horse battery staple 42"


def fast_hasher() -> Argon2idHasher:
    """An argon2id hasher with the (weak, fast) test parameters."""
    return Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True)


@asynccontextmanager
async def security_options(
    app: DashtamApp, *, redis_url: str | None = None, **options: Any
) -> AsyncIterator[dict[str, Any]]:
    """Set ``app.state.security_options`` for a test; yield them.

    The options hold :func:`fast_hasher` and ``options``; with ``redis_url`` also a Redis rate
    limiter on a fresh key prefix (so tests do not share counters), closed when the block ends.
    Enter this before :func:`asgi_client` so the limiter outlives the app's lifespan.
    """
    built: dict[str, Any] = {"hasher": fast_hasher(), **options}
    if redis_url:
        from dashtam_core.adapters.redis.rate_limiter import RedisRateLimiter

        built["rate_limiter"] = RedisRateLimiter.from_url(
            redis_url, prefix=f"test:{secrets.token_hex(6)}:"
        )
    app.state.security_options = built
    try:
        yield built
    finally:
        if redis_url:
            await built["rate_limiter"].aclose()


@asynccontextmanager
async def asgi_client(app: DashtamApp) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an in-process client on ``http://testserver``."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def security_kit(app: DashtamApp) -> SecurityKit:
    """The app's security kit, as a route gets it (the app's lifespan must be running)."""
    return get_security(Request({"type": "http", "app": app}))


async def register(
    app: DashtamApp, email: str, *, roles: list[Role] | None = None, password: str = PASSWORD
) -> identity.Registered:
    """Register a verified user through the identity service (as the system)."""
    return await identity.register(
        security_kit(app), email, password, origin=SYSTEM, roles=roles, verified=True
    )


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def uvicorn_server(
    app: Any, *, port: int | None = None, lifespan: str = "off"
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port by default) until the block ends.

    Yields the server's base URL; the server is stopped (and awaited) on exit.
    """
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan, ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Served:
    """A running server and a client for it."""

    app: DashtamApp
    base: str
    client: httpx.AsyncClient
    database_url: str

    @property
    def runtime(self) -> Runtime:
        """The data routes' runtime (built on first use)."""
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def user(self, email: str | None = None) -> tuple[User, dict[str, str]]:
        """A verified user and the ``Authorization`` header of a fresh login."""
        email = email or f"u{uuid7().hex[:12]}@example.com"
        user = User(
            id=uuid7(),
            email=email,
            password_hash=fast_hasher().hash_sync(PASSWORD),
            created_at=datetime.now(UTC),
            email_verified=True,
            roles=[Role.USER],
        )
        engine = create_engine(self.database_url)
        try:
            async with SqlAlchemyUnitOfWorkFactory(engine)() as uow:
                (await uow.users.add(user)).unwrap()
                await uow.commit()
        finally:
            await engine.dispose()
        r = await self.client.post("/api/v1/sessions", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return user, {"Authorization": f"Bearer {r.json()['access_token']}"}

    async def wait_sync(self, headers: dict[str, str], sync_id: str) -> dict[str, Any]:
        """Poll ``GET /syncs/{id}`` until it finished; return the body."""
        for _ in range(400):
            r = await self.client.get(f"/api/v1/syncs/{sync_id}", headers=headers)
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            if body["status"] in ("succeeded", "failed"):
                await self.runtime.wait_idle()
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"sync {sync_id} did not finish")


@asynccontextmanager
async def serve(
    database_url: str,
    tmp_path: Path,
    *,
    redis_url: str | None = None,
    app_state: dict[str, Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Served]:
    """Serve the app (sandbox mode) with uvicorn on a free port until the block ends."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = ApiSettings(
        _env_file=None,
        database_url=database_url,
        redis_url=redis_url,
        sandbox=True,
        public_base_url=base,
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        archive_dir=tmp_path / "archive",
        load_plugins="schwab,alpaca,chase",
        **overrides,
    )
    generate_all_keys(settings.secret_dir)  # `dashtam keys generate` (needed off SQLite)
    app = create_app(settings)
    for key, value in (app_state or {}).items():
        setattr(app.state, key, value)
    async with uvicorn_server(app, port=port, lifespan="on"):
        client = httpx.AsyncClient(base_url=base, timeout=30)
        try:
            yield Served(app, base, client, database_url)
        finally:
            await client.aclose()
            await close_runtime(app)
