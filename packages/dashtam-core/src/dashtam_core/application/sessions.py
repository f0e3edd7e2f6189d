"""Sessions: opening one, token refresh, logout and session management (login: :mod:`.login`).

* :func:`open_session` opens a session (evicting the oldest beyond the per-user maximum) with a
  refresh token and an access token, in the caller's unit of work.
* :func:`refresh` rotates the refresh token atomically (one conditional ``UPDATE ...
  RETURNING``); a spent token (replay, or the loser of a race) revokes its whole session.
* Logout and session revocation revoke the session and its refresh tokens; the per-request
  check in :mod:`.access` then refuses its access tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from dashtam_core.adapters.security.refresh_tokens import (
    InvalidRefreshToken,
    RefreshTokenReused,
    issue_refresh_token,
    revoke_session_family,
    rotate_refresh_token,
)
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.audit import Origin, audit, audit_failure
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.session import Session
from dashtam_core.domain.user import User
from dashtam_core.errors import NotFound
from dashtam_core.result import Err, Ok


def normalize_email(email: str) -> str:
    """Lower-cased, stripped email (the form stored and compared)."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What login and refresh return (api.md)."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: UUID
    user_id: UUID

    def as_dict(self) -> dict[str, Any]:
        """The login/refresh response body (api.md)."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "session_id": str(self.session_id),
        }

    def __repr__(self) -> str:
        return f"TokenPair(session_id={self.session_id}, user_id={self.user_id})"


def effective_roles(kit: SecurityKit, user: User) -> list[str]:
    """Roles put into access tokens: ``admin`` only with TOTP when admin MFA is required."""
    roles = [str(r) for r in user.roles]
    if kit.settings.require_admin_mfa and not user.mfa_enabled and "admin" in roles:
        roles = [r for r in roles if r != "admin"]
        if "user" not in roles:
            roles.append("user")
    return roles


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def is_locked(user: User, now: datetime) -> bool:
    """True while an admin lock or an unexpired failure lock is in force."""
    if not user.is_locked:
        return False
    until = _aware(user.locked_until)
    return until is None or until > now


async def _evict_beyond_max(
    kit: SecurityKit, uow: SqlAlchemyUnitOfWork, user_id: UUID, now: datetime, origin: Origin
) -> None:
    active = [
        s
        for s in await uow.sessions.list_for_user(user_id, active_only=True)
        if (_aware(s.expires_at) or now) > now
    ]
    excess = len(active) - kit.settings.max_sessions_per_user + 1
    for old in active[: max(0, excess)]:
        await revoke_session_family(uow.connection, old.id, now=now, reason="evicted")
        await audit(
            uow.connection,
            kit.audit_key,
            origin,
            "session.evicted",
            object_type="session",
            object_id=old.id,
        )


async def open_session(
    kit: SecurityKit, uow: SqlAlchemyUnitOfWork, user: User, origin: Origin, now: datetime
) -> TokenPair:
    """Open a session for ``user`` in ``uow`` and return its tokens (the caller commits)."""
    settings = kit.settings
    await _evict_beyond_max(kit, uow, user.id, now, origin)
    session = Session(
        id=uuid7(),
        user_id=user.id,
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(days=settings.refresh_absolute_days),
        user_agent=origin.user_agent,
        ip=origin.ip,
    )
    await uow.sessions.add(session)
    refresh_token = await issue_refresh_token(
        uow.connection,
        kit.token_hasher,
        session_id=session.id,
        user_id=user.id,
        now=now,
        idle=timedelta(days=settings.refresh_idle_days),
        session_expires_at=session.expires_at,
    )
    access = kit.issuer.issue(user.id, session.id, effective_roles(kit, user))
    return TokenPair(access, refresh_token.token, kit.issuer.ttl_seconds, session.id, user.id)


def mfa_secret(kit: SecurityKit, user: User) -> str | None:
    """The user's decrypted TOTP secret (bound to the user id), if any."""
    if user.mfa_secret_encrypted is None:
        return None
    decrypted = kit.vault.decrypt(user.mfa_secret_encrypted, user.id)
    return decrypted.value.decode() if isinstance(decrypted, Ok) else None


async def session_of_refresh_token(kit: SecurityKit, token: str) -> UUID | None:
    """The session a refresh token belongs to (for its rate-limit key), if known."""
    from sqlalchemy import select

    from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens as rt

    digest = kit.token_hasher.digest(token)
    async with kit.engine.connect() as conn:
        row = (await conn.execute(select(rt.c.session_id).where(rt.c.token_hash == digest))).first()
    return row.session_id if row is not None else None


