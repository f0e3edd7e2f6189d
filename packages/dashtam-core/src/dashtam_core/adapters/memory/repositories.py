"""In-memory repositories (embedded use and tests) with unit-of-work isolation.

Committed objects live in an :class:`InMemoryStore`; a unit of work sees them plus its own
pending writes, which reach the store only on commit. Objects are deep-copied in and out, so
mutating a returned object changes nothing until ``update`` and commit (as with a database).
Uniqueness and the refresh-token claim are enforced across concurrent units of work through
the store's claims (a stand-in for unique indexes and row locks).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.session import RefreshToken, Session
from dashtam_core.domain.user import User
from dashtam_core.errors import Conflict, EmailTaken
from dashtam_core.result import Err, Ok, Result


class _HasId(Protocol):
    @property
    def id(self) -> UUID: ...


T = TypeVar("T", bound=_HasId)


@dataclass
class InMemoryStore:
    """The committed state shared by every in-memory unit of work of one "database"."""

    users: dict[UUID, User] = field(default_factory=dict)
    sessions: dict[UUID, Session] = field(default_factory=dict)
    refresh_tokens: dict[UUID, RefreshToken] = field(default_factory=dict)
    connections: dict[UUID, ProviderConnection] = field(default_factory=dict)
    accounts: dict[UUID, Account] = field(default_factory=dict)
    claims: dict[Hashable, object] = field(default_factory=dict)

    def claim(self, key: Hashable, owner: object) -> bool:
        """Reserve ``key`` for ``owner``; False if another live owner holds it."""
        holder = self.claims.setdefault(key, owner)
        return holder is owner

    def release(self, owner: object) -> None:
        """Drop every claim held by ``owner`` (at commit or rollback)."""
        for key in [k for k, v in self.claims.items() if v is owner]:
            del self.claims[key]


def _stored(obj: T) -> T:
    """Copy ``obj`` as a database would store it: timestamps aware and in UTC."""
    stored = copy.deepcopy(obj)
    for f in dataclasses.fields(stored):  # type: ignore[arg-type]
        value = getattr(stored, f.name)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise TypeError("timestamps must be timezone-aware datetimes")
            setattr(stored, f.name, value.astimezone(UTC))
    return stored


class InMemoryTable(Generic[T]):
    """Committed rows of one kind plus one unit of work's pending writes."""

    def __init__(self, committed: dict[UUID, T], owner: object, store: InMemoryStore) -> None:
        self.committed = committed
        self.pending: dict[UUID, T] = {}
        self.owner = owner
        self.store = store

    def get(self, row_id: UUID) -> T | None:
        obj = self.pending[row_id] if row_id in self.pending else self.committed.get(row_id)
        return copy.deepcopy(obj) if obj is not None else None

    def rows(self) -> Iterator[T]:
        merged = {**self.committed, **self.pending}
        for key in sorted(merged):
            yield copy.deepcopy(merged[key])

    def find(self, predicate: Callable[[T], bool]) -> list[T]:
        return [row for row in self.rows() if predicate(row)]

    def insert(self, obj: T) -> None:
        if obj.id in self.pending or obj.id in self.committed:
            raise Conflict(f"duplicate id {obj.id}")
        self.pending[obj.id] = _stored(obj)

    def put(self, obj: T) -> None:
        if obj.id not in self.pending and obj.id not in self.committed:
            raise LookupError(f"row {obj.id} does not exist")
        self.pending[obj.id] = _stored(obj)

    def flush(self) -> None:
        self.committed.update(self.pending)
        self.pending.clear()

    def discard(self) -> None:
        self.pending.clear()


