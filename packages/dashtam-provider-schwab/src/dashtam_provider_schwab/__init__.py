"""Dashtam provider plugin for the Charles Schwab Trader API (OAuth 2 + PKCE).

Public API:
    SchwabProvider: accounts, balances, holdings, transactions and the OAuth flow.
    SchwabOAuth: the OAuth half on its own (authorize URL, code exchange, refresh).
    SchwabSettings: ``DASHTAM_SCHWAB_*`` settings (``for_sandbox(base_url)``).
    create_sandbox_app / SandboxConfig / SchwabSandbox / Fault: the simulator.
"""

from dashtam_provider_schwab.client import SchwabProvider, transaction_windows
from dashtam_provider_schwab.mapping import decode_json, map_account, map_position
from dashtam_provider_schwab.oauth import SchwabOAuth
from dashtam_provider_schwab.plugin import SPEC, create_provider
from dashtam_provider_schwab.sandbox import (
    Fault,
    SandboxConfig,
    SchwabSandbox,
    create_sandbox_app,
)
from dashtam_provider_schwab.settings import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SchwabSettings,
)
from dashtam_provider_schwab.transactions import TRANSACTION_TYPES, map_transaction

__all__ = [
    "Fault",
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SPEC",
    "SandboxConfig",
    "SchwabOAuth",
    "SchwabProvider",
    "SchwabSandbox",
    "SchwabSettings",
    "TRANSACTION_TYPES",
    "create_provider",
    "create_sandbox_app",
    "decode_json",
    "map_account",
    "map_position",
    "map_transaction",
    "transaction_windows",
]
