"""The core's conformance kit, run against the Alpaca plugin and its real-HTTP sandbox."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

import httpx
import pytest

from dashtam_core.ports.provider import Credentials
from dashtam_core.testing import ProviderIntegrationTests, ProviderUnitTests
from dashtam_provider_alpaca import AlpacaProvider, AlpacaSettings
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

PLUGIN = "dashtam_provider_alpaca.plugin"


class TestAlpacaUnitConformance(ProviderUnitTests):
    plugin_module = PLUGIN


class TestAlpacaIntegrationConformance(ProviderIntegrationTests):
    """The sandbox served by uvicorn on 127.0.0.1 (``sandbox_url``), three activities a page."""

    plugin_module = PLUGIN
    expected_transaction_count: ClassVar[int | None] = 11  # the fixture's April 2025 activities
    min_transaction_pages: ClassVar[int] = 4  # 3 + 3 + 3 + 2: the page token is followed

    @pytest.fixture
    def window(self) -> tuple[date, date]:
        return date(2025, 1, 1), date(2025, 5, 31)

    @pytest.fixture
    def provider_under_test(
        self, sandbox_url: str, http_client: httpx.AsyncClient
    ) -> AlpacaProvider:
        return AlpacaProvider(AlpacaSettings(page_size=3).for_sandbox(sandbox_url), http_client)

    @pytest.fixture
    def credentials(self) -> Credentials:
        return Credentials({"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY})
