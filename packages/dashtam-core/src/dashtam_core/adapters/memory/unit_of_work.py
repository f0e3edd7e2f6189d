"""The in-memory unit of work: pending writes reach the shared store only on commit."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from dashtam_core.adapters.memory.repositories import (
    InMemoryAccountRepository,
    InMemoryConnectionRepository,
    InMemoryRefreshTokenRepository,
    InMemorySessionRepository,
    InMemoryStore,
    InMemoryTable,
    InMemoryUserRepository,
)
from dashtam_core.domain.account import Account
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.events import DomainEvent
from dashtam_core.domain.session import RefreshToken, Session
from dashtam_core.domain.user import User
from dashtam_core.ports.unit_of_work import UnitOfWorkFactory


class InMemoryUnitOfWork:
    """:class:`~dashtam_core.ports.unit_of_work.UnitOfWork` over an :class:`InMemoryStore`.

    Args:
        store: the committed state (share one store between units of work).
    """

    users: InMemoryUserRepository
    sessions: InMemorySessionRepository
    refresh_tokens: InMemoryRefreshTokenRepository
    connections: InMemoryConnectionRepository
    accounts: InMemoryAccountRepository

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self._active = False
        self._tables: list[
            InMemoryTable[User]
            | InMemoryTable[Session]
            | InMemoryTable[RefreshToken]
            | InMemoryTable[ProviderConnection]
            | InMemoryTable[Account]
        ] = []
        self._pending: list[DomainEvent] = []
        self._committed: list[DomainEvent] = []

    async def __aenter__(self) -> Self:
        """Start collecting pending writes."""
        if self._active:
            raise RuntimeError("a unit of work cannot be entered twice")
        self._active = True
        users = InMemoryTable(self.store.users, self, self.store)
        sessions = InMemoryTable(self.store.sessions, self, self.store)
        tokens = InMemoryTable(self.store.refresh_tokens, self, self.store)
        connections = InMemoryTable(self.store.connections, self, self.store)
        accounts = InMemoryTable(self.store.accounts, self, self.store)
        self._tables = [users, sessions, tokens, connections, accounts]
        self.users = InMemoryUserRepository(users)
        self.sessions = InMemorySessionRepository(sessions)
        self.refresh_tokens = InMemoryRefreshTokenRepository(tokens)
        self.connections = InMemoryConnectionRepository(connections)
        self.accounts = InMemoryAccountRepository(accounts)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Discard whatever was not committed."""
        if self._active:
            await self.rollback()
        self._active = False

    def _check_active(self) -> None:
        if not self._active:
            raise RuntimeError("the unit of work is not active; use `async with`")

    async def commit(self) -> None:
        """Publish the pending writes to the store."""
        self._check_active()
        for table in self._tables:
            table.flush()
        self.store.release(self)
        self._committed.extend(self._pending)
        self._pending.clear()

    async def rollback(self) -> None:
        """Drop the pending writes and their events."""
        self._check_active()
        for table in self._tables:
            table.discard()
        self.store.release(self)
        self._pending.clear()

    def add_event(self, event: DomainEvent) -> None:
        """Record ``event`` for publication after commit."""
        self._pending.append(event)

    def collect_new_events(self) -> list[DomainEvent]:
        """Return and forget the events of committed work."""
        events, self._committed = self._committed, []
        return events


class InMemoryUnitOfWorkFactory:
    """Makes :class:`InMemoryUnitOfWork` objects sharing one store.

    Args:
        store: the shared state (a fresh empty store by default).
    """

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store if store is not None else InMemoryStore()

    def __call__(self) -> InMemoryUnitOfWork:
        """Return a new unit of work on the shared store."""
        return InMemoryUnitOfWork(self.store)


if TYPE_CHECKING:  # mypy proves the adapters satisfy the ports

    def _conforms(store: InMemoryStore) -> UnitOfWorkFactory:
        return InMemoryUnitOfWorkFactory(store)


__all__ = ["InMemoryUnitOfWork", "InMemoryUnitOfWorkFactory"]
