"""Accounts: registration, email verification, password reset and change, profile (MFA: .mfa).

Verification (24 h) and reset (30 min) tokens carry 256 bits of randomness, are stored only as
their HMAC in ``one_time_tokens`` and are spent with one conditional ``UPDATE``. Every change is
audited in the transaction that makes it; mails are returned to the caller (or sent here after
the commit) so that nothing is mailed for work that rolled back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from uuid import UUID

from dashtam_core.adapters.mail.templates import (
    password_changed_email,
    password_reset_email,
    verification_email,
)
from dashtam_core.adapters.security.password_policy import check_password_async
from dashtam_core.adapters.security.refresh_tokens import generate_token
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.access import whole_second
from dashtam_core.application.audit import Origin, audit, audit_failure
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.application.sessions import (
    is_locked,
    normalize_email,
    revoke_user_sessions,
)
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.user import Role, User
from dashtam_core.errors import FieldError, NotFound, ValidationError, WeakPassword
from dashtam_core.result import Err

VERIFY_TTL = timedelta(hours=24)
RESET_TTL = timedelta(minutes=30)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class InvalidEmail(ValidationError):
    """Not an email address."""

    code = "invalid_email"


class InvalidOneTimeToken(ValidationError):
    """A verification or reset token is unknown, used or expired."""

    code = "invalid_or_expired_token"


class InvalidCurrentPassword(ValidationError):
    """The current password given to change it is wrong."""

    code = "invalid_current_password"


def _weak(error: WeakPassword, field: str) -> WeakPassword:
    return WeakPassword(
        error.message, errors=[FieldError(field=field, code="weak_password", message=error.message)]
    )


def validate_email(email: str) -> str:
    """Normalize ``email`` or raise :class:`InvalidEmail`."""
    normalized = normalize_email(email)
    if len(normalized) > 320 or not _EMAIL.fullmatch(normalized):
        raise InvalidEmail(
            "not a valid email address",
            errors=[FieldError("email", "invalid_email", "not a valid email address")],
        )
    return normalized


async def _new_one_time_token(
    kit: SecurityKit, uow: SqlAlchemyUnitOfWork, user_id: UUID, purpose: str, ttl: timedelta
) -> str:
    from sqlalchemy import insert

    from dashtam_core.adapters.sqlalchemy.tables import one_time_tokens

    token = generate_token()
    now = datetime.now(UTC)
    await uow.connection.execute(
        insert(one_time_tokens).values(
            id=uuid7(),
            user_id=user_id,
            purpose=purpose,
            token_hash=kit.token_hasher.digest(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


async def _spend_one_time_token(
    kit: SecurityKit, uow: SqlAlchemyUnitOfWork, token: str, purpose: str, *, peek: bool = False
) -> UUID | None:
    from sqlalchemy import select, update

    from dashtam_core.adapters.sqlalchemy.tables import one_time_tokens as t

    now = datetime.now(UTC)
    condition = (
        t.c.token_hash == kit.token_hasher.digest(token),
        t.c.purpose == purpose,
        t.c.used_at.is_(None),
        t.c.expires_at > now,
    )
    if peek:
        row = (await uow.connection.execute(select(t.c.user_id).where(*condition))).first()
    else:
        stmt = update(t).where(*condition).values(used_at=now).returning(t.c.user_id)
        row = (await uow.connection.execute(stmt)).first()
    return row.user_id if row is not None else None


@dataclass(frozen=True, slots=True)
class Registered:
    """A new account and the verification mail to send."""

    user: User
    mail: EmailMessage

    def __repr__(self) -> str:
        return f"Registered(user={self.user!r})"


async def register(
    kit: SecurityKit,
    email: str,
    password: str,
    *,
    origin: Origin,
    roles: list[Role] | None = None,
    verified: bool = False,
) -> Registered:
    """Create an account (password policy enforced) and a verification token.

    Raises:
        InvalidEmail: not an email address.
        WeakPassword: the policy refused the password (``message`` says why).
        EmailTaken: the email is registered already.
    """
    email = validate_email(email)
    checked = await check_password_async(password, email)
    if isinstance(checked, Err):
        raise _weak(checked.error, "password")
    password_hash = await kit.hasher.hash(password)
    user = User(
        id=uuid7(),
        email=email,
        password_hash=password_hash,
        created_at=datetime.now(UTC),
        email_verified=verified,
        roles=list(roles or [Role.USER]),
    )
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        added = await uow.users.add(user)
        if isinstance(added, Err):
            raise added.error
        token = await _new_one_time_token(kit, uow, user.id, "verify_email", VERIFY_TTL)
        await audit(
            uow.connection, kit.audit_key, origin.as_actor(origin.actor_id or user.id),
            "user.register", object_type="user", object_id=user.id,
            details={"roles": ",".join(str(r) for r in user.roles), "verified": verified},
        )  # fmt: skip
        await uow.commit()
    mail = verification_email(
        email, token, base_url=kit.settings.public_base_url, sender=kit.settings.mail_from
    )
    return Registered(user, mail)


async def verify_email(kit: SecurityKit, token: str, *, origin: Origin) -> UUID:
    """Spend a verification token and mark the address verified; return the user id.

    Raises:
        InvalidOneTimeToken: unknown, used or expired token.
    """
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user_id = await _spend_one_time_token(kit, uow, token, "verify_email")
        user = await uow.users.get(user_id) if user_id is not None else None
        if user is None:
            await uow.rollback()
            await audit_failure(kit.engine, kit.audit_key, origin, "user.verify_email")
            raise InvalidOneTimeToken("the verification token is invalid or expired")
        user.email_verified = True
        await uow.users.update(user)
        await audit(
            uow.connection, kit.audit_key, origin.as_actor(user.id), "user.verify_email",
            object_type="user", object_id=user.id,
        )  # fmt: skip
        await uow.commit()
    return user.id


async def request_password_reset(
    kit: SecurityKit, email: str, *, origin: Origin
) -> EmailMessage | None:
    """Create a reset token for ``email`` if it is registered; return the mail to send.

    The caller answers 202 either way (no account enumeration); both paths write one audit
    record.
    """
    normalized = normalize_email(email)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get_by_email(normalized)
        if user is None:
            await audit(
                uow.connection, kit.audit_key, origin, "user.password_reset_request",
                outcome=AuditOutcome.FAILURE, details={"reason": "unknown_email"},
            )  # fmt: skip
            await uow.commit()
            return None
        token = await _new_one_time_token(kit, uow, user.id, "reset_password", RESET_TTL)
        await audit(
            uow.connection, kit.audit_key, origin.as_actor(user.id),
            "user.password_reset_request", object_type="user", object_id=user.id,
        )  # fmt: skip
        await uow.commit()
    return password_reset_email(
        user.email, token, base_url=kit.settings.public_base_url, sender=kit.settings.mail_from
    )


async def reset_password(
    kit: SecurityKit, token: str, new_password: str, *, origin: Origin
) -> EmailMessage:
    """Set a new password with a reset token; revoke every session and token of the user.

    Returns:
        The "password changed" notice to send.

    Raises:
        InvalidOneTimeToken: unknown, used or expired token.
        WeakPassword: the policy refused the password.
    """
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user_id = await _spend_one_time_token(kit, uow, token, "reset_password", peek=True)
        user = await uow.users.get(user_id) if user_id is not None else None
    if user is None:
        await audit_failure(kit.engine, kit.audit_key, origin, "user.password_reset")
        raise InvalidOneTimeToken("the reset token is invalid or expired")
    checked = await check_password_async(new_password, user.email)
    if isinstance(checked, Err):
        raise _weak(checked.error, "new_password")
    password_hash = await kit.hasher.hash(new_password)
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        if await _spend_one_time_token(kit, uow, token, "reset_password") != user.id:
            raise InvalidOneTimeToken("the reset token is invalid or expired")
        fresh = await uow.users.get(user.id)
        if fresh is None:
            raise InvalidOneTimeToken("the reset token is invalid or expired")
        fresh.password_hash = password_hash
        fresh.failed_login_count = 0
        if fresh.is_locked and fresh.locked_until is not None:
            fresh.is_locked, fresh.locked_until = False, None  # a failure lock ends with a reset
        fresh.tokens_valid_after = whole_second(now)
        await uow.users.update(fresh)
        revoked = await revoke_user_sessions(uow, fresh.id, now=now, reason="password_reset")
        await audit(
            uow.connection, kit.audit_key, origin.as_actor(fresh.id), "user.password_reset",
            object_type="user", object_id=fresh.id, details={"sessions_revoked": revoked},
        )  # fmt: skip
        await uow.commit()
        kit.revocation_changed()
    return password_changed_email(fresh.email, when=now, sender=kit.settings.mail_from)


async def change_password(
    kit: SecurityKit,
    user_id: UUID,
    current_password: str,
    new_password: str,
    *,
    session_id: UUID,
    origin: Origin,
) -> EmailMessage:
    """Change the password; every other session of the user is revoked.

    Raises:
        InvalidCurrentPassword: ``current_password`` is wrong.
        WeakPassword: the policy refused the new password.
    """
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise NotFound("no such user")
    if not await kit.hasher.verify(user.password_hash, current_password):
        await audit_failure(
            kit.engine, kit.audit_key, origin, "user.password_change", object_type="user",
            object_id=user_id, details={"reason": "invalid_current_password"},
        )  # fmt: skip
        raise InvalidCurrentPassword(
            "the current password is wrong",
            errors=[FieldError("current_password", "invalid", "the current password is wrong")],
        )
    checked = await check_password_async(new_password, user.email)
    if isinstance(checked, Err):
        raise _weak(checked.error, "new_password")
    password_hash = await kit.hasher.hash(new_password)
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        fresh = await uow.users.get(user_id)
        if fresh is None:
            raise NotFound("no such user")
        fresh.password_hash = password_hash
        await uow.users.update(fresh)
        revoked = await revoke_user_sessions(
            uow, user_id, now=now, reason="password_changed", except_id=session_id
        )
        await audit(
            uow.connection, kit.audit_key, origin, "user.password_change", object_type="user",
            object_id=user_id, details={"sessions_revoked": revoked},
        )  # fmt: skip
        await uow.commit()
        kit.revocation_changed()
    return password_changed_email(fresh.email, when=now, sender=kit.settings.mail_from)


def user_view(user: User, now: datetime | None = None) -> dict[str, Any]:
    """The public shape of a user (``GET /users/me``, admin listings)."""
    return {
        "id": user.id,
        "email": user.email,
        "email_verified": user.email_verified,
        "roles": [str(r) for r in user.roles],
        "mfa_enabled": user.mfa_enabled,
        "created_at": user.created_at,
        "locked": is_locked(user, now or datetime.now(UTC)),
    }


async def get_user(kit: SecurityKit, user_id: UUID) -> User:
    """The user ``user_id`` (``NotFound`` if missing)."""
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise NotFound("no such user")
    return user


__all__ = [
    "RESET_TTL",
    "VERIFY_TTL",
    "InvalidCurrentPassword",
    "InvalidEmail",
    "InvalidOneTimeToken",
    "Registered",
    "change_password",
    "get_user",
    "register",
    "request_password_reset",
    "reset_password",
    "user_view",
    "validate_email",
    "verify_email",
]
