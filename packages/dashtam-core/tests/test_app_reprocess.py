"""Reprocess from the archive: unchanged mapping writes nothing; a fixed mapping writes exactly
its changes; API providers without ``remap`` are refused."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables_data import change_log, outbox, transactions
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.imports import import_statement
from dashtam_core.application.reprocess import reprocess
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.errors import StatementParseError, ValidationError
from dashtam_core.ports.provider import ParsedStatement, StatementParser
from dashtam_core.result import Err, Ok, Result
from dashtam_core.testing.seeding import sandbox_container, seed_user
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

FIXTURES = Path(__file__).parent / "fixtures" / "chase"


@pytest_asyncio.fixture
async def container(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> AsyncIterator[Container]:
    async with sandbox_container(engine, migrated_url, tmp_path / "k") as c:
        yield c


async def _user(c: Container) -> User:
    async with c.uow_factory() as uow:
        user = await seed_user(uow, email="r@example.com")
        await uow.commit()
    return user


async def _count(c: Container, table: Table) -> int:
    async with c.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


class FixedParser:
    """The Chase parser with a "fixed" mapping: ATM withdrawals get a clean description."""

    def __init__(self, inner: StatementParser) -> None:
        self.inner = inner

    def sniff(self, filename: str, head: bytes) -> bool:
        return self.inner.sniff(filename, head)

    def parse_statement(
        self, data: bytes, filename: str
    ) -> Result[ParsedStatement, StatementParseError]:
        parsed = self.inner.parse_statement(data, filename)
        if isinstance(parsed, Err):
            return parsed
        fixed = [
            dataclasses.replace(t, description="ATM WITHDRAWAL") if str(t.subtype) == "atm" else t
            for t in parsed.value.transactions
        ]
        return Ok(dataclasses.replace(parsed.value, transactions=fixed))


async def test_reprocess_files_unchanged_then_fixed(container: Container) -> None:
    user = await _user(container)
    first = None
    for name in ("checking.qfx", "credit_card.csv"):
        done = (
            await import_statement(container, user.id, name, (FIXTURES / name).read_bytes())
        ).unwrap()
        first = first or done
    assert first is not None
    before = [await _count(container, t) for t in (transactions, change_log, outbox)]
    same = (await reprocess(container, first.connection_id, user_id=user.id)).unwrap()
    assert same.payloads == 2
    assert (same.transactions_added, same.transactions_modified, same.transactions_removed) == (
        0,
        0,
        0,
    )
    assert [await _count(container, t) for t in (transactions, change_log, outbox)] == before

    inner = container.provider("chase")
    assert isinstance(inner, StatementParser)
    atm = sum(
        1
        for t in inner.parse_statement((FIXTURES / "checking.qfx").read_bytes(), "c.qfx")
        .unwrap()
        .transactions
        if str(t.subtype) == "atm"
    )
    assert atm >= 1
    container.set_provider("chase", FixedParser(inner))
    fixed = (await reprocess(container, first.connection_id)).unwrap()
    assert fixed.transactions_modified == atm
    assert fixed.transactions_added == 0
    assert fixed.transactions_removed == 0
    async with container.engine.connect() as db:
        names = (
            (
                await db.execute(
                    select(transactions.c.description).where(transactions.c.subtype == "atm")
                )
            )
            .scalars()
            .all()
        )
    assert set(names) == {"ATM WITHDRAWAL"}
    again = (await reprocess(container, first.connection_id)).unwrap()
    assert again.transactions_modified == 0


async def test_reprocess_refuses_provider_without_remap(container: Container) -> None:
    user = await _user(container)
    conn = (
        await connect_api_key(
            container,
            user.id,
            "alpaca",
            {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY},
        )
    ).unwrap()
    provider = container.provider("alpaca")
    result = await reprocess(container, conn.id)
    if hasattr(provider, "remap"):
        assert isinstance(result, Ok)
    else:
        assert isinstance(result, Err)
        assert isinstance(result.error, ValidationError)
    missing = await reprocess(container, uuid7())
    assert isinstance(missing, Err)
