"""FastAPI dependencies reading what the lifespan put on ``app.state``.

The ``get_*`` functions are plain functions for direct use; the ``*Dep`` annotations wrap them
in ``async`` dependencies, because FastAPI runs a plain ``def`` dependency in a worker thread
(a thread hop per request on the hot path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.sqlalchemy.engine import read_engine
from dashtam_core.plugins.manager import LoadedPlugins

if TYPE_CHECKING:
    from dashtam_api.provider_config import ProviderConfigs


def get_settings(request: Request) -> ApiSettings:
    """The application's :class:`ApiSettings`."""
    settings: ApiSettings = request.app.state.settings
    return settings


def get_plugins(request: Request) -> LoadedPlugins:
    """The plugins loaded once at application creation."""
    plugins: LoadedPlugins = request.app.state.plugins
    return plugins


def get_provider_configs(request: Request) -> ProviderConfigs:
    """Per-provider settings (sandbox base URLs applied in sandbox mode)."""
    configs: ProviderConfigs = request.app.state.provider_configs
    return configs


def get_engine(request: Request) -> AsyncEngine:
    """The database engine opened by the lifespan."""
    engine: AsyncEngine = request.app.state.engine
    return engine


def get_read_engine(request: Request) -> AsyncEngine:
    """The engine in autocommit mode (same pool) for single-statement reads.

    See :func:`dashtam_core.adapters.sqlalchemy.engine.read_engine`.
    """
    state = request.app.state
    engine: AsyncEngine = state.engine
    cached: tuple[AsyncEngine, AsyncEngine] | None = getattr(state, "read_engine", None)
    if cached is None or cached[0] is not engine:
        cached = (engine, read_engine(engine))
        state.read_engine = cached
    return cached[1]


def get_redis(request: Request) -> Any | None:
    """The Redis client when ``DASHTAM_REDIS_URL`` is set, else ``None``."""
    return getattr(request.app.state, "redis", None)


async def settings_dependency(request: Request) -> ApiSettings:
    """:func:`get_settings` as an async dependency."""
    return get_settings(request)


async def plugins_dependency(request: Request) -> LoadedPlugins:
    """:func:`get_plugins` as an async dependency."""
    return get_plugins(request)


async def engine_dependency(request: Request) -> AsyncEngine:
    """:func:`get_engine` as an async dependency."""
    return get_engine(request)


async def read_engine_dependency(request: Request) -> AsyncEngine:
    """:func:`get_read_engine` as an async dependency."""
    return get_read_engine(request)


SettingsDep = Annotated[ApiSettings, Depends(settings_dependency)]
PluginsDep = Annotated[LoadedPlugins, Depends(plugins_dependency)]
EngineDep = Annotated[AsyncEngine, Depends(engine_dependency)]
ReadEngineDep = Annotated[AsyncEngine, Depends(read_engine_dependency)]

__all__ = [
    "EngineDep",
    "PluginsDep",
    "ReadEngineDep",
    "SettingsDep",
    "engine_dependency",
    "get_engine",
    "get_plugins",
    "get_provider_configs",
    "get_read_engine",
    "get_redis",
    "get_settings",
    "plugins_dependency",
    "read_engine_dependency",
    "settings_dependency",
]
