"""Domain events: immutable facts, named in the past tense.

Every event class must be registered in :mod:`dashtam_core.registries.events` with its
category, audit action and handlers; a test fails when one is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from dashtam_core.domain.ids import uuid7


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base event. ``user_id`` scopes fan-out (SSE) to the owner."""

    event_id: UUID = field(default_factory=uuid7)
    occurred_at: datetime = field(default_factory=_now)
    user_id: UUID | None = None

    @property
    def name(self) -> str:
        """The event's class name (its wire name)."""
        return type(self).__name__


# Identity ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UserRegistered(DomainEvent):
    """A user registered."""

    email: str


@dataclass(frozen=True, kw_only=True)
class EmailVerified(DomainEvent):
    """A user verified their email."""


@dataclass(frozen=True, kw_only=True)
class UserLoggedIn(DomainEvent):
    """A login succeeded and opened a session."""

    session_id: UUID


@dataclass(frozen=True, kw_only=True)
class LoginFailed(DomainEvent):
    """A login failed (unknown email or wrong password: ``user_id`` may be None)."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class PasswordChanged(DomainEvent):
    """A password was changed or reset."""

    via_reset: bool = False


@dataclass(frozen=True, kw_only=True)
class SessionRevoked(DomainEvent):
    """A session was revoked."""

    session_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class RolesChanged(DomainEvent):
    """An admin changed a user's roles."""

    roles: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AccountLocked(DomainEvent):
    """A user account was locked (by failures or by an admin)."""

    reason: str


@dataclass(frozen=True, kw_only=True)
class AccountUnlocked(DomainEvent):
    """A user account was unlocked."""


# Connections and sync ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConnectionCreated(DomainEvent):
    """A provider connection was created."""

    connection_id: UUID
    provider: str


@dataclass(frozen=True, kw_only=True)
class ConnectionStatusChanged(DomainEvent):
    """A connection moved between states."""

    connection_id: UUID
    old_status: str
    new_status: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConnectionDisconnected(DomainEvent):
    """A connection was disconnected; its credentials were destroyed, its data kept."""

    connection_id: UUID


@dataclass(frozen=True, kw_only=True)
class CredentialsRefreshed(DomainEvent):
    """A connection's provider tokens were refreshed."""

    connection_id: UUID


@dataclass(frozen=True, kw_only=True)
class ConnectionExpiring(DomainEvent):
    """A connection's authorization dies soon (Schwab: 7 days after login)."""

    connection_id: UUID
    expires_at: datetime


@dataclass(frozen=True, kw_only=True)
class SyncStarted(DomainEvent):
    """A sync of a connection started."""

    sync_id: UUID
    connection_id: UUID


@dataclass(frozen=True, kw_only=True)
class SyncProgressed(DomainEvent):
    """A sync finished one stage or page."""

    sync_id: UUID
    connection_id: UUID
    stage: str
    done: int
    total: int | None = None


@dataclass(frozen=True, kw_only=True)
class SyncFinished(DomainEvent):
    """A sync ended (``succeeded`` or ``failed``)."""

    sync_id: UUID
    connection_id: UUID
    status: str
    transactions_added: int = 0
    transactions_modified: int = 0
    transactions_removed: int = 0
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TransactionsChanged(DomainEvent):
    """Transactions of an account were added, modified or removed in one unit of work."""

    account_id: UUID
    added: int
    modified: int
    removed: int


@dataclass(frozen=True, kw_only=True)
class PendingTransactionPosted(DomainEvent):
    """A posted transaction settled a pending one (lineage recorded)."""

    account_id: UUID
    pending_transaction_id: UUID
    posted_transaction_id: UUID
    reason: str


@dataclass(frozen=True, kw_only=True)
class HoldingsSnapshotted(DomainEvent):
    """An account's positions were replaced by a new snapshot."""

    account_id: UUID
    open_positions: int
    closed_positions: int


@dataclass(frozen=True, kw_only=True)
class StatementImported(DomainEvent):
    """A statement file was imported."""

    import_id: UUID
    connection_id: UUID
    transactions_added: int
    transactions_skipped: int


__all__ = [
    "AccountLocked",
    "AccountUnlocked",
    "ConnectionCreated",
    "ConnectionDisconnected",
    "ConnectionExpiring",
    "ConnectionStatusChanged",
    "CredentialsRefreshed",
    "DomainEvent",
    "EmailVerified",
    "HoldingsSnapshotted",
    "LoginFailed",
    "PasswordChanged",
    "PendingTransactionPosted",
    "RolesChanged",
    "SessionRevoked",
    "StatementImported",
    "SyncFinished",
    "SyncProgressed",
    "SyncStarted",
    "TransactionsChanged",
    "UserLoggedIn",
    "UserRegistered",
]
