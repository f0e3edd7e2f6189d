"""SQLAlchemy Core repositories on one :class:`~sqlalchemy.ext.asyncio.AsyncConnection`.

Each repository runs inside the transaction of the unit of work that owns the connection; none
of them commits. Rows are mapped explicitly by :mod:`.mapping`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy import mapping
from dashtam_core.adapters.sqlalchemy.tables import (
    accounts,
    provider_connections,
    refresh_tokens,
    sessions,
    users,
)
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.session import RefreshToken, Session
from dashtam_core.domain.user import User
from dashtam_core.errors import EmailTaken
from dashtam_core.result import Err, Ok, Result


def is_unique_violation(error: IntegrityError) -> bool:
    """Return True when ``error`` is a unique-constraint violation (not e.g. a foreign key).

    Args:
        error: the error raised by an INSERT or UPDATE.
    """
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate is not None:
        return str(sqlstate) == "23505"
    return "UNIQUE constraint failed" in str(orig)


async def _update_by_id(conn: AsyncConnection, table: Table, values: dict[str, Any]) -> None:
    row_id = values.pop("id")
    result = await conn.execute(update(table).where(table.c.id == row_id).values(**values))
    if result.rowcount != 1:
        raise LookupError(f"{table.name} row {row_id} does not exist")


class SqlAlchemyUserRepository:
    """:class:`~dashtam_core.ports.repositories.UserRepository` on SQLAlchemy."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, user_id: UUID) -> User | None:
        """Return the user with ``user_id`` or None."""
        row = (await self._conn.execute(select(users).where(users.c.id == user_id))).first()
        return mapping.user_from_row(row._mapping) if row else None

    async def get_by_email(self, email: str) -> User | None:
        """Return the user with ``email`` or None."""
        row = (await self._conn.execute(select(users).where(users.c.email == email))).first()
        return mapping.user_from_row(row._mapping) if row else None

    async def add(self, user: User) -> Result[None, EmailTaken]:
        """Insert ``user`` in a savepoint; ``Err(EmailTaken)`` if the email exists."""
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(insert(users).values(**mapping.user_to_row(user)))
        except IntegrityError as exc:
            if is_unique_violation(exc):
                return Err(EmailTaken("this email is already registered"))
            raise
        return Ok(None)

    async def update(self, user: User) -> None:
        """Store every field of ``user``."""
        await _update_by_id(self._conn, users, mapping.user_to_row(user))

    async def list_all(self, *, limit: int = 50, after: UUID | None = None) -> list[User]:
        """Return up to ``limit`` users ordered by id, after ``after``."""
        stmt = select(users).order_by(users.c.id).limit(limit)
        if after is not None:
            stmt = stmt.where(users.c.id > after)
        rows = await self._conn.execute(stmt)
        return [mapping.user_from_row(r._mapping) for r in rows]


class SqlAlchemySessionRepository:
    """:class:`~dashtam_core.ports.repositories.SessionRepository` on SQLAlchemy."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, session_id: UUID) -> Session | None:
        """Return the session or None."""
        stmt = select(sessions).where(sessions.c.id == session_id)
        row = (await self._conn.execute(stmt)).first()
        return mapping.session_from_row(row._mapping) if row else None

    async def get_for_user(self, session_id: UUID, user_id: UUID) -> Session | None:
        """Return the session if it belongs to ``user_id``."""
        stmt = select(sessions).where(sessions.c.id == session_id, sessions.c.user_id == user_id)
        row = (await self._conn.execute(stmt)).first()
        return mapping.session_from_row(row._mapping) if row else None

    async def add(self, session: Session) -> None:
        """Insert ``session``."""
        await self._conn.execute(insert(sessions).values(**mapping.session_to_row(session)))

    async def update(self, session: Session) -> None:
        """Store every field of ``session``."""
        await _update_by_id(self._conn, sessions, mapping.session_to_row(session))

    async def list_for_user(self, user_id: UUID, *, active_only: bool = False) -> list[Session]:
        """Return the user's sessions, oldest first."""
        stmt = select(sessions).where(sessions.c.user_id == user_id)
        if active_only:
            stmt = stmt.where(sessions.c.revoked_at.is_(None))
        rows = await self._conn.execute(stmt.order_by(sessions.c.created_at, sessions.c.id))
        return [mapping.session_from_row(r._mapping) for r in rows]

    async def revoke_all_for_user(
        self, user_id: UUID, *, at: datetime, reason: str, except_id: UUID | None = None
    ) -> int:
        """Revoke the user's active sessions (but ``except_id``); return how many."""
        stmt = (
            update(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at, revoked_reason=reason)
        )
        if except_id is not None:
            stmt = stmt.where(sessions.c.id != except_id)
        return int((await self._conn.execute(stmt)).rowcount)


