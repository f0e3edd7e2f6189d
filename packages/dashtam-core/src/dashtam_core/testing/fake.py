"""``FakeProvider``: a small API-key provider that passes the conformance kit.

It is also a plugin module: register it with
``build_plugin_manager(extra_plugins=[("fake", dashtam_core.testing.fake)])``. It talks HTTP to
its sandbox (:func:`~dashtam_core.testing.fake_sandbox.create_fake_sandbox`), served in tests
through ``httpx.ASGITransport``; see ``fake_client()``.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from dashtam_core.adapters.http.errors import map_http_error, map_transport_error, parse_json
from dashtam_core.domain.account import AccountType
from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import AssetType, CostBasis, CostBasisUnit
from dashtam_core.domain.transaction import TransactionSubtype, TransactionType
from dashtam_core.errors import InvalidCredentials, ProviderError, ProviderProtocolError
from dashtam_core.plugins.hookspecs import RegisterProvider, hookimpl
from dashtam_core.plugins.spec import ASGIApp, CredentialField, ProviderSpec
from dashtam_core.ports.provider import (
    Capability,
    Credentials,
    Fetched,
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
    RawPayload,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.testing.fake_sandbox import FAKE_API_KEY, create_fake_sandbox

logger = logging.getLogger("dashtam_core.testing.fake")

SANDBOX_URL = "http://fake-sandbox.test"

_TYPES = {
    "deposit": (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT),
    "purchase": (TransactionType.OTHER, TransactionSubtype.PURCHASE),
    "fee": (TransactionType.FEE, TransactionSubtype.FEE),
    "refund": (TransactionType.OTHER, TransactionSubtype.REFUND),
}


class FakeSettings(BaseSettings):
    """Where the fake provider lives (``DASHTAM_FAKE_*``)."""

    model_config = SettingsConfigDict(env_prefix="DASHTAM_FAKE_", extra="ignore")

    base_url: str = SANDBOX_URL


class _Malformed(Exception):
    """A response body that does not have the documented shape."""


def _decimal(value: Any) -> Decimal:
    if not isinstance(value, str | int):
        raise _Malformed(f"expected a decimal string, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise _Malformed("not a decimal") from None
    if not result.is_finite():
        raise _Malformed("not a finite decimal")
    return result


class FakeProvider:
    """Accounts, holdings and transactions from the fake sandbox, by API key."""

    def __init__(self, settings: FakeSettings, http_client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http_client

    def __repr__(self) -> str:
        return f"FakeProvider(base_url={self.settings.base_url!r})"

    async def _get(
        self,
        path: str,
        credentials: Credentials,
        *,
        params: dict[str, str] | None = None,
        unauthorized: type[ProviderError] = InvalidCredentials,
        account_id: str | None = None,
    ) -> Result[tuple[Any, RawPayload], ProviderError]:
        url = self.settings.base_url.rstrip("/") + path
        try:
            key = credentials["api_key"]
        except KeyError:
            return Err(InvalidCredentials("the credentials carry no api_key"))
        try:
            response = await self.http.get(url, params=params, headers={"X-Api-Key": key})
        except httpx.HTTPError as exc:
            return Err(map_transport_error(exc))
        error = map_http_error(response, unauthorized=unauthorized)
        if error is not None:
            return Err(error)
        decoded = parse_json(response)
        if isinstance(decoded, Err):
            return decoded
        query = "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        raw = RawPayload(
            kind=path.rsplit("/", 1)[-1],
            content=response.content,
            content_type=response.headers.get("content-type", "application/json"),
            fetched_at=datetime.now(UTC),
            request=f"GET {path}" + (f"?{query}" if query else ""),
            account_id=account_id,
        )
        return Ok((decoded.value, raw))

    async def validate_credentials(self, credentials: Credentials) -> Result[None, ProviderError]:
        """``Ok(None)`` when the sandbox accepts the key."""
        result = await self._get("/v1/me", credentials)
        return result if isinstance(result, Err) else Ok(None)

    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        """Every account with its balances."""
        result = await self._get("/v1/accounts", credentials)
        if isinstance(result, Err):
            return result
        body, raw = result.value
        try:
            records = [self._account(item) for item in body["accounts"]]
        except (KeyError, TypeError, ValueError, _Malformed) as exc:
            return Err(ProviderProtocolError(f"malformed accounts response: {type(exc).__name__}"))
        return Ok(Fetched(records, [raw]))

    def _account(self, item: dict[str, Any]) -> ProviderAccount:
        return ProviderAccount(
            provider_account_id=str(item["id"]),
            name=str(item["name"]),
            type=AccountType(item["kind"]),
            currency=str(item["currency"]),
            mask=str(item["number"])[-4:],
            balance_current=_decimal(item["balance"]),
            balance_available=_decimal(item["available"]),
            balance_as_of=datetime.now(UTC),
        )

    async def fetch_holdings(
        self, credentials: Credentials, provider_account_id: str
    ) -> Result[Fetched[ProviderHolding], ProviderError]:
        """The account's positions (cost basis reported as a total)."""
        result = await self._get(
            f"/v1/accounts/{provider_account_id}/positions",
            credentials,
            account_id=provider_account_id,
        )
        if isinstance(result, Err):
            return result
        body, raw = result.value
        now = datetime.now(UTC)
        try:
            records = []
            for item in body["positions"]:
                quantity = _decimal(item["quantity"])
                price = _decimal(item["price"])
                records.append(
                    ProviderHolding(
                        provider_account_id=provider_account_id,
                        instrument_id=str(item["instrument"]),
                        symbol=str(item["symbol"]),
                        asset_type=AssetType(item["kind"]),
                        quantity=quantity,
                        currency="USD",
                        as_of=now,
                        cost_basis=CostBasis.from_total(_decimal(item["cost_total"]), quantity),
                        price=price,
                        market_value=price * quantity,
                    )
                )
        except (KeyError, TypeError, ValueError, _Malformed) as exc:
            return Err(ProviderProtocolError(f"malformed positions response: {type(exc).__name__}"))
        return Ok(Fetched(records, [raw]))

    async def fetch_transactions(
        self, credentials: Credentials, provider_account_id: str, start: date, end: date
    ) -> Result[Fetched[ProviderTransaction], ProviderError]:
        """Transactions dated in ``[start, end]``, following ``next_page_token`` to the end."""
        records: list[ProviderTransaction] = []
        pages: list[RawPayload] = []
        token: str | None = None
        while True:
            params = {"start": start.isoformat(), "end": end.isoformat()}
            if token is not None:
                params["page_token"] = token
            result = await self._get(
                f"/v1/accounts/{provider_account_id}/transactions",
                credentials,
                params=params,
                account_id=provider_account_id,
            )
            if isinstance(result, Err):
                return result
            body, raw = result.value
            pages.append(raw)
            try:
                records.extend(
                    self._transaction(provider_account_id, i) for i in body["transactions"]
                )
                following = body["next_page_token"]
            except (KeyError, TypeError, ValueError, _Malformed) as exc:
                return Err(
                    ProviderProtocolError(f"malformed transactions page: {type(exc).__name__}")
                )
            if following is None:
                return Ok(Fetched(records, pages))
            if following == token or len(pages) > 1000:
                return Err(ProviderProtocolError("the page token does not advance"))
            token = str(following)

    def _transaction(self, account_id: str, item: dict[str, Any]) -> ProviderTransaction:
        kind, subtype = _TYPES.get(
            str(item["kind"]), (TransactionType.OTHER, TransactionSubtype.OTHER)
        )
        return ProviderTransaction(
            provider_account_id=account_id,
            provider_transaction_id=str(item["id"]),
            dedupe_key=str(item["id"]),
            date=date.fromisoformat(item["date"]),
            amount=_decimal(item["amount"]),
            currency=str(item["currency"]),
            description=str(item["description"]),
            type=kind,
            subtype=subtype,
        )


