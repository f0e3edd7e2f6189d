"""``ProviderSpec``: what a provider plugin registers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic_settings import BaseSettings

from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.ports.provider import Capability

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


@dataclass(frozen=True, slots=True)
class CredentialField:
    """One credential a user supplies (API key id, secret key, ...)."""

    name: str
    label: str
    secret: bool = True


ProviderFactory = Callable[[Any, httpx.AsyncClient], object]
SandboxFactory = Callable[[], ASGIApp]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """The registration record of one provider.

    Attributes:
        slug: unique id, equal to the entry-point name (``schwab``).
        name: display name.
        auth_type: ``oauth2``, ``api_key`` or ``file_import``.
        capabilities: what it delivers; each needs its protocol method.
        settings_model: a pydantic-settings class (env prefix ``DASHTAM_<SLUG>_``).
        factory: ``(settings, http_client) -> provider`` (the provider implements the
            capability protocols of :mod:`dashtam_core.ports.provider`).
        credential_fields: what a user supplies for ``api_key`` providers.
        cost_basis_unit: which cost-basis figure the provider reports natively.
        sandbox: optional ``() -> ASGI app`` simulating the provider's wire format.
        dedupe_rule: one sentence documenting the transaction natural key.
    """

    slug: str
    name: str
    auth_type: AuthType
    capabilities: frozenset[Capability]
    settings_model: type[BaseSettings]
    factory: ProviderFactory
    credential_fields: tuple[CredentialField, ...] = ()
    cost_basis_unit: CostBasisUnit | None = None
    sandbox: SandboxFactory | None = None
    dedupe_rule: str = "provider transaction id"
    extensions: tuple[str, ...] = field(default=())  # file extensions for file_import providers


__all__ = ["ASGIApp", "CredentialField", "ProviderFactory", "ProviderSpec", "SandboxFactory"]