class SqlAlchemyRefreshTokenRepository:
    """:class:`~dashtam_core.ports.repositories.RefreshTokenRepository` on SQLAlchemy."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, token_id: UUID) -> RefreshToken | None:
        """Return the token or None."""
        stmt = select(refresh_tokens).where(refresh_tokens.c.id == token_id)
        row = (await self._conn.execute(stmt)).first()
        return mapping.refresh_token_from_row(row._mapping) if row else None

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        """Return the token whose HMAC is ``token_hash`` or None."""
        stmt = select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
        row = (await self._conn.execute(stmt)).first()
        return mapping.refresh_token_from_row(row._mapping) if row else None

    async def add(self, token: RefreshToken) -> None:
        """Insert ``token``."""
        values = mapping.refresh_token_to_row(token)
        await self._conn.execute(insert(refresh_tokens).values(**values))

    async def update(self, token: RefreshToken) -> None:
        """Store every field of ``token``."""
        await _update_by_id(self._conn, refresh_tokens, mapping.refresh_token_to_row(token))

    async def mark_used(self, token_id: UUID, *, at: datetime) -> bool:
        """Set ``used_at`` if unused and unrevoked (one conditional UPDATE); True if it won."""
        stmt = (
            update(refresh_tokens)
            .where(
                refresh_tokens.c.id == token_id,
                refresh_tokens.c.used_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(used_at=at)
        )
        return (await self._conn.execute(stmt)).rowcount == 1

    async def revoke_for_sessions(self, session_ids: Sequence[UUID], *, at: datetime) -> int:
        """Revoke every unrevoked token of the sessions; return how many."""
        if not session_ids:
            return 0
        stmt = (
            update(refresh_tokens)
            .where(
                refresh_tokens.c.session_id.in_(list(session_ids)),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        return int((await self._conn.execute(stmt)).rowcount)

    async def list_for_session(self, session_id: UUID) -> list[RefreshToken]:
        """Return the session's tokens, oldest first."""
        stmt = (
            select(refresh_tokens)
            .where(refresh_tokens.c.session_id == session_id)
            .order_by(refresh_tokens.c.created_at, refresh_tokens.c.id)
        )
        return [mapping.refresh_token_from_row(r._mapping) for r in await self._conn.execute(stmt)]