async def refresh(kit: SecurityKit, token: str, *, origin: Origin) -> TokenPair:
    """Rotate ``token``: spend it and return a new access + refresh pair.

    Raises:
        RefreshTokenReused: the token was already spent; its session is now revoked.
        InvalidRefreshToken: unknown, expired or revoked token.
    """
    now = datetime.now(UTC)
    idle = timedelta(days=kit.settings.refresh_idle_days)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        conn = uow.connection
        result = await rotate_refresh_token(conn, kit.token_hasher, token, now=now, idle=idle)
        if isinstance(result, Err):
            if isinstance(result.error, RefreshTokenReused):
                await audit(
                    conn, kit.audit_key, origin, "session.refresh", outcome=AuditOutcome.FAILURE,
                    details={"reason": "refresh_token_reused"},
                )  # fmt: skip
                await uow.commit()
                kit.revocation_changed()
                raise result.error
        else:
            child = result.value
            user = await uow.users.get(child.user_id)
            if user is None or is_locked(user, now):
                raise InvalidRefreshToken("refresh token is not valid")
            who = origin.as_actor(user.id)
            access = kit.issuer.issue(user.id, child.session_id, effective_roles(kit, user))
            await audit(
                conn, kit.audit_key, who, "session.refresh", object_type="session",
                object_id=child.session_id,
            )  # fmt: skip
            await uow.commit()
            return TokenPair(access, child.token, kit.issuer.ttl_seconds, child.session_id, user.id)
    await audit_failure(
        kit.engine, kit.audit_key, origin, "session.refresh", details={"reason": "invalid"}
    )
    raise InvalidRefreshToken("refresh token is not valid")


async def list_sessions(kit: SecurityKit, user_id: UUID, current_id: UUID) -> list[dict[str, Any]]:
    """The user's live sessions, oldest first, flagged ``current``."""
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        found = await uow.sessions.list_for_user(user_id, active_only=True)
    return [
        {
            "id": s.id,
            "created_at": s.created_at,
            "last_used_at": s.last_used_at,
            "expires_at": s.expires_at,
            "user_agent": s.user_agent,
            "ip": s.ip,
            "current": s.id == current_id,
        }
        for s in found
        if (_aware(s.expires_at) or now) > now
    ]


async def revoke_session(
    kit: SecurityKit, user_id: UUID, session_id: UUID, *, origin: Origin, reason: str
) -> None:
    """Revoke one of the user's sessions (``NotFound`` for another user's or a missing one)."""
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        session = await uow.sessions.get_for_user(session_id, user_id)
        if session is None or session.revoked_at is not None:
            raise NotFound("no such session")
        await revoke_session_family(uow.connection, session_id, now=now, reason=reason)
        await audit(
            uow.connection, kit.audit_key, origin, f"session.{reason}", object_type="session",
            object_id=session_id,
        )  # fmt: skip
        await uow.commit()
        kit.revocation_changed()


async def revoke_user_sessions(
    uow: SqlAlchemyUnitOfWork, user_id: UUID, *, now: datetime, reason: str,
    except_id: UUID | None = None,
) -> int:  # fmt: skip
    """Revoke every live session of ``user_id`` (but ``except_id``) and their refresh tokens.

    Runs in the caller's unit of work; returns how many sessions were revoked.
    """
    live = [
        s.id
        for s in await uow.sessions.list_for_user(user_id, active_only=True)
        if s.id != except_id
    ]
    await uow.refresh_tokens.revoke_for_sessions(live, at=now)
    return await uow.sessions.revoke_all_for_user(
        user_id, at=now, reason=reason, except_id=except_id
    )


async def revoke_other_sessions(
    kit: SecurityKit, user_id: UUID, current_id: UUID, *, origin: Origin
) -> int:
    """Revoke every session of the user except ``current_id``; return how many."""
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        count = await revoke_user_sessions(
            uow, user_id, now=now, reason="revoked_others", except_id=current_id
        )
        await audit(
            uow.connection, kit.audit_key, origin, "session.revoke_others", object_type="user",
            object_id=user_id, details={"revoked": count},
        )  # fmt: skip
        await uow.commit()
        kit.revocation_changed()
    return count


__all__ = [
    "TokenPair",
    "effective_roles",
    "is_locked",
    "list_sessions",
    "mfa_secret",
    "normalize_email",
    "open_session",
    "refresh",
    "revoke_other_sessions",
    "revoke_session",
    "revoke_user_sessions",
    "session_of_refresh_token",
]
