"""The core's conformance kit, run against the Schwab plugin and its real-HTTP sandbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import ClassVar

import httpx
import pytest
from pydantic import SecretStr

from dashtam_core.ports.provider import Credentials
from dashtam_core.testing import ProviderIntegrationTests, ProviderUnitTests
from dashtam_provider_schwab import SchwabProvider, SchwabSettings

PLUGIN = "dashtam_provider_schwab.plugin"

Connect = Callable[[SchwabProvider, httpx.AsyncClient], Awaitable[Credentials]]


class TestSchwabUnitConformance(ProviderUnitTests):
    plugin_module = PLUGIN

    def make_settings(self) -> SchwabSettings:
        """An app key and secret, so token requests get as far as the wire."""
        return SchwabSettings(
            _env_file=None, client_id="kit-client", client_secret=SecretStr("kit-secret-value")
        )


class TestSchwabIntegrationConformance(ProviderIntegrationTests):
    """The sandbox served by uvicorn on 127.0.0.1; credentials from a real OAuth round trip."""

    plugin_module = PLUGIN
    expected_transaction_count: ClassVar[int | None] = 14  # MARGIN, 2025-04-01..24; CASH none

    @pytest.fixture
    def window(self) -> tuple[date, date]:
        return date(2025, 1, 1), date(2025, 5, 31)

    @pytest.fixture
    def provider_under_test(self, provider: SchwabProvider) -> SchwabProvider:
        """The ``provider`` fixture of conftest.py: settings pointing at ``sandbox_server``."""
        return provider

    @pytest.fixture
    async def credentials(
        self, provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Connect
    ) -> Credentials:
        """Authorize in the sandbox (302 to the redirect URI), then exchange the code."""
        return await connect(provider, http_client)