class SqlAlchemyConnectionRepository:
    """:class:`~dashtam_core.ports.repositories.ConnectionRepository` on SQLAlchemy."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, connection_id: UUID) -> ProviderConnection | None:
        """Return the connection or None."""
        stmt = select(provider_connections).where(provider_connections.c.id == connection_id)
        row = (await self._conn.execute(stmt)).first()
        return mapping.connection_from_row(row._mapping) if row else None

    async def get_for_user(self, connection_id: UUID, user_id: UUID) -> ProviderConnection | None:
        """Return the connection if it belongs to ``user_id``."""
        stmt = select(provider_connections).where(
            provider_connections.c.id == connection_id,
            provider_connections.c.user_id == user_id,
        )
        row = (await self._conn.execute(stmt)).first()
        return mapping.connection_from_row(row._mapping) if row else None

    async def add(self, connection: ProviderConnection) -> None:
        """Insert ``connection``."""
        values = mapping.connection_to_row(connection)
        await self._conn.execute(insert(provider_connections).values(**values))

    async def update(self, connection: ProviderConnection) -> None:
        """Store every field of ``connection``."""
        await _update_by_id(self._conn, provider_connections, mapping.connection_to_row(connection))

    async def list_for_user(
        self, user_id: UUID, *, provider: str | None = None
    ) -> list[ProviderConnection]:
        """Return the user's connections, oldest first."""
        stmt = select(provider_connections).where(provider_connections.c.user_id == user_id)
        if provider is not None:
            stmt = stmt.where(provider_connections.c.provider == provider)
        stmt = stmt.order_by(provider_connections.c.created_at, provider_connections.c.id)
        return [mapping.connection_from_row(r._mapping) for r in await self._conn.execute(stmt)]

    async def list_by_status(
        self, statuses: Sequence[ConnectionStatus], *, limit: int = 500
    ) -> list[ProviderConnection]:
        """Return connections in ``statuses``, never-synced first, then least recently synced."""
        pc = provider_connections
        stmt = (
            select(pc)
            .where(pc.c.status.in_([s.value for s in statuses]))
            .order_by(pc.c.last_synced_at.is_not(None), pc.c.last_synced_at, pc.c.id)
            .limit(limit)
        )
        return [mapping.connection_from_row(r._mapping) for r in await self._conn.execute(stmt)]


class SqlAlchemyAccountRepository:
    """:class:`~dashtam_core.ports.repositories.AccountRepository` on SQLAlchemy."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._conn = connection

    async def get(self, account_id: UUID) -> Account | None:
        """Return the account or None."""
        stmt = select(accounts).where(accounts.c.id == account_id)
        row = (await self._conn.execute(stmt)).first()
        return mapping.account_from_row(row._mapping) if row else None

    async def get_for_user(self, account_id: UUID, user_id: UUID) -> Account | None:
        """Return the account if it belongs to ``user_id``."""
        stmt = select(accounts).where(accounts.c.id == account_id, accounts.c.user_id == user_id)
        row = (await self._conn.execute(stmt)).first()
        return mapping.account_from_row(row._mapping) if row else None

    async def get_by_provider_id(
        self, connection_id: UUID, provider_account_id: str
    ) -> Account | None:
        """Return the connection's account with the provider's id, or None."""
        stmt = select(accounts).where(
            accounts.c.connection_id == connection_id,
            accounts.c.provider_account_id == provider_account_id,
        )
        row = (await self._conn.execute(stmt)).first()
        return mapping.account_from_row(row._mapping) if row else None

    async def add(self, account: Account) -> None:
        """Insert ``account``."""
        await self._conn.execute(insert(accounts).values(**mapping.account_to_row(account)))

    async def update(self, account: Account) -> None:
        """Store every field of ``account``."""
        await _update_by_id(self._conn, accounts, mapping.account_to_row(account))

    async def list_for_user(
        self,
        user_id: UUID,
        *,
        connection_id: UUID | None = None,
        type: AccountType | None = None,
    ) -> list[Account]:
        """Return the user's accounts ordered by id."""
        stmt = select(accounts).where(accounts.c.user_id == user_id)
        if connection_id is not None:
            stmt = stmt.where(accounts.c.connection_id == connection_id)
        if type is not None:
            stmt = stmt.where(accounts.c.type == type.value)
        rows = await self._conn.execute(stmt.order_by(accounts.c.id))
        return [mapping.account_from_row(r._mapping) for r in rows]

    async def list_for_connection(self, connection_id: UUID) -> list[Account]:
        """Return a connection's accounts ordered by id."""
        stmt = (
            select(accounts)
            .where(accounts.c.connection_id == connection_id)
            .order_by(accounts.c.id)
        )
        return [mapping.account_from_row(r._mapping) for r in await self._conn.execute(stmt)]


__all__ = [
    "SqlAlchemyAccountRepository",
    "SqlAlchemyConnectionRepository",
    "SqlAlchemyRefreshTokenRepository",
    "SqlAlchemySessionRepository",
    "SqlAlchemyUserRepository",
    "is_unique_violation",
]
