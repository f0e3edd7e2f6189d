"""Tokens against the live app: a JWT attack corpus, refresh races and reuse detection."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

import dashtam_api_test_support as support
from dashtam_api.main import DashtamApp, create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens, sessions
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.plugins.manager import build_plugin_manager

PASSWORD = support.PASSWORD


@pytest.fixture
async def stack(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[DashtamApp, httpx.AsyncClient]]:
    """The app on a fresh database with two verified users."""
    redis_url = None
    if not database_url.startswith("sqlite"):
        redis_url = os.environ.get("DASHTAM_TEST_REDIS_URL") or None
        await upgrade(database_url)
        generate_all_keys(tmp_path / "keys")
    settings = ApiSettings(
        database_url=database_url,
        redis_url=redis_url,
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        rate_limits="refresh_session=1000/min,read_user=1000/min,login_email=100/min",
    )
    app = create_app(settings, plugins=build_plugin_manager(load_only=[]))
    async with (
        support.security_options(app, redis_url=redis_url, send_login_notices=False),
        support.asgi_client(app) as client,
    ):
        for email in ("a@example.com", "b@example.com"):
            await support.register(app, email)
        yield app, client


async def _login(client: httpx.AsyncClient, email: str = "a@example.com") -> dict[str, Any]:
    response = await client.post("/api/v1/sessions", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    h = _b64(json.dumps(header).encode())
    p = _b64(json.dumps(payload).encode())
    return f"{h}.{p}.{_b64(signature)}"


def _ed_sign(key: Ed25519PrivateKey, header: dict[str, Any], payload: dict[str, Any]) -> str:
    h = _b64(json.dumps(header).encode())
    p = _b64(json.dumps(payload).encode())
    return f"{h}.{p}.{_b64(key.sign(f'{h}.{p}'.encode()))}"


def _hs256(key: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    h = _b64(json.dumps(header).encode())
    p = _b64(json.dumps(payload).encode())
    return f"{h}.{p}.{_b64(hmac.new(key, f'{h}.{p}'.encode(), hashlib.sha256).digest())}"


def _attacks(kit: SecurityKit, claims: dict[str, Any], other_sid: str) -> dict[str, Any]:
    """name -> Authorization header value (or None for no header)."""
    server = kit.keyring.signing_key()
    kid = server.kid
    attacker = Ed25519PrivateKey.generate()
    good_header = {"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
    now = int(time.time())

    def forged(**changes: Any) -> str:
        payload = {**claims, **changes}
        return _ed_sign(server.private_key, good_header, payload)

    public_x = base64.urlsafe_b64decode(kit.keyring.jwks()["keys"][0]["x"] + "==")
    hs_confusion = pyjwt.encode(
        claims, public_x, algorithm="HS256", headers={"kid": kid, "typ": "at+jwt"}
    )
    valid = forged()
    h, p, s = valid.split(".")
    tampered_payload = _b64(json.dumps({**claims, "roles": ["admin"]}).encode())
    attacker_jwk = {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(attacker.public_key().public_bytes_raw()),
    }
    return {
        "no header": None,
        "empty bearer": "Bearer ",
        "basic scheme": "Basic YTpi",
        "garbage": "Bearer not-a-jwt",
        "two segments": f"Bearer {h}.{p}",
        "alg none": "Bearer " + _compact({"alg": "none", "typ": "at+jwt", "kid": kid}, claims),
        "alg None": "Bearer " + _compact({"alg": "None", "typ": "at+jwt", "kid": kid}, claims),
        "hs256 with public key": f"Bearer {hs_confusion}",
        "hs256 empty secret": "Bearer " + _hs256(b"", {**good_header, "alg": "HS256"}, claims),
        "attacker key, server kid": "Bearer " + _ed_sign(attacker, good_header, claims),
        "unknown kid": "Bearer "
        + _ed_sign(attacker, {"alg": "EdDSA", "typ": "at+jwt", "kid": "evil"}, claims),
        "missing kid": "Bearer " + _ed_sign(attacker, {"alg": "EdDSA", "typ": "at+jwt"}, claims),
        "jku header": "Bearer "
        + _ed_sign(attacker, {**good_header, "jku": "http://evil.example/jwks"}, claims),
        "embedded jwk": "Bearer "
        + _ed_sign(attacker, {**good_header, "jwk": attacker_jwk}, claims),
        "x5u header": "Bearer "
        + _ed_sign(attacker, {**good_header, "x5u": "http://evil.example/c"}, claims),
        "crit header": "Bearer "
        + _ed_sign(server.private_key, {**good_header, "crit": ["exp"]}, claims),
        "typ JWT": "Bearer " + _ed_sign(server.private_key, {**good_header, "typ": "JWT"}, claims),
        "wrong issuer": "Bearer " + forged(iss="someone-else"),
        "wrong audience": "Bearer " + forged(aud="other-api"),
        "expired": "Bearer " + forged(iat=now - 3000, nbf=now - 3000, exp=now - 2000),
        "not yet valid": "Bearer " + forged(nbf=now + 3000),
        "issued in future": "Bearer " + forged(iat=now + 3000, exp=now + 3600),
        "lifetime too long": "Bearer " + forged(exp=now + 86400),
        "tampered roles": f"Bearer {h}.{tampered_payload}.{s}",
        "signature stripped": f"Bearer {h}.{p}.",
        "roles not a list": "Bearer " + forged(roles="admin"),
        "missing sub": "Bearer " + forged(sub=""),
        "session of another user": "Bearer " + forged(sid=other_sid),
        "unknown session": "Bearer " + forged(sid="01890000-0000-7000-8000-000000000000"),
        "oversized": "Bearer " + "a" * 9000,
    }


async def test_jwt_attack_corpus_is_refused(stack: tuple[DashtamApp, httpx.AsyncClient]) -> None:
    app, client = stack
    kit = support.security_kit(app)
    mine = await _login(client)
    other = await _login(client, "b@example.com")
    claims = pyjwt.decode(mine["access_token"], options={"verify_signature": False})
    ok = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {mine['access_token']}"}
    )
    assert ok.status_code == 200
    attacks = _attacks(kit, claims, other["session_id"])
    assert len(attacks) >= 20
    accepted = {}
    for name, value in attacks.items():
        headers = {} if value is None else {"Authorization": value}
        for path in ("/api/v1/users/me", "/api/v1/admin/users"):
            response = await client.get(path, headers=headers)
            if response.status_code != 401 or response.json()["code"] not in {
                "unauthorized",
                "invalid_token",
                "token_revoked",
            }:
                accepted[(name, path)] = response.status_code
            assert response.headers["content-type"] == "application/problem+json"
    assert accepted == {}


async def test_revoked_session_token_is_refused_within_one_request(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    _, client = stack
    pair = await _login(client)
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200
    assert (await client.delete("/api/v1/sessions/current", headers=headers)).status_code == 204
    after = await client.get("/api/v1/users/me", headers=headers)
    assert (after.status_code, after.json()["code"]) == (401, "token_revoked")
    refreshed = await client.post("/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


async def _count(app: DashtamApp, stmt: Any) -> int:
    async with app.state.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def test_fifty_concurrent_refreshes_yield_one_child(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    app, client = stack
    pair = await _login(client)
    token = pair["refresh_token"]

    async def attempt() -> httpx.Response:
        return await client.post("/api/v1/tokens", json={"refresh_token": token})

    responses = await asyncio.gather(*(attempt() for _ in range(50)))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1
    assert codes.count(401) == 49
    assert {r.json()["code"] for r in responses if r.status_code == 401} == {"refresh_token_reused"}
    rt = refresh_tokens.c
    children = await _count(
        app,
        select(func.count()).select_from(refresh_tokens).where(rt.parent_id.is_not(None)),
    )
    assert children == 1
    # the losers' reuse detection revoked the whole family, the child included
    live = await _count(
        app, select(func.count()).select_from(refresh_tokens).where(rt.revoked_at.is_(None))
    )
    assert live == 0


async def test_reuse_revokes_the_family(stack: tuple[DashtamApp, httpx.AsyncClient]) -> None:
    app, client = stack
    pair = await _login(client)
    other = await _login(client)
    first = await client.post("/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
    child = first.json()
    second = await client.post("/api/v1/tokens", json={"refresh_token": child["refresh_token"]})
    assert second.status_code == 201
    grandchild = second.json()
    replay = await client.post("/api/v1/tokens", json={"refresh_token": pair["refresh_token"]})
    assert (replay.status_code, replay.json()["code"]) == (401, "refresh_token_reused")
    for token in (grandchild["refresh_token"],):
        assert (
            await client.post("/api/v1/tokens", json={"refresh_token": token})
        ).status_code == 401
    for access in (child["access_token"], grandchild["access_token"]):
        me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
        assert me.status_code == 401
    s = sessions.c
    revoked_reason = await _scalar(app, select(s.revoked_reason).where(s.id == pair["session_id"]))
    assert revoked_reason == "refresh_token_reused"
    untouched = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert untouched.status_code == 200


async def _scalar(app: DashtamApp, stmt: Any) -> Any:
    async with app.state.engine.connect() as conn:
        return (await conn.execute(stmt)).scalar_one()


async def test_jwks_publishes_the_verifying_key(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    _, client = stack
    pair = await _login(client)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    header = pyjwt.get_unverified_header(pair["access_token"])
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = pyjwt.PyJWK(key).key
    claims = pyjwt.decode(
        pair["access_token"], public, algorithms=["EdDSA"], audience="dashtam-api"
    )
    assert claims["sid"] == pair["session_id"]
    assert all(set(k) == {"kty", "crv", "x", "kid", "alg", "use"} for k in jwks["keys"])


async def test_signing_key_rotation_fails_no_request(
    stack: tuple[DashtamApp, httpx.AsyncClient],
) -> None:
    from dashtam_core.adapters.security.keys import rotate_signing_key

    app, client = stack
    kit = support.security_kit(app)
    before = await _login(client)
    old_kid = pyjwt.get_unverified_header(before["access_token"])["kid"]
    new_kid = rotate_signing_key(kit.settings.secret_dir, publish_lead=0.0)
    kit._keyring_checked = 0.0  # do not wait for the periodic key-file check
    published = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert {old_kid, new_kid} <= published
    old_token = {"Authorization": f"Bearer {before['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=old_token)).status_code == 200
    after = await _login(client)
    assert pyjwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    new_token = {"Authorization": f"Bearer {after['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=new_token)).status_code == 200
    assert (await client.get("/api/v1/users/me", headers=old_token)).status_code == 200
