"""CLI actions are audited like the same actions through the API, and the chain still verifies.

Every command that changes data runs against a real database (SQLite, and PostgreSQL when
configured) in sandbox mode with the in-process provider simulators; the audit rows it leaves
(written by the application services, in the transaction of each change) are checked for
action, outcome, actor, object and the CLI user agent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from dashtam_api import __version__
from dashtam_api.cli.app import app as cli
from dashtam_api.cli.auditing import cli_user_agent
from dashtam_core.adapters.security.keys import load_hmac_key
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import audit_events, users
from dashtam_core.application.audit import verify_audit_trail

CHASE = Path(__file__).resolve().parents[2] / "dashtam-core/tests/fixtures/chase"
EMAIL = "audit-cli@example.com"
PASSWORD = "Vq8#tRz!mW2pLx9$kD"
ALPACA = ["--credential", "api_key_id=PKSANDBOX0DASHTAM000"]
ALPACA_SECRET = ["--credential", "secret_key=sandbox-secret-0000000000000000000000000000"]


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CLI settings on the test database, sandbox providers in-process; returns the key dir."""
    monkeypatch.setenv("DASHTAM_DATABASE_URL", database_url)
    monkeypatch.setenv("DASHTAM_SECRET_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("DASHTAM_MAIL_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("DASHTAM_SANDBOX", "true")
    monkeypatch.setenv("DASHTAM_PUBLIC_BASE_URL", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.setenv("DASHTAM_REDIS_URL", "")
    for name in ("DASHTAM_VAULT_KEYS", "DASHTAM_AUDIT_HMAC_KEY", "DASHTAM_LOAD_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "keys"


async def _invoke(*args: str, stdin: str | None = None, expect: int = 0) -> Result:
    done = await asyncio.to_thread(CliRunner().invoke, cli, list(args), input=stdin)
    assert done.exit_code == expect, (args, done.output)
    return done


async def _json(*args: str, stdin: str | None = None) -> Any:
    return json.loads((await _invoke(*args, "--json", stdin=stdin)).stdout)


async def _rows(url: str) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = select(audit_events).order_by(audit_events.c.seq)
            return list((await conn.execute(query)).all())
    finally:
        await engine.dispose()


async def _user_id(url: str, email: str) -> UUID:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            found = (await conn.execute(select(users.c.id).where(users.c.email == email))).one()
        return UUID(str(found.id))
    finally:
        await engine.dispose()


class Trail:
    """The audit rows written since the last :meth:`new` call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen = 0

    async def new(self) -> list[Any]:
        rows = await _rows(self.url)
        fresh, self.seen = rows[self.seen :], len(rows)
        return fresh


def _only(rows: list[Any], action: str) -> Any:
    found = [r for r in rows if r.action == action]
    assert len(found) == 1, [(r.action, r.outcome) for r in rows]
    return found[0]


async def test_every_cli_change_is_audited_and_the_chain_verifies(
    env: Path, database_url: str
) -> None:
    await _invoke("db", "upgrade")
    await _invoke("keys", "generate")
    trail = Trail(database_url)
    assert await trail.new() == []  # generating missing key files writes no record

    # users create: user.register (the actor is the new user, as for a self-registration)
    await _invoke("users", "create", EMAIL, "--verified", "--password-stdin", stdin=PASSWORD)
    uid = await _user_id(database_url, EMAIL)
    (register,) = await trail.new()
    assert (register.action, register.outcome) == ("user.register", "success")
    assert register.actor_id == uid
    assert (register.object_type, register.object_id) == ("user", str(uid))
    assert register.ip is None
    assert register.user_agent == cli_user_agent()
    assert register.user_agent.startswith(f"dashtam-cli/{__version__}")

    # users roles: admin.user.roles by the operator (no Dashtam user)
    await _invoke("users", "roles", EMAIL, "--set", "user,auditor")
    (roles,) = await trail.new()
    assert (roles.action, roles.outcome, roles.actor_id) == ("admin.user.roles", "success", None)
    assert (roles.object_type, roles.object_id) == ("user", str(uid))
    assert roles.details["after"] == "user,auditor"

    # import: import.create by the user; a refused file is a failure record
    imported = await _json("import", str(CHASE / "checking.qfx"), "--user", EMAIL)
    (made,) = await trail.new()
    assert (made.action, made.outcome, made.actor_id) == ("import.create", "success", uid)
    assert (made.object_type, made.object_id) == ("import", imported["id"])
    assert made.details["connection_id"] == imported["connection_id"]
    assert made.details["transactions_added"] == str(imported["transactions_added"])
    await _invoke(
        "import", str(CHASE / "checking.csv"), "--user", EMAIL, "--provider", "nope", expect=1
    )
    (refused,) = await trail.new()
    assert (refused.action, refused.outcome, refused.actor_id) == ("import.create", "failure", uid)
    assert refused.details["reason"] == "not_found"
    assert refused.details["filename"] == "checking.csv"

    # connect (API keys): connection.create, then the initial sync's sync.start and sync.finish
    alpaca = await _json(
        "connect", "alpaca", "--user", EMAIL, "--option", "environment=paper",
        *ALPACA, *ALPACA_SECRET,
    )  # fmt: skip
    alpaca_id = alpaca["connection"]["id"]
    rows = await trail.new()
    assert [(r.action, r.outcome) for r in rows] == [
        ("connection.create", "success"),
        ("sync.start", "success"),
        ("sync.finish", "success"),
    ]
    created, queued, synced = rows
    assert created.actor_id == queued.actor_id == synced.actor_id == uid
    assert (created.object_type, created.object_id) == ("connection", alpaca_id)
    assert created.details == {"provider": "alpaca", "auth_type": "api_key", "status": "active"}
    assert (synced.object_type, synced.object_id) == ("connection", alpaca_id)
    assert queued.details["sync_id"] == synced.details["sync_id"] == alpaca["sync"]["id"]
    assert synced.details["status"] == "succeeded"
    assert synced.details["transactions_added"] == str(
        alpaca["sync"]["counts"]["transactions_added"]
    )
    # refused keys: a failure record, and no connection
    wrong = await _invoke(
        "connect", "alpaca", "--user", EMAIL, "--credential", "api_key_id=PKBAD",
        "--credential", "secret_key=bad", expect=1,
    )  # fmt: skip
    assert "invalid_credentials" in wrong.output
    (bad_keys,) = await trail.new()
    assert (bad_keys.action, bad_keys.outcome, bad_keys.actor_id) == (
        "connection.create",
        "failure",
        uid,
    )
    assert bad_keys.object_id is None
    assert bad_keys.details["reason"] == "invalid_credentials"
    assert "PKBAD" not in json.dumps(dict(bad_keys.details))

    # connect (OAuth, sandbox): connection.create (pending) and connection.authorize
    schwab = await _json("connect", "schwab", "--user", EMAIL, "--no-sync")
    schwab_id = schwab["connection"]["id"]
    rows = await trail.new()
    assert [(r.action, r.outcome, r.actor_id, r.object_id) for r in rows] == [
        ("connection.create", "success", uid, schwab_id),
        ("connection.authorize", "success", uid, schwab_id),
    ]
    assert rows[0].details["status"] == "pending"

    # sync CONNECTION_ID (by the operator) and sync --user (by the user)
    await _invoke("sync", alpaca_id)
    rows = await trail.new()
    assert [(r.action, r.outcome, r.actor_id, r.object_id) for r in rows] == [
        ("sync.start", "success", None, alpaca_id),
        ("sync.finish", "success", None, alpaca_id),
    ]
    await _invoke("sync", "--user", EMAIL)
    rows = await trail.new()
    for action in ("sync.start", "sync.finish"):
        syncs = [r for r in rows if r.action == action]
        assert {r.object_id for r in syncs} == {alpaca_id, schwab_id}
        assert all(r.actor_id == uid and r.outcome == "success" for r in syncs)
    # the in-process OAuth simulator forgot its grant: the repair and re-approval are audited
    repair = _only(rows, "connection.reauthorize")
    regrant = _only(rows, "connection.authorize")
    assert (repair.actor_id, repair.object_id) == (uid, schwab_id)
    assert (regrant.actor_id, regrant.object_id) == (uid, schwab_id)
    assert len(rows) == 6

    # reads are not audited (as in the API)
    await _invoke("accounts", "--user", EMAIL)
    await _invoke("connections", "--user", EMAIL)
    assert await trail.new() == []

    # reprocess: by the operator
    chase_id = imported["connection_id"]
    await _invoke("reprocess", chase_id)
    (redone,) = await trail.new()
    assert (redone.action, redone.outcome, redone.actor_id) == (
        "connection.reprocess",
        "success",
        None,
    )
    assert (redone.object_type, redone.object_id) == ("connection", chase_id)
    assert redone.details["payloads"] == "1"

    # disconnect: by the user
    await _invoke("disconnect", schwab_id, "--user", EMAIL)
    (gone,) = await trail.new()
    assert (gone.action, gone.outcome, gone.actor_id, gone.object_id) == (
        "connection.disconnect",
        "success",
        uid,
        schwab_id,
    )

    # keys rotate --jwt: the vault rotation (with the re-encryption) and the new signing key
    rotated = await _json("keys", "rotate", "--jwt")
    rows = await trail.new()
    assert [(r.action, r.object_type, r.object_id) for r in rows] == [
        ("admin.keys.rotate", "vault", rotated["vault_key_id"]),
        ("admin.keys.rotate", "jwt_signing_key", rotated["jwt_kid"]),
    ]
    assert rows[0].details["credentials"] == "1"  # alpaca (schwab's were destroyed)
    assert all(r.actor_id is None and r.user_agent == cli_user_agent() for r in rows)

    # every record of the CLI carries its user agent; the chain verifies, and so does the CLI
    everything = await _rows(database_url)
    assert {r.user_agent for r in everything} == {cli_user_agent()}
    assert [r.seq for r in everything] == list(range(1, len(everything) + 1))
    engine = create_engine(database_url)
    try:
        result = await verify_audit_trail(engine, load_hmac_key("audit_hmac", env))
    finally:
        await engine.dispose()
    assert (result.valid, result.checked) == (True, len(everything))
    verified = await _json("audit", "verify")
    assert verified["valid"] is True
    assert verified["checked"] == len(everything)
    # ... and the check is itself audited, like the API's verification endpoint
    (check,) = await trail.new()
    assert (check.action, check.actor_id, check.object_type) == (
        "audit.verify",
        None,
        "audit_events",
    )
    assert check.details == {"valid": "True", "checked": str(len(everything))}


async def test_refused_actions_are_failure_records(env: Path, database_url: str) -> None:
    await _invoke("db", "upgrade")
    await _invoke("keys", "generate")
    await _invoke("users", "create", EMAIL, "--verified", "--password-stdin", stdin=PASSWORD)
    uid = await _user_id(database_url, EMAIL)
    alpaca = await _json(
        "connect", "alpaca", "--user", EMAIL, "--option", "environment=paper", "--no-sync",
        *ALPACA, *ALPACA_SECRET,
    )  # fmt: skip
    alpaca_id = alpaca["connection"]["id"]
    await _invoke("disconnect", alpaca_id, "--user", EMAIL)
    trail = Trail(database_url)
    await trail.new()
    # a disconnected connection has no credentials: the sync cannot start
    await _invoke("sync", alpaca_id, expect=1)
    (failed,) = await trail.new()
    assert (failed.action, failed.outcome, failed.actor_id, failed.object_id) == (
        "sync.start",
        "failure",
        None,
        alpaca_id,
    )
    assert failed.details["reason"] == "validation_error"
    # an unknown connection: refused before anything is written, and recorded as a failure
    await _invoke("reprocess", "0190a0a0-0000-7000-8000-000000000000", expect=1)
    (missing,) = await trail.new()
    assert (missing.action, missing.outcome, missing.details["reason"]) == (
        "connection.reprocess",
        "failure",
        "not_found",
    )
    rows = await _rows(database_url)
    assert [r.actor_id for r in rows if r.action == "connection.create"] == [uid]
    assert (await _json("audit", "verify"))["valid"] is True
