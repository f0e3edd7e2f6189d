"""The unit of work port: one transaction, its repositories and the events it raised.

Usage::

    async with uow_factory() as uow:
        user = await uow.users.get(user_id)
        ...
        await uow.users.update(user)
        uow.add_event(EmailVerified(user_id=user.id))
        await uow.commit()
    await bus.publish(*uow.collect_new_events())

Leaving the block without :meth:`UnitOfWork.commit` (or with an exception) rolls back: nothing
is persisted. Events added before a rollback are dropped; :meth:`UnitOfWork.collect_new_events`
returns only the events of committed work. Modules that need set-based SQL use the SQLAlchemy
implementation's ``connection`` attribute
(:class:`~dashtam_core.adapters.sqlalchemy.unit_of_work.SqlAlchemyUnitOfWork`).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from dashtam_core.domain.events import DomainEvent
from dashtam_core.ports.repositories import (
    AccountRepository,
    ConnectionRepository,
    RefreshTokenRepository,
    SessionRepository,
    UserRepository,
)


@runtime_checkable
class UnitOfWork(Protocol):
    """One atomic piece of work over the repositories."""

    @property
    def users(self) -> UserRepository:
        """The users of this transaction."""
        ...

    @property
    def sessions(self) -> SessionRepository:
        """The login sessions of this transaction."""
        ...

    @property
    def refresh_tokens(self) -> RefreshTokenRepository:
        """The refresh tokens of this transaction."""
        ...

    @property
    def connections(self) -> ConnectionRepository:
        """The provider connections of this transaction."""
        ...

    @property
    def accounts(self) -> AccountRepository:
        """The accounts of this transaction."""
        ...

    async def __aenter__(self) -> Self:
        """Begin the transaction."""
        ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed and release the connection."""
        ...

    async def commit(self) -> None:
        """Persist the work so far; later work starts a new transaction."""
        ...

    async def rollback(self) -> None:
        """Discard the work since the last commit (and its events)."""
        ...

    def add_event(self, event: DomainEvent) -> None:
        """Record an event to publish once the work commits."""
        ...

    def collect_new_events(self) -> list[DomainEvent]:
        """Return and forget the events of committed work, in the order they were added."""
        ...


@runtime_checkable
class UnitOfWorkFactory(Protocol):
    """Makes a fresh :class:`UnitOfWork` per call."""

    def __call__(self) -> UnitOfWork:
        """Return a new, not yet entered unit of work."""
        ...


__all__ = ["UnitOfWork", "UnitOfWorkFactory"]
