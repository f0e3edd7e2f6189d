"""The sandbox speaks Alpaca's wire format: auth, query parameters, pagination, errors, scale."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from dashtam_core.ports.provider import Credentials
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY, SandboxConfig
from dashtam_provider_alpaca.sandbox_data import FIRST_BASE_DAY, synthetic_activities

KEYS = {"APCA-API-KEY-ID": SANDBOX_API_KEY_ID, "APCA-API-SECRET-KEY": SANDBOX_SECRET_KEY}
ACTIVITIES = "/v2/account/activities"


@pytest.fixture
async def api(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url, headers=KEYS) as client:
        yield client


async def ids(api: httpx.AsyncClient, path: str = ACTIVITIES, **params: str) -> list[str]:
    response = await api.get(path, params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


async def test_keys_are_required(sandbox_url: str) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as anonymous:
        for headers in ({}, {**KEYS, "APCA-API-SECRET-KEY": "nope"}):
            response = await anonymous.get("/v2/account", headers=headers)
            assert response.status_code == 401
            assert response.json() == {"code": 40110000, "message": "request is not authorized"}


async def test_account_and_positions_are_the_fixtures(
    api: httpx.AsyncClient, fixture_json: Any
) -> None:
    assert (await api.get("/v2/account")).json() == fixture_json("account.json")
    positions = (await api.get("/v2/positions")).json()
    assert positions == fixture_json("positions.json")
    assert isinstance(positions[0]["qty"], str)
    by_symbol = await api.get("/v2/positions/BTC/USD")
    assert by_symbol.json()["symbol"] == "BTCUSD"
    by_asset = await api.get(f"/v2/positions/{positions[0]['asset_id']}")
    assert by_asset.json()["symbol"] == "AAPL"
    missing = await api.get("/v2/positions/ZZZZ")
    assert missing.status_code == 404
    assert missing.json()["code"] == 40410000
    unknown = await api.get("/v2/nothing")
    assert unknown.json() == {"code": 40410000, "message": "endpoint not found"}


async def test_activities_order_and_page_token(api: httpx.AsyncClient, fixture_json: Any) -> None:
    expected = [a["id"] for a in fixture_json("activities_page1.json")]
    expected += [a["id"] for a in fixture_json("activities_page2.json")]
    assert await ids(api) == expected  # newest first by default
    assert await ids(api, direction="asc") == expected[::-1]
    page1 = await ids(api, direction="desc", page_size="6")
    assert page1 == expected[:6]
    page2 = await ids(api, direction="desc", page_size="6", page_token=page1[-1])
    assert page2 == expected[6:]
    assert (
        await ids(api, direction="asc", page_size="3", page_token=expected[5])
        == (expected[2:5][::-1])
    )
    response = await api.get(ACTIVITIES, params={"page_size": "6"})
    assert response.json() == fixture_json("activities_page1.json")


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"activity_types": "DIV"}, 2),
        ({"activity_types": "TRANS"}, 3),
        ({"activity_types": "csd,fee"}, 3),
        ({"activity_types": "MISC"}, 3),
        ({"category": "trade_activity"}, 5),
        ({"category": "non_trade_activity"}, 6),
        ({"date": "2025-04-02"}, 2),
        ({"date": "2025-04-06"}, 1),
        ({"date": "2025-04-02", "page_size": "500"}, 2),
        ({"after": "2025-04-04", "until": "2025-04-11"}, 2),  # both bounds exclusive
        ({"after": "2025-04-03", "until": "2025-04-12"}, 5),
        ({"after": "2025-04-07T02:17:45.301Z"}, 5),
        ({"until": "2025-04-02T13:45:11Z"}, 2),
    ],
)
async def test_activity_filters(api: httpx.AsyncClient, params: dict[str, str], count: int) -> None:
    assert len(await ids(api, **params)) == count


async def test_single_type_endpoint(api: httpx.AsyncClient) -> None:
    found = (await api.get(f"{ACTIVITIES}/FEE")).json()
    assert [a["net_amount"] for a in found] == ["-0.04"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"activity_types": "FFFFF"}, 40010001),
        ({"direction": "sideways"}, 40010001),
        ({"date": "2025-04-02", "after": "2025-04-01"}, 42210000),
        ({"page_size": "101"}, 42210000),
        ({"page_size": "0"}, 40010001),
        ({"after": "last tuesday"}, 40010001),
    ],
)
async def test_invalid_queries_answer_422(
    api: httpx.AsyncClient, params: dict[str, str], code: int
) -> None:
    response = await api.get(ACTIVITIES, params=params)
    assert response.status_code == 422
    assert response.json()["code"] == code


async def test_fault_control(api: httpx.AsyncClient) -> None:
    bad = await api.post("/_sandbox/faults", json={"status": 200})
    assert bad.status_code == 422
    queued = await api.post("/_sandbox/faults", json={"status": 503, "count": 2, "path": "/v2/pos"})
    assert queued.status_code == 201
    assert (await api.get("/_sandbox/faults")).json()[0]["count"] == 2
    assert (await api.get("/v2/account")).status_code == 200  # other paths are untouched
    assert [(await api.get("/v2/positions")).status_code for _ in range(3)] == [503, 503, 200]
    await api.post("/_sandbox/faults", json={"status": 429, "retry_after": 2})
    limited = await api.get("/v2/account")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "2"
    assert int(limited.headers["X-RateLimit-Reset"]) > 1_700_000_000
    await api.post("/_sandbox/faults", json={"status": 200, "malformed": True})
    broken = await api.get("/v2/account")
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 250])
def test_synthetic_activities_are_cash_neutral_and_deterministic(count: int) -> None:
    items = synthetic_activities(count, seed=7)
    assert len(items) == count
    assert items == synthetic_activities(count, seed=7)
    assert len({i["id"] for i in items}) == count
    cash = Decimal(0)
    for item in items:
        if item["activity_type"] == "FILL":
            gross = Decimal(item["qty"]) * Decimal(item["price"])
            cash += -gross if item["side"] == "buy" else gross
        else:
            cash += Decimal(item["net_amount"])
        assert item["id"][:8] < FIRST_BASE_DAY.strftime("%Y%m%d")
    assert cash == 0


async def test_scaled_sandbox_paginates_to_completion(
    serve_sandbox: Any, make_provider: Any, credentials: Credentials
) -> None:
    url = serve_sandbox(SandboxConfig(extra_activities=1001))
    provider = make_provider(url, page_size=100)
    start, end = date(1990, 1, 1), date(2030, 1, 1)
    fetched = (await provider.fetch_transactions(credentials, "acct", start, end)).unwrap()
    assert len(fetched.records) == 1012
    assert len(fetched.raw) == 11  # ten full pages, then a page of 12
    assert len({t.dedupe_key for t in fetched.records}) == 1012
    assert sum((t.amount for t in fetched.records), Decimal(0)) == Decimal("2610.24")


def test_sandbox_config_from_the_environment() -> None:
    assert SandboxConfig.from_env({}) == SandboxConfig()
    scaled = SandboxConfig.from_env(
        {
            "DASHTAM_ALPACA_SANDBOX_EXTRA_ACTIVITIES": "5000",
            "DASHTAM_ALPACA_SANDBOX_MAX_PAGE_SIZE": "1000",
        }
    )
    assert (scaled.extra_activities, scaled.max_page_size) == (5000, 1000)
