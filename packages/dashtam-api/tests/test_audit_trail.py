"""The audit trail end to end: records per event, same transaction, tamper checks, append-only."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

import dashtam_api_test_support as support
from dashtam_api.cli.app import app as cli
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import audit_events
from dashtam_core.domain.user import Role
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD


@pytest.fixture
async def stack(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient]]:
    """The app (SQLite, or PostgreSQL + Redis), the CLI pointed at the same database."""
    redis_url = None
    if not database_url.startswith("sqlite"):
        redis_url = os.environ.get("DASHTAM_TEST_REDIS_URL") or None
        await upgrade(database_url)
        generate_all_keys(tmp_path / "keys")
    settings = ApiSettings(
        database_url=database_url,
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        redis_url=redis_url,
    )
    monkeypatch.setenv("DASHTAM_DATABASE_URL", database_url)
    monkeypatch.setenv("DASHTAM_SECRET_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("DASHTAM_REDIS_URL", redis_url or "")
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    async with (
        support.security_options(app, redis_url=redis_url, send_login_notices=False),
        support.asgi_client(app) as client,
    ):
        await support.register(app, "u@example.com")
        await support.register(app, "admin@example.com", roles=[Role.ADMIN])
        yield app, client


async def _token(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/v1/sessions",
        json={"email": email, "password": PASSWORD},
        headers={"User-Agent": "audit-test/1.0"},
    )
    assert response.status_code == 201
    return str(response.json()["access_token"])


async def _rows(app: DashtamApp) -> list[Any]:
    async with app.state.engine.connect() as conn:
        return list((await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all())


async def test_authentication_and_authorization_events_are_recorded(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, client = stack
    await client.post("/api/v1/sessions", json={"email": "u@example.com", "password": "wrong!"})
    await client.post("/api/v1/sessions", json={"email": "ghost@example.com", "password": "x"})
    token = await _token(client, "u@example.com")
    await client.get("/api/v1/users/me", headers={"Authorization": "Bearer forged.token.x"})
    denied = await client.get("/api/v1/admin/users", headers={"Authorization": f"Bearer {token}"})
    assert denied.status_code == 403
    taken = await client.post(
        "/api/v1/users", json={"email": "u@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409
    rows = await _rows(app)
    actions = [(r.action, r.outcome) for r in rows]
    assert actions.count(("user.register", "success")) == 2  # not a third for the 409
    assert ("session.login", "failure") in actions
    assert ("auth.token_rejected", "failure") in actions
    assert ("authz.denied", "failure") in actions
    login = next(r for r in rows if r.action == "session.login" and r.outcome == "success")
    assert login.user_agent == "audit-test/1.0"
    assert login.ip
    assert login.actor_id is not None
    assert login.occurred_at is not None
    denial = next(r for r in rows if r.action == "authz.denied")
    assert denial.object_id == "GET /api/v1/admin/users"
    assert denial.actor_id == login.actor_id
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))


async def test_audit_reads_are_audited_and_filters_work(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, client = stack
    admin = await _token(client, "admin@example.com")
    headers = {"Authorization": f"Bearer {admin}"}
    page = await client.get(
        "/api/v1/admin/audit-events",
        params={"action": "session.login", "limit": 1},
        headers=headers,
    )
    assert page.status_code == 200
    body = page.json()
    assert len(body["data"]) == 1
    assert body["data"][0]["action"] == "session.login"
    assert body["next_cursor"] is None or body["next_cursor"].isdigit()
    failures = await client.get(
        "/api/v1/admin/audit-events", params={"outcome": "failure"}, headers=headers
    )
    assert all(e["outcome"] == "failure" for e in failures.json()["data"])
    actions = [r.action for r in await _rows(app)]
    assert actions.count("audit.read") == 2


async def test_tampering_is_detected_by_cli_and_api(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, client = stack
    admin = await _token(client, "admin@example.com")
    headers = {"Authorization": f"Bearer {admin}"}
    clean = await client.get("/api/v1/admin/audit-events/verification", headers=headers)
    assert clean.json()["valid"] is True
    ok = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["valid"] is True
    rows = await _rows(app)
    victim = rows[1]
    engine = app.state.engine
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
        await conn.execute(
            audit_events.update().where(audit_events.c.id == victim.id).values(outcome="failure")
        )
    broken = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", "verify", "--json"])
    assert broken.exit_code == 1
    assert json.loads(broken.output)["first_bad_id"] == str(victim.id)
    human = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", "verify"])
    assert human.exit_code == 1
    assert str(victim.id) in human.output
    api = await client.get("/api/v1/admin/audit-events/verification", headers=headers)
    assert api.json()["valid"] is False
    assert api.json()["first_bad_id"] == str(victim.id)


async def test_audit_events_are_append_only_in_the_database(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, _ = stack
    engine = app.state.engine
    statements = ["UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_events")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
    assert len(await _rows(app)) == 2
