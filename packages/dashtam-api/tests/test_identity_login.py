"""Login hardening: identical answers for unknown email and wrong password, delay, lockout."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dashtam_api_test_support as support
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD


async def _stack(
    tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient]]:
    settings = ApiSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        rate_limits="login_email=100000/min,login_ip=100000/min",
    )
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    app.state.security_options = {"send_login_notices": False, **options}
    async with support.asgi_client(app) as client:
        await support.register(app, "u@example.com")
        yield app, client


@pytest.fixture
async def real_argon(tmp_path: Path) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient]]:
    """Production argon2id parameters (the timing class depends on them)."""
    async for pair in _stack(tmp_path, login_delay_base=0.0):
        yield pair


@pytest.fixture
async def fast(tmp_path: Path) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient]]:
    """Cheap argon2id and a measurable progressive delay."""
    async for pair in _stack(
        tmp_path, hasher=support.fast_hasher(), login_delay_base=0.05, login_delay_max=0.2
    ):
        yield pair


def _comparable(response: httpx.Response) -> tuple[int, dict[str, Any], str]:
    body = dict(response.json())
    body.pop("trace_id")
    return response.status_code, body, response.headers["content-type"]


async def test_unknown_email_and_wrong_password_look_the_same(
    real_argon: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    _, client = real_argon
    unknown: list[float] = []
    wrong: list[float] = []
    bodies = set()
    for n in range(8):
        for email, bucket in (("u@example.com", wrong), (f"ghost{n}@example.com", unknown)):
            started = time.perf_counter()
            response = await client.post(
                "/api/v1/sessions", json={"email": email, "password": "not the password!"}
            )
            bucket.append(time.perf_counter() - started)
            status, body, media = _comparable(response)
            bodies.add((status, json.dumps(body, sort_keys=True), media))
    assert len(bodies) == 1
    ((final_status, final_body, _),) = bodies
    assert final_status == 401
    assert json.loads(final_body)["code"] == "invalid_credentials"
    ratio = statistics.median(unknown) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (statistics.median(unknown), statistics.median(wrong))
    assert min(unknown) > 0.005  # a real argon2id verification ran for the unknown email too


async def test_lockout_after_ten_failures(fast: tuple[DashtamApp, httpx.AsyncClient]) -> None:
    app, client = fast
    durations = []
    for _ in range(10):
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/sessions", json={"email": "u@example.com", "password": "wrong password!"}
        )
        durations.append(time.perf_counter() - started)
        assert response.status_code == 401
    assert min(durations[4:]) >= 0.05  # progressive delay after the third failure
    assert max(durations[:3]) < min(durations[6:])
    right = await client.post(
        "/api/v1/sessions", json={"email": "u@example.com", "password": PASSWORD}
    )
    assert (right.status_code, right.json()["code"]) == (403, "account_locked")
    async with app.state.engine.connect() as conn:
        from sqlalchemy import select

        from dashtam_core.adapters.sqlalchemy.tables import audit_events, users

        row = (await conn.execute(select(users.c.locked_until, users.c.failed_login_count))).one()
        locks = (
            await conn.execute(
                select(audit_events.c.id).where(audit_events.c.action == "user.locked")
            )
        ).all()
    assert row.failed_login_count == 10
    assert row.locked_until is not None
    assert len(locks) == 1
