"""Streamed exports over HTTP: CSV, JSON and OFX (checked with ofxtools as an oracle), filters.

Also the write-side conventions on the same data: ``Idempotency-Key`` on ``POST /connections``
and the per-connection sync throttle (429 with ``Retry-After``).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest_asyncio
from ofxtools.Parser import OFXTree

from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY


def _support() -> ModuleType:
    name = "dashtam_api_tests_test_data_support"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("test_data_support.py")
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


support = _support()
KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}


@pytest_asyncio.fixture
async def served(migrated_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with support.serve(migrated_url, tmp_path, rate_limits="sync_connection=2/hour") as s:
        yield s


async def _load(served: Any, headers: dict[str, str]) -> dict[str, Any]:
    keyed = {**headers, "Idempotency-Key": "connect-alpaca"}
    body = {"provider": "alpaca", "credentials": KEYS}
    r = await served.client.post("/api/v1/connections", json=body, headers=keyed)
    assert r.status_code == 201, r.text
    replay = await served.client.post("/api/v1/connections", json=body, headers=keyed)
    assert replay.status_code == 201
    assert replay.json() == r.json()
    other = await served.client.post(
        "/api/v1/connections", json={**body, "alias": "x"}, headers=keyed
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    await served.wait_sync(headers, r.json()["sync_id"])
    listed = (await served.client.get("/api/v1/connections", headers=headers)).json()["data"]
    assert len(listed) == 1  # the replay created nothing
    for name in ("checking.qfx", "credit_card.qfx"):
        up = await served.client.post(
            "/api/v1/imports",
            files={"file": (name, (support.FIXTURES / "chase" / name).read_bytes())},
            headers=headers,
        )
        assert up.status_code == 201, up.text
    created: dict[str, Any] = r.json()
    return created


async def test_exports_in_three_formats(served: Any) -> None:
    _, headers = await served.user()
    await _load(served, headers)
    api = (await served.client.get("/api/v1/transactions?limit=500", headers=headers)).json()
    assert len(api["data"]) == 11 + 25 + 15

    as_json = await served.client.get("/api/v1/exports/transactions?format=json", headers=headers)
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/json")
    assert "attachment" in as_json.headers["content-disposition"]
    assert as_json.json()["data"] == api["data"]

    as_csv = await served.client.get(
        "/api/v1/exports/transactions",
        params={"format": "csv", "start": "2025-04-01", "end": "2025-04-15"},
        headers=headers,
    )
    lines = as_csv.text.splitlines()
    assert lines[0].startswith("id,account_id,date,posted_at,amount,currency")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    expected = [t for t in api["data"] if "2025-04-01" <= t["date"] <= "2025-04-15"]
    assert [r["id"] for r in rows] == [t["id"] for t in expected]
    assert [r["amount"] for r in rows] == [t["amount"] for t in expected]

    as_ofx = await served.client.get("/api/v1/exports/transactions?format=ofx", headers=headers)
    assert as_ofx.status_code == 200
    tree = OFXTree()
    tree.parse(io.BytesIO(as_ofx.content))
    ofx = tree.convert()
    statements = {type(s).__name__: s for s in ofx.statements}
    assert set(statements) == {"STMTRS", "CCSTMTRS", "INVSTMTRS"}
    bank = statements["STMTRS"]
    assert len(bank.banktranlist) == 25
    assert sum(t.trnamt for t in bank.banktranlist) == Decimal("4141.07")
    assert bank.ledgerbal.balamt == Decimal("7623.24")
    card = statements["CCSTMTRS"]
    assert len(card.banktranlist) == 15
    assert card.ledgerbal.balamt == Decimal("-136.32")
    invest = statements["INVSTMTRS"]
    assert sum(t.stmttrn.trnamt for t in invest.invtranlist) == Decimal("2610.24")

    accounts = (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    card_id = next(a["id"] for a in accounts if a["type"] == "credit_card")
    one = await served.client.get(
        "/api/v1/exports/transactions",
        params={"format": "json", "account_id": card_id},
        headers=headers,
    )
    assert {t["account_id"] for t in one.json()["data"]} == {card_id}
    assert len(one.json()["data"]) == 15


async def test_sync_starts_are_throttled_per_connection(served: Any) -> None:
    _, headers = await served.user()
    r = await served.client.post(
        "/api/v1/connections", json={"provider": "alpaca", "credentials": KEYS}, headers=headers
    )
    conn_id = r.json()["connection"]["id"]
    await served.wait_sync(headers, r.json()["sync_id"])
    path = f"/api/v1/connections/{conn_id}/syncs"
    for _ in range(2):
        ok = await served.client.post(path, headers=headers)
        assert ok.status_code == 202, ok.text
        assert "ratelimit" in {k.lower() for k in ok.headers}
        await served.wait_sync(headers, ok.json()["id"])
    refused = await served.client.post(path, headers=headers)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0
