"""Provider connections and their explicit state machine.

::

    pending ──activate──▶ active ──▶ needs_reauth ──▶ active (repair in place)
       │                    │  ▲          │
       │                    ▼  │          │
       │                  error ──────────┤
       └────────────────────┴─────────────┴──▶ disconnected (terminal)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from dashtam_core.errors import InvalidStateTransition


class AuthType(StrEnum):
    """How a provider authenticates."""

    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    FILE_IMPORT = "file_import"


class ConnectionStatus(StrEnum):
    """Lifecycle of a provider connection."""

    PENDING = "pending"
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    ERROR = "error"
    DISCONNECTED = "disconnected"


ALLOWED_TRANSITIONS: dict[ConnectionStatus, frozenset[ConnectionStatus]] = {
    ConnectionStatus.PENDING: frozenset(
        {ConnectionStatus.ACTIVE, ConnectionStatus.ERROR, ConnectionStatus.DISCONNECTED}
    ),
    ConnectionStatus.ACTIVE: frozenset(
        {
            ConnectionStatus.NEEDS_REAUTH,
            ConnectionStatus.ERROR,
            ConnectionStatus.DISCONNECTED,
            ConnectionStatus.ACTIVE,
        }
    ),
    ConnectionStatus.NEEDS_REAUTH: frozenset(
        {
            ConnectionStatus.ACTIVE,
            ConnectionStatus.ERROR,
            ConnectionStatus.DISCONNECTED,
            ConnectionStatus.NEEDS_REAUTH,
        }
    ),
    ConnectionStatus.ERROR: frozenset(
        {
            ConnectionStatus.ACTIVE,
            ConnectionStatus.NEEDS_REAUTH,
            ConnectionStatus.DISCONNECTED,
            ConnectionStatus.ERROR,
        }
    ),
    ConnectionStatus.DISCONNECTED: frozenset(),
}


@dataclass(slots=True)
class ProviderConnection:
    """A user's link to one provider. Credentials are an encrypted blob, never plain text."""

    id: UUID
    user_id: UUID
    provider: str
    status: ConnectionStatus
    created_at: datetime
    alias: str | None = None
    credentials_encrypted: bytes | None = None
    credentials_key_id: str | None = None
    auth_expires_at: datetime | None = None
    access_expires_at: datetime | None = None
    last_synced_at: datetime | None = None
    last_error: str | None = None
    options: dict[str, str] | None = None

    def transition(self, target: ConnectionStatus, *, error: str | None = None) -> None:
        """Move to ``target`` or raise :class:`InvalidStateTransition`."""
        if target not in ALLOWED_TRANSITIONS[self.status]:
            raise InvalidStateTransition(
                f"connection {self.id}: {self.status.value} -> {target.value} is not allowed"
            )
        self.status = target
        self.last_error = (
            error if target in (ConnectionStatus.ERROR, ConnectionStatus.NEEDS_REAUTH) else None
        )

    def can_transition(self, target: ConnectionStatus) -> bool:
        """True if ``target`` is reachable in one step."""
        return target in ALLOWED_TRANSITIONS[self.status]

    def __repr__(self) -> str:
        return (
            f"ProviderConnection(id={self.id}, provider={self.provider!r}, "
            f"status={self.status.value})"
        )


__all__ = [
    "ALLOWED_TRANSITIONS",
    "AuthType",
    "ConnectionStatus",
    "ProviderConnection",
]
