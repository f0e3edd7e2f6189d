"""``ProviderIntegrationTests``: conformance against a sandbox or recorded responses.

The author supplies two fixtures and the plugin::

    class TestAcmeIntegration(ProviderIntegrationTests):
        plugin_module = "dashtam_provider_acme.plugin"

        @pytest.fixture
        def provider_under_test(self, sandbox_client):   # talks to the sandbox
            return AcmeProvider(AcmeSettings(base_url="http://sandbox"), sandbox_client)

        @pytest.fixture
        def credentials(self):
            return Credentials({"api_key": "sandbox-key"})

``window`` (a fixture, default: the last 365 days) is the transaction window; override it to
match the sandbox's data. For ``pagination to completion`` make the sandbox page small
(several pages) and optionally set ``expected_transaction_count``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, ClassVar

import pytest

from dashtam_core.domain.connection import AuthType
from dashtam_core.ports.provider import (
    Capability,
    Credentials,
    Fetched,
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
    RawPayload,
)
from dashtam_core.result import Ok
from dashtam_core.testing.checks import (
    by_key,
    check_account,
    check_dedupe_keys,
    check_holding,
    check_transaction,
    comparable_account,
    comparable_holding,
)
from dashtam_core.testing.support import KitBase


def _ok(result: object, what: str) -> Fetched[Any]:
    assert isinstance(result, Ok), f"{what} failed: {result!r}"
    fetched = result.value
    assert isinstance(fetched, Fetched), f"{what} must return Ok(Fetched), got {fetched!r}"
    return fetched


def _check_raw(raw: list[RawPayload], credentials: Credentials, what: str) -> None:
    assert raw, f"{what} kept no raw payloads for the archive"
    for page in raw:
        assert isinstance(page, RawPayload)
        assert isinstance(page.content, bytes)
        for secret in credentials.secret_values():
            assert secret not in page.request, f"{what}: a credential in RawPayload.request"


class ProviderIntegrationTests(KitBase):
    """Records from a live-like source: money, signs, ids, windows, pages, holdings.

    Required fixtures: ``provider_under_test`` and ``credentials``. Optional: ``window``,
    ``expected_transaction_count`` (total over every account in the window) and
    ``min_transaction_pages`` (raw pages the window must take, proving pagination).
    """

    __dashtam_kit_base__: ClassVar[bool] = True

    expected_transaction_count: ClassVar[int | None] = None
    min_transaction_pages: ClassVar[int] = 1

    @pytest.fixture
    def window(self) -> tuple[date, date]:
        """The transaction window (inclusive); override to match the sandbox data."""
        today = date.today()
        return today - timedelta(days=365), today

    # -- helpers ----------------------------------------------------------------------

    def _require(self, *capabilities: Capability) -> None:
        spec = self.spec
        if spec.auth_type is AuthType.FILE_IMPORT:
            pytest.skip("file_import providers are checked by StatementParserTests")
        if not any(c in spec.capabilities for c in capabilities):
            names = " or ".join(c.value for c in capabilities)
            pytest.skip(f"the provider does not declare the {names} capability")

    async def _accounts(self, provider: Any, credentials: Credentials) -> list[ProviderAccount]:
        if Capability.ACCOUNTS not in self.spec.capabilities:
            pytest.skip("per-account checks need the accounts capability to list accounts")
        fetched = _ok(await provider.fetch_accounts(credentials), "fetch_accounts")
        assert fetched.records, "the sandbox must return at least one account"
        return list(fetched.records)

    async def _transactions(
        self, provider: Any, credentials: Credentials, start: date, end: date
    ) -> tuple[list[ProviderTransaction], list[RawPayload]]:
        records: list[ProviderTransaction] = []
        pages: list[RawPayload] = []
        for account in await self._accounts(provider, credentials):
            account_id = account.provider_account_id
            fetched = _ok(
                await provider.fetch_transactions(credentials, account_id, start, end),
                f"fetch_transactions({account_id})",
            )
            pages.extend(fetched.raw)
            for txn in fetched.records:
                assert txn.provider_account_id == account_id, (
                    f"{txn.provider_transaction_id} came back under {txn.provider_account_id}"
                )
            records.extend(fetched.records)
        return records, pages

    async def _holdings(self, provider: Any, credentials: Credentials) -> list[ProviderHolding]:
        records: list[ProviderHolding] = []
        for account in await self._accounts(provider, credentials):
            account_id = account.provider_account_id
            fetched = _ok(
                await provider.fetch_holdings(credentials, account_id),
                f"fetch_holdings({account_id})",
            )
            _check_raw(fetched.raw, credentials, f"fetch_holdings({account_id})")
            records.extend(fetched.records)
        return records

    # -- accounts ---------------------------------------------------------------------

    async def test_accounts_money_and_currency(
        self, provider_under_test: Any, credentials: Credentials
    ) -> None:
        """Accounts carry unique ids, Decimal balances and ISO currencies; raw pages kept."""
        self._require(Capability.ACCOUNTS)
        fetched = _ok(await provider_under_test.fetch_accounts(credentials), "fetch_accounts")
        assert fetched.records, "the sandbox must return at least one account"
        ids = [a.provider_account_id for a in fetched.records]
        assert len(set(ids)) == len(ids), f"account ids repeat: {ids}"
        for account in fetched.records:
            check_account(account)
        _check_raw(fetched.raw, credentials, "fetch_accounts")

    async def test_account_ids_stable_and_records_repeat(
        self, provider_under_test: Any, credentials: Credentials
    ) -> None:
        """Two fetches return the same accounts (ignoring the observation time)."""
        self._require(Capability.ACCOUNTS)
        first = _ok(await provider_under_test.fetch_accounts(credentials), "fetch_accounts")
        second = _ok(await provider_under_test.fetch_accounts(credentials), "fetch_accounts")
        key = lambda a: a.provider_account_id  # noqa: E731
        assert sorted(map(comparable_account, first.records), key=key) == sorted(
            map(comparable_account, second.records), key=key
        )

    # -- transactions -----------------------------------------------------------------

    async def test_transactions_inside_window(
        self, provider_under_test: Any, credentials: Credentials, window: tuple[date, date]
    ) -> None:
        """Every transaction is dated inside the window, typed, signed and Decimal."""
        self._require(Capability.TRANSACTIONS, Capability.INVESTMENT_TRANSACTIONS)
        start, end = window
        records, pages = await self._transactions(provider_under_test, credentials, start, end)
        assert records, "the sandbox must return transactions inside the window"
        _check_raw(pages, credentials, "fetch_transactions")
        for txn in records:
            assert start <= txn.date <= end, (
                f"{txn.provider_transaction_id} dated {txn.date} is outside {start}..{end}"
            )
            check_transaction(txn)
        check_dedupe_keys(records)

    async def test_transactions_second_fetch_is_identical(
        self, provider_under_test: Any, credentials: Credentials, window: tuple[date, date]
    ) -> None:
        """Ids and records are stable: a re-sync adds nothing."""
        self._require(Capability.TRANSACTIONS, Capability.INVESTMENT_TRANSACTIONS)
        start, end = window
        first, _ = await self._transactions(provider_under_test, credentials, start, end)
        second, _ = await self._transactions(provider_under_test, credentials, start, end)
        key = lambda t: (t.provider_account_id, t.dedupe_key)  # noqa: E731
        assert sorted(first, key=key) == sorted(second, key=key)

    async def test_pagination_to_completion(
        self, provider_under_test: Any, credentials: Credentials, window: tuple[date, date]
    ) -> None:
        """The whole window equals its two halves together; declared counts and pages hold."""
        self._require(Capability.TRANSACTIONS, Capability.INVESTMENT_TRANSACTIONS)
        start, end = window
        whole, pages = await self._transactions(provider_under_test, credentials, start, end)
        middle = start + (end - start) / 2
        early, _ = await self._transactions(provider_under_test, credentials, start, middle)
        late, _ = await self._transactions(
            provider_under_test, credentials, middle + timedelta(days=1), end
        )
        assert by_key(whole) == by_key([*early, *late]), (
            "fetching the whole window and its two halves disagree: pages were lost or repeated"
        )
        if self.expected_transaction_count is not None:
            assert len(whole) == self.expected_transaction_count
        assert len(pages) >= self.min_transaction_pages, (
            f"{len(pages)} raw pages; expected at least {self.min_transaction_pages}"
        )

    # -- holdings ---------------------------------------------------------------------

    async def test_holdings_instrument_and_cost_basis(
        self, provider_under_test: Any, credentials: Credentials
    ) -> None:
        """Holdings carry instrument ids, Decimal quantities and the declared cost-basis unit."""
        self._require(Capability.HOLDINGS)
        records = await self._holdings(provider_under_test, credentials)
        assert records, "the sandbox must return at least one holding"
        keys = [(h.provider_account_id, h.instrument_id) for h in records]
        assert len(set(keys)) == len(keys), "an instrument repeats inside an account"
        for holding in records:
            check_holding(holding, self.spec.cost_basis_unit)

    async def test_holdings_second_fetch_is_identical(
        self, provider_under_test: Any, credentials: Credentials
    ) -> None:
        """Two fetches return the same positions (ignoring the observation time)."""
        self._require(Capability.HOLDINGS)
        first = await self._holdings(provider_under_test, credentials)
        second = await self._holdings(provider_under_test, credentials)
        key = lambda h: (h.provider_account_id, h.instrument_id)  # noqa: E731
        assert sorted(map(comparable_holding, first), key=key) == sorted(
            map(comparable_holding, second), key=key
        )


__all__ = ["ProviderIntegrationTests"]
