"""The fake provider's sandbox: a dependency-free ASGI app with deterministic data.

Routes (all need header ``X-Api-Key: <FAKE_API_KEY>``, else 401)::

    GET /v1/me                                   -> {"user": "fake"}
    GET /v1/accounts                             -> {"accounts": [...]}
    GET /v1/accounts/{id}/positions              -> {"positions": [...]}
    GET /v1/accounts/{id}/transactions?start=YYYY-MM-DD&end=YYYY-MM-DD&page_token=N
        -> {"transactions": [...], "next_page_token": N|null}

Amounts travel as JSON strings (exact decimals). Data: two accounts, 12 transactions each
between 2024-01-05 and 2024-03-27, two positions in the brokerage account.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import date, timedelta
from typing import Any
from urllib.parse import parse_qs

FAKE_API_KEY = "fake-sandbox-key-0001"
PAGE_SIZE = 5
FIRST_DAY = date(2024, 1, 5)
LAST_DAY = date(2024, 3, 27)

_ACCOUNTS: list[dict[str, Any]] = [
    {
        "id": "fake-chk-1",
        "name": "Fake Checking",
        "kind": "checking",
        "currency": "USD",
        "balance": "1520.25",
        "available": "1500.00",
        "number": "000123451234",
    },
    {
        "id": "fake-brk-2",
        "name": "Fake Brokerage",
        "kind": "brokerage",
        "currency": "USD",
        "balance": "10234.50",
        "available": "734.50",
        "number": "000987659876",
    },
]

_POSITIONS: dict[str, list[dict[str, Any]]] = {
    "fake-chk-1": [],
    "fake-brk-2": [
        {
            "instrument": "US0378331005",
            "symbol": "AAPL",
            "kind": "equity",
            "quantity": "25",
            "cost_total": "3750.00",
            "price": "190.00",
        },
        {
            "instrument": "US9229087690",
            "symbol": "VTI",
            "kind": "etf",
            "quantity": "20.5",
            "cost_total": "4510.00",
            "price": "245.00",
        },
    ],
}

_KINDS = [("deposit", "100.00"), ("purchase", "-12.34"), ("fee", "-1.50"), ("refund", "4.20")]


def _transactions(account_id: str) -> list[dict[str, Any]]:
    rows = []
    for n in range(12):
        kind, amount = _KINDS[n % len(_KINDS)]
        rows.append(
            {
                "id": f"{account_id}-t{n:02d}",
                "date": (FIRST_DAY + timedelta(days=7 * n)).isoformat(),
                "amount": amount,
                "currency": "USD",
                "kind": kind,
                "description": f"{kind.title()} #{n}",
            }
        )
    return rows


Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _page(rows: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    start = date.fromisoformat(query.get("start", [FIRST_DAY.isoformat()])[0])
    end = date.fromisoformat(query.get("end", [LAST_DAY.isoformat()])[0])
    selected = [r for r in rows if start <= date.fromisoformat(r["date"]) <= end]
    offset = int(query.get("page_token", ["0"])[0])
    page = selected[offset : offset + PAGE_SIZE]
    following = offset + PAGE_SIZE
    return {
        "transactions": page,
        "next_page_token": str(following) if following < len(selected) else None,
    }


def create_fake_sandbox(api_key: str = FAKE_API_KEY) -> Callable[..., Awaitable[None]]:
    """The ASGI app (serve with ``httpx.ASGITransport`` or uvicorn)."""

    async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if headers.get("x-api-key") != api_key:
            await _respond(send, 401, {"error": "unauthorized"})
            return
        if scope["method"] != "GET":
            await _respond(send, 405, {"error": "method not allowed"})
            return
        path: str = scope["path"]
        query = parse_qs(scope.get("query_string", b"").decode())
        parts = path.strip("/").split("/")
        known = {a["id"] for a in _ACCOUNTS}
        try:
            if parts == ["v1", "me"]:
                await _respond(send, 200, {"user": "fake"})
            elif parts == ["v1", "accounts"]:
                await _respond(send, 200, {"accounts": _ACCOUNTS})
            elif len(parts) == 4 and parts[:2] == ["v1", "accounts"] and parts[2] in known:
                if parts[3] == "positions":
                    await _respond(send, 200, {"positions": _POSITIONS[parts[2]]})
                elif parts[3] == "transactions":
                    await _respond(send, 200, _page(_transactions(parts[2]), query))
                else:
                    await _respond(send, 404, {"error": "not found"})
            else:
                await _respond(send, 404, {"error": "not found"})
        except ValueError:
            await _respond(send, 400, {"error": "bad query"})

    return app


__all__ = ["FAKE_API_KEY", "FIRST_DAY", "LAST_DAY", "PAGE_SIZE", "create_fake_sandbox"]
