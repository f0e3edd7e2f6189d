"""The kit must fail providers that break the contract (each test breaks one rule)."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest

from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.errors import ProviderError, ProviderUnavailable
from dashtam_core.plugins.hookspecs import RegisterProvider, hookimpl
from dashtam_core.ports.provider import Capability, Credentials, Fetched, ProviderAccount
from dashtam_core.result import Err, Ok, Result
from dashtam_core.testing import (
    FAKE_API_KEY,
    FAKE_SPEC,
    FakeProvider,
    FakeSettings,
    ProviderIntegrationTests,
    ProviderUnitTests,
)
from dashtam_core.testing.fake_sandbox import FIRST_DAY, LAST_DAY, create_fake_sandbox


def plugin_for(provider_cls: type[FakeProvider], **changes: Any) -> types.ModuleType:
    """A plugin module registering FAKE_SPEC built with ``provider_cls`` (and spec changes)."""
    spec = dataclasses.replace(
        FAKE_SPEC,
        factory=lambda settings, client: provider_cls(FakeSettings(), client),
        **changes,
    )
    module = types.ModuleType(f"kit_negative_{provider_cls.__name__.lower()}")

    @hookimpl
    def register_providers(register: RegisterProvider) -> None:
        register(spec)

    module.register_providers = register_providers  # type: ignore[attr-defined]
    return module


def unit_suite(provider_cls: type[FakeProvider], **changes: Any) -> ProviderUnitTests:
    suite_cls = type(
        "Suite", (ProviderUnitTests,), {"plugin_module": plugin_for(provider_cls, **changes)}
    )
    return suite_cls()  # type: ignore[no-any-return]


def integration_suite(provider_cls: type[FakeProvider], **changes: Any) -> ProviderIntegrationTests:
    suite_cls = type(
        "Suite", (ProviderIntegrationTests,), {"plugin_module": plugin_for(provider_cls, **changes)}
    )
    return suite_cls()  # type: ignore[no-any-return]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_fake_sandbox())
    async with httpx.AsyncClient(transport=transport) as http:
        yield http


CREDS = Credentials({"api_key": FAKE_API_KEY})
WINDOW = (FIRST_DAY, LAST_DAY)


class LeakyProvider(FakeProvider):
    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        result = await super().fetch_accounts(credentials)
        if isinstance(result, Err):
            return Err(ProviderUnavailable(f"failed for key {credentials['api_key']}"))
        return result


class LoggingLeakyProvider(FakeProvider):
    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        import logging

        logging.getLogger("leaky").debug("using %s", dict(credentials))
        return await super().fetch_accounts(credentials)


class RaisingProvider(FakeProvider):
    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        response = await self.http.get(self.settings.base_url + "/v1/accounts")
        response.raise_for_status()
        return Ok(Fetched([]))


class NoRetryAfterProvider(FakeProvider):
    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        result = await super().fetch_accounts(credentials)
        return Err(ProviderUnavailable("oops")) if isinstance(result, Err) else result


class FloatProvider(FakeProvider):
    def _account(self, item: dict[str, Any]) -> ProviderAccount:
        account = super()._account(item)
        return dataclasses.replace(account, balance_current=float(item["balance"]))  # type: ignore[arg-type]


class WindowIgnoringProvider(FakeProvider):
    async def fetch_transactions(
        self, credentials: Credentials, account: str, start: date, end: date
    ) -> Any:
        return await super().fetch_transactions(credentials, account, FIRST_DAY, LAST_DAY)


class FirstPageProvider(FakeProvider):
    async def _get(self, path: str, credentials: Credentials, **kwargs: Any) -> Any:
        result = await super()._get(path, credentials, **kwargs)
        if isinstance(result, Ok) and "transactions" in path:
            body, raw = result.value
            return Ok(({**body, "next_page_token": None}, raw))
        return result


class FlippedSignProvider(FakeProvider):
    def _transaction(self, account_id: str, item: dict[str, Any]) -> Any:
        txn = super()._transaction(account_id, item)
        return dataclasses.replace(txn, amount=-txn.amount)


async def test_secret_in_error_message_fails(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AssertionError, match="credential values leaked"):
        await unit_suite(LeakyProvider).test_secrets_never_leak(caplog)


async def test_secret_in_log_fails(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AssertionError, match="credential values leaked"):
        await unit_suite(LoggingLeakyProvider).test_secrets_never_leak(caplog)


async def test_raising_instead_of_err_fails() -> None:
    with pytest.raises(httpx.HTTPStatusError):
        await unit_suite(RaisingProvider).test_http_5xx_is_unavailable(503)


async def test_wrong_429_mapping_fails() -> None:
    with pytest.raises(AssertionError, match="RateLimited"):
        await unit_suite(NoRetryAfterProvider).test_http_429_is_rate_limited_with_retry_after()


def test_undeclared_or_missing_capability_fails() -> None:
    suite = unit_suite(FakeProvider, capabilities=frozenset({Capability.ACCOUNTS}))
    with pytest.raises(AssertionError, match="no capability declares"):
        suite.test_capabilities_match_methods()


def test_bad_spec_fails() -> None:
    with pytest.raises(AssertionError, match="slug"):
        unit_suite(FakeProvider, slug="Bad Slug").test_spec_is_valid()
    with pytest.raises(AssertionError, match="cost_basis_unit"):
        unit_suite(FakeProvider, cost_basis_unit=None).test_spec_is_valid()


async def test_float_money_fails(client: httpx.AsyncClient) -> None:
    suite = integration_suite(FloatProvider)
    with pytest.raises(AssertionError, match="Decimal"):
        await suite.test_accounts_money_and_currency(FloatProvider(FakeSettings(), client), CREDS)


async def test_window_ignored_fails(client: httpx.AsyncClient) -> None:
    suite = integration_suite(WindowIgnoringProvider)
    narrow = (date(2024, 2, 1), date(2024, 2, 29))
    provider = WindowIgnoringProvider(FakeSettings(), client)
    with pytest.raises(AssertionError, match="outside"):
        await suite.test_transactions_inside_window(provider, CREDS, narrow)


async def test_stopping_after_one_page_fails(client: httpx.AsyncClient) -> None:
    suite = integration_suite(FirstPageProvider)
    provider = FirstPageProvider(FakeSettings(), client)
    with pytest.raises(AssertionError, match="disagree"):
        await suite.test_pagination_to_completion(provider, CREDS, WINDOW)


async def test_sign_convention_fails(client: httpx.AsyncClient) -> None:
    suite = integration_suite(FlippedSignProvider)
    provider = FlippedSignProvider(FakeSettings(), client)
    with pytest.raises(AssertionError, match="sign convention"):
        await suite.test_transactions_inside_window(provider, CREDS, WINDOW)


async def test_cost_basis_unit_mismatch_fails(client: httpx.AsyncClient) -> None:
    suite = integration_suite(FakeProvider, cost_basis_unit=CostBasisUnit.PER_UNIT)
    with pytest.raises(AssertionError, match="cost basis reported"):
        await suite.test_holdings_instrument_and_cost_basis(
            FakeProvider(FakeSettings(), client), CREDS
        )


async def test_capability_gated_tests_skip_with_reason(client: httpx.AsyncClient) -> None:
    suite = integration_suite(FakeProvider, capabilities=frozenset({Capability.ACCOUNTS}))
    with pytest.raises(pytest.skip.Exception, match="holdings capability"):
        await suite.test_holdings_instrument_and_cost_basis(
            FakeProvider(FakeSettings(), client), CREDS
        )
