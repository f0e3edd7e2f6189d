"""The plugin registration, the factory, settings and the sandbox as a mounted sub-app."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.routing import Mount

from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.plugins.manager import build_plugin_manager
from dashtam_core.ports.provider import (
    CAPABILITY_METHODS,
    AccountsProvider,
    ApiKeyAuth,
    Capability,
    Credentials,
    HoldingsProvider,
    TransactionsProvider,
)
from dashtam_provider_alpaca import AlpacaProvider, AlpacaSettings, create_provider
from dashtam_provider_alpaca import plugin as alpaca_plugin


def test_registered_through_the_entry_point() -> None:
    loaded = build_plugin_manager(load_only=["alpaca"])
    assert loaded.providers.slugs() == ["alpaca"]
    registered = loaded.providers.get("alpaca")
    assert registered.distribution == "dashtam-provider-alpaca"
    spec = registered.spec
    assert (spec.name, spec.auth_type) == ("Alpaca", AuthType.API_KEY)
    assert spec.capabilities == {
        Capability.ACCOUNTS,
        Capability.BALANCES,
        Capability.HOLDINGS,
        Capability.TRANSACTIONS,
        Capability.INVESTMENT_TRANSACTIONS,
    }
    assert [(f.name, f.label, f.secret) for f in spec.credential_fields] == [
        ("api_key_id", "API key ID", True),
        ("secret_key", "Secret key", True),
    ]
    assert spec.cost_basis_unit is CostBasisUnit.TOTAL
    assert spec.settings_model is AlpacaSettings
    assert "register_providers" in loaded.hooks["alpaca"]


async def test_factory_builds_a_provider_with_every_declared_method() -> None:
    async with httpx.AsyncClient() as client:
        provider = alpaca_plugin.SPEC.factory(AlpacaSettings(), client)
        assert isinstance(provider, AlpacaProvider)
        for protocol in (AccountsProvider, HoldingsProvider, TransactionsProvider, ApiKeyAuth):
            assert isinstance(provider, protocol)
        for capability in alpaca_plugin.SPEC.capabilities:
            assert callable(getattr(provider, CAPABILITY_METHODS[capability]))
        assert isinstance(create_provider(None, client), AlpacaProvider)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHTAM_ALPACA_PAPER_BASE_URL", "http://paper.test/")
    monkeypatch.setenv("DASHTAM_ALPACA_PAGE_SIZE", "25")
    settings = AlpacaSettings()
    assert settings.base_url("paper") == "http://paper.test"
    assert settings.base_url("live") == "https://api.alpaca.markets"
    assert settings.page_size == 25
    both = settings.for_sandbox("http://127.0.0.1:9/sandbox/alpaca")
    assert both.base_url("paper") == both.base_url("live") == "http://127.0.0.1:9/sandbox/alpaca"
    with pytest.raises(ValidationError):
        AlpacaSettings(page_size=101)


async def test_sandbox_mounted_under_a_prefix_serves_the_provider() -> None:
    from dashtam_provider_alpaca import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

    assert alpaca_plugin.SPEC.sandbox is not None
    host = Starlette(routes=[Mount("/sandbox/alpaca", app=alpaca_plugin.SPEC.sandbox())])
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport) as client:
        settings = AlpacaSettings().for_sandbox("http://dashtam.test/sandbox/alpaca")
        provider = AlpacaProvider(settings, client)
        keys = Credentials({"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY})
        assert (await provider.validate_credentials(keys)).is_ok()
        accounts = (await provider.fetch_accounts(keys)).unwrap()
        assert accounts.records[0].balance_current == Decimal("13272.09")


def test_importing_the_plugin_does_not_import_starlette() -> None:
    code = (
        "import sys, dashtam_provider_alpaca.plugin\n"
        "assert 'starlette' not in sys.modules, 'starlette imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
