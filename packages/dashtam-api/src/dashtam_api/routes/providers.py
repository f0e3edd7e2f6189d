"""``GET /api/v1/providers``: the installed provider plugins."""

from __future__ import annotations

from dashtam_api.auth import RateLimited
from dashtam_api.deps import PluginsDep
from dashtam_api.registry import RouteSpec
from dashtam_api.schemas.providers import ProviderList, provider_listing


async def list_providers(plugins: PluginsDep, _: RateLimited) -> ProviderList:
    """Installed provider plugins with auth type, capabilities, distribution and version."""
    return provider_listing(plugins.providers)


ROUTES = (
    RouteSpec(
        name="providers.list",
        method="GET",
        path="/api/v1/providers",
        handler=list_providers,
        auth="public",
        rate_limit="read_user",
        response_model=ProviderList,
        tags=("providers",),
    ),
)

__all__ = ["ROUTES", "list_providers"]
