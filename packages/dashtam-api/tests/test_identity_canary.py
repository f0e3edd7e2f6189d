"""Canary secret run: passwords, tokens and keys never show up in logs, errors, audit or data.

Every secret used in a full identity flow is a recognizable canary; afterwards the captured logs
(stdlib logging and structlog's output), every error body, every response that is not supposed to
carry the secret, the audit trail and every database table are searched for each of them.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from sqlalchemy import select

import dashtam_api_test_support as support
from dashtam_api.main import create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.mail.outbox import read_outbox
from dashtam_core.adapters.sqlalchemy.base import metadata
from dashtam_core.plugins.manager import build_plugin_manager


def _canary(label: str) -> str:
    return f"Sentinel{label}{secrets.token_hex(8)} zebra quilt"


def _token(outbox: Path, word: str) -> str:
    for message in reversed(read_outbox(outbox)):
        if word in message["Subject"]:
            found = re.search(r"token=([A-Za-z0-9_\-]+)", message.get_content())
            assert found is not None
            return found.group(1)
    raise AssertionError(word)


def _key_material(secret_dir: Path) -> list[str]:
    found = []
    for path in secret_dir.iterdir():
        text = path.read_text()
        if path.suffix == ".key":
            found.append(text.strip())
            continue
        doc = json.loads(text)
        for entry in doc.get("keys", []):
            if isinstance(entry, dict) and "d" in entry:
                found.append(entry["d"])
        for value in (doc.get("keys") or {}).values() if isinstance(doc.get("keys"), dict) else ():
            found.append(str(value))
    assert len(found) >= 4
    return [k for k in found if len(k) >= 16]


async def test_no_secret_leaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = ApiSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
    )
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    app.state.security_options = {"hasher": support.fast_hasher()}
    email = "leaktest@example.com"
    passwords = {k: _canary(k) for k in ("first", "wrong", "second", "third")}
    secrets_seen: dict[str, str] = {f"password {k}": v for k, v in passwords.items()}
    may_carry: dict[str, set[str]] = {}  # secret -> request labels whose responses may carry it
    errors: list[tuple[str, httpx.Response]] = []
    others: list[tuple[str, httpx.Response]] = []

    async with support.asgi_client(app) as client:

        async def call(label: str, method: str, path: str, **kw: Any) -> httpx.Response:
            response = await client.request(method, path, **kw)
            (errors if response.status_code >= 400 else others).append((label, response))
            return response

        await call("weak", "POST", "/api/v1/users", json={"email": email, "password": email})
        await call(
            "register",
            "POST",
            "/api/v1/users",
            json={"email": email, "password": passwords["first"]},
        )
        await call(
            "extra",
            "POST",
            "/api/v1/users",
            json={"email": "x@example.com", "password": passwords["first"], "roles": ["admin"]},
        )
        verify = _token(settings.mail_outbox, "Confirm")
        secrets_seen["verification token"] = verify
        await call("verify", "POST", "/api/v1/email-verifications", json={"token": verify})
        await call("verify again", "POST", "/api/v1/email-verifications", json={"token": verify})
        await call(
            "wrong login",
            "POST",
            "/api/v1/sessions",
            json={"email": email, "password": passwords["wrong"]},
        )
        login = await call(
            "login",
            "POST",
            "/api/v1/sessions",
            json={"email": email, "password": passwords["first"]},
        )
        pair = login.json()
        for name in ("access_token", "refresh_token"):
            secrets_seen[name] = pair[name]
            may_carry[pair[name]] = {"login"}
        auth = {"Authorization": f"Bearer {pair['access_token']}"}
        rotated = await call(
            "refresh", "POST", "/api/v1/tokens", json={"refresh_token": pair["refresh_token"]}
        )
        child = rotated.json()
        for name in ("access_token", "refresh_token"):
            secrets_seen[f"child {name}"] = child[name]
            may_carry[child[name]] = {"refresh"}
        await call("reuse", "POST", "/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
        await call("revoked", "GET", "/api/v1/users/me", headers=auth)
        await call(
            "forged",
            "GET",
            "/api/v1/users/me",
            headers={"Authorization": f"Bearer {passwords['wrong']}"},
        )
        login2 = await call(
            "login2",
            "POST",
            "/api/v1/sessions",
            json={"email": email, "password": passwords["first"]},
        )
        secrets_seen["access 2"] = login2.json()["access_token"]
        may_carry[login2.json()["access_token"]] = {"login2"}
        auth2 = {"Authorization": f"Bearer {login2.json()['access_token']}"}
        await call(
            "bad current",
            "PUT",
            "/api/v1/users/me/password",
            headers=auth2,
            json={"current_password": passwords["wrong"], "new_password": passwords["second"]},
        )
        await call(
            "change",
            "PUT",
            "/api/v1/users/me/password",
            headers=auth2,
            json={"current_password": passwords["first"], "new_password": passwords["second"]},
        )
        mfa = await call("mfa", "POST", "/api/v1/users/me/mfa", headers=auth2)
        secrets_seen["totp secret"] = mfa.json()["secret"]
        may_carry[mfa.json()["secret"]] = {"mfa"}
        code = pyotp.TOTP(mfa.json()["secret"]).now()
        await call(
            "mfa confirm",
            "POST",
            "/api/v1/users/me/mfa/confirmation",
            headers=auth2,
            json={"code": code},
        )
        await call("reset request", "POST", "/api/v1/password-reset-tokens", json={"email": email})
        reset = _token(settings.mail_outbox, "Reset")
        secrets_seen["reset token"] = reset
        await call(
            "weak reset",
            "POST",
            "/api/v1/password-resets",
            json={"token": reset, "new_password": "leaktest@example.com"},
        )
        await call(
            "reset",
            "POST",
            "/api/v1/password-resets",
            json={"token": reset, "new_password": passwords["third"]},
        )
        await call(
            "reset again",
            "POST",
            "/api/v1/password-resets",
            json={"token": reset, "new_password": passwords["third"]},
        )
        async with app.state.engine.connect() as conn:
            dumps = []
            for table in metadata.sorted_tables:
                rows = (await conn.execute(select(table))).all()
                dumps.append(f"{table.name}: {[tuple(r) for r in rows]!r}")
    for key in _key_material(settings.secret_dir):
        secrets_seen[f"key {key[:4]}"] = key
        secrets_seen[f"key bytes {key[:4]}"] = repr(
            base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        )[2:-1]

    logs = "\n".join(r.getMessage() + repr(r.args) + str(r.exc_text) for r in caplog.records)
    captured = capsys.readouterr()
    logs += captured.out + captured.err
    database = "\n".join(dumps)
    assert len(errors) >= 8
    assert "login" in logs or "HTTP Request" in logs  # the capture works
    assert secrets_seen["access_token"] in dict(others)["login"].text  # and so does the search
    leaks = []
    for name, value in secrets_seen.items():
        if value in logs:
            leaks.append(f"{name} in logs")
        if value in database:
            leaks.append(f"{name} in the database / audit trail")
        for label, response in errors:
            if value in response.text:
                leaks.append(f"{name} in error {label}")
        for label, response in others:
            if value in response.text and label not in may_carry.get(value, set()):
                leaks.append(f"{name} in response {label}")
    assert leaks == []