class InMemoryUserRepository:
    """:class:`~dashtam_core.ports.repositories.UserRepository` in memory."""

    def __init__(self, table: InMemoryTable[User]) -> None:
        self._t = table

    async def get(self, user_id: UUID) -> User | None:
        """Return the user or None."""
        return self._t.get(user_id)

    async def get_by_email(self, email: str) -> User | None:
        """Return the user with ``email`` or None."""
        found = self._t.find(lambda u: u.email == email)
        return found[0] if found else None

    async def add(self, user: User) -> Result[None, EmailTaken]:
        """Insert ``user``; ``Err(EmailTaken)`` if the email is taken."""
        taken = await self.get_by_email(user.email) is not None
        if taken or not self._t.store.claim(("users.email", user.email), self._t.owner):
            return Err(EmailTaken("this email is already registered"))
        self._t.insert(user)
        return Ok(None)

    async def update(self, user: User) -> None:
        """Store every field of ``user``."""
        self._t.put(user)

    async def list_all(self, *, limit: int = 50, after: UUID | None = None) -> list[User]:
        """Return up to ``limit`` users ordered by id, after ``after``."""
        return self._t.find(lambda u: after is None or u.id > after)[:limit]


class InMemorySessionRepository:
    """:class:`~dashtam_core.ports.repositories.SessionRepository` in memory."""

    def __init__(self, table: InMemoryTable[Session]) -> None:
        self._t = table

    async def get(self, session_id: UUID) -> Session | None:
        """Return the session or None."""
        return self._t.get(session_id)

    async def get_for_user(self, session_id: UUID, user_id: UUID) -> Session | None:
        """Return the session if it belongs to ``user_id``."""
        found = self._t.get(session_id)
        return found if found is not None and found.user_id == user_id else None

    async def add(self, session: Session) -> None:
        """Insert ``session``."""
        self._t.insert(session)

    async def update(self, session: Session) -> None:
        """Store every field of ``session``."""
        self._t.put(session)

    async def list_for_user(self, user_id: UUID, *, active_only: bool = False) -> list[Session]:
        """Return the user's sessions, oldest first."""
        found = self._t.find(
            lambda s: s.user_id == user_id and (not active_only or s.revoked_at is None)
        )
        return sorted(found, key=lambda s: (s.created_at, s.id))

    async def revoke_all_for_user(
        self, user_id: UUID, *, at: datetime, reason: str, except_id: UUID | None = None
    ) -> int:
        """Revoke the user's active sessions (but ``except_id``); return how many."""
        count = 0
        for session in await self.list_for_user(user_id, active_only=True):
            if session.id != except_id:
                session.revoked_at, session.revoked_reason = at, reason
                self._t.put(session)
                count += 1
        return count


class InMemoryRefreshTokenRepository:
    """:class:`~dashtam_core.ports.repositories.RefreshTokenRepository` in memory."""

    def __init__(self, table: InMemoryTable[RefreshToken]) -> None:
        self._t = table

    async def get(self, token_id: UUID) -> RefreshToken | None:
        """Return the token or None."""
        return self._t.get(token_id)

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        """Return the token with ``token_hash`` or None."""
        found = self._t.find(lambda t: t.token_hash == token_hash)
        return found[0] if found else None

    async def add(self, token: RefreshToken) -> None:
        """Insert ``token``."""
        if not self._t.store.claim(("refresh_tokens.hash", token.token_hash), self._t.owner):
            raise Conflict("duplicate refresh token hash")
        if await self.get_by_hash(token.token_hash) is not None:
            raise Conflict("duplicate refresh token hash")
        self._t.insert(token)

    async def update(self, token: RefreshToken) -> None:
        """Store every field of ``token``."""
        self._t.put(token)

    async def mark_used(self, token_id: UUID, *, at: datetime) -> bool:
        """Set ``used_at`` if unused and unrevoked; True for exactly one unit of work."""
        token = self._t.get(token_id)
        if token is None or token.used_at is not None or token.revoked_at is not None:
            return False
        if not self._t.store.claim(("refresh_tokens.used", token_id), self._t.owner):
            return False
        token.used_at = at
        self._t.put(token)
        return True

    async def revoke_for_sessions(self, session_ids: Sequence[UUID], *, at: datetime) -> int:
        """Revoke every unrevoked token of the sessions; return how many."""
        wanted = set(session_ids)
        count = 0
        for token in self._t.find(lambda t: t.session_id in wanted and t.revoked_at is None):
            token.revoked_at = at
            self._t.put(token)
            count += 1
        return count

    async def list_for_session(self, session_id: UUID) -> list[RefreshToken]:
        """Return the session's tokens, oldest first."""
        found = self._t.find(lambda t: t.session_id == session_id)
        return sorted(found, key=lambda t: (t.created_at, t.id))


