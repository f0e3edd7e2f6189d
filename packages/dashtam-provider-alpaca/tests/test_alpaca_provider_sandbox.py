"""The provider against the sandbox served by a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from dashtam_core.errors import (
    AuthExpired,
    InvalidCredentials,
    ProviderProtocolError,
    ProviderUnavailable,
    RateLimited,
)
from dashtam_core.ports.provider import Credentials
from dashtam_core.result import Err, Ok
from dashtam_provider_alpaca import AlpacaProvider, AlpacaSettings
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

FULL = (date(2000, 1, 1), date(2030, 12, 31))
ACCOUNT = "6375b0a6-213b-459f-8e80-cfb4229e8c7a"


async def fault(url: str, **spec: Any) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{url}/_sandbox/faults", json=spec)).raise_for_status()


async def test_validate_good_and_bad_keys(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url)
    assert await provider.validate_credentials(credentials) == Ok(None)
    bad = Credentials({"api_key_id": SANDBOX_API_KEY_ID, "secret_key": "wrong-secret"})
    result = await provider.validate_credentials(bad)
    assert isinstance(result, Err)
    assert isinstance(result.error, InvalidCredentials)
    missing = await provider.validate_credentials(Credentials({"api_key_id": "PK1"}))
    assert isinstance(missing, Err)
    assert isinstance(missing.error, InvalidCredentials)
    assert "secret_key" in missing.error.message
    env = Credentials({**credentials, "environment": "moon"})
    assert isinstance(await provider.validate_credentials(env), Err)


async def test_environment_chooses_the_host(
    sandbox_url: str, http_client: httpx.AsyncClient, credentials: Credentials
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = AlpacaSettings(paper_base_url=dead, live_base_url=sandbox_url)
    provider = AlpacaProvider(settings, http_client)
    live = Credentials({**credentials, "environment": "live"})
    assert await provider.validate_credentials(live) == Ok(None)
    paper = await provider.validate_credentials(credentials)
    assert isinstance(paper, Err)
    assert isinstance(paper.error, ProviderUnavailable)
    accounts = (await provider.fetch_accounts(live)).unwrap()
    assert accounts.records[0].name.startswith("Alpaca Live")


async def test_fetch_everything_agrees_with_the_sandbox_to_the_cent(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url, page_size=4)
    accounts = (await provider.fetch_accounts(credentials)).unwrap()
    (account,) = accounts.records
    assert account.provider_account_id == ACCOUNT
    assert (account.balance_current, account.balance_available) == (
        Decimal("13272.09"),
        Decimal("2610.24"),
    )
    holdings = (await provider.fetch_holdings(credentials, ACCOUNT)).unwrap()
    assert sum((h.market_value or 0 for h in holdings.records), Decimal(0)) == Decimal("10661.85")
    assert len(holdings.raw) == 1
    assert holdings.raw[0].request == "GET /v2/positions"
    fetched = (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap()
    assert len(fetched.records) == 11
    assert len(fetched.raw) == 3  # pages of 4, 4 and 3
    assert [page.request.count("page_token=") for page in fetched.raw] == [0, 1, 1]
    assert sum((t.amount for t in fetched.records), Decimal(0)) == account.balance_available
    ids = [t.provider_transaction_id for t in fetched.records]
    assert ids == sorted(ids, reverse=True)
    assert all(p.kind == "transactions" and p.account_id == ACCOUNT for p in fetched.raw)
    again = (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap()
    assert again.records == fetched.records


async def test_full_last_page_is_followed_by_an_empty_page(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url, page_size=11)
    fetched = (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap()
    assert len(fetched.records) == 11
    assert [page.content for page in fetched.raw][-1] == b"[]"


async def test_window_is_respected(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url, page_size=2)
    start, end = date(2025, 4, 4), date(2025, 4, 11)
    fetched = (await provider.fetch_transactions(credentials, ACCOUNT, start, end)).unwrap()
    assert sorted(t.provider_transaction_id[:8] for t in fetched.records) == [
        "20250404",
        "20250406",  # the BTC fill at 02:17Z on the 7th is New York's 6th
        "20250410",
        "20250411",
    ]
    only_the_6th = await provider.fetch_transactions(
        credentials, ACCOUNT, date(2025, 4, 6), date(2025, 4, 6)
    )
    widest = await provider.fetch_transactions(credentials, ACCOUNT, date.min, date.max)
    assert len(widest.unwrap().records) == 11
    legs = [t.security for t in only_the_6th.unwrap().records]
    assert [leg.symbol for leg in legs if leg is not None] == ["BTC/USD"]


async def test_rate_limit_then_recovery(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url, page_size=4)
    await fault(sandbox_url, status=429, retry_after=1, count=1, path="/v2/account/activities")
    limited = await provider.fetch_transactions(credentials, ACCOUNT, *FULL)
    assert isinstance(limited, Err)
    assert isinstance(limited.error, RateLimited)
    assert limited.error.retry_after == 1.0
    retried = (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap()
    assert sum((t.amount for t in retried.records), Decimal(0)) == Decimal("2610.24")


async def test_rate_limit_reset_header_without_retry_after(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    await fault(sandbox_url, status=429)
    limited = await make_provider(sandbox_url).fetch_accounts(credentials)
    assert isinstance(limited, Err)
    assert isinstance(limited.error, RateLimited)
    assert limited.error.retry_after is not None
    assert 0 < limited.error.retry_after <= 61


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_unavailable(
    status: int, sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    await fault(sandbox_url, status=status, path="/v2/positions")
    result = await make_provider(sandbox_url).fetch_holdings(credentials, ACCOUNT)
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderUnavailable)


async def test_malformed_json_is_a_protocol_error(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url, page_size=4)
    await fault(sandbox_url, status=200, malformed=True, count=3)
    for call in (
        provider.fetch_accounts(credentials),
        provider.fetch_holdings(credentials, ACCOUNT),
        provider.fetch_transactions(credentials, ACCOUNT, *FULL),
    ):
        result = await call
        assert isinstance(result, Err)
        assert isinstance(result.error, ProviderProtocolError)


async def test_stored_keys_refused_mean_auth_expired(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url)
    await fault(sandbox_url, status=401, count=3)
    for call in (
        provider.fetch_accounts(credentials),
        provider.fetch_holdings(credentials, ACCOUNT),
        provider.fetch_transactions(credentials, ACCOUNT, *FULL),
    ):
        result = await call
        assert isinstance(result, Err)
        assert isinstance(result.error, AuthExpired)
    await fault(sandbox_url, status=403)
    forbidden = await provider.fetch_accounts(credentials)
    assert isinstance(forbidden, Err)
    assert isinstance(forbidden.error, InvalidCredentials)


async def test_no_key_value_leaks(
    sandbox_url: str,
    make_provider: Any,
    credentials: Credentials,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(sandbox_url, page_size=4)
    secrets = [SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY]
    texts: list[str] = [repr(provider), str(provider), repr(credentials)]
    pages = []
    pages += (await provider.fetch_accounts(credentials)).unwrap().raw
    pages += (await provider.fetch_holdings(credentials, ACCOUNT)).unwrap().raw
    pages += (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap().raw
    for status in (401, 403, 429, 500):
        await fault(sandbox_url, status=status, retry_after=1)
        result = await provider.fetch_accounts(credentials)
        assert isinstance(result, Err)
        texts += [repr(result), str(result.error), result.error.message]
    canary = Credentials({"api_key_id": "PKCANARY1234567", "secret_key": "canary-secret-xyz"})
    refused = await provider.validate_credentials(canary)
    assert isinstance(refused, Err)
    texts += [repr(refused), str(refused.error)]
    secrets += canary.secret_values()
    texts += [repr(p) for p in pages] + [p.request for p in pages]
    texts += [p.content.decode() for p in pages]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("/v2/account" in t for t in texts)  # the logs and requests say something
    for secret in secrets:
        for text in texts:
            assert secret not in text


async def test_a_slow_answer_times_out_as_unavailable(
    sandbox_url: str, http_client: httpx.AsyncClient, credentials: Credentials
) -> None:
    settings = AlpacaSettings(read_timeout_seconds=0.2).for_sandbox(sandbox_url)
    provider = AlpacaProvider(settings, http_client)
    await fault(sandbox_url, status=200, delay=1.5)
    result = await provider.fetch_accounts(credentials)
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderUnavailable)
    assert "Timeout" in result.error.message
