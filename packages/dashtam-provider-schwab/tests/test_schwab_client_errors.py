"""Faults on demand from the sandbox map to typed errors; no token ever leaks."""

from __future__ import annotations

import itertools
import logging
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dashtam_core.errors import (
    AuthExpired,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailable,
    RateLimited,
)
from dashtam_core.ports.provider import Credentials
from dashtam_core.result import Err, Ok
from dashtam_provider_schwab import (
    SANDBOX_CLIENT_SECRET,
    SandboxConfig,
    SchwabProvider,
    transaction_windows,
)
from dashtam_provider_schwab.sandbox_data import load_sandbox_data

MARGIN_HASH = "37BF42A99C87DFDAE1C632107707C5BE9DF121925ED90B1349D9F9AAA5C9AEEC"


async def fault(url: str, http_client: httpx.AsyncClient, **spec: Any) -> None:
    response = await http_client.post(f"{url}/_sandbox/faults", json=spec)
    assert response.status_code == 201


async def test_429_with_retry_after_then_recovers(
    provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Any, sandbox_server: Any
) -> None:
    credentials = await connect(provider, http_client)
    await fault(sandbox_server.url, http_client, status=429, retry_after=2, path="/trader/v1")
    limited = await provider.fetch_accounts(credentials)
    assert isinstance(limited, Err)
    assert isinstance(limited.error, RateLimited)
    assert limited.error.retry_after == 2.0
    accounts = (await provider.fetch_accounts(credentials)).unwrap()  # the fault was used up
    assert {a.balance_current for a in accounts.records} == {
        Decimal("18517.92"),
        Decimal("12668.80"),
    }


@pytest.mark.parametrize("shape", ["service", "jsonapi", "text"])
async def test_5xx_in_every_body_shape_is_unavailable(
    shape: str,
    provider: SchwabProvider,
    http_client: httpx.AsyncClient,
    connect: Any,
    sandbox_server: Any,
) -> None:
    credentials = await connect(provider, http_client)
    await fault(sandbox_server.url, http_client, status=503, shape=shape, path="/trader/v1")
    result = await provider.fetch_holdings(credentials, MARGIN_HASH)
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderUnavailable)
    assert "503" in result.error.message
    expected = {"service": "sandbox fault 503", "jsonapi": "Service Unavailable", "text": "503"}
    assert expected[shape] in result.error.message


async def test_malformed_json_is_a_protocol_error(
    provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Any, sandbox_server: Any
) -> None:
    credentials = await connect(provider, http_client)
    await fault(sandbox_server.url, http_client, status=200, malformed=True, path="/trader/v1")
    result = await provider.fetch_accounts(credentials)
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderProtocolError)


async def test_token_endpoint_5xx_and_401_fault(
    provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Any, sandbox_server: Any
) -> None:
    credentials = await connect(provider, http_client)
    await fault(sandbox_server.url, http_client, status=500, path="/v1/oauth/token")
    down = await provider.refresh(credentials)
    assert isinstance(down, Err)
    assert isinstance(down.error, ProviderUnavailable)
    await fault(sandbox_server.url, http_client, status=401, path="/trader/v1/accounts")
    refused = await provider.fetch_accounts(credentials)
    assert isinstance(refused, Err)
    assert isinstance(refused.error, AuthExpired)


async def test_unknown_hash_is_a_protocol_error(
    provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Any
) -> None:
    credentials = await connect(provider, http_client)
    result = await provider.fetch_holdings(credentials, "71234908")  # plain number, not hash
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderProtocolError)
    assert "Invalid account number" in result.error.message


async def test_unreachable_host_is_unavailable(
    http_client: httpx.AsyncClient, make_settings: Any
) -> None:
    provider = SchwabProvider(make_settings("http://127.0.0.1:9"), http_client)
    result = await provider.fetch_accounts(Credentials({"access_token": "t"}))
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderUnavailable)


def test_windows_cover_two_years_in_at_most_one_year_each() -> None:
    start, end = date(2023, 4, 25), date(2025, 4, 24)
    windows = transaction_windows(start, end)
    assert windows[0][0] == start
    assert windows[-1][1] == end
    for (_, last), (next_first, _) in itertools.pairwise(windows):
        assert next_first == last + timedelta(days=1)
    assert all(last - first < timedelta(days=365) for first, last in windows)
    assert len(windows) == 3  # 731 days (2024 is a leap year): 365 + 365 + 1
    assert transaction_windows(end, start) == []


