"""``dashtam keys generate`` / ``dashtam keys rotate`` and ``dashtam users create``."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from dashtam_api.cli.app import app as cli
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import audit_events, provider_connections
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7

PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CLI settings on a fresh SQLite database; returns the secret dir."""
    monkeypatch.setenv("DASHTAM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("DASHTAM_SECRET_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("DASHTAM_MAIL_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.delenv("DASHTAM_VAULT_KEYS", raising=False)
    return tmp_path / "keys"


def test_keys_generate_creates_private_files_once(env: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["keys", "generate", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)["keys"]
    assert set(report.values()) == {"created"}
    assert len(report) == 4
    for path in env.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = {p.name: p.read_bytes() for p in env.iterdir()}
    second = runner.invoke(cli, ["keys", "generate", "--json"])
    assert set(json.loads(second.output)["keys"].values()) == {"exists"}
    assert {p.name: p.read_bytes() for p in env.iterdir()} == before


def test_users_create_reads_the_password_from_stdin_or_env(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli, ["users", "create", "a@example.com", "--password-stdin", "--json"], input=PASSWORD
    )
    assert made.exit_code == 0, made.output
    body = json.loads(made.output)
    assert body["roles"] == ["user"]
    assert body["email_verified"] is False
    assert PASSWORD not in made.output
    no_password = runner.invoke(cli, ["users", "create", "b@example.com"])
    assert no_password.exit_code == 1
    assert "DASHTAM_PASSWORD" in no_password.output
    weak = runner.invoke(
        cli, ["users", "create", "c@example.com", "--password-stdin"], input="short"
    )
    assert weak.exit_code == 1
    assert "weak_password" in weak.output
    monkeypatch.setenv("DASHTAM_PASSWORD", PASSWORD)
    admin = runner.invoke(cli, ["users", "create", "root@example.com", "--admin", "--verified"])
    assert admin.exit_code == 0, admin.output
    assert "roles=admin" in admin.output
    taken = runner.invoke(cli, ["users", "create", "root@example.com"])
    assert taken.exit_code == 1
    assert "email_taken" in taken.output


async def _seed_connection(url: str, vault: CredentialVault) -> tuple[str, bytes]:
    engine = create_engine(url)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            user = await uow.users.get_by_email("a@example.com")
            assert user is not None
            connection = ProviderConnection(
                id=uuid7(),
                user_id=user.id,
                provider="alpaca",
                status=ConnectionStatus.ACTIVE,
                created_at=datetime.now(UTC),
            )
            blob = vault.encrypt({"api_key_id": "AK", "secret_key": "SK-canary"}, connection.id)
            connection.credentials_encrypted = blob
            connection.credentials_key_id = vault.primary
            await uow.connections.add(connection)
            await uow.commit()
        return str(connection.id), blob
    finally:
        await engine.dispose()


async def _read(url: str) -> tuple[list[tuple[str, bytes, str]], list[str]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            pc = provider_connections.c
            rows = (
                await conn.execute(select(pc.id, pc.credentials_encrypted, pc.credentials_key_id))
            ).all()
            actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
        return [(str(r[0]), bytes(r[1]), r[2]) for r in rows], list(actions)
    finally:
        await engine.dispose()


async def test_keys_rotate_reencrypts_every_credential(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    made = await asyncio.to_thread(
        runner.invoke, cli, ["users", "create", "a@example.com", "--password-stdin"], input=PASSWORD
    )
    assert made.exit_code == 0, made.output
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    old = CredentialVault.load(env, environ={})
    connection_id, old_blob = await _seed_connection(url, old)
    rotated = await asyncio.to_thread(runner.invoke, cli, ["keys", "rotate", "--json"])
    assert rotated.exit_code == 0, rotated.output
    result = json.loads(rotated.output)
    assert result["credentials_reencrypted"] == 1
    new = CredentialVault.load(env, environ={})
    assert new.key_ids == (result["vault_key_id"],)
    assert old.primary not in new.key_ids
    rows, actions = await _read(url)
    ((row_id, blob, key_id),) = rows
    assert row_id == connection_id
    assert blob != old_blob
    assert key_id == new.primary
    decrypted = new.decrypt_json(blob, row_id)
    assert decrypted.unwrap() == {"api_key_id": "AK", "secret_key": "SK-canary"}
    assert old.decrypt(blob, row_id).is_err()
    assert "admin.keys.rotate" in actions
