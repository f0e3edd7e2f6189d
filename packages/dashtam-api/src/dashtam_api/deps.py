"""FastAPI dependencies reading what the lifespan put on ``app.state``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from dashtam_api.settings import ApiSettings
from dashtam_core.plugins.manager import LoadedPlugins

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

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


def get_redis(request: Request) -> Any | None:
    """The Redis client when ``DASHTAM_REDIS_URL`` is set, else ``None``."""
    return getattr(request.app.state, "redis", None)


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
PluginsDep = Annotated[LoadedPlugins, Depends(get_plugins)]

__all__ = [
    "PluginsDep",
    "SettingsDep",
    "get_engine",
    "get_plugins",
    "get_provider_configs",
    "get_redis",
    "get_settings",
]
