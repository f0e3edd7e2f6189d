"""The ``schwab`` plugin: registers the Charles Schwab provider (entry point ``dashtam``)."""

from __future__ import annotations

import httpx

from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.plugins.hookspecs import RegisterProvider, hookimpl
from dashtam_core.plugins.spec import ProviderSpec
from dashtam_core.ports.provider import Capability
from dashtam_provider_schwab.client import SchwabProvider
from dashtam_provider_schwab.sandbox import create_sandbox_app
from dashtam_provider_schwab.settings import SchwabSettings


def create_provider(settings: SchwabSettings, http_client: httpx.AsyncClient) -> SchwabProvider:
    """The spec factory: one :class:`SchwabProvider` for the given settings and client."""
    return SchwabProvider(settings, http_client)


SPEC = ProviderSpec(
    slug="schwab",
    name="Charles Schwab",
    auth_type=AuthType.OAUTH2,
    capabilities=frozenset(
        {
            Capability.ACCOUNTS,
            Capability.BALANCES,
            Capability.HOLDINGS,
            Capability.TRANSACTIONS,
            Capability.INVESTMENT_TRANSACTIONS,
        }
    ),
    settings_model=SchwabSettings,
    factory=create_provider,
    cost_basis_unit=CostBasisUnit.PER_UNIT,
    sandbox=create_sandbox_app,
    dedupe_rule="activityId (Schwab's transaction id, unique per account)",
)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Register the Schwab :class:`ProviderSpec`."""
    register(SPEC)


__all__ = ["SPEC", "create_provider", "register_providers"]
