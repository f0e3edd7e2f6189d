"""The conformance kit run against the kit's own FakeProvider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest

from dashtam_core.ports.provider import Credentials
from dashtam_core.testing import (
    FAKE_API_KEY,
    FakeProvider,
    FakeSettings,
    ProviderIntegrationTests,
    ProviderUnitTests,
    fake_client,
)
from dashtam_core.testing.fake_sandbox import FIRST_DAY, LAST_DAY


class TestFakeUnit(ProviderUnitTests):
    plugin_module = "dashtam_core.testing.fake"

    @pytest.mark.xfail(
        reason="the fake is registered with extra_plugins, never through an entry point",
        strict=True,
    )
    def test_slug_matches_entry_point(self, request: pytest.FixtureRequest) -> None:
        super().test_slug_matches_entry_point(request)


class TestFakeIntegration(ProviderIntegrationTests):
    plugin_module = "dashtam_core.testing.fake"
    expected_transaction_count = 24
    min_transaction_pages = 6

    @pytest.fixture
    def window(self) -> tuple[date, date]:
        return FIRST_DAY, LAST_DAY

    @pytest.fixture
    async def provider_under_test(self) -> AsyncIterator[FakeProvider]:
        async with fake_client() as client:
            yield FakeProvider(FakeSettings(), client)

    @pytest.fixture
    def credentials(self) -> Credentials:
        return Credentials({"api_key": FAKE_API_KEY})
