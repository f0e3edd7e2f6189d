"""Administration through HTTP: locks, roles, global rotation, admin MFA, policy store down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import dashtam_api_test_support as support
from dashtam_api.cli.app import app as cli
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.domain.user import Role
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD
Factory = Callable[..., Awaitable[tuple[DashtamApp, httpx.AsyncClient]]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    """``await make(**settings)`` → (app, client); all apps share one SQLite database."""
    contexts: list[Any] = []

    async def factory(**overrides: Any) -> tuple[DashtamApp, httpx.AsyncClient]:
        settings = ApiSettings(
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
            secret_dir=tmp_path / "keys",
            mail_outbox=tmp_path / "outbox",
            rate_limits="login_email=1000/min,login_ip=1000/min",
            **overrides,
        )
        app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
        app.state.security_options = {
            "hasher": support.fast_hasher(),
            "send_login_notices": False,
        }
        context = support.asgi_client(app)
        client = await context.__aenter__()
        contexts.append(context)
        return app, client

    yield factory
    for context in reversed(contexts):
        await context.__aexit__(None, None, None)


async def _seed(app: DashtamApp) -> None:
    await support.register(app, "u@example.com")
    await support.register(app, "root@example.com", roles=[Role.ADMIN])


async def _login(client: httpx.AsyncClient, email: str, **extra: str) -> httpx.Response:
    return await client.post(
        "/api/v1/sessions", json={"email": email, "password": PASSWORD, **extra}
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _user_id(client: httpx.AsyncClient, admin: str, email: str) -> str:
    users = (await client.get("/api/v1/admin/users", headers=_auth(admin))).json()["data"]
    return str(next(u["id"] for u in users if u["email"] == email))


async def test_lock_and_unlock(make: Factory) -> None:
    app, client = await make()
    await _seed(app)
    admin = (await _login(client, "root@example.com")).json()["access_token"]
    user = (await _login(client, "u@example.com")).json()["access_token"]
    uid = await _user_id(client, admin, "u@example.com")
    locked = await client.post(f"/api/v1/admin/users/{uid}/lock", headers=_auth(admin))
    assert locked.status_code == 200
    assert locked.json()["locked"] is True
    assert (await client.get("/api/v1/users/me", headers=_auth(user))).status_code == 401
    refused = await _login(client, "u@example.com")
    assert (refused.status_code, refused.json()["code"]) == (403, "account_locked")
    unlocked = await client.post(f"/api/v1/admin/users/{uid}/unlock", headers=_auth(admin))
    assert unlocked.json()["locked"] is False
    assert (await _login(client, "u@example.com")).status_code == 201
    missing = await client.post(
        "/api/v1/admin/users/01890000-0000-7000-8000-000000000000/lock", headers=_auth(admin)
    )
    assert missing.status_code == 404


async def test_roles_validation_and_revocation(make: Factory) -> None:
    app, client = await make()
    await _seed(app)
    admin = (await _login(client, "root@example.com")).json()["access_token"]
    uid = await _user_id(client, admin, "u@example.com")
    for bad in ([], ["superuser"]):
        response = await client.put(
            f"/api/v1/admin/users/{uid}/roles", json={"roles": bad}, headers=_auth(admin)
        )
        assert response.status_code == 422
    user = (await _login(client, "u@example.com")).json()["access_token"]
    readonly = await client.put(
        f"/api/v1/admin/users/{uid}/roles", json={"roles": ["readonly"]}, headers=_auth(admin)
    )
    assert readonly.json()["roles"] == ["readonly"]
    assert (await client.get("/api/v1/users/me", headers=_auth(user))).status_code == 401
    fresh = (await _login(client, "u@example.com")).json()["access_token"]
    me = await client.get("/api/v1/users/me", headers=_auth(fresh))
    assert me.json()["roles"] == ["readonly"]


async def test_cli_roles_command(
    make: Factory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    app, client = await make()
    await _seed(app)
    monkeypatch.setenv("DASHTAM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("DASHTAM_SECRET_DIR", str(tmp_path / "keys"))
    runner = CliRunner()
    done = await asyncio.to_thread(
        runner.invoke, cli, ["users", "roles", "u@example.com", "--set", "admin,user"]
    )
    assert done.exit_code == 0, done.output
    assert "admin,user" in done.output
    bad = await asyncio.to_thread(
        runner.invoke, cli, ["users", "roles", "nobody@example.com", "--set", "user"]
    )
    assert bad.exit_code == 1
    token = (await _login(client, "u@example.com")).json()["access_token"]
    assert (await client.get("/api/v1/admin/users", headers=_auth(token))).status_code == 200


async def test_global_rotation_invalidates_every_token(make: Factory) -> None:
    app, client = await make()
    await _seed(app)
    admin_pair = (await _login(client, "root@example.com")).json()
    user_pair = (await _login(client, "u@example.com")).json()
    rotated = await client.post(
        "/api/v1/admin/security/rotations",
        json={"reason": "key leak drill"},
        headers=_auth(admin_pair["access_token"]),
    )
    assert rotated.status_code == 201
    assert rotated.json()["sessions_revoked"] == 2
    for pair in (admin_pair, user_pair):
        assert (
            await client.get("/api/v1/users/me", headers=_auth(pair["access_token"]))
        ).status_code == 401
        again = await client.post("/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
        assert again.status_code == 401
    after = (await _login(client, "u@example.com")).json()["access_token"]
    assert (await client.get("/api/v1/users/me", headers=_auth(after))).status_code == 200


async def test_admin_mfa_required(make: Factory) -> None:
    app, client = await make(require_admin_mfa=True)
    await _seed(app)
    token = (await _login(client, "root@example.com")).json()["access_token"]
    assert (await client.get("/api/v1/admin/users", headers=_auth(token))).status_code == 403
    started = await client.post("/api/v1/users/me/mfa", headers=_auth(token))
    assert started.status_code == 201
    secret = started.json()["secret"]
    assert started.json()["otpauth_uri"].startswith("otpauth://totp/")
    wrong = await client.post(
        "/api/v1/users/me/mfa/confirmation", json={"code": "000000"}, headers=_auth(token)
    )
    assert wrong.status_code == 422
    totp = pyotp.TOTP(secret)
    confirmed = await client.post(
        "/api/v1/users/me/mfa/confirmation", json={"code": totp.now()}, headers=_auth(token)
    )
    assert confirmed.json() == {"mfa_enabled": True}
    without = await _login(client, "root@example.com")
    assert (without.status_code, without.json()["code"]) == (401, "mfa_required")
    bad = await _login(client, "root@example.com", totp_code="123456")
    assert bad.status_code == 401
    code = totp.at(int(__import__("time").time()) + 30)  # next step: the current one was used
    good = await _login(client, "root@example.com", totp_code=code)
    assert good.status_code == 201, good.text
    admin = good.json()["access_token"]
    assert (await client.get("/api/v1/admin/users", headers=_auth(admin))).status_code == 200
    replay = await _login(client, "root@example.com", totp_code=code)
    assert replay.status_code == 401


async def test_policy_store_down_fails_closed(make: Factory) -> None:
    app, client = await make()
    await _seed(app)
    admin = (await _login(client, "root@example.com")).json()["access_token"]
    assert (await client.get("/api/v1/admin/users", headers=_auth(admin))).status_code == 200
    async with app.state.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE casbin_rule RENAME TO casbin_rule_gone"))
    second, client2 = await make()
    down = await client2.get("/api/v1/admin/users", headers=_auth(admin))
    assert (down.status_code, down.json()["code"]) == (503, "not_ready")
    me = await client2.get("/api/v1/users/me", headers=_auth(admin))
    assert me.status_code == 503
    async with app.state.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE casbin_rule_gone RENAME TO casbin_rule"))
    await asyncio.sleep(1.1)  # the authorizer retries the store after its retry interval
    assert (await client2.get("/api/v1/admin/users", headers=_auth(admin))).status_code == 200
    assert second is not app


async def test_corrupt_policy_rows_fail_closed(make: Factory) -> None:
    app, client = await make()
    await _seed(app)
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO casbin_rule (ptype, v0, v1, v2) VALUES ('x', 'a', 'b', 'c')")
        )
    token = (await _login(client, "u@example.com")).json()["access_token"]
    assert (await client.get("/api/v1/users/me", headers=_auth(token))).status_code == 503


async def test_jobs_overview(make: Factory) -> None:
    from datetime import UTC, datetime

    from dashtam_core.adapters.sqlalchemy.tables import provider_connections, users
    from dashtam_core.adapters.sqlalchemy.tables_data import sync_runs
    from dashtam_core.domain.ids import uuid7

    app, client = await make()
    await _seed(app)
    now = datetime.now(UTC)
    connection_id = uuid7()
    async with app.state.engine.begin() as conn:
        owner = (await conn.execute(users.select().where(users.c.email == "u@example.com"))).one()
        await conn.execute(
            provider_connections.insert().values(
                id=connection_id,
                user_id=owner.id,
                provider="alpaca",
                status="error",
                created_at=now,
            )
        )
        for status, error in (("failed", "provider_unavailable: 503"), ("succeeded", None)):
            await conn.execute(
                sync_runs.insert().values(
                    id=uuid7(),
                    connection_id=connection_id,
                    status=status,
                    created_at=now,
                    started_at=now,
                    finished_at=now,
                    error=error,
                )
            )
    admin = (await _login(client, "root@example.com")).json()["access_token"]
    user = (await _login(client, "u@example.com")).json()["access_token"]
    assert (await client.get("/api/v1/admin/jobs", headers=_auth(user))).status_code == 403
    body = (await client.get("/api/v1/admin/jobs", headers=_auth(admin))).json()
    assert body["queue"] == {"backend": "in-process", "depth": 0}
    assert body["syncs"] == {"queued": 0, "running": 0, "succeeded": 1, "failed": 1}
    assert [f["error"] for f in body["recent_failures"]] == ["provider_unavailable: 503"]
    assert body["recent_failures"][0]["connection_id"] == str(connection_id)
