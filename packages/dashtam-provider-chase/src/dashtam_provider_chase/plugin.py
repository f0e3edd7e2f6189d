"""Plugin entry point (registered under the ``dashtam`` entry-point group as ``chase``)."""

from __future__ import annotations

from dashtam_core.domain.connection import AuthType
from dashtam_core.plugins.hookspecs import RegisterProvider, hookimpl
from dashtam_core.plugins.spec import ProviderSpec
from dashtam_core.ports.provider import Capability
from dashtam_provider_chase.provider import EXTENSIONS, create_provider
from dashtam_provider_chase.settings import ChaseSettings

#: The natural key of a Chase transaction, as stored in ``ProviderSpec.dedupe_rule``.
DEDUPE_RULE = (
    "OFX: the FITID, or FITID#sha256(date|amount|description)[:8] (+ -2, -3 for exact duplicates) "
    "when a FITID repeats in one statement; CSV: csv:sha256(date|amount|description)[:16] "
    "(+ -2, -3 for identical rows in one file)"
)

SPEC = ProviderSpec(
    slug="chase",
    name="Chase",
    auth_type=AuthType.FILE_IMPORT,
    capabilities=frozenset({Capability.ACCOUNTS, Capability.BALANCES, Capability.TRANSACTIONS}),
    settings_model=ChaseSettings,
    factory=create_provider,
    dedupe_rule=DEDUPE_RULE,
    extensions=EXTENSIONS,
)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Register the Chase provider spec."""
    register(SPEC)


__all__ = ["DEDUPE_RULE", "SPEC", "register_providers"]
