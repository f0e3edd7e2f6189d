"""Statement imports: Chase QFX and CSV through the engine; re-import adds nothing; bad files
write nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest_asyncio
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables import accounts, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import (
    change_log,
    imports,
    outbox,
    raw_payloads,
    transactions,
)
from dashtam_core.application.container import Container
from dashtam_core.application.imports import import_statement
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.errors import StatementParseError, ValidationError
from dashtam_core.result import Err
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.archive import load_raw_payload

FIXTURES = Path(__file__).parent / "fixtures" / "chase"


@pytest_asyncio.fixture
async def container(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Container]:
    settings = CoreSettings(database_url=migrated_url, secret_dir=tmp_path / "k", _env_file=None)
    c = await Container.create(
        settings, engine=engine, migrate=False, vault=CredentialVault.generate()
    )
    try:
        yield c
    finally:
        await c.aclose()


async def _user(c: Container) -> User:
    user = User(
        id=uuid7(),
        email=f"{uuid7().hex}@example.com",
        password_hash="x",
        created_at=datetime.now(UTC),
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return user


async def _count(c: Container, table: Table) -> int:
    async with c.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_qfx_and_csv_import_then_reimport_adds_nothing(container: Container) -> None:
    user = await _user(container)
    expected = {
        "checking.qfx": 25,
        "checking.csv": 20,
        "credit_card.qfx": 15,
        "credit_card.csv": 20,
    }
    connection_ids = set()
    for name, count in expected.items():
        result = (
            await import_statement(container, user.id, name, (FIXTURES / name).read_bytes())
        ).unwrap()
        assert result.transactions_added == count, name
        assert result.transactions_skipped == 0
        assert len(result.accounts) == 1
        connection_ids.add(result.connection_id)
    assert len(connection_ids) == 1  # one file connection per (user, provider)
    assert await _count(container, transactions) == 80

    async with container.uow_factory() as uow:
        stored = {a.provider_account_id: a for a in await uow.accounts.list_for_user(user.id)}
    assert len(stored) == 4
    checking = next(a for a in stored.values() if a.balance_current == Decimal("7623.24"))
    assert checking.balance_available == Decimal("7581.06")
    async with container.engine.connect() as db:
        amounts = (
            await db.execute(
                select(transactions.c.amount).where(transactions.c.account_id == checking.id)
            )
        ).scalars()
        total = sum(amounts, Decimal(0))
    assert total == Decimal("4141.07")  # 25 TRNAMTs: opening 3482.17 -> 7623.24

    before = [await _count(container, t) for t in (transactions, change_log, outbox, imports)]
    for name in expected:
        again = (
            await import_statement(container, user.id, name, (FIXTURES / name).read_bytes())
        ).unwrap()
        assert again.transactions_added == 0
        assert again.transactions_skipped == expected[name]
    after = [await _count(container, t) for t in (transactions, change_log, outbox, imports)]
    assert after == before


async def test_overlapping_statement_adds_only_new_rows(container: Container) -> None:
    user = await _user(container)
    data = (FIXTURES / "checking.qfx").read_bytes()
    lines = data.split(b"\n")
    # Drop the newest transaction (the first STMTTRN block) to make an older statement.
    start = next(i for i, line in enumerate(lines) if line.strip() == b"<STMTTRN>")
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == b"</STMTTRN>")
    older = b"\n".join(lines[:start] + lines[end + 1 :])
    first = (await import_statement(container, user.id, "old.qfx", older)).unwrap()
    assert first.transactions_added == 24
    full = (await import_statement(container, user.id, "checking.qfx", data)).unwrap()
    assert full.transactions_added == 1
    assert full.transactions_skipped == 24
    assert await _count(container, transactions) == 25


async def test_failed_import_writes_nothing(container: Container) -> None:
    user = await _user(container)
    data = (FIXTURES / "checking.qfx").read_bytes()
    broken = data.replace(b"<TRNAMT>", b"<TRNAMT>x", 1)
    result = await import_statement(container, user.id, "broken.qfx", broken)
    assert isinstance(result, Err)
    assert isinstance(result.error, StatementParseError)
    doctype = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><OFX></OFX>'
    refused = await import_statement(container, user.id, "evil.ofx", doctype)
    assert isinstance(refused, Err)
    unknown = await import_statement(container, user.id, "notes.txt", b"hello")
    assert isinstance(unknown, Err)
    assert isinstance(unknown.error, ValidationError)
    for table in (transactions, accounts, provider_connections, imports, raw_payloads, outbox):
        assert await _count(container, table) == 0


async def test_archive_keeps_the_file_and_account_argument(container: Container) -> None:
    user = await _user(container)
    qfx = (FIXTURES / "checking.qfx").read_bytes()
    first = (await import_statement(container, user.id, "checking.qfx", qfx)).unwrap()
    async with container.engine.connect() as db:
        (payload_id,) = (await db.execute(select(raw_payloads.c.id))).one()
        stored = await load_raw_payload(db, payload_id)
    assert stored is not None
    assert stored.content == qfx
    assert stored.kind == "statement"
    csv = (FIXTURES / "checking.csv").read_bytes()
    into = (
        await import_statement(container, user.id, "export.csv", csv, account_id=first.accounts[0])
    ).unwrap()
    assert into.accounts == first.accounts
    assert into.transactions_added == 20  # CSV rows have their own natural key
