"""The authorization matrix: every registered route x every role x ownership, against the live app.

The expected cells come from security.md, written out here independently of the Casbin policy
data: ``admin`` ⊃ ``user`` ⊃ ``readonly`` (reads of one's own data), ``auditor`` reads only the
audit trail (plus its own profile and sessions); anonymous callers get 401 everywhere that is
not public; denied roles get 403; another user's object is a 404 exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.routing import APIRoute

import dashtam_api_test_support as support
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.registry import RouteSpec
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import Role
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD
ROLES = ("readonly", "user", "admin", "auditor")
#: Objects every signed-in role may read and write for itself.
_SELF = {"users/me", "sessions"}
#: Routes whose success is an endless stream (Server-Sent Events).
_STREAMS = {"/api/v1/events"}


def expected_allowed(spec: RouteSpec, role: str) -> bool:
    """security.md's rules, independent of the policy rows."""
    assert spec.policy is not None
    obj, act = spec.policy
    if role == "admin":
        return True
    if obj.startswith("admin/"):
        return role == "auditor" and obj == "admin/audit_events" and act == "read"
    if obj in _SELF:
        return True
    if role == "auditor":
        return False
    if act == "read":
        return True
    return role == "user"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient]]:
    """The app on SQLite with a verified user per role (plus ``owner`` and ``intruder``)."""
    settings = ApiSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        rate_limits="login_ip=100000/min,login_email=100000/min,read_user=100000/min,"
        "write_user=100000/min,sync_connection=100000/min",
    )
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    async with (
        support.security_options(app, send_login_notices=False),
        support.asgi_client(app) as client,
    ):
        for role in (*ROLES, "owner", "intruder"):
            roles = [Role(role)] if role in ROLES else [Role.USER]
            await support.register(app, f"{role}@example.com", roles=roles)
        yield app, client


async def _token(client: httpx.AsyncClient, who: str) -> tuple[str, str]:
    response = await client.post(
        "/api/v1/sessions", json={"email": f"{who}@example.com", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    return response.json()["access_token"], response.json()["session_id"]


def _fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value, path)


async def _call(client: httpx.AsyncClient, spec: RouteSpec, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"headers": headers}
    if spec.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    try:
        async with asyncio.timeout(1):
            response = await client.request(spec.method, path, **kwargs)
    except TimeoutError:
        return 200  # an event stream started: the request got through authorization
    return response.status_code


def _protected(app: DashtamApp) -> list[RouteSpec]:
    return [s for s in app.route_registry if s.auth in ("user", "admin", "auditor")]


async def test_every_protected_route_has_a_policy_and_the_auth_dependency(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, _ = stack
    routes = {r.name: r for r in app.router.routes if isinstance(r, APIRoute)}
    assert _protected(app)
    for spec in _protected(app):
        assert spec.policy is not None, spec.name
        calls = [d.call for d in routes[spec.name].dependant.dependencies]
        names = {getattr(c, "__name__", "") for c in calls}
        assert "authenticated" in names, f"{spec.name} does not authenticate"


async def test_role_matrix_has_no_unexpected_cell(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, client = stack
    victim = str(uuid4())
    unexpected: dict[tuple[str, str], int] = {}
    tokens: dict[str, str] = {}
    cells = 0
    for spec in _protected(app):
        path = _fill(spec.path, victim)
        anonymous = await _call(client, spec, path, None)
        if anonymous != 401:
            unexpected[(spec.name, "anonymous")] = anonymous
        for role in ROLES:
            if role not in tokens:
                tokens[role], _ = await _token(client, role)
            status = await _call(client, spec, path, tokens[role])
            if spec.method == "DELETE":
                del tokens[role]  # logout may have ended that session
            cells += 1
            allowed = status not in (401, 403) and status < 500
            if allowed != expected_allowed(spec, role) or status >= 500:
                unexpected[(spec.name, role)] = status
    assert cells >= 4 * 20
    assert unexpected == {}


async def _owned_objects(app: DashtamApp, owner_id: UUID, session_id: str) -> dict[str, str]:
    now = datetime.now(UTC)
    connection = ProviderConnection(
        id=uuid7(),
        user_id=owner_id,
        provider="testbank",
        status=ConnectionStatus.ACTIVE,
        created_at=now,
        alias="mine",
    )
    account = Account(
        id=uuid7(),
        connection_id=connection.id,
        user_id=owner_id,
        provider="testbank",
        provider_account_id="acct-1",
        name="Checking",
        type=AccountType.CHECKING,
        currency="USD",
        created_at=now,
    )
    async with SqlAlchemyUnitOfWork(app.state.engine) as uow:
        await uow.connections.add(connection)
        await uow.accounts.add(account)
        await uow.commit()
    return {"sessions": session_id, "connections": str(connection.id), "accounts": str(account.id)}


async def test_another_users_object_is_a_404_like_a_missing_one(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, client = stack
    owner_token, owner_session = await _token(client, "owner")
    intruder_token, _ = await _token(client, "intruder")
    async with SqlAlchemyUnitOfWork(app.state.engine) as uow:
        owner = await uow.users.get_by_email("owner@example.com")
    assert owner is not None
    objects = await _owned_objects(app, owner.id, owner_session)
    checked = 0
    for spec in _protected(app):
        match = re.fullmatch(r"/api/v1/([a-z_-]+)/\{id\}(/.*)?", spec.path)
        if spec.auth != "user" or match is None or match.group(1) not in objects:
            continue
        own = _fill(spec.path, objects[match.group(1)])
        missing = _fill(spec.path, str(uuid7()))
        headers = {"Authorization": f"Bearer {intruder_token}"}
        body: dict[str, Any] = {"json": {}} if spec.method in ("POST", "PUT", "PATCH") else {}
        theirs = await client.request(spec.method, own, headers=headers, **body)
        absent = await client.request(spec.method, missing, headers=headers, **body)
        if theirs.status_code == 422:  # validated before the lookup: same for missing
            assert absent.status_code == 422, spec.name
            continue
        assert theirs.status_code == 404, (spec.name, theirs.status_code)
        assert absent.status_code == 404
        assert set(theirs.json()) == set(absent.json())
        assert theirs.json()["code"] == absent.json()["code"] == "not_found"
        checked += 1
        if spec.method == "GET":
            mine = await client.get(own, headers={"Authorization": f"Bearer {owner_token}"})
            assert mine.status_code == 200, (spec.name, mine.status_code)
    assert checked >= 1
    still = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {owner_token}"})
    assert still.status_code == 200  # the intruder could not revoke the owner's session
