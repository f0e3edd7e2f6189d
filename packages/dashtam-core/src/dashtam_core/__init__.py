"""Dashtam core: the financial data domain, sync engine, plugin system and conformance kit.

The names below are the curated public API. Heavier ones (settings, the plugin manager) load on
first use, so ``import dashtam_core`` stays fast.

Example:
    >>> from dashtam_core import Money
    >>> (Money.of("10.005") + Money.of("0.010")).rounded()
    Money(amount=Decimal('10.02'), currency='USD')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.money import Money
from dashtam_core.errors import DashtamError
from dashtam_core.result import Err, Ok, Result

if TYPE_CHECKING:
    from dashtam_core.plugins.manager import LoadedPlugins, build_plugin_manager
    from dashtam_core.plugins.spec import ProviderSpec
    from dashtam_core.ports.provider import (
        Capability,
        Credentials,
        ParsedStatement,
        ProviderAccount,
        ProviderHolding,
        ProviderTransaction,
    )
    from dashtam_core.settings import CoreSettings

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "Capability": "dashtam_core.ports.provider",
    "CoreSettings": "dashtam_core.settings",
    "Credentials": "dashtam_core.ports.provider",
    "LoadedPlugins": "dashtam_core.plugins.manager",
    "ParsedStatement": "dashtam_core.ports.provider",
    "ProviderAccount": "dashtam_core.ports.provider",
    "ProviderHolding": "dashtam_core.ports.provider",
    "ProviderSpec": "dashtam_core.plugins.spec",
    "ProviderTransaction": "dashtam_core.ports.provider",
    "build_plugin_manager": "dashtam_core.plugins.manager",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dashtam_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "Capability",
    "CoreSettings",
    "Credentials",
    "DashtamError",
    "Err",
    "LoadedPlugins",
    "Money",
    "Ok",
    "ParsedStatement",
    "ProviderAccount",
    "ProviderHolding",
    "ProviderSpec",
    "ProviderTransaction",
    "Result",
    "__version__",
    "build_plugin_manager",
    "uuid7",
]
