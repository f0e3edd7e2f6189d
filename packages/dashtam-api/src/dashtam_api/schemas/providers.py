"""Body of ``GET /api/v1/providers`` (also ``dashtam plugins --json``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from dashtam_core.domain.connection import AuthType
from dashtam_core.plugins.registry import ProviderRegistry


class ProviderOut(BaseModel):
    """One installed provider plugin."""

    slug: str = Field(examples=["schwab"])
    name: str = Field(examples=["Charles Schwab"])
    auth_type: AuthType
    capabilities: list[str] = Field(description="Sorted capability names.")
    distribution: str = Field(description="The distribution that registered it.")
    version: str = Field(description="That distribution's version.")


class ProviderList(BaseModel):
    """The installed providers (never paginated: ``next_cursor`` is always null)."""

    data: list[ProviderOut]
    next_cursor: str | None = None


def provider_listing(providers: ProviderRegistry) -> ProviderList:
    """The listing of ``providers``, sorted by slug; one shape for the API and the CLI."""
    return ProviderList(
        data=[
            ProviderOut(
                slug=p.spec.slug,
                name=p.spec.name,
                auth_type=p.spec.auth_type,
                capabilities=sorted(str(c) for c in p.spec.capabilities),
                distribution=p.distribution,
                version=p.version,
            )
            for p in providers
        ]
    )


__all__ = ["ProviderList", "ProviderOut", "provider_listing"]
