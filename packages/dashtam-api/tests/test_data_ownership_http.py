"""Two users: the second sees none of the first one's data, on every route (from the registry).

Every ``user`` route whose path has an ``{id}`` is called by Bob with Alice's object id and must
answer 404 ``not_found`` exactly like a missing id; a route with an id kind this test does not
know fails the test, so a new route cannot skip the check. Bob's lists, series, change feed and
exports are empty, and Alice's data is unchanged afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio

import dashtam_api_test_support as support
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

#: Which of Alice's objects an ``{id}`` stands for, by path prefix.
ID_KINDS = {
    "/api/v1/connections/{id}": "connection",
    "/api/v1/accounts/{id}": "account",
    "/api/v1/transactions/{id}": "transaction",
    "/api/v1/syncs/{id}": "sync",
    "/api/v1/sessions/{id}": "session",
}
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/v1/connections/{id}"): {"alias": "stolen"},
    ("POST", "/api/v1/connections/{id}/syncs"): {"force": True},
}


@pytest_asyncio.fixture
async def served(migrated_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with support.serve(migrated_url, tmp_path) as s:
        yield s


async def _alice_data(served: Any) -> tuple[dict[str, str], dict[str, str]]:
    email = "alice@example.com"
    _, headers = await served.user(email)
    r = await served.client.post(
        "/api/v1/connections",
        json={
            "provider": "alpaca",
            "credentials": {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY},
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    await served.wait_sync(headers, created["sync_id"])
    imported = await served.client.post(
        "/api/v1/imports",
        files={
            "file": ("checking.qfx", (support.FIXTURES / "chase" / "checking.qfx").read_bytes())
        },
        headers=headers,
    )
    assert imported.status_code == 201, imported.text
    tx = (await served.client.get("/api/v1/transactions?limit=1", headers=headers)).json()
    sessions = (await served.client.get("/api/v1/sessions", headers=headers)).json()["data"]
    ids = {
        "connection": created["connection"]["id"],
        "account": imported.json()["accounts"][0],
        "transaction": tx["data"][0]["id"],
        "sync": created["sync_id"],
        "session": sessions[0]["id"],
    }
    return headers, ids


async def _snapshot(served: Any, headers: dict[str, str]) -> list[Any]:
    paths = ("/api/v1/connections", "/api/v1/accounts", "/api/v1/holdings")
    out = [(await served.client.get(p, headers=headers)).json() for p in paths]
    out.append((await served.client.get("/api/v1/transactions?limit=500", headers=headers)).json())
    return out


async def test_every_id_route_hides_other_users_objects(served: Any) -> None:
    alice, ids = await _alice_data(served)
    before = await _snapshot(served, alice)
    _, bob = await served.user("bob@example.com")

    checked = 0
    for spec in served.app.route_registry:
        if spec.auth != "user" or "{id}" not in spec.path:
            continue
        prefix = spec.path.split("{id}")[0] + "{id}"
        assert prefix in ID_KINDS, f"no ownership case for {spec.method} {spec.path}"
        url = spec.path.replace("{id}", ids[ID_KINDS[prefix]])
        body = BODIES.get((spec.method, spec.path))
        r = await served.client.request(spec.method, url, json=body, headers=bob)
        assert r.status_code == 404, (spec.name, r.status_code, r.text)
        problem = r.json()
        assert problem["code"] == "not_found", spec.name
        missing = spec.path.replace("{id}", "01900000-0000-7000-8000-000000000000")
        r2 = await served.client.request(spec.method, missing, json=body, headers=bob)
        assert r2.status_code == 404, spec.name
        assert r2.json()["detail"] == problem["detail"], spec.name
        checked += 1
    assert checked >= 8

    assert await _snapshot(served, alice) == before

    for path in (
        "/api/v1/connections",
        "/api/v1/accounts",
        "/api/v1/holdings",
        "/api/v1/transactions",
        "/api/v1/net-worth",
    ):
        r = await served.client.get(path, headers=bob)
        assert r.status_code == 200, path
        assert r.json()["data"] == [], path
    changes = (await served.client.get("/api/v1/transactions/changes", headers=bob)).json()
    assert changes["added"] == []
    assert changes["modified"] == []
    assert changes["removed"] == []
    filtered = await served.client.get(
        "/api/v1/transactions", params={"account_id": ids["account"]}, headers=bob
    )
    assert filtered.json()["data"] == []
    export = await served.client.get("/api/v1/exports/transactions?format=json", headers=bob)
    assert export.json() == {"data": []}


async def test_routes_need_a_token(served: Any) -> None:
    for spec in served.app.route_registry:
        if spec.auth != "user" or spec.tags[:1] == ("identity",):
            continue
        path = spec.path.replace("{id}", "01900000-0000-7000-8000-000000000000")
        r = await served.client.request(spec.method, path)
        assert r.status_code == 401, (spec.name, r.text)
