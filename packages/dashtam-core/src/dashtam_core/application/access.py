"""Per-request access-token revocation check: one query joining the session and its user.

An access token is refused when its session is revoked, expired or belongs to someone else,
when its user is locked by an admin, or when it was issued before the user's
``tokens_valid_after`` (set by password reset, role change, lock and the admin's global
rotation, to the whole second).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from dashtam_core.errors import AuthenticationError
from dashtam_core.ports.security import AccessTokenClaims

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


class TokenRevoked(AuthenticationError):
    """The access token's session was revoked or its user's tokens were invalidated."""

    code = "token_revoked"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def whole_second(moment: datetime) -> datetime:
    """``moment`` truncated to the second (token ``iat`` has one-second resolution)."""
    return moment.replace(microsecond=0)


async def check_session_access(
    engine: AsyncEngine, claims: AccessTokenClaims, *, now: datetime | None = None
) -> str | None:
    """Return why the token is no longer valid, or ``None`` when it is.

    Args:
        engine: the database engine.
        claims: verified access-token claims.
        now: the current time (UTC).
    """
    from sqlalchemy import select

    from dashtam_core.adapters.sqlalchemy.tables import sessions as s
    from dashtam_core.adapters.sqlalchemy.tables import users as u

    try:
        session_id = UUID(claims.sid)
        user_id = UUID(claims.sub)
    except ValueError:
        return "malformed subject"
    stmt = (
        select(
            s.c.user_id,
            s.c.revoked_at,
            s.c.expires_at,
            u.c.tokens_valid_after,
            u.c.is_locked,
            u.c.locked_until,
        )
        .select_from(s.join(u, u.c.id == s.c.user_id))
        .where(s.c.id == session_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    moment = now or datetime.now(UTC)
    if row is None or row.user_id != user_id:
        return "unknown session"
    if row.revoked_at is not None:
        return "session revoked"
    if _aware(row.expires_at) <= moment:
        return "session expired"
    if row.is_locked and row.locked_until is None:  # an admin lock (failure locks block logins)
        return "account locked"
    valid_after = row.tokens_valid_after
    if valid_after is not None and claims.iat < int(_aware(valid_after).timestamp()):
        return "token issued before revocation"
    return None


__all__ = ["TokenRevoked", "check_session_access", "whole_second"]
