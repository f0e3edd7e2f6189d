"""Repository ports: load and store aggregates inside a unit of work.

Repositories return fresh domain objects: mutating one changes nothing until it is passed to
``update`` and the unit of work commits. ``get_for_user`` returns ``None`` for another user's
object, exactly as for a missing one (object-level authorization, a 404 at the API).
Implementations: ``dashtam_core.adapters.sqlalchemy.repositories`` (SQLAlchemy) and
``dashtam_core.adapters.memory.repositories`` (in memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.session import RefreshToken, Session
from dashtam_core.domain.user import User
from dashtam_core.errors import EmailTaken
from dashtam_core.result import Result


@runtime_checkable
class UserRepository(Protocol):
    """Users. Emails are compared exactly: callers normalize them (lower-case) first."""

    async def get(self, user_id: UUID) -> User | None:
        """Return the user with ``user_id`` or None."""
        ...

    async def get_by_email(self, email: str) -> User | None:
        """Return the user with ``email`` or None."""
        ...

    async def add(self, user: User) -> Result[None, EmailTaken]:
        """Insert ``user``; ``Err(EmailTaken)`` if the email is already registered."""
        ...

    async def update(self, user: User) -> None:
        """Store every field of ``user`` (matched by id)."""
        ...

    async def list_all(self, *, limit: int = 50, after: UUID | None = None) -> list[User]:
        """Return up to ``limit`` users ordered by id, starting after ``after`` (keyset)."""
        ...


@runtime_checkable
class SessionRepository(Protocol):
    """Login sessions."""

    async def get(self, session_id: UUID) -> Session | None:
        """Return the session or None."""
        ...

    async def get_for_user(self, session_id: UUID, user_id: UUID) -> Session | None:
        """Return the session if it belongs to ``user_id``, else None."""
        ...

    async def add(self, session: Session) -> None:
        """Insert ``session``."""
        ...

    async def update(self, session: Session) -> None:
        """Store every field of ``session`` (matched by id)."""
        ...

    async def list_for_user(self, user_id: UUID, *, active_only: bool = False) -> list[Session]:
        """Return the user's sessions, oldest first (only unrevoked ones if ``active_only``)."""
        ...

    async def revoke_all_for_user(
        self, user_id: UUID, *, at: datetime, reason: str, except_id: UUID | None = None
    ) -> int:
        """Revoke every active session of ``user_id`` (but ``except_id``); return how many."""
        ...


@runtime_checkable
class RefreshTokenRepository(Protocol):
    """Refresh tokens, stored only as their HMAC."""

    async def get(self, token_id: UUID) -> RefreshToken | None:
        """Return the token or None."""
        ...

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        """Return the token whose HMAC is ``token_hash`` or None."""
        ...

    async def add(self, token: RefreshToken) -> None:
        """Insert ``token``."""
        ...

    async def update(self, token: RefreshToken) -> None:
        """Store every field of ``token`` (matched by id)."""
        ...

    async def mark_used(self, token_id: UUID, *, at: datetime) -> bool:
        """Atomically set ``used_at`` if the token is unused and unrevoked.

        Returns:
            True for exactly one caller per token (the winner of a rotation race).
        """
        ...

    async def revoke_for_sessions(self, session_ids: Sequence[UUID], *, at: datetime) -> int:
        """Revoke every unrevoked token of the given sessions; return how many."""
        ...

    async def list_for_session(self, session_id: UUID) -> list[RefreshToken]:
        """Return the session's tokens, oldest first."""
        ...


@runtime_checkable
class ConnectionRepository(Protocol):
    """Provider connections."""

    async def get(self, connection_id: UUID) -> ProviderConnection | None:
        """Return the connection or None."""
        ...

    async def get_for_user(self, connection_id: UUID, user_id: UUID) -> ProviderConnection | None:
        """Return the connection if it belongs to ``user_id``, else None."""
        ...

    async def add(self, connection: ProviderConnection) -> None:
        """Insert ``connection``."""
        ...

    async def update(self, connection: ProviderConnection) -> None:
        """Store every field of ``connection`` (matched by id)."""
        ...

    async def list_for_user(
        self, user_id: UUID, *, provider: str | None = None
    ) -> list[ProviderConnection]:
        """Return the user's connections, oldest first, optionally for one provider."""
        ...

    async def list_by_status(
        self, statuses: Sequence[ConnectionStatus], *, limit: int = 500
    ) -> list[ProviderConnection]:
        """Return connections in any of ``statuses``, least recently synced first (scheduler)."""
        ...


@runtime_checkable
class AccountRepository(Protocol):
    """Accounts at providers."""

    async def get(self, account_id: UUID) -> Account | None:
        """Return the account or None."""
        ...

    async def get_for_user(self, account_id: UUID, user_id: UUID) -> Account | None:
        """Return the account if it belongs to ``user_id``, else None."""
        ...

    async def get_by_provider_id(
        self, connection_id: UUID, provider_account_id: str
    ) -> Account | None:
        """Return the account a connection knows by the provider's id, or None."""
        ...

    async def add(self, account: Account) -> None:
        """Insert ``account`` (``(connection_id, provider_account_id)`` is unique)."""
        ...

    async def update(self, account: Account) -> None:
        """Store every field of ``account`` (matched by id)."""
        ...

    async def list_for_user(
        self,
        user_id: UUID,
        *,
        connection_id: UUID | None = None,
        type: AccountType | None = None,
    ) -> list[Account]:
        """Return the user's accounts ordered by id, optionally filtered."""
        ...

    async def list_for_connection(self, connection_id: UUID) -> list[Account]:
        """Return a connection's accounts ordered by id."""
        ...


__all__ = [
    "AccountRepository",
    "ConnectionRepository",
    "RefreshTokenRepository",
    "SessionRepository",
    "UserRepository",
]
