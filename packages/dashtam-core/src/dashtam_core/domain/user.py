"""Users and roles."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class Role(StrEnum):
    """RBAC roles: ``admin`` ⊃ ``user`` ⊃ ``readonly``; ``auditor`` reads the audit trail."""

    ADMIN = "admin"
    USER = "user"
    READONLY = "readonly"
    AUDITOR = "auditor"


@dataclass(slots=True)
class User:
    """A person with a login. ``password_hash`` is an argon2id PHC string, never a password."""

    id: UUID
    email: str
    password_hash: str
    created_at: datetime
    email_verified: bool = False
    roles: list[Role] = field(default_factory=lambda: [Role.USER])
    is_locked: bool = False
    locked_until: datetime | None = None
    failed_login_count: int = 0
    mfa_secret_encrypted: bytes | None = None
    mfa_enabled: bool = False
    tokens_valid_after: datetime | None = None

    def __repr__(self) -> str:
        return f"User(id={self.id}, email={self.email!r}, roles={[str(r) for r in self.roles]})"


__all__ = ["Role", "User"]
