"""Schwab through the browser OAuth flow over HTTP: connect, callback refusals, PKCE, repair.

The authorization URL is followed like a browser would (the sandbox auto-approves and redirects
to ``/oauth/schwab/callback``); every callback answer is a 200 HTML page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update

import dashtam_api_test_support as support
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import oauth_states
from dashtam_core.application.connections import hash_state


@pytest_asyncio.fixture
async def served(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    port = support.free_port()
    monkeypatch.setenv(
        "DASHTAM_SCHWAB_REDIRECT_URI", f"http://127.0.0.1:{port}/oauth/schwab/callback"
    )
    monkeypatch.setattr(support, "free_port", lambda: port)
    async with support.serve(migrated_url, tmp_path) as s:
        yield s


async def _start(served: Any, headers: dict[str, str]) -> dict[str, Any]:
    r = await served.client.post(
        "/api/v1/connections", json={"provider": "schwab", "alias": "brokerage"}, headers=headers
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["connection"]["status"] == "pending"
    assert body["expires_in"] == 600
    assert body["authorization_url"].startswith(f"{served.base}/sandbox/schwab/v1/oauth/authorize")
    return body


async def _approve(served: Any, authorization_url: str) -> httpx.URL:
    """What the browser does at Schwab: the sandbox approves and redirects to the callback."""
    r = await served.client.get(authorization_url, follow_redirects=False)
    assert r.status_code == 302, r.text
    location = httpx.URL(r.headers["location"])
    assert location.path == "/oauth/schwab/callback"
    return location


async def _callback(served: Any, url: httpx.URL | str) -> tuple[str, str]:
    r = await served.client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    result = "connected" if 'data-result="connected"' in r.text else "failed"
    return result, r.text


async def test_browser_flow_connects_and_syncs(served: Any) -> None:
    _, headers = await served.user()
    started = await _start(served, headers)
    location = await _approve(served, started["authorization_url"])
    assert location.params["state"] == started["state"]
    result, page = await _callback(served, location)
    assert result == "connected", page
    await served.runtime.wait_idle()

    conn_id = started["connection"]["id"]
    conn = (await served.client.get(f"/api/v1/connections/{conn_id}", headers=headers)).json()
    assert conn["status"] == "active"
    assert conn["auth_expires_at"] is not None
    assert conn["last_synced_at"] is not None

    accounts = (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    balances = sorted(
        (Decimal(a["balance"]["current"]), Decimal(a["balance"]["available"])) for a in accounts
    )
    # Schwab sends JSON numbers: 12668.8 stays "12668.8" (exact as given).
    assert balances == [
        (Decimal("12668.80"), Decimal("1310.42")),
        (Decimal("18517.92"), Decimal("2487.15")),
    ]
    holdings = (await served.client.get("/api/v1/holdings", headers=headers)).json()["data"]
    assert len(holdings) == 6
    assert "SWVXX" in {h["symbol"] for h in holdings}
    margin = next(a for a in accounts if Decimal(a["balance"]["current"]) == Decimal("18517.92"))
    txs = await served.client.get(
        "/api/v1/transactions",
        params={"account_id": margin["id"], "start": "2025-04-01", "end": "2025-04-24"},
        headers=headers,
    )
    data = txs.json()["data"]
    assert len(data) == 14
    assert sum(Decimal(t["amount"]) for t in data) == Decimal("172.01")

    # The state is single use: the same callback again is refused.
    result, page = await _callback(served, location)
    assert result == "failed"
    assert "unknown or expired" in page

    # Repair in place: same connection id, same account ids.
    r = await served.client.post(f"/api/v1/connections/{conn_id}/reauthorizations", headers=headers)
    assert r.status_code == 201, r.text
    again = await _approve(served, r.json()["authorization_url"])
    result, page = await _callback(served, again)
    assert result == "connected", page
    await served.runtime.wait_idle()
    after = (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    assert sorted(a["id"] for a in after) == sorted(a["id"] for a in accounts)
    listed = (await served.client.get("/api/v1/connections", headers=headers)).json()["data"]
    assert [c["id"] for c in listed] == [conn_id]


async def test_callback_refusals(served: Any) -> None:
    _, headers = await served.user()
    # Missing state.
    result, page = await _callback(served, "/oauth/schwab/callback?code=abc")
    assert result == "failed"
    assert "no state" in page
    # Unknown state.
    result, _ = await _callback(served, "/oauth/schwab/callback?code=abc&state=forged")
    assert result == "failed"
    # A state issued for another provider.
    started = await _start(served, headers)
    result, page = await _callback(
        served, f"/oauth/alpaca/callback?code=abc&state={started['state']}"
    )
    assert result == "failed"
    assert "another provider" in page
    # Expired state.
    engine = create_engine(served.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                update(oauth_states)
                .where(oauth_states.c.state_hash == hash_state(started["state"]))
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        await engine.dispose()
    location = await _approve(served, started["authorization_url"])
    result, page = await _callback(served, location)
    assert result == "failed"
    assert "unknown or expired" in page
    # The provider's own error parameter is shown; the connection is marked failed.
    refused = await _start(served, headers)
    result, page = await _callback(
        served,
        f"/oauth/schwab/callback?error=access_denied&error_description=User+said+no"
        f"&state={refused['state']}",
    )
    assert result == "failed"
    assert "access_denied" in page
    assert "User said no" in page
    conn = await served.client.get(
        f"/api/v1/connections/{refused['connection']['id']}", headers=headers
    )
    assert conn.json()["status"] == "error"


async def test_mismatched_pkce_is_refused(served: Any) -> None:
    _, headers = await served.user()
    first = await _start(served, headers)
    second = await _start(served, headers)
    code = (await _approve(served, first["authorization_url"])).params["code"]
    # The code was issued for the first request's PKCE challenge; redeeming it under the second
    # state uses the second verifier, which the provider refuses.
    result, page = await _callback(
        served, f"/oauth/schwab/callback?code={code}&state={second['state']}"
    )
    assert result == "failed", page
    conn = await served.client.get(
        f"/api/v1/connections/{second['connection']['id']}", headers=headers
    )
    assert conn.json()["status"] == "error"


async def test_other_users_cannot_repair_or_read(served: Any) -> None:
    _, alice = await served.user()
    _, bob = await served.user()
    started = await _start(served, alice)
    conn_id = started["connection"]["id"]
    for method, path in (
        ("GET", f"/api/v1/connections/{conn_id}"),
        ("POST", f"/api/v1/connections/{conn_id}/reauthorizations"),
        ("DELETE", f"/api/v1/connections/{conn_id}"),
    ):
        r = await served.client.request(method, path, headers=bob)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "not_found"
