"""Statement imports racing each other (two uploads at once, two ``dashtam import`` runs):
the result must equal importing the files one after the other (SQLite and PostgreSQL).

Sequentially, a user's Chase files share one file connection, each statement account exists
once, and overlapping statements add only what is new. Run at once (separate database
connections from one pool, so PostgreSQL really interleaves them) they must not create a second
file connection, a second copy of an account, or fail with a database error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.tables import accounts, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.application.container import Container
from dashtam_core.application.imports import import_statement
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.settings import CoreSettings

FIXTURES = Path(__file__).parent / "robust_support" / "fixtures" / "chase"
ROUNDS = 3  # fresh users per test: each round is a new race


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


async def _user(c: Container) -> UUID:
    user = User(
        id=uuid7(),
        email=f"{uuid7().hex}@example.com",
        password_hash="x",
        created_at=datetime.now(UTC),
    )
    async with c.uow_factory() as uow:
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return user.id


async def _shape(c: Container, user_id: UUID) -> tuple[int, int, int, int]:
    """(file connections, accounts, distinct account numbers, live transactions) of a user."""
    a, t = accounts, transactions
    async with c.engine.connect() as db:
        conns = (
            await db.execute(select(func.count()).where(provider_connections.c.user_id == user_id))
        ).scalar_one()
        accs = (
            await db.execute(
                select(func.count(), func.count(a.c.provider_account_id.distinct())).where(
                    a.c.user_id == user_id
                )
            )
        ).one()
        live = (
            await db.execute(
                select(func.count())
                .select_from(t.join(a, a.c.id == t.c.account_id))
                .where(a.c.user_id == user_id, t.c.removed_at.is_(None))
            )
        ).scalar_one()
    return int(conns), int(accs[0]), int(accs[1]), int(live)


async def test_four_statements_at_once_share_one_connection(container: Container) -> None:
    files = {p.name: p.read_bytes() for p in sorted(FIXTURES.iterdir())}
    for _ in range(ROUNDS):
        user_id = await _user(container)
        results = await asyncio.gather(
            *(import_statement(container, user_id, n, d) for n, d in files.items()),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        assert len({r.unwrap().connection_id for r in results}) == 1  # type: ignore[union-attr]
        assert await _shape(container, user_id) == (1, 4, 4, 80)


async def test_overlapping_statements_at_once_add_each_row_once(container: Container) -> None:
    data = (FIXTURES / "checking.qfx").read_bytes()
    later = data.replace(b"<DTSERVER>20250430120000", b"<DTSERVER>20250501093000", 1)
    assert later != data
    for _ in range(ROUNDS):
        user_id = await _user(container)
        results = await asyncio.gather(
            import_statement(container, user_id, "checking.qfx", data),
            import_statement(container, user_id, "checking-again.qfx", later),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        added = sorted(r.unwrap().transactions_added for r in results)  # type: ignore[union-attr]
        assert added == [0, 25]
        assert await _shape(container, user_id) == (1, 1, 1, 25)


async def test_new_account_in_existing_connection_at_once(container: Container) -> None:
    card = (FIXTURES / "credit_card.qfx").read_bytes()
    data = (FIXTURES / "checking.qfx").read_bytes()
    later = data.replace(b"<DTSERVER>20250430120000", b"<DTSERVER>20250501093000", 1)
    for _ in range(ROUNDS):
        user_id = await _user(container)
        (await import_statement(container, user_id, "credit_card.qfx", card)).unwrap()
        results = await asyncio.gather(
            import_statement(container, user_id, "checking.qfx", data),
            import_statement(container, user_id, "checking-again.qfx", later),
            return_exceptions=True,
        )
        errors = [repr(r)[:300] for r in results if isinstance(r, BaseException)]
        assert errors == []
        added = sorted(r.unwrap().transactions_added for r in results)  # type: ignore[union-attr]
        assert added == [0, 25]
        assert await _shape(container, user_id) == (1, 2, 2, 40)
