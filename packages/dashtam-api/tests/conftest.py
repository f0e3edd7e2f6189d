"""Fixtures for the dashtam-api tests: a test provider plugin and an app served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.domain.connection import AuthType
from dashtam_core.plugins import hookspecs
from dashtam_core.plugins.manager import LoadedPlugins, build_plugin_manager
from dashtam_core.plugins.spec import ProviderSpec
from dashtam_core.ports.provider import Capability


class TestbankSettings(BaseSettings):
    """Settings of the test provider."""

    model_config = SettingsConfigDict(env_prefix="DASHTAM_TESTBANK_", extra="ignore")
    base_url: str = "https://api.testbank.invalid"


def _sandbox() -> Starlette:
    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"sandbox": "testbank", "path": request.url.path})

    return Starlette(routes=[Route("/ping", ping)])


TESTBANK = ProviderSpec(
    slug="testbank",
    name="Test Bank",
    auth_type=AuthType.API_KEY,
    capabilities=frozenset({Capability.TRANSACTIONS, Capability.ACCOUNTS, Capability.BALANCES}),
    settings_model=TestbankSettings,
    factory=lambda settings, client: object(),
    sandbox=_sandbox,
)


class TestbankPlugin:
    """A plugin object registering :data:`TESTBANK`."""

    @hookspecs.hookimpl
    def register_providers(self, register: Callable[[ProviderSpec], None]) -> None:
        register(TESTBANK)


@pytest.fixture
def test_plugins() -> LoadedPlugins:
    """Only the test plugin (no entry points)."""
    return build_plugin_manager(load_only=[], extra_plugins=[("testbank", TestbankPlugin())])


@pytest.fixture
def settings(tmp_path: Path) -> ApiSettings:
    """Settings on a fresh SQLite file, without Redis."""
    return ApiSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'dashtam.db'}",
        redis_url=None,
        sandbox=False,
        public_base_url="http://testserver",
    )


AppClient = Callable[..., Any]


@pytest.fixture
async def make_client(
    settings: ApiSettings, test_plugins: LoadedPlugins
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_client(**setting_overrides, extra_routes=...)`` → (app, client), lifespan on."""
    stack: list[Any] = []

    async def factory(
        *, extra_routes: Any = (), plugins: LoadedPlugins | None = None, **overrides: Any
    ) -> tuple[DashtamApp, httpx.AsyncClient]:
        app_settings = settings.model_copy(update=overrides) if overrides else settings
        app = create_app(
            app_settings,
            plugins=plugins if plugins is not None else test_plugins,
            extra_routes=extra_routes,
        )
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        stack.append(lifespan)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        stack.append(client)
        return app, client

    yield factory
    for item in reversed(stack):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> httpx.AsyncClient:
    """A client of the default app (test plugin only)."""
    _, c = await make_client()
    assert isinstance(c, httpx.AsyncClient)
    return c
