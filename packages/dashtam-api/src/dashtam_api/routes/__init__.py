"""Route modules; each exposes ``ROUTES``, a tuple of :class:`~dashtam_api.registry.RouteSpec`."""

from __future__ import annotations

from collections.abc import Iterable

from dashtam_api.registry import RouteRegistry, RouteSpec
from dashtam_api.routes import (
    admin,
    changes,
    connections,
    data,
    events,
    exports,
    identity,
    imports,
    jwks,
    oauth,
    providers,
    syncs,
    system,
)

ROUTE_MODULES = (
    system,
    jwks,
    identity,
    admin,
    providers,
    # financial data; ``changes`` before ``data`` so /transactions/changes is not an {id}
    connections,
    oauth,
    syncs,
    imports,
    changes,
    data,
    exports,
    events,
)


def build_route_registry(extra: Iterable[RouteSpec] = ()) -> RouteRegistry:
    """The registry of every built-in route plus ``extra``.

    Args:
        extra: additional specs (embedding applications, tests).
    """
    registry = RouteRegistry()
    for module in ROUTE_MODULES:
        registry.extend(module.ROUTES)
    registry.extend(extra)
    return registry


__all__ = ["ROUTE_MODULES", "build_route_registry"]