async def test_two_year_history_in_windows_and_capped_pages(
    serve_sandbox: Any, make_settings: Any, http_client: httpx.AsyncClient, connect: Any
) -> None:
    config = SandboxConfig(extra_transactions=600, history_days=700, max_transactions=100)
    server = serve_sandbox(config)
    provider = SchwabProvider(
        make_settings(server.url, max_transactions_per_response=100), http_client
    )
    credentials = await connect(provider, http_client)
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    http_client.event_hooks["request"].append(record)
    start, end = date(2023, 4, 25), date(2025, 4, 24)
    fetched = (await provider.fetch_transactions(credentials, MARGIN_HASH, start, end)).unwrap()
    spans = []
    for request in seen:
        query = parse_qs(urlsplit(str(request.url)).query)
        assert query["types"][0].split(",")[0] == "TRADE"
        assert len(query["types"][0].split(",")) == 15
        assert query["startDate"][0].endswith("T00:00:00.000Z")
        first = date.fromisoformat(query["startDate"][0][:10])
        last = date.fromisoformat(query["endDate"][0][:10])
        spans.append((first, last))
        assert last - first < timedelta(days=365)
    assert len(spans) > 2  # the 100-row cap forced narrower windows
    expected = load_sandbox_data(600, 700).transactions["71234908"]
    assert len(fetched.records) == len(expected) == 614
    want = sum((Decimal(repr(t["netAmount"])) for t in expected), Decimal(0))
    assert sum((r.amount for r in fetched.records), Decimal(0)) == want
    assert [r.date for r in fetched.records] == sorted(r.date for r in fetched.records)
    assert all(start <= r.date <= end for r in fetched.records)
    assert len(fetched.raw) < len(spans)  # capped (possibly truncated) answers were not used


async def test_sandbox_enforces_transaction_parameters(
    provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Any
) -> None:
    credentials = await connect(provider, http_client)
    url = f"{provider.settings.api_base_url}/accounts/{MARGIN_HASH}/transactions"
    headers = {"Authorization": f"Bearer {credentials['access_token']}"}
    base = {"startDate": "2024-01-01T00:00:00.000Z", "endDate": "2024-06-01T00:00:00.000Z"}
    missing_types = await http_client.get(url, params=base, headers=headers)
    assert missing_types.status_code == 400
    assert "types" in missing_types.json()["errors"][0]
    too_long = {**base, "endDate": "2025-01-02T00:00:00.000Z", "types": "TRADE"}
    response = await http_client.get(url, params=too_long, headers=headers)
    assert response.status_code == 400
    assert "1 year" in response.json()["errors"][0]
    no_token = await http_client.get(url, params={**base, "types": "TRADE"})
    assert no_token.status_code == 401
    assert set(no_token.json()) == {"message", "errors"}


async def test_no_token_in_errors_reprs_payloads_or_logs(
    provider: SchwabProvider,
    http_client: httpx.AsyncClient,
    connect: Any,
    sandbox_server: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    credentials = await connect(provider, http_client)
    secrets = [*credentials.secret_values(), SANDBOX_CLIENT_SECRET]
    texts = [repr(credentials), str(credentials), repr(provider), repr(provider.oauth)]
    ok_accounts = (await provider.fetch_accounts(credentials)).unwrap()
    ok_tx = (
        await provider.fetch_transactions(
            credentials, MARGIN_HASH, *(date(2025, 4, 1), date(2025, 4, 24))
        )
    ).unwrap()
    texts += [raw.request for raw in ok_accounts.raw + ok_tx.raw]
    errors: list[ProviderError] = []
    for status in (401, 429, 500):
        await fault(sandbox_server.url, http_client, status=status, retry_after=1)
        result = await provider.fetch_accounts(credentials)
        assert isinstance(result, Err)
        errors.append(result.error)
    await http_client.post(f"{sandbox_server.url}/_sandbox/expire", json={"refresh": True})
    dead_refresh = await provider.refresh(credentials)
    dead_fetch = await provider.fetch_accounts(credentials)
    assert isinstance(dead_refresh, Err)
    assert isinstance(dead_fetch, Err)
    errors += [dead_refresh.error, dead_fetch.error]
    texts += [repr(e) for e in errors] + [str(e) for e in errors]
    texts += [r.getMessage() for r in caplog.records] + [caplog.text]
    blob = "\n".join(texts)
    assert "schwab" in caplog.text  # the provider did log
    for secret in secrets:
        assert secret not in blob


async def test_fault_controls_validate_and_clear(
    provider: SchwabProvider, http_client: httpx.AsyncClient, connect: Any, sandbox_server: Any
) -> None:
    credentials = await connect(provider, http_client)
    bad = await http_client.post(f"{sandbox_server.url}/_sandbox/faults", json={"status": 42})
    assert bad.status_code == 400
    await fault(sandbox_server.url, http_client, status=500, count=5)
    cleared = await http_client.delete(f"{sandbox_server.url}/_sandbox/faults")
    assert cleared.status_code == 204
    assert isinstance(await provider.fetch_holdings(credentials, MARGIN_HASH), Ok)
