"""OAuth + fetch against the Schwab sandbox served by a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from dashtam_core.errors import AuthExpired, InvalidCredentials
from dashtam_core.ports.provider import (
    AccountsProvider,
    Credentials,
    HoldingsProvider,
    OAuth2Auth,
    TransactionsProvider,
)
from dashtam_core.result import Err, Ok
from dashtam_provider_schwab import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SchwabProvider

MARGIN_HASH = "37BF42A99C87DFDAE1C632107707C5BE9DF121925ED90B1349D9F9AAA5C9AEEC"
CASH_HASH = "E2A293E58725F1D6B1958FAA975F59053C4C624A8073358C31E7E2023910EFF1"
WINDOW = (date(2025, 4, 1), date(2025, 4, 24))


async def assert_agrees_with_sandbox(provider: SchwabProvider, credentials: Credentials) -> None:
    """Accounts, balances, holdings and transactions equal the sandbox data to the cent."""
    accounts = (await provider.fetch_accounts(credentials)).unwrap()
    by_id = {a.provider_account_id: a for a in accounts.records}
    assert set(by_id) == {MARGIN_HASH, CASH_HASH}
    assert by_id[MARGIN_HASH].balance_current == Decimal("18517.92")
    assert by_id[MARGIN_HASH].balance_available == Decimal("2487.15")
    assert by_id[CASH_HASH].balance_current == Decimal("12668.80")
    assert by_id[CASH_HASH].balance_available == Decimal("1310.42")
    for account in accounts.records:
        holdings = (
            await provider.fetch_holdings(credentials, account.provider_account_id)
        ).unwrap()
        value = sum((h.market_value or Decimal(0) for h in holdings.records), Decimal(0))
        assert account.balance_available is not None
        assert value + account.balance_available == account.balance_current
    transactions = (await provider.fetch_transactions(credentials, MARGIN_HASH, *WINDOW)).unwrap()
    assert len(transactions.records) == 14
    assert sum((t.amount for t in transactions.records), Decimal(0)) == Decimal("172.01")


def test_provider_implements_the_protocols(provider: SchwabProvider) -> None:
    for protocol in (AccountsProvider, HoldingsProvider, TransactionsProvider, OAuth2Auth):
        assert isinstance(provider, protocol)


async def test_authorize_exchange_fetch(
    provider: SchwabProvider, http_client: httpx.AsyncClient, authorize: Any
) -> None:
    request = provider.authorization_request("state-xyz")
    query = parse_qs(urlsplit(request.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [SANDBOX_CLIENT_ID]
    assert query["state"] == ["state-xyz"]
    assert len(request.code_verifier) >= 43
    raw_code, verifier = await authorize(provider, http_client)
    assert raw_code.endswith("%40")  # Schwab's code ends in an encoded "@"
    before = datetime.now(UTC)
    credentials = (await provider.exchange_code(raw_code, verifier)).unwrap()
    assert set(credentials) == {"access_token", "refresh_token"}
    assert credentials.expires_at is not None
    assert credentials.refresh_expires_at is not None
    assert timedelta(seconds=1790) < credentials.expires_at - before < timedelta(seconds=1810)
    assert credentials.refresh_expires_at - before > timedelta(days=6, hours=23)
    assert not provider.needs_refresh(credentials)
    await assert_agrees_with_sandbox(provider, credentials)


async def test_code_is_single_use_and_decoded_once(
    provider: SchwabProvider, http_client: httpx.AsyncClient, authorize: Any
) -> None:
    raw_code, verifier = await authorize(provider, http_client)
    token_url = f"{provider.settings.auth_base_url}/token"
    # Sending the code still URL-encoded (so "%40" reaches the server as "%2540") is refused.
    response = await http_client.post(
        token_url,
        auth=(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
        data={
            "grant_type": "authorization_code",
            "code": raw_code,
            "redirect_uri": provider.settings.redirect_uri,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert isinstance(await provider.exchange_code(raw_code, verifier), Ok)
    again = await provider.exchange_code(raw_code, verifier)
    assert isinstance(again, Err)
    assert isinstance(again.error, InvalidCredentials)


async def test_wrong_pkce_verifier_and_bad_client_secret(
    provider: SchwabProvider,
    http_client: httpx.AsyncClient,
    authorize: Any,
    make_settings: Callable[..., Any],
    sandbox_server: Any,
) -> None:
    raw_code, _ = await authorize(provider, http_client)
    wrong = await provider.exchange_code(raw_code, "x" * 64)
    assert isinstance(wrong, Err)
    assert isinstance(wrong.error, InvalidCredentials)
    assert "invalid_grant" in wrong.error.message
    impostor = SchwabProvider(
        make_settings(sandbox_server.url, client_secret="not-the-secret"), http_client
    )
    raw_code, verifier = await authorize(impostor, http_client)
    refused = await impostor.exchange_code(raw_code, verifier)
    assert isinstance(refused, Err)
    assert isinstance(refused.error, InvalidCredentials)
    assert "invalid_client" in refused.error.message


async def test_authorize_html_page_forwards_with_encoded_code(
    provider: SchwabProvider, http_client: httpx.AsyncClient
) -> None:
    request = provider.authorization_request("s1")
    page = await http_client.get(request.url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "http-equiv='refresh'" in page.text
    assert "%40" in page.text
    assert "state=s1" in page.text


async def test_forced_expiry_then_refresh_then_fetch(
    provider: SchwabProvider,
    http_client: httpx.AsyncClient,
    connect: Any,
    sandbox_server: Any,
) -> None:
    credentials = await connect(provider, http_client)
    expired = await http_client.post(f"{sandbox_server.url}/_sandbox/expire", json={})
    assert expired.json()["expired_access"] >= 1
    refused = await provider.fetch_accounts(credentials)
    assert isinstance(refused, Err)
    assert isinstance(refused.error, AuthExpired)
    assert "access token is missing, invalid or expired" in refused.error.message  # ServiceError
    refreshed = (await provider.refresh(credentials)).unwrap()
    assert refreshed["access_token"] != credentials["access_token"]
    assert refreshed.refresh_expires_at == credentials.refresh_expires_at  # 7 days from login
    assert refreshed.expires_at is not None
    assert credentials.expires_at is not None
    assert refreshed.expires_at >= credentials.expires_at
    await assert_agrees_with_sandbox(provider, refreshed)


async def test_refresh_token_death(
    provider: SchwabProvider,
    http_client: httpx.AsyncClient,
    connect: Any,
    sandbox_server: Any,
) -> None:
    credentials = await connect(provider, http_client)
    await http_client.post(f"{sandbox_server.url}/_sandbox/expire", json={"refresh": True})
    dead = await provider.refresh(credentials)
    assert isinstance(dead, Err)
    assert isinstance(dead.error, AuthExpired)
    assert "unsupported_token_type" in dead.error.message
    # Past the 7-day mark the provider does not even ask Schwab.
    late = Credentials(
        dict(credentials),
        expires_at=credentials.expires_at,
        refresh_expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert provider.refresh_token_expired(late)
    calls: list[httpx.Request] = []
    http_client.event_hooks["request"].append(lambda r: _record(calls, r))
    result = await provider.refresh(late)
    assert isinstance(result, Err)
    assert isinstance(result.error, AuthExpired)
    assert calls == []


async def _record(calls: list[httpx.Request], request: httpx.Request) -> None:
    calls.append(request)


async def test_needs_refresh_margin(provider: SchwabProvider) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    fresh = Credentials({"access_token": "a"}, expires_at=now + timedelta(minutes=30))
    assert not provider.needs_refresh(fresh, now=now)
    assert provider.needs_refresh(fresh, now=now + timedelta(minutes=26))  # 5-minute margin
    assert provider.needs_refresh(Credentials({"access_token": "a"}), now=now)
