"""The ``schwab`` entry point registers a complete, consistent ProviderSpec."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.errors import ConfigurationError, RateLimited
from dashtam_core.plugins.manager import build_plugin_manager
from dashtam_core.ports.provider import CAPABILITY_METHODS, Capability
from dashtam_core.result import Err
from dashtam_provider_schwab import SPEC, SchwabProvider, SchwabSettings, create_sandbox_app
from dashtam_provider_schwab.sandbox_data import load_sandbox_data
from dashtam_provider_schwab.settings import SANDBOX_CLIENT_ID


def test_entry_point_registers_the_spec() -> None:
    loaded = build_plugin_manager(load_only=["schwab"])
    registered = loaded.providers.get("schwab")
    assert registered.spec is SPEC
    assert registered.distribution == "dashtam-provider-schwab"
    assert SPEC.auth_type is AuthType.OAUTH2
    assert SPEC.cost_basis_unit is CostBasisUnit.PER_UNIT
    assert SPEC.capabilities == {
        Capability.ACCOUNTS,
        Capability.BALANCES,
        Capability.HOLDINGS,
        Capability.TRANSACTIONS,
        Capability.INVESTMENT_TRANSACTIONS,
    }
    assert SPEC.settings_model is SchwabSettings
    assert SPEC.sandbox is not None


async def test_factory_builds_a_provider_with_every_capability_method() -> None:
    async with httpx.AsyncClient() as client:
        provider = SPEC.factory(SchwabSettings(_env_file=None), client)
    assert isinstance(provider, SchwabProvider)
    for capability in SPEC.capabilities:
        assert callable(getattr(provider, CAPABILITY_METHODS[capability]))


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHTAM_SCHWAB_CLIENT_ID", "app-key")
    monkeypatch.setenv("DASHTAM_SCHWAB_CLIENT_SECRET", "app-secret")
    monkeypatch.setenv("DASHTAM_SCHWAB_REDIRECT_URI", "https://example.test/cb")
    settings = SchwabSettings(_env_file=None)
    assert settings.client_id == "app-key"
    assert settings.client_secret is not None
    assert settings.client_secret.get_secret_value() == "app-secret"
    assert "app-secret" not in repr(settings)
    assert settings.api_base_url == "https://api.schwabapi.com/trader/v1"
    assert settings.auth_base_url == "https://api.schwabapi.com/v1/oauth"
    sandboxed = settings.for_sandbox("http://127.0.0.1:9999/sandbox/schwab/")
    assert sandboxed.api_base_url == "http://127.0.0.1:9999/sandbox/schwab/trader/v1"
    assert sandboxed.auth_base_url == "http://127.0.0.1:9999/sandbox/schwab/v1/oauth"
    assert sandboxed.client_id == "app-key"  # configured credentials are kept
    default = SchwabSettings(_env_file=None, client_id=None).for_sandbox("http://h")
    assert default.client_id == SANDBOX_CLIENT_ID


async def test_authorization_url_needs_a_client_id() -> None:
    async with httpx.AsyncClient() as client:
        provider = SchwabProvider(SchwabSettings(_env_file=None, client_id=None), client)
        with pytest.raises(ConfigurationError):
            provider.authorization_request("s")
        configured = SchwabProvider(
            SchwabSettings(_env_file=None, client_id="k", redirect_uri="https://127.0.0.1:8182"),
            client,
        )
        request = configured.authorization_request("s")
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://api.schwabapi.com/v1/oauth/authorize"
    )
    query = parse_qs(parts.query)
    assert query["redirect_uri"] == ["https://127.0.0.1:8182"]
    assert query["response_type"] == ["code"]
    assert "scope" not in query


async def test_sandbox_mounted_under_a_prefix(make_settings: Any, connect: Any) -> None:
    outer = Starlette(routes=[Mount("/sandbox/schwab", app=create_sandbox_app())])
    transport = httpx.ASGITransport(app=outer)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        provider = SchwabProvider(make_settings("http://api.test/sandbox/schwab"), client)
        credentials = await connect(provider, client)
        faults = await client.post(
            "/sandbox/schwab/_sandbox/faults",
            json={"status": 429, "retry_after": 3, "path": "/trader/v1/accounts"},
        )
        assert faults.status_code == 201
        limited = await provider.fetch_accounts(credentials)
        assert isinstance(limited, Err)
        assert isinstance(limited.error, RateLimited)
        assert limited.error.retry_after == 3.0
        accounts = (await provider.fetch_accounts(credentials)).unwrap()
    assert len(accounts.records) == 2


def test_sandbox_data_is_deterministic_and_balanced() -> None:
    first = load_sandbox_data(50, 100).transactions["71234908"]
    second = load_sandbox_data(50, 100).transactions["71234908"]
    assert first == second
    assert len(first) == 64
    for item in first:  # every generated TRADE's netAmount is the sum of its legs' cost
        legs = sum(Decimal(repr(leg["cost"])) for leg in item["transferItems"])
        if item["type"] == "TRADE":
            assert legs == Decimal(repr(item["netAmount"]))