def create_fake_provider(settings: Any, http_client: httpx.AsyncClient) -> FakeProvider:
    """The spec factory."""
    return FakeProvider(
        settings if isinstance(settings, FakeSettings) else FakeSettings(), http_client
    )


def _sandbox() -> ASGIApp:
    return create_fake_sandbox()


FAKE_SPEC = ProviderSpec(
    slug="fake",
    name="Fake Bank & Brokerage",
    auth_type=AuthType.API_KEY,
    capabilities=frozenset(
        {Capability.ACCOUNTS, Capability.BALANCES, Capability.HOLDINGS, Capability.TRANSACTIONS}
    ),
    settings_model=FakeSettings,
    factory=create_fake_provider,
    credential_fields=(CredentialField("api_key", "API key"),),
    cost_basis_unit=CostBasisUnit.TOTAL,
    sandbox=_sandbox,
    dedupe_rule="the transaction id",
)


@hookimpl
def register_providers(register: RegisterProvider) -> None:
    """Register the fake provider."""
    register(FAKE_SPEC)


def fake_client(api_key: str = FAKE_API_KEY) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests the fake sandbox answers in memory."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_fake_sandbox(api_key)))


__all__ = [
    "FAKE_API_KEY",
    "FAKE_SPEC",
    "SANDBOX_URL",
    "FakeProvider",
    "FakeSettings",
    "create_fake_provider",
    "fake_client",
    "register_providers",
]
