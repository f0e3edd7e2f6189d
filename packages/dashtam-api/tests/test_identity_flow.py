"""Issue 5 acceptance, through HTTP, on SQLite and on PostgreSQL + Redis.

Register → verify from the outbox → login → refresh → reuse the old refresh token (family
revoked) → log in again → list and revoke sessions → change password (other sessions die) →
reset password by email; an admin created with ``dashtam users create --admin`` manages roles and
reads the audit trail; a user cannot; hammering login gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import dashtam_api_test_support as support
from dashtam_api.cli.app import app as cli
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.mail.outbox import read_outbox
from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD
NEW_PASSWORD = "violet tractor sings at midnight 7"
RESET_PASSWORD = "granite pelican juggles thunder 9"


def _redis_url_or_none(database_url: str) -> str | None:
    if database_url.startswith("sqlite"):
        return None
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if not url and os.environ.get("DASHTAM_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail("DASHTAM_TEST_REDIS_URL is required")
    return url or None


@pytest.fixture
async def stack(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient, ApiSettings]]:
    """The app on a fresh database (PostgreSQL runs with Redis when configured)."""
    redis_url = _redis_url_or_none(database_url)
    settings = ApiSettings(
        database_url=database_url,
        redis_url=redis_url,
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        public_base_url="http://testserver",
        rate_limits="login_email=20/min",  # the flow logs one email in 7 times within a minute
    )
    for name, value in {
        "DASHTAM_DATABASE_URL": database_url,
        "DASHTAM_SECRET_DIR": str(settings.secret_dir),
        "DASHTAM_MAIL_OUTBOX": str(settings.mail_outbox),
        "DASHTAM_REDIS_URL": redis_url or "",
    }.items():
        monkeypatch.setenv(name, value)
    if not settings.is_sqlite:
        await upgrade(database_url)
        generate_all_keys(settings.secret_dir)
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    async with (
        support.security_options(app, redis_url=redis_url, login_delay_base=0.0),
        support.asgi_client(app) as client,
    ):
        yield app, client, settings


def _token_from_outbox(outbox: Path, to: str, subject_word: str) -> str:
    for message in reversed(read_outbox(outbox)):
        if message["To"] == to and subject_word in message["Subject"]:
            body = message.get_content()
            link = re.search(r"token=([A-Za-z0-9_\-%]+)", body)
            assert link is not None
            alone = re.findall(r"^\s+([A-Za-z0-9_\-]{40,})\s*$", body, re.MULTILINE)
            assert link.group(1) in alone  # the token alone and inside the link
            return link.group(1)
    raise AssertionError(f"no {subject_word!r} mail to {to}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_acceptance_flow(
    stack: tuple[DashtamApp, httpx.AsyncClient, ApiSettings],
) -> None:
    app, client, settings = stack
    email = "alice@example.com"
    weak = await client.post("/api/v1/users", json={"email": email, "password": "password123"})
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"
    assert weak.json()["detail"]
    created = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201, created.text
    assert created.json()["email_verified"] is False
    assert set(created.json()) == {"id", "email", "email_verified"}
    again = await client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
    assert (again.status_code, again.json()["code"]) == (409, "email_taken")
    mass = await client.post(
        "/api/v1/users", json={"email": "x@example.com", "password": PASSWORD, "roles": ["admin"]}
    )
    assert mass.status_code == 422

    login_body = {"email": email, "password": PASSWORD}
    unverified = await client.post("/api/v1/sessions", json=login_body)
    assert (unverified.status_code, unverified.json()["code"]) == (403, "email_not_verified")

    token = _token_from_outbox(settings.mail_outbox, email, "Confirm")
    verified = await client.post("/api/v1/email-verifications", json={"token": token})
    assert verified.json() == {"email_verified": True}
    reused = await client.post("/api/v1/email-verifications", json={"token": token})
    assert reused.status_code == 422

    first = await client.post(
        "/api/v1/sessions", json=login_body, headers={"User-Agent": "phone/1.0"}
    )
    assert first.status_code == 201, first.text
    pair = first.json()
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    me = await client.get("/api/v1/users/me", headers=_bearer(pair["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == email
    assert me.json()["roles"] == ["user"]
    assert me.headers["RateLimit-Policy"] == '"read_user";q=300;w=60'

    rotated = await client.post("/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
    assert rotated.status_code == 201
    child = rotated.json()
    assert child["session_id"] == pair["session_id"]
    replay = await client.post("/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
    assert (replay.status_code, replay.json()["code"]) == (401, "refresh_token_reused")
    dead = await client.post("/api/v1/tokens", json={"refresh_token": child["refresh_token"]})
    assert dead.status_code == 401
    killed = await client.get("/api/v1/users/me", headers=_bearer(child["access_token"]))
    assert (killed.status_code, killed.json()["code"]) == (401, "token_revoked")

    a = (await client.post("/api/v1/sessions", json=login_body)).json()
    b = (await client.post("/api/v1/sessions", json=login_body)).json()
    c = (await client.post("/api/v1/sessions", json=login_body)).json()
    listed = await client.get("/api/v1/sessions", headers=_bearer(a["access_token"]))
    rows = listed.json()["data"]
    assert {r["id"] for r in rows} == {a["session_id"], b["session_id"], c["session_id"]}
    assert [r["current"] for r in rows if r["id"] == a["session_id"]] == [True]
    assert all(r["ip"] for r in rows)
    gone = await client.delete(
        f"/api/v1/sessions/{c['session_id']}", headers=_bearer(a["access_token"])
    )
    assert gone.status_code == 204
    assert (
        await client.get("/api/v1/users/me", headers=_bearer(c["access_token"]))
    ).status_code == 401

    changed = await client.put(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=_bearer(a["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    assert (
        await client.get("/api/v1/users/me", headers=_bearer(a["access_token"]))
    ).status_code == 200
    assert (
        await client.get("/api/v1/users/me", headers=_bearer(b["access_token"]))
    ).status_code == 401
    old_login = await client.post("/api/v1/sessions", json=login_body)
    assert old_login.status_code == 401

    accepted = await client.post("/api/v1/password-reset-tokens", json={"email": email})
    nobody = await client.post("/api/v1/password-reset-tokens", json={"email": "no@example.com"})
    assert accepted.status_code == nobody.status_code == 202
    assert accepted.json() == nobody.json()
    reset_token = _token_from_outbox(settings.mail_outbox, email, "Reset")
    reset = await client.post(
        "/api/v1/password-resets", json={"token": reset_token, "new_password": RESET_PASSWORD}
    )
    assert reset.status_code == 200, reset.text
    assert (
        await client.get("/api/v1/users/me", headers=_bearer(a["access_token"]))
    ).status_code == 401
    final = await client.post("/api/v1/sessions", json={"email": email, "password": RESET_PASSWORD})
    assert final.status_code == 201
    user_token = final.json()["access_token"]

    runner = CliRunner()
    made = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["users", "create", "root@example.com", "--admin", "--verified", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    admin = await client.post(
        "/api/v1/sessions", json={"email": "root@example.com", "password": PASSWORD}
    )
    admin_token = admin.json()["access_token"]
    users = await client.get("/api/v1/admin/users", headers=_bearer(admin_token))
    assert users.status_code == 200
    alice = next(u for u in users.json()["data"] if u["email"] == email)
    denied = await client.get("/api/v1/admin/users", headers=_bearer(user_token))
    assert (denied.status_code, denied.json()["code"]) == (403, "forbidden")
    assert (
        await client.get("/api/v1/admin/audit-events", headers=_bearer(user_token))
    ).status_code == 403
    roles = await client.put(
        f"/api/v1/admin/users/{alice['id']}/roles",
        json={"roles": ["user", "auditor"]},
        headers=_bearer(admin_token),
    )
    assert roles.status_code == 200
    assert roles.json()["roles"] == ["user", "auditor"]
    assert (await client.get("/api/v1/users/me", headers=_bearer(user_token))).status_code == 401
    trail = await client.get(
        "/api/v1/admin/audit-events",
        params={"action": "session.login"},
        headers=_bearer(admin_token),
    )
    assert trail.status_code == 200
    outcomes = {e["outcome"] for e in trail.json()["data"]}
    assert outcomes == {"success", "failure"}
    check = await client.get(
        "/api/v1/admin/audit-events/verification", headers=_bearer(admin_token)
    )
    assert check.json()["valid"] is True
    assert check.json()["checked"] > 20

    statuses = []
    for _ in range(12):
        hammer = await client.post(
            "/api/v1/sessions", json={"email": "ghost@example.com", "password": "nope"}
        )
        statuses.append(hammer.status_code)
    assert statuses[-1] == 429
    assert int(hammer.headers["Retry-After"]) >= 1
    assert hammer.json()["code"] == "rate_limited"
    assert app.state.security is not None
