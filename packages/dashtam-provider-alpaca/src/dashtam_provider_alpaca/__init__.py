"""Dashtam provider plugin for the Alpaca Trading API v2 (API keys, paper and live).

The sandbox names (:func:`create_sandbox_app`, :class:`SandboxConfig`, the sandbox key pair)
are loaded lazily so that importing the plugin does not import Starlette.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dashtam_provider_alpaca.client import AlpacaProvider, create_provider
from dashtam_provider_alpaca.mapping import map_account, map_activities, map_activity, map_positions
from dashtam_provider_alpaca.plugin import SPEC
from dashtam_provider_alpaca.settings import AlpacaSettings

if TYPE_CHECKING:
    from dashtam_provider_alpaca.sandbox import (
        SANDBOX_API_KEY_ID,
        SANDBOX_SECRET_KEY,
        SandboxConfig,
        create_sandbox_app,
    )

__version__ = "0.1.0"

_LAZY = {"SANDBOX_API_KEY_ID", "SANDBOX_SECRET_KEY", "SandboxConfig", "create_sandbox_app"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from dashtam_provider_alpaca import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Plain sorted() order, as tests/test_packaging.py pins (ruff's RUF022 would group by case).
__all__ = [
    "AlpacaProvider",
    "AlpacaSettings",
    "SANDBOX_API_KEY_ID",
    "SANDBOX_SECRET_KEY",
    "SPEC",
    "SandboxConfig",
    "__version__",
    "create_provider",
    "create_sandbox_app",
    "map_account",
    "map_activities",
    "map_activity",
    "map_positions",
]
