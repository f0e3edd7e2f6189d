"""Plugin entry point (registered under the ``dashtam`` entry-point group as ``alpaca``)."""

from __future__ import annotations

from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.plugins.hookspecs import RegisterProvider, hookimpl
from dashtam_core.plugins.spec import ASGIApp, CredentialField, ProviderSpec
from dashtam_core.ports.provider import Capability
from dashtam_provider_alpaca.client import create_provider
from dashtam_provider_alpaca.settings import AlpacaSettings


def create_sandbox_app() -> ASGIApp:
    """The sandbox factory, importing Starlette only when a sandbox is actually wanted."""
    from dashtam_provider_alpaca.sandbox import create_sandbox_app as build

    return build()


SPEC = ProviderSpec(
    slug="alpaca",
    name="Alpaca",
    auth_type=AuthType.API_KEY,
    capabilities=frozenset(
        {
            Capability.ACCOUNTS,
            Capability.BALANCES,
            Capability.HOLDINGS,
            Capability.TRANSACTIONS,
            Capability.INVESTMENT_TRANSACTIONS,
        }
    ),
    settings_model=AlpacaSettings,
    factory=create_provider,
    credential_fields=(
        CredentialField("api_key_id", "API key ID"),
        CredentialField("secret_key", "Secret key"),
    ),
    cost_basis_unit=CostBasisUnit.TOTAL,
    sandbox=create_sandbox_app,
    dedupe_rule="the activity id (a partial fill and the final fill of one order are separate)",
)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Register the Alpaca provider spec."""
    register(SPEC)


__all__ = ["SPEC", "create_sandbox_app", "register_providers"]
