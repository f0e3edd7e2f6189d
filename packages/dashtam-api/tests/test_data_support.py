"""Shared helpers of the financial-data API tests (loaded by path from the other test files).

:func:`serve` runs the real application with uvicorn on a free loopback port, in sandbox mode
(the provider simulators mounted on the same server), on the given migrated database. Users
are created through the unit of work with a real argon2id hash and log in through
``POST /api/v1/sessions``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import uvicorn

from dashtam_api.main import DashtamApp, create_app
from dashtam_api.routes._runtime import Runtime, close_runtime
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.security.passwords import TEST_PARAMS, Argon2idHasher
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import Role, User

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "correct horse battery staple 42"


def load(name: str) -> ModuleType:
    """Import a sibling test-helper module by file name (tests are not a package)."""
    path = Path(__file__).parent / name
    key = f"dashtam_api_tests_{path.stem}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        hasher = Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True)
        user = User(
            id=uuid7(),
            email=email,
            password_hash=hasher.hash_sync(PASSWORD),
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
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started, "uvicorn did not start"
    client = httpx.AsyncClient(base_url=base, timeout=30)
    try:
        yield Served(app, base, client, database_url)
    finally:
        await client.aclose()
        await close_runtime(app)
        server.should_exit = True
        await task
        # The security kit's Redis rate limiter is not closed by the app's lifespan (yet).
        kit = getattr(app.state, "security", None)
        closer = getattr(getattr(kit, "rate_limiter", None), "aclose", None)
        if closer is not None:
            await closer()
