"""Connection, sync and import actions through HTTP are audited in the transaction of the change.

The real application runs with uvicorn in sandbox mode (Alpaca keys, the Schwab OAuth simulator,
Chase statement files) on SQLite and PostgreSQL. Each action leaves exactly one record with its
action, outcome, actor, object, IP and user agent; a refused action leaves one failure record
and no data; a failure injected after the audit record was written, in the same transaction,
leaves neither; concurrent actions keep the hash chain valid.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

import dashtam_api_test_support as support
from dashtam_core.adapters.security.keys import load_hmac_key
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import audit_events, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import imports
from dashtam_core.application.audit import verify_audit_trail
from dashtam_core.application.container import Container
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

CHASE = Path(__file__).resolve().parents[2] / "dashtam-core/tests/fixtures/chase"
KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
BAD_KEYS = {"api_key_id": "PKREFUSED0000", "secret_key": "refused-secret"}
AGENT = "audit-data-test/1.0"
IP = "127.0.0.1"


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
        s.client.headers["User-Agent"] = AGENT
        s.key_dir = tmp_path / "keys"
        yield s


class Trail:
    """The audit rows written since the last :meth:`new` call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen = 0

    async def all(self) -> list[Any]:
        engine = create_engine(self.url)
        try:
            async with engine.connect() as conn:
                query = select(audit_events).order_by(audit_events.c.seq)
                return list((await conn.execute(query)).all())
        finally:
            await engine.dispose()

    async def new(self) -> list[Any]:
        rows = await self.all()
        fresh, self.seen = rows[self.seen :], len(rows)
        return fresh


async def _count(url: str, table: Any, **where: object) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            stmt = select(func.count()).select_from(table)
            for column, value in where.items():
                stmt = stmt.where(table.c[column] == value)
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await engine.dispose()


def _brief(rows: list[Any]) -> list[tuple[str, str, str | None, str | None]]:
    """``(action, outcome, actor, object_id)`` of each row."""
    return [
        (r.action, r.outcome, str(r.actor_id) if r.actor_id else None, r.object_id) for r in rows
    ]


def _from_client(rows: list[Any]) -> None:
    for row in rows:
        assert (row.ip, row.user_agent) == (IP, AGENT), row


async def _verified(served: Any) -> int:
    engine = create_engine(served.database_url)
    try:
        result = await verify_audit_trail(engine, load_hmac_key("audit_hmac", served.key_dir))
    finally:
        await engine.dispose()
    assert result.valid, result
    rows = await Trail(served.database_url).all()
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    return result.checked


async def _upload(
    served: Any, headers: dict[str, str], name: str, content: bytes
) -> httpx.Response:
    return await served.client.post(
        "/api/v1/imports",
        files={"file": (name, content, "application/octet-stream")},
        headers=headers,
    )


async def _approve(served: Any, authorization_url: str) -> httpx.URL:
    """The browser at Schwab: the sandbox approves and redirects to the callback."""
    r = await served.client.get(authorization_url, follow_redirects=False)
    assert r.status_code == 302, r.text
    return httpx.URL(r.headers["location"])


