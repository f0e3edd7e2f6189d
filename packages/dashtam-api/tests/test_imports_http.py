"""Statement imports over HTTP: counts, content dedupe, Idempotency-Key, refusals writing nothing.

Then the read side on the imported Chase data: balances (card owed as a positive amount), net
worth, filters, text search and keyset pagination, all to the cent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest_asyncio

import dashtam_api_test_support as support

CHASE = support.FIXTURES / "chase"


@pytest_asyncio.fixture
async def served(migrated_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with support.serve(migrated_url, tmp_path) as s:
        yield s


async def _upload(
    served: Any,
    headers: dict[str, str],
    name: str,
    data: bytes | None = None,
    **extra: str,
) -> Any:
    content = data if data is not None else (CHASE / name).read_bytes()
    return await served.client.post(
        "/api/v1/imports",
        files={"file": (name, content, "application/octet-stream")},
        headers=headers,
        data=extra or None,
    )


async def test_import_counts_dedupe_and_read_side(served: Any) -> None:
    _, headers = await served.user()
    r = await _upload(served, headers, "checking.qfx")
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["transactions_added"] == 25
    assert first["transactions_skipped"] == 0
    assert len(first["accounts"]) == 1
    assert first["errors"] == []

    again = await _upload(served, headers, "checking.qfx")
    assert again.status_code == 201
    assert again.json()["transactions_added"] == 0
    assert again.json()["transactions_skipped"] == 25

    card = await _upload(served, headers, "credit_card.qfx")
    assert card.status_code == 201, card.text
    assert card.json()["transactions_added"] == 15

    accounts = (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    by_type = {a["type"]: a for a in accounts}
    assert by_type["checking"]["balance"] == {"current": "7623.24", "available": "7581.06"}
    assert Decimal(by_type["credit_card"]["balance"]["current"]) == Decimal("136.32")
    checking_id = by_type["checking"]["id"]

    worth = (await served.client.get("/api/v1/net-worth", headers=headers)).json()["data"]
    last = worth[-1]
    assert Decimal(last["assets"]) == Decimal("7623.24")
    assert Decimal(last["liabilities"]) == Decimal("136.32")
    assert Decimal(last["net_worth"]) == Decimal("7486.92")
    history = await served.client.get(
        f"/api/v1/accounts/{checking_id}/balance-history",
        params={"start": "2025-04-28", "end": "2025-05-02"},
        headers=headers,
    )
    # The statement's balance is as of 2025-04-30 (no day before it), then carried forward.
    assert [p["date"] for p in history.json()["data"]] == [
        "2025-04-30",
        "2025-05-01",
        "2025-05-02",
    ]
    assert {p["current"] for p in history.json()["data"]} == {"7623.24"}

    checking = await served.client.get(
        "/api/v1/transactions", params={"account_id": checking_id, "limit": 500}, headers=headers
    )
    rows = checking.json()["data"]
    assert len(rows) == 25
    assert sum(Decimal(t["amount"]) for t in rows) == Decimal("4141.07")
    # Keyset pages of 7 give every row once, newest first, stable order.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"account_id": checking_id, "limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (
            await served.client.get("/api/v1/transactions", params=params, headers=headers)
        ).json()
        seen += [t["id"] for t in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [t["id"] for t in rows]
    dates = [t["date"] for t in rows]
    assert dates == sorted(dates, reverse=True)

    window = await served.client.get(
        "/api/v1/transactions",
        params={"start": "2025-04-01", "end": "2025-04-15", "account_id": checking_id},
        headers=headers,
    )
    assert all("2025-04-01" <= t["date"] <= "2025-04-15" for t in window.json()["data"])
    search = await served.client.get("/api/v1/transactions", params={"q": "atm"}, headers=headers)
    found = search.json()["data"]
    assert found
    assert all("atm" in (t["description"] + (t["merchant"] or "")).lower() for t in found)
    bad_cursor = await served.client.get(
        "/api/v1/transactions", params={"cursor": "not-a-cursor"}, headers=headers
    )
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["code"] == "invalid_cursor"


async def test_bad_file_is_refused_naming_the_place_and_writes_nothing(served: Any) -> None:
    _, headers = await served.user()
    good = (CHASE / "checking.qfx").read_bytes()
    broken = good.replace(b"<TRNAMT>", b"<TRNAMT>x", 1)
    r = await _upload(served, headers, "checking.qfx", broken)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["code"] == "invalid_statement"
    assert "line" in problem["detail"]
    assert problem["errors"]
    assert problem["errors"][0]["field"] == "file"

    hostile = b'<?xml version="1.0"?><!DOCTYPE OFX [<!ENTITY x "y">]><OFX>&x;</OFX>'
    r = await _upload(served, headers, "evil.ofx", hostile, provider="chase")
    assert r.status_code == 422, r.text

    nonsense = await _upload(served, headers, "notes.txt", b"hello, world\n")
    assert nonsense.status_code == 422
    assert (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"] == []
    assert (await served.client.get("/api/v1/connections", headers=headers)).json()["data"] == []
    txs = await served.client.get("/api/v1/transactions", headers=headers)
    assert txs.json()["data"] == []


async def test_idempotency_key_replays_and_refuses_another_body(served: Any) -> None:
    _, headers = await served.user()
    keyed = {**headers, "Idempotency-Key": "import-1"}
    first = await _upload(served, keyed, "credit_card.qfx")
    assert first.status_code == 201, first.text
    replay = await _upload(served, keyed, "credit_card.qfx")
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    other = await _upload(served, keyed, "checking.qfx")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    # A failed request releases its key: a retry runs again.
    broken = {**headers, "Idempotency-Key": "import-2"}
    bad = await _upload(served, broken, "x.qfx", b"OFXHEADER:100\n<OFX><broken")
    assert bad.status_code == 422
    ok = await _upload(served, broken, "checking.qfx")
    assert ok.status_code == 201
    assert ok.json()["transactions_added"] == 25
