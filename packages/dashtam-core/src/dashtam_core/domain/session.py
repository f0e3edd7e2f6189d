"""Login sessions and their refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(slots=True)
class Session:
    """One login on one device. Revoking it kills its refresh and access tokens."""

    id: UUID
    user_id: UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None = None
    ip: str | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None

    @property
    def is_active(self) -> bool:
        """True until revoked."""
        return self.revoked_at is None


@dataclass(slots=True)
class RefreshToken:
    """An opaque refresh token, stored only as its HMAC (``token_hash``)."""

    id: UUID
    session_id: UUID
    token_hash: str
    created_at: datetime
    expires_at: datetime
    parent_id: UUID | None = None
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    def __repr__(self) -> str:
        return f"RefreshToken(id={self.id}, session_id={self.session_id})"


__all__ = ["RefreshToken", "Session"]
