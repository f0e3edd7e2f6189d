"""Rows and containers for tests that need data in the database first.

The ``seed_*`` helpers add one row each through an open unit of work (the caller commits, so a
user, a connection and an account can go in one transaction); :func:`seed_account_chain` does
all three and commits. :func:`sandbox_container` builds an application container on a migrated
database with the provider simulators served in-process::

    async with SqlAlchemyUnitOfWork(engine) as uow:
        user = await seed_user(uow)
        await uow.commit()
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.container import Container
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import User
from dashtam_core.ports.unit_of_work import UnitOfWork
from dashtam_core.settings import CoreSettings


async def seed_user(
    uow: UnitOfWork,
    *,
    user_id: UUID | None = None,
    email: str | None = None,
    created_at: datetime | None = None,
) -> User:
    """Add a user (unusable password hash ``"x"``; an email derived from the id by default).

    Raises:
        AssertionError: the repository refused the user (for example a duplicate email).
    """
    user_id = user_id or uuid7()
    user = User(
        id=user_id,
        email=email or f"{user_id.hex}@example.com",
        password_hash="x",
        created_at=created_at or datetime.now(UTC),
    )
    (await uow.users.add(user)).unwrap()
    return user


async def seed_connection(
    uow: UnitOfWork,
    user_id: UUID,
    *,
    provider: str = "fake",
    created_at: datetime | None = None,
) -> ProviderConnection:
    """Add an active connection of ``user_id`` to ``provider``."""
    connection = ProviderConnection(
        id=uuid7(),
        user_id=user_id,
        provider=provider,
        status=ConnectionStatus.ACTIVE,
        created_at=created_at or datetime.now(UTC),
    )
    await uow.connections.add(connection)
    return connection


async def seed_account(
    uow: UnitOfWork,
    connection: ProviderConnection,
    *,
    provider_account_id: str = "ACC-1",
    name: str = "Checking",
    type: AccountType = AccountType.CHECKING,
    currency: str = "USD",
    created_at: datetime | None = None,
) -> Account:
    """Add an account under ``connection`` (same user and provider)."""
    account = Account(
        id=uuid7(),
        connection_id=connection.id,
        user_id=connection.user_id,
        provider=connection.provider,
        provider_account_id=provider_account_id,
        name=name,
        type=type,
        currency=currency,
        created_at=created_at or datetime.now(UTC),
    )
    await uow.accounts.add(account)
    return account


async def seed_account_chain(
    engine: AsyncEngine,
    *,
    provider_account_id: str = "ACC-1",
    name: str = "Checking",
    type: AccountType = AccountType.CHECKING,
    created_at: datetime | None = None,
) -> tuple[User, ProviderConnection, Account]:
    """A new user with one ``fake`` connection and one account, committed."""
    async with SqlAlchemyUnitOfWork(engine) as uow:
        user = await seed_user(uow, created_at=created_at)
        connection = await seed_connection(uow, user.id, created_at=created_at)
        account = await seed_account(
            uow,
            connection,
            provider_account_id=provider_account_id,
            name=name,
            type=type,
            created_at=created_at,
        )
        await uow.commit()
    return user, connection, account


@asynccontextmanager
async def sandbox_container(
    engine: AsyncEngine, database_url: str, secret_dir: Path
) -> AsyncIterator[Container]:
    """A container on a migrated database, provider simulators in-process, a fresh vault.

    Args:
        engine: the engine to use (the caller disposes it).
        database_url: the URL of that engine's (already migrated) database.
        secret_dir: where the container's keys live.
    """
    settings = CoreSettings(
        database_url=database_url, sandbox=True, secret_dir=secret_dir, _env_file=None
    )
    container = await Container.create(
        settings,
        engine=engine,
        migrate=False,
        sandbox_transport="asgi",
        vault=CredentialVault.generate(),
    )
    try:
        yield container
    finally:
        await container.aclose()


__all__ = [
    "sandbox_container",
    "seed_account",
    "seed_account_chain",
    "seed_connection",
    "seed_user",
]