async def test_each_action_leaves_one_record_with_its_origin(served: Any) -> None:
    alice, headers = await served.user()
    bob, bob_headers = await served.user()
    a, b = str(alice.id), str(bob.id)
    trail = Trail(served.database_url)
    await trail.new()  # the logins

    # API keys refused by the provider: one failure record, no connection, no secret recorded
    r = await served.client.post(
        "/api/v1/connections",
        json={"provider": "alpaca", "credentials": BAD_KEYS},
        headers=headers,
    )
    assert r.status_code == 422, r.text
    rows = await trail.new()
    assert _brief(rows) == [("connection.create", "failure", a, None)]
    assert rows[0].details == {
        "provider": "alpaca",
        "auth_type": "api_key",
        "reason": "invalid_credentials",
    }
    assert "PKREFUSED" not in str(rows[0].details)
    assert await _count(served.database_url, provider_connections, user_id=alice.id) == 0
    _from_client(rows)

    # API keys: connection.create, then the initial sync's start and finish (by the user)
    r = await served.client.post(
        "/api/v1/connections",
        json={"provider": "alpaca", "credentials": KEYS, "alias": "paper"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    alpaca, sync_id = r.json()["connection"]["id"], r.json()["sync_id"]
    assert (await served.wait_sync(headers, sync_id))["status"] == "succeeded"
    rows = await trail.new()
    assert _brief(rows) == [
        ("connection.create", "success", a, alpaca),
        ("sync.start", "success", a, alpaca),
        ("sync.finish", "success", a, alpaca),
    ]
    assert rows[0].object_type == "connection"
    assert rows[0].details == {"provider": "alpaca", "auth_type": "api_key", "status": "active"}
    assert rows[1].details["sync_id"] == rows[2].details["sync_id"] == sync_id
    assert rows[2].details["status"] == "succeeded"
    _from_client(rows)

    # rename: one record; the same alias again changes nothing and records nothing
    for _ in range(2):
        r = await served.client.patch(
            f"/api/v1/connections/{alpaca}", json={"alias": "Paper trading"}, headers=headers
        )
        assert r.status_code == 200, r.text
    rows = await trail.new()
    assert _brief(rows) == [("connection.rename", "success", a, alpaca)]
    assert rows[0].details == {"alias": "Paper trading"}
    # someone else's connection: 404 and a failure record by that user
    r = await served.client.patch(
        f"/api/v1/connections/{alpaca}", json={"alias": "mine"}, headers=bob_headers
    )
    assert r.status_code == 404
    rows = await trail.new()
    assert _brief(rows) == [("connection.rename", "failure", b, alpaca)]
    assert rows[0].details == {"reason": "not_found"}

    # sync on demand
    r = await served.client.post(f"/api/v1/connections/{alpaca}/syncs", headers=headers)
    assert r.status_code == 202, r.text
    await served.wait_sync(headers, r.json()["id"])
    rows = await trail.new()
    assert _brief(rows) == [
        ("sync.start", "success", a, alpaca),
        ("sync.finish", "success", a, alpaca),
    ]
    _from_client(rows)

    # OAuth: the pending connection, the grant (from the browser, by the state's user) and
    # the initial sync
    r = await served.client.post(
        "/api/v1/connections", json={"provider": "schwab"}, headers=headers
    )
    assert r.status_code == 201, r.text
    schwab = r.json()["connection"]["id"]
    callback = await _approve(served, r.json()["authorization_url"])
    page = await served.client.get(callback)
    assert 'data-result="connected"' in page.text
    await served.runtime.wait_idle()
    rows = await trail.new()
    assert _brief(rows) == [
        ("connection.create", "success", a, schwab),
        ("connection.authorize", "success", a, schwab),
        ("sync.start", "success", a, schwab),
        ("sync.finish", "success", a, schwab),
    ]
    assert rows[0].details == {"provider": "schwab", "auth_type": "oauth2", "status": "pending"}
    _from_client(rows)
    # the used state again: a failure record with no actor (nobody is identified)
    page = await served.client.get(callback)
    assert 'data-result="connected"' not in page.text
    rows = await trail.new()
    assert _brief(rows) == [("connection.authorize", "failure", None, None)]
    assert rows[0].details == {"reason": "invalid_oauth_state"}
    _from_client(rows)

    # repair in place: connection.reauthorize, then the new grant
    r = await served.client.post(f"/api/v1/connections/{schwab}/reauthorizations", headers=headers)
    assert r.status_code == 201, r.text
    page = await served.client.get(await _approve(served, r.json()["authorization_url"]))
    assert 'data-result="connected"' in page.text
    await served.runtime.wait_idle()
    rows = await trail.new()
    assert _brief(rows)[:2] == [
        ("connection.reauthorize", "success", a, schwab),
        ("connection.authorize", "success", a, schwab),
    ]
    assert {x[0] for x in _brief(rows)[2:]} <= {"sync.start", "sync.finish"}

    # statement import; a malformed file is a failure record and stores nothing
    good = (CHASE / "checking.qfx").read_bytes()
    r = await _upload(served, headers, "checking.qfx", good)
    assert r.status_code == 201, r.text
    made = r.json()
    rows = await trail.new()
    assert _brief(rows) == [("import.create", "success", a, made["id"])]
    assert rows[0].object_type == "import"
    assert rows[0].details["connection_id"] == made["connection_id"]
    assert rows[0].details["provider"] == "chase"
    assert rows[0].details["transactions_added"] == str(made["transactions_added"])
    _from_client(rows)
    broken = good.replace(b"<TRNAMT>", b"<TRNAMT>x", 1)
    r = await _upload(served, headers, "broken.qfx", broken)
    assert r.status_code == 422
    rows = await trail.new()
    assert _brief(rows) == [("import.create", "failure", a, None)]
    assert rows[0].details["reason"] == "invalid_statement"
    assert rows[0].details["filename"] == "broken.qfx"
    assert await _count(served.database_url, imports, user_id=alice.id) == 1
    # the same file again adds nothing and records nothing; another user's import is theirs
    assert (await _upload(served, headers, "checking.qfx", good)).status_code == 201
    assert await trail.new() == []
    r = await _upload(served, bob_headers, "checking.qfx", good)
    assert r.status_code == 201
    assert _brief(await trail.new()) == [("import.create", "success", b, r.json()["id"])]

    # disconnect: one record; again: nothing changes, nothing recorded
    for _ in range(2):
        r = await served.client.delete(f"/api/v1/connections/{schwab}", headers=headers)
        assert r.status_code == 200, r.text
    rows = await trail.new()
    assert _brief(rows) == [("connection.disconnect", "success", a, schwab)]
    # a disconnected connection cannot be repaired or synced: failure records
    r = await served.client.post(f"/api/v1/connections/{schwab}/reauthorizations", headers=headers)
    assert r.status_code == 422
    r = await served.client.post(f"/api/v1/connections/{schwab}/syncs", headers=headers)
    assert r.status_code == 422
    rows = await trail.new()
    assert _brief(rows) == [
        ("connection.reauthorize", "failure", a, schwab),
        ("sync.start", "failure", a, schwab),
    ]
    assert {r.details["reason"] for r in rows} == {"validation_error"}

    assert await _verified(served) == trail.seen


async def test_a_failure_after_the_audit_write_leaves_neither(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, headers = await served.user()
    r = await served.client.post(
        "/api/v1/connections",
        json={"provider": "alpaca", "credentials": KEYS, "alias": "before"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    alpaca = r.json()["connection"]["id"]
    await served.wait_sync(headers, r.json()["sync_id"])
    trail = Trail(served.database_url)
    await trail.new()

    real = Container.audit
    written: list[str] = []

    async def audit_then_fail(
        self: Container, conn: Any, origin: Any, action: str, **kw: Any
    ) -> None:
        await real(self, conn, origin, action, **kw)  # the record is in the transaction ...
        written.append(action)
        raise RuntimeError("injected failure after the audit write")  # ... which then fails

    monkeypatch.setattr(Container, "audit", audit_then_fail)
    connections_before = await _count(served.database_url, provider_connections)
    actions = [
        served.client.post(
            "/api/v1/connections", json={"provider": "alpaca", "credentials": KEYS}, headers=headers
        ),
        served.client.patch(
            f"/api/v1/connections/{alpaca}", json={"alias": "after"}, headers=headers
        ),
        served.client.delete(f"/api/v1/connections/{alpaca}", headers=headers),
        _upload(served, headers, "checking.qfx", (CHASE / "checking.qfx").read_bytes()),
        served.client.post("/api/v1/connections", json={"provider": "schwab"}, headers=headers),
    ]
    for action in actions:
        assert (await action).status_code == 500
    assert written == [
        "connection.create",
        "connection.rename",
        "connection.disconnect",
        "import.create",
        "connection.create",
    ]
    monkeypatch.setattr(Container, "audit", real)
    # neither the changes nor their records
    assert await trail.new() == []
    assert await _count(served.database_url, provider_connections) == connections_before
    assert await _count(served.database_url, imports, user_id=alice.id) == 0
    conn = (await served.client.get(f"/api/v1/connections/{alpaca}", headers=headers)).json()
    assert (conn["alias"], conn["status"]) == ("before", "active")
    await _verified(served)


async def test_concurrent_actions_keep_the_chain_valid(served: Any) -> None:
    users = [await served.user() for _ in range(2)]
    made = []
    for _, headers in users:
        r = await served.client.post(
            "/api/v1/connections", json={"provider": "alpaca", "credentials": KEYS}, headers=headers
        )
        assert r.status_code == 201, r.text
        made.append((r.json()["connection"]["id"], headers))
        await served.wait_sync(headers, r.json()["sync_id"])
    trail = Trail(served.database_url)
    await trail.new()
    good = (CHASE / "checking.qfx").read_bytes()
    calls = [
        served.client.patch(f"/api/v1/connections/{cid}", json={"alias": f"n{i}"}, headers=h)
        for i in range(6)
        for cid, h in made
    ]
    calls += [_upload(served, h, "checking.qfx", good) for _, h in made]
    answers = await asyncio.gather(*calls)
    assert sorted(a.status_code for a in answers) == [200] * 12 + [201] * 2
    rows = await trail.new()
    assert sorted(r.action for r in rows) == ["connection.rename"] * 12 + ["import.create"] * 2
    assert all(r.outcome == "success" for r in rows)
    await _verified(served)
