"""Alpaca end to end through HTTP (SQLite and PostgreSQL): connect with keys, sync, read, export.

The server runs with uvicorn on loopback in sandbox mode; every figure is checked against the
sandbox data (shared fixtures README arithmetic) to the cent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest_asyncio

import dashtam_api_test_support as support
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}


@pytest_asyncio.fixture
async def served(migrated_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with support.serve(migrated_url, tmp_path) as s:
        yield s


async def _connect(served: Any, headers: dict[str, str]) -> dict[str, Any]:
    r = await served.client.post(
        "/api/v1/connections",
        json={"provider": "alpaca", "credentials": KEYS, "alias": "paper"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    sync = await served.wait_sync(headers, body["sync_id"])
    assert sync["status"] == "succeeded", sync
    return body


async def test_bad_keys_are_refused_and_nothing_is_stored(served: Any) -> None:
    _, headers = await served.user()
    r = await served.client.post(
        "/api/v1/connections",
        json={"provider": "alpaca", "credentials": {"api_key_id": "PKBAD", "secret_key": "no"}},
        headers=headers,
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_credentials"
    listed = await served.client.get("/api/v1/connections", headers=headers)
    assert listed.json()["data"] == []


async def test_connect_sync_and_read_to_the_cent(served: Any) -> None:
    _, headers = await served.user()
    created = await _connect(served, headers)
    conn = created["connection"]
    assert conn["status"] == "active"
    assert conn["provider"] == "alpaca"
    assert "credentials" not in conn

    sync = await served.client.get(f"/api/v1/syncs/{created['sync_id']}", headers=headers)
    counts = sync.json()["counts"]
    assert counts["accounts"] == 1
    assert counts["holdings"] == 3
    assert counts["transactions_added"] == 11

    accounts = (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    assert len(accounts) == 1
    account = accounts[0]
    assert account["connection_id"] == conn["id"]
    assert account["balance"] == {"current": "13272.09", "available": "2610.24"}
    one = await served.client.get(f"/api/v1/accounts/{account['id']}", headers=headers)
    assert one.json() == account

    holdings = (await served.client.get("/api/v1/holdings", headers=headers)).json()["data"]
    by_symbol = {h["symbol"]: h for h in holdings}
    assert sorted(by_symbol) == ["AAPL", "BTCUSD", "SPY"]
    assert Decimal(by_symbol["AAPL"]["market_value"]) == Decimal("2943.75")
    assert Decimal(by_symbol["SPY"]["market_value"]) == Decimal("4229.68")
    assert Decimal(by_symbol["BTCUSD"]["market_value"]) == Decimal("3488.42")
    for h in holdings:
        total = Decimal(h["cost_basis"]["total"])
        assert Decimal(h["unrealized_gain"]) == Decimal(h["market_value"]) - total
        assert Decimal(h["cost_basis"]["per_unit"]) * Decimal(h["quantity"]) == total
    assert sum(Decimal(h["market_value"]) for h in holdings) == Decimal("10661.85")

    txs = (await served.client.get("/api/v1/transactions?limit=500", headers=headers)).json()
    assert txs["next_cursor"] is None
    assert len(txs["data"]) == 11
    assert sum(Decimal(t["amount"]) for t in txs["data"]) == Decimal("2610.24")
    assert set(txs["data"][0]) >= {
        "id",
        "account_id",
        "provider_transaction_id",
        "date",
        "posted_at",
        "amount",
        "currency",
        "description",
        "merchant",
        "type",
        "subtype",
        "status",
        "pending_transaction_id",
        "security",
    }

    for listed in txs["data"]:
        one_tx = await served.client.get(f"/api/v1/transactions/{listed['id']}", headers=headers)
        assert one_tx.json() == listed
    trades = [t for t in txs["data"] if t["security"] is not None]
    assert trades
    assert any(t["type"] == "trade" for t in trades)

    history = await served.client.get(
        f"/api/v1/accounts/{account['id']}/balance-history", headers=headers
    )
    assert history.status_code == 200
    points = history.json()["data"]
    assert points
    assert points[-1]["current"] == "13272.09"
    worth = (await served.client.get("/api/v1/net-worth", headers=headers)).json()
    assert worth["currency"] == "USD"
    assert worth["data"][-1]["net_worth"] == "13272.09"
    assert worth["data"][-1]["liabilities"] == "0"

    export = await served.client.get("/api/v1/exports/transactions?format=csv", headers=headers)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert len(rows) == 11
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("2610.24")


async def test_second_sync_adds_nothing_and_running_sync_is_reused(served: Any) -> None:
    _, headers = await served.user()
    created = await _connect(served, headers)
    conn_id = created["connection"]["id"]
    changes = await served.client.get("/api/v1/transactions/changes", headers=headers)
    first = changes.json()
    assert len(first["added"]) == 11
    assert first["has_more"] is False

    # The simulator answers the run's first call 2 s late: the run is certainly still active
    # when the second request comes (an identical re-sync of 11 rows is otherwise done first).
    fault = {"status": 200, "delay": 2, "count": 1}
    held = await served.client.post("/sandbox/alpaca/_sandbox/faults", json=fault)
    assert held.status_code in (200, 201), held.text
    r = await served.client.post(f"/api/v1/connections/{conn_id}/syncs", headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    again = await served.client.post(
        f"/api/v1/connections/{conn_id}/syncs", json={"force": True}, headers=headers
    )
    assert again.status_code == 202
    assert again.json()["id"] == r.json()["id"]
    done = await served.wait_sync(headers, r.json()["id"])
    assert done["status"] == "succeeded"
    assert done["counts"]["transactions_added"] == 0
    assert done["counts"]["transactions_modified"] == 0

    later = await served.client.get(
        "/api/v1/transactions/changes", params={"cursor": first["next_cursor"]}, headers=headers
    )
    body = later.json()
    assert body["added"] == []
    assert body["modified"] == []
    assert body["removed"] == []
    assert body["next_cursor"] == first["next_cursor"]
