"""``create_app``: the FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from dashtam_api import __version__
from dashtam_api.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from dashtam_api.problems import install_problem_handlers, problem_schemas
from dashtam_api.provider_config import ProviderConfigs, sandbox_prefix
from dashtam_api.registry import RouteRegistry, RouteSpec
from dashtam_api.routes import build_route_registry
from dashtam_api.settings import ApiSettings
from dashtam_core.plugins.manager import LoadedPlugins, build_plugin_manager

#: Routes FastAPI itself serves (documentation); everything else comes from the registry.
DOCUMENTATION_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect"})

_DESCRIPTION = (
    "Dashtam aggregates brokerage and bank data into one normalized, deduplicated copy. "
    "Every error is RFC 9457 problem details (`application/problem+json`) with a stable "
    "`code` and a `trace_id` equal to the `X-Request-ID` response header."
)


class DashtamApp(FastAPI):
    """FastAPI with the problem-details schemas added to the OpenAPI components."""

    route_registry: RouteRegistry

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document, with ``ProblemDetails`` in ``components.schemas``."""
        schema = super().openapi()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, body in problem_schemas().items():
            schemas.setdefault(name, body)
        return schema


def _load_plugins(settings: ApiSettings) -> LoadedPlugins:
    if settings.load_plugins:
        return build_plugin_manager(load_only=settings.load_plugins.split(","))
    return build_plugin_manager()


async def _open_database(settings: ApiSettings) -> Any:
    from dashtam_core.adapters.sqlalchemy.engine import create_engine

    if settings.is_sqlite:
        from dashtam_core.adapters.sqlalchemy.migrate import ensure_schema

        await ensure_schema(settings.database_url)
    return create_engine(settings.database_url)


def _open_redis(settings: ApiSettings) -> Any | None:
    if not settings.redis_url:
        return None
    from redis.asyncio import Redis

    return Redis.from_url(settings.redis_url)


async def _close_security(app: FastAPI) -> None:
    """Close the rate limiter the security kit built (its own Redis client); an embedder's own
    limiter (``app.state.security_options["rate_limiter"]``) is the embedder's to close."""
    kit = getattr(app.state, "security", None)
    app.state.security = None
    if "rate_limiter" in (getattr(app.state, "security_options", None) or {}):
        return
    close = getattr(getattr(kit, "rate_limiter", None), "aclose", None)
    if close is not None:
        await close()


def create_app(
    settings: ApiSettings | None = None,
    *,
    plugins: LoadedPlugins | None = None,
    extra_routes: Iterable[RouteSpec] = (),
) -> DashtamApp:
    """Build the Dashtam service.

    Plugins are discovered once, here (unless ``plugins`` is given), and kept on
    ``app.state.plugins``; routes are mounted only from the route registry. The lifespan opens
    the database engine (bringing the embedded SQLite schema up to date first) and, when
    ``DASHTAM_REDIS_URL`` is set, a Redis client; both are closed on shutdown.

    Args:
        settings: the settings (default: read from ``DASHTAM_*`` and ``.env``).
        plugins: already-loaded plugins (default: discovered from entry points).
        extra_routes: additional route specs mounted with the built-in ones.

    Returns:
        The ASGI application.
    """
    settings = settings or ApiSettings()
    loaded = plugins if plugins is not None else _load_plugins(settings)
    registry = build_route_registry(extra_routes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = await _open_database(settings)
        redis = _open_redis(settings)
        app.state.engine = engine
        app.state.redis = redis
        context = {"settings": settings, "app": app}
        try:
            loaded.manager.hook.startup(context=context)
            if settings.inprocess_jobs and not settings.redis_url:
                from dashtam_api.routes._runtime import start_inprocess_jobs

                await start_inprocess_jobs(app)
            yield
        finally:
            try:
                loaded.manager.hook.shutdown(context=context)
            finally:
                from dashtam_api.routes._runtime import close_runtime

                try:
                    await close_runtime(app)
                    await _close_security(app)
                finally:
                    if redis is not None:
                        await redis.aclose()
                    await engine.dispose()

    app = DashtamApp(
        title="Dashtam",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.route_registry = registry
    app.state.settings = settings
    app.state.plugins = loaded
    app.state.engine = None
    app.state.redis = None
    app.state.provider_configs = ProviderConfigs(
        loaded.providers, sandbox=settings.sandbox, public_base_url=settings.public_base_url
    )
    install_problem_handlers(app)
    registry.mount(app.router)
    if settings.sandbox:
        for provider in loaded.providers:
            if provider.spec.sandbox is not None:
                app.mount(sandbox_prefix(provider.spec.slug), provider.spec.sandbox())

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.request_body_limit)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "RateLimit", "RateLimit-Policy", "Retry-After"],
        )
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.hsts)
    app.add_middleware(RequestContextMiddleware)
    return app


def create_served_app() -> DashtamApp:
    """:func:`create_app` for a server process (``dashtam serve``'s uvicorn factory).

    Everything built here (modules, plugins, routes, the app) lives as long as the process, so
    it is moved out of the cyclic garbage collector's scans (:func:`gc.freeze`): full collections
    under load then walk only what requests allocate.
    """
    app = create_app()
    gc.freeze()
    return app


__all__ = ["DOCUMENTATION_PATHS", "DashtamApp", "create_app", "create_served_app"]
