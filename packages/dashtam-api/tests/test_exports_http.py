"""Streamed exports over HTTP: CSV, JSON and OFX (checked with ofxtools as an oracle), filters;
the JSON and CSV byte for byte against the list route's objects, and ``dashtam export
transactions`` writing exactly the same bytes.

Also the write-side conventions on the same data: ``Idempotency-Key`` on ``POST /connections``
and the per-connection sync throttle (429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest_asyncio
from ofxtools.Parser import OFXTree
from sqlalchemy import insert

import dashtam_api_test_support as support
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.application.exports import CSV_COLUMNS
from dashtam_core.domain.ids import uuid7
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

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


AWKWARD = (
    "Rent, March",
    'The "best" deli',
    "two\nlines",
    "crlf\r\nend",
    "tab\there <&> \u00e9\u20ac",
    "ctrl \x01 char\\",
)


async def _add_awkward_rows(database_url: str, account_id: str) -> None:
    """Transactions whose text needs CSV quoting or JSON escaping, one with a security leg."""
    now = datetime.now(UTC)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(transactions),
                [
                    {
                        "id": uuid7(),
                        "account_id": UUID(account_id),
                        "provider_transaction_id": f'awk-{i}-"{i}"',
                        "dedupe_key": f"awkward-{i}",
                        "date": date(2025, 4, 1 + i),
                        "posted_at": now.replace(microsecond=i),
                        "amount": Decimal("1E+2") if i == 0 else Decimal(f"-{i}.500"),
                        "currency": "USD",
                        "description": text,
                        "merchant": "A, B & Co" if i % 2 else None,
                        "type": "other",
                        "subtype": "purchase",
                        "status": "posted",
                        "security_symbol": "AAPL" if i == 1 else None,
                        "security_quantity": Decimal("0.50") if i == 1 else None,
                        "security_price": Decimal("0E-8"),
                        "content_hash": "0" * 64,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i, text in enumerate(AWKWARD)
                ],
            )
    finally:
        await engine.dispose()


def _csv_of(objects: list[dict[str, Any]]) -> bytes:
    """The documented CSV of API transaction objects, written by the csv module."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for t in objects:
        leg = t["security"] or {}
        writer.writerow(
            [
                t["id"],
                t["account_id"],
                t["date"],
                t["posted_at"] or "",
                t["amount"],
                t["currency"],
                t["description"],
                t["merchant"] or "",
                t["type"],
                t["subtype"],
                t["status"],
                t["provider_transaction_id"],
                t["pending_transaction_id"] or "",
                leg.get("symbol") or "",
                leg.get("quantity") or "",
                leg.get("price") or "",
            ]
        )
    return buffer.getvalue().encode("utf-8")


async def _cli(served: Any, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``dashtam export transactions ARGS`` in a subprocess on the served database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
    env.update(
        DASHTAM_DATABASE_URL=served.database_url,
        DASHTAM_SECRET_DIR=str(tmp_path / "keys"),
        DASHTAM_MAIL_OUTBOX=str(tmp_path / "outbox"),
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "dashtam_api.cli.app", "export", "transactions", *args],
        capture_output=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _masked(ofx: bytes) -> bytes:
    """An OFX document without its clock readings (``now`` differs between two exports)."""
    return re.sub(rb"\d{14}\.000\[0:GMT\]", b"T", ofx)


async def test_exports_are_the_api_objects_byte_for_byte_and_the_cli_writes_the_same(
    served: Any, tmp_path: Path
) -> None:
    user, headers = await served.user()
    statement = (support.FIXTURES / "chase" / "checking.qfx").read_bytes()
    up = await served.client.post(
        "/api/v1/imports", files={"file": ("checking.qfx", statement)}, headers=headers
    )
    assert up.status_code == 201, up.text
    accounts = (await served.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    await _add_awkward_rows(served.database_url, accounts[0]["id"])
    listed = (await served.client.get("/api/v1/transactions?limit=500", headers=headers)).json()
    assert listed["next_cursor"] is None
    objects = listed["data"]
    assert len(objects) == 25 + len(AWKWARD)

    exported = {}
    for fmt in ("json", "csv", "ofx"):
        r = await served.client.get(f"/api/v1/exports/transactions?format={fmt}", headers=headers)
        assert r.status_code == 200
        exported[fmt] = r.content
    # The list route's objects (the API's wire shape), byte for byte, in the same order.
    assert exported["json"] == orjson.dumps({"data": objects})
    assert exported["csv"] == _csv_of(objects)
    assert exported["csv"].count(b'"') > 0  # some cells needed quoting

    out = tmp_path / "tx.csv"
    out.write_bytes(b"old content")
    done = await _cli(served, tmp_path, "--user", user.email, "--format", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == exported["csv"]
    assert f"wrote {len(exported['csv'])} bytes".encode() in done.stderr
    assert [n for n in _names(tmp_path) if "tx.csv" in n] == ["tx.csv"]  # no temporary left
    done = await _cli(served, tmp_path, "--user", user.email, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == exported["json"]
    done = await _cli(served, tmp_path, "--user", user.email, "--format", "ofx")
    assert _masked(done.stdout) == _masked(exported["ofx"])
    one = accounts[0]["id"]
    done = await _cli(served, tmp_path, "--user", user.email, "--format", "json", "--account", one)
    assert json.loads(done.stdout) == {"data": [t for t in objects if t["account_id"] == one]}

    missing = tmp_path / "nobody.csv"
    done = await _cli(served, tmp_path, "--user", "nobody@example.com", "-o", str(missing))
    assert done.returncode == 1
    assert b"Traceback" not in done.stderr
    assert "nobody.csv" not in _names(tmp_path)


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
