"""A TOTP code accepted by one API instance is refused by another on the same database.

Two applications (each with its own engine, security kit and replay guard, as two replicas
would have) share one database: SQLite, and PostgreSQL when configured. No Redis is involved.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pyotp
from sqlalchemy import select

import dashtam_api_test_support as support
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import audit_events, users

PASSWORD = support.PASSWORD
EMAIL = "mfa@example.com"


def _app(database_url: str, tmp_path: Path) -> DashtamApp:
    settings = ApiSettings(
        database_url=database_url,
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        redis_url=None,
        rate_limits="login_email=1000/min,login_ip=1000/min",
    )
    app = create_app(settings)
    app.state.security_options = {
        "hasher": support.fast_hasher(),
        "send_login_notices": False,
    }
    return app


async def _login(client: httpx.AsyncClient, code: str | None = None) -> httpx.Response:
    body = {"email": EMAIL, "password": PASSWORD}
    if code is not None:
        body["totp_code"] = code
    return await client.post("/api/v1/sessions", json=body)


async def test_a_code_used_on_one_replica_is_refused_by_another(
    database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite"):
        await upgrade(database_url)
    generate_all_keys(tmp_path / "keys")
    first, second = _app(database_url, tmp_path), _app(database_url, tmp_path)
    async with AsyncExitStack() as stack:
        one = await stack.enter_async_context(support.asgi_client(first))
        two = await stack.enter_async_context(support.asgi_client(second))
        kit_one, kit_two = support.security_kit(first), support.security_kit(second)
        assert kit_one.engine is not kit_two.engine
        await support.register(first, EMAIL)

        token = (await _login(one)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        secret = (await one.post("/api/v1/users/me/mfa", headers=auth)).json()["secret"]
        totp = pyotp.TOTP(secret)
        confirmed = await one.post(
            "/api/v1/users/me/mfa/confirmation", json={"code": totp.now()}, headers=auth
        )
        assert confirmed.status_code == 200, confirmed.text

        code = totp.at(int(time.time()) + 30)  # the next step: the current one was just used
        assert (await _login(one, code)).status_code == 201
        replayed = await _login(two, code)
        assert (replayed.status_code, replayed.json()["code"]) == (401, "invalid_credentials")
        # refused as a replay, not as a wrong or expired code: the second replica's verifier
        # matches it, and its step is the one the first replica stored
        step = kit_two.totp.matching_step(secret, code)
        assert step is not None
        async with kit_two.engine.connect() as conn:
            stored = (
                await conn.execute(select(users.c.mfa_last_step).where(users.c.email == EMAIL))
            ).scalar_one()
            outcomes = (
                (
                    await conn.execute(
                        select(audit_events.c.outcome)
                        .where(audit_events.c.action == "session.login")
                        .order_by(audit_events.c.seq)
                    )
                )
                .scalars()
                .all()
            )
        assert stored == step
        assert outcomes[-2:] == ["success", "failure"]
        # and the first replica refuses it again too
        assert (await _login(one, code)).status_code == 401