class InMemoryConnectionRepository:
    """:class:`~dashtam_core.ports.repositories.ConnectionRepository` in memory."""

    def __init__(self, table: InMemoryTable[ProviderConnection]) -> None:
        self._t = table

    async def get(self, connection_id: UUID) -> ProviderConnection | None:
        """Return the connection or None."""
        return self._t.get(connection_id)

    async def get_for_user(self, connection_id: UUID, user_id: UUID) -> ProviderConnection | None:
        """Return the connection if it belongs to ``user_id``."""
        found = self._t.get(connection_id)
        return found if found is not None and found.user_id == user_id else None

    async def add(self, connection: ProviderConnection) -> None:
        """Insert ``connection``."""
        self._t.insert(connection)

    async def update(self, connection: ProviderConnection) -> None:
        """Store every field of ``connection``."""
        self._t.put(connection)

    async def list_for_user(
        self, user_id: UUID, *, provider: str | None = None
    ) -> list[ProviderConnection]:
        """Return the user's connections, oldest first."""
        found = self._t.find(
            lambda c: c.user_id == user_id and (provider is None or c.provider == provider)
        )
        return sorted(found, key=lambda c: (c.created_at, c.id))

    async def list_by_status(
        self, statuses: Sequence[ConnectionStatus], *, limit: int = 500
    ) -> list[ProviderConnection]:
        """Return connections in ``statuses``, never-synced first, then least recently synced."""
        wanted = set(statuses)
        found = self._t.find(lambda c: c.status in wanted)
        found.sort(key=lambda c: (c.last_synced_at is not None, c.last_synced_at or c.created_at))
        return found[:limit]


class InMemoryAccountRepository:
    """:class:`~dashtam_core.ports.repositories.AccountRepository` in memory."""

    def __init__(self, table: InMemoryTable[Account]) -> None:
        self._t = table

    async def get(self, account_id: UUID) -> Account | None:
        """Return the account or None."""
        return self._t.get(account_id)

    async def get_for_user(self, account_id: UUID, user_id: UUID) -> Account | None:
        """Return the account if it belongs to ``user_id``."""
        found = self._t.get(account_id)
        return found if found is not None and found.user_id == user_id else None

    async def get_by_provider_id(
        self, connection_id: UUID, provider_account_id: str
    ) -> Account | None:
        """Return the connection's account with the provider's id, or None."""
        found = self._t.find(
            lambda a: (
                a.connection_id == connection_id and a.provider_account_id == provider_account_id
            )
        )
        return found[0] if found else None

    async def add(self, account: Account) -> None:
        """Insert ``account``; :class:`Conflict` if the provider id is already known."""
        key = ("accounts.provider_id", account.connection_id, account.provider_account_id)
        existing = await self.get_by_provider_id(account.connection_id, account.provider_account_id)
        if existing is not None or not self._t.store.claim(key, self._t.owner):
            raise Conflict("account already exists for this connection")
        self._t.insert(account)

    async def update(self, account: Account) -> None:
        """Store every field of ``account``."""
        self._t.put(account)

    async def list_for_user(
        self,
        user_id: UUID,
        *,
        connection_id: UUID | None = None,
        type: AccountType | None = None,
    ) -> list[Account]:
        """Return the user's accounts ordered by id."""
        return self._t.find(
            lambda a: (
                a.user_id == user_id
                and (connection_id is None or a.connection_id == connection_id)
                and (type is None or a.type == type)
            )
        )

    async def list_for_connection(self, connection_id: UUID) -> list[Account]:
        """Return a connection's accounts ordered by id."""
        return self._t.find(lambda a: a.connection_id == connection_id)


__all__ = [
    "InMemoryAccountRepository",
    "InMemoryConnectionRepository",
    "InMemoryRefreshTokenRepository",
    "InMemorySessionRepository",
    "InMemoryStore",
    "InMemoryTable",
    "InMemoryUserRepository",
]
