"""The SQLAlchemy unit of work: one :class:`AsyncConnection`, one transaction at a time."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dashtam_core.adapters.sqlalchemy.repositories import (
    SqlAlchemyAccountRepository,
    SqlAlchemyConnectionRepository,
    SqlAlchemyRefreshTokenRepository,
    SqlAlchemySessionRepository,
    SqlAlchemyUserRepository,
)
from dashtam_core.domain.events import DomainEvent
from dashtam_core.ports.unit_of_work import UnitOfWorkFactory


class SqlAlchemyUnitOfWork:
    """:class:`~dashtam_core.ports.unit_of_work.UnitOfWork` on an :class:`AsyncEngine`.

    Entering checks a connection out of the pool and begins a transaction; ``connection`` is
    available to modules that write set-based SQL in the same transaction (the sync engine).
    Leaving rolls back anything not committed and returns the connection.

    Args:
        engine: the engine from :func:`~dashtam_core.adapters.sqlalchemy.engine.create_engine`.
    """

    users: SqlAlchemyUserRepository
    sessions: SqlAlchemySessionRepository
    refresh_tokens: SqlAlchemyRefreshTokenRepository
    connections: SqlAlchemyConnectionRepository
    accounts: SqlAlchemyAccountRepository

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._pending: list[DomainEvent] = []
        self._committed: list[DomainEvent] = []

    @property
    def connection(self) -> AsyncConnection:
        """The connection of the open transaction (only inside ``async with``)."""
        if self._connection is None:
            raise RuntimeError("the unit of work is not active; use `async with`")
        return self._connection

    async def __aenter__(self) -> Self:
        """Check out a connection and begin the transaction."""
        if self._connection is not None:
            raise RuntimeError("a unit of work cannot be entered twice")
        conn = await self._engine.connect()
        try:
            await conn.begin()
        except BaseException:
            await conn.close()
            raise
        self._connection = conn
        self.users = SqlAlchemyUserRepository(conn)
        self.sessions = SqlAlchemySessionRepository(conn)
        self.refresh_tokens = SqlAlchemyRefreshTokenRepository(conn)
        self.connections = SqlAlchemyConnectionRepository(conn)
        self.accounts = SqlAlchemyAccountRepository(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back uncommitted work and release the connection."""
        conn = self._connection
        self._connection = None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                await conn.rollback()
            self._pending.clear()
        finally:
            await conn.close()

    async def commit(self) -> None:
        """Commit the transaction; the next statement begins a new one."""
        await self.connection.commit()
        self._committed.extend(self._pending)
        self._pending.clear()

    async def rollback(self) -> None:
        """Roll back the transaction and drop its events."""
        await self.connection.rollback()
        self._pending.clear()

    def add_event(self, event: DomainEvent) -> None:
        """Record ``event`` for publication after commit."""
        self._pending.append(event)

    def collect_new_events(self) -> list[DomainEvent]:
        """Return and forget the events of committed work."""
        events, self._committed = self._committed, []
        return events


class SqlAlchemyUnitOfWorkFactory:
    """Makes a :class:`SqlAlchemyUnitOfWork` per call on one engine.

    Args:
        engine: the shared engine (owned by the caller, who disposes it).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlAlchemyUnitOfWork:
        """Return a new unit of work."""
        return SqlAlchemyUnitOfWork(self.engine)


if TYPE_CHECKING:  # mypy proves the adapters satisfy the ports

    def _conforms(engine: AsyncEngine) -> UnitOfWorkFactory:
        return SqlAlchemyUnitOfWorkFactory(engine)


__all__ = ["SqlAlchemyUnitOfWork", "SqlAlchemyUnitOfWorkFactory"]
