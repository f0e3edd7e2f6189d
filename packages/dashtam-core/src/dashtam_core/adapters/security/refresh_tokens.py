"""Opaque tokens (refresh, email verification, password reset), stored only as HMAC-SHA256.

The raw token goes to the client once; the database keeps ``TokenHasher.digest(token)`` (hex), so a
database leak does not yield usable tokens, and lookups are by digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import AuthenticationError
from dashtam_core.result import Err, Ok, Result

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

#: 32 random bytes = 256 bits (refresh tokens); verification/reset tokens use the same size.
TOKEN_BYTES = 32
MIN_KEY_BYTES = 32


def generate_token(nbytes: int = TOKEN_BYTES) -> str:
    """Return a URL-safe random token of ``nbytes`` bytes of entropy (at least 16)."""
    if nbytes < 16:
        raise ValueError("tokens need at least 128 bits of randomness")
    return secrets.token_urlsafe(nbytes)


def generate_refresh_token() -> str:
    """Return a new opaque 256-bit refresh token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in time independent of where they differ."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


class TokenHasher:
    """HMAC-SHA256 of opaque tokens under a server key.

    Args:
        key: at least 32 bytes of secret key material (``refresh_token_hmac.key``).

    Example:
        >>> h = TokenHasher(b"k" * 32)
        >>> token = generate_refresh_token()
        >>> h.matches(token, h.digest(token))
        True
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError("token HMAC key must be at least 32 bytes")
        self._key = key

    def digest(self, token: str) -> str:
        """Return the hex HMAC-SHA256 of ``token`` (the value to store and look up)."""
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def matches(self, token: str, stored_digest: str) -> bool:
        """Return True when ``token`` hashes to ``stored_digest`` (constant time)."""
        return hmac.compare_digest(self.digest(token).encode(), stored_digest.encode())

    def __repr__(self) -> str:
        return "TokenHasher(key=<hidden>)"


class RefreshTokenReused(AuthenticationError):
    """A spent refresh token was presented again; its whole session family was revoked."""

    code = "refresh_token_reused"


class InvalidRefreshToken(AuthenticationError):
    """The refresh token is unknown, expired, revoked, or its session has ended."""


@dataclass(frozen=True, slots=True)
class IssuedRefreshToken:
    """A stored refresh token; ``token`` is the raw value for the client (shown once)."""

    token: str
    token_id: UUID
    session_id: UUID
    user_id: UUID
    expires_at: datetime


async def issue_refresh_token(
    conn: AsyncConnection,
    hasher: TokenHasher,
    *,
    session_id: UUID,
    user_id: UUID,
    now: datetime,
    idle: timedelta,
    session_expires_at: datetime,
    parent_id: UUID | None = None,
) -> IssuedRefreshToken:
    """Insert a new refresh token for ``session_id`` (login, or the child of a rotation).

    It expires after ``idle`` but never after the session's absolute expiry.
    """
    from sqlalchemy import insert

    from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens

    token = generate_refresh_token()
    token_id = uuid7()
    expires_at = min(now + idle, session_expires_at)
    await conn.execute(
        insert(refresh_tokens).values(
            id=token_id,
            session_id=session_id,
            token_hash=hasher.digest(token),
            created_at=now,
            expires_at=expires_at,
            parent_id=parent_id,
        )
    )
    return IssuedRefreshToken(token, token_id, session_id, user_id, expires_at)


async def rotate_refresh_token(
    conn: AsyncConnection,
    hasher: TokenHasher,
    token: str,
    *,
    now: datetime,
    idle: timedelta,
) -> Result[IssuedRefreshToken, AuthenticationError]:
    """Spend ``token`` and issue its child, atomically; detect reuse (RFC 9700).

    The check-and-spend is one ``UPDATE ... WHERE used_at IS NULL AND revoked_at IS NULL
    RETURNING``, so among concurrent rotations of one token exactly one wins. Presenting a spent
    token revokes every refresh token of its session and the session itself
    (``Err(RefreshTokenReused)``). Run it inside the caller's transaction and commit.
    """
    from sqlalchemy import select, update

    from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens as rt
    from dashtam_core.adapters.sqlalchemy.tables import sessions

    digest = hasher.digest(token)
    live_session = select(sessions.c.id).where(
        sessions.c.revoked_at.is_(None), sessions.c.expires_at > now
    )
    spent = await conn.execute(
        update(rt)
        .where(
            rt.c.token_hash == digest,
            rt.c.used_at.is_(None),
            rt.c.revoked_at.is_(None),
            rt.c.expires_at > now,
            rt.c.session_id.in_(live_session),
        )
        .values(used_at=now)
        .returning(rt.c.id, rt.c.session_id)
    )
    row = spent.first()
    if row is not None:
        token_id, session_id = row
        session = (
            await conn.execute(
                update(sessions)
                .where(sessions.c.id == session_id)
                .values(last_used_at=now)
                .returning(sessions.c.user_id, sessions.c.expires_at)
            )
        ).one()
        child = await issue_refresh_token(
            conn,
            hasher,
            session_id=session_id,
            user_id=session.user_id,
            now=now,
            idle=idle,
            session_expires_at=session.expires_at,
            parent_id=token_id,
        )
        return Ok(child)
    known = (
        await conn.execute(select(rt.c.session_id, rt.c.used_at).where(rt.c.token_hash == digest))
    ).first()
    if known is None or known.used_at is None:
        return Err(InvalidRefreshToken("refresh token is not valid"))
    await revoke_session_family(conn, known.session_id, now=now, reason="refresh_token_reused")
    return Err(RefreshTokenReused("refresh token reuse detected; session revoked"))


async def revoke_session_family(
    conn: AsyncConnection, session_id: UUID, *, now: datetime, reason: str
) -> None:
    """Revoke a session and every refresh token it holds."""
    from sqlalchemy import update

    from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens as rt
    from dashtam_core.adapters.sqlalchemy.tables import sessions

    await conn.execute(
        update(rt)
        .where(rt.c.session_id == session_id, rt.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await conn.execute(
        update(sessions)
        .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


__all__ = [
    "TOKEN_BYTES",
    "InvalidRefreshToken",
    "IssuedRefreshToken",
    "RefreshTokenReused",
    "TokenHasher",
    "constant_time_equals",
    "generate_refresh_token",
    "generate_token",
    "issue_refresh_token",
    "revoke_session_family",
    "rotate_refresh_token",
]
