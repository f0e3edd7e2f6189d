"""Login: email + password (+ TOTP), hardened against guessing and account enumeration.

:func:`login` answers unknown email and wrong password identically (a dummy argon2id verify for
unknown emails, same error, same progressive delay keyed by email), counts consecutive failures
per account in the database and locks the account for 30 minutes after 10; checks email
verification and TOTP; then opens a session (:func:`.sessions.open_session`), audited in the
same transaction. A TOTP code is accepted once: its time step is claimed in the database
(``users.mfa_last_step``), so neither this process nor another replica accepts it again.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from dashtam_core.adapters.mail.templates import new_session_email
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.audit import Origin, audit, audit_failure
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.application.sessions import (
    TokenPair,
    is_locked,
    mfa_secret,
    normalize_email,
    open_session,
)
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.domain.user import User
from dashtam_core.errors import AuthenticationError, PermissionDenied

#: Consecutive failures that lock an account, and for how long.
LOCK_AFTER_FAILURES = 10
LOCK_DURATION = timedelta(minutes=30)
#: Failures before the progressive delay starts.
_DELAY_FREE_FAILURES = 3
_MAX_TRACKED_EMAILS = 100_000


class EmailNotVerified(PermissionDenied):
    """The password is right but the email address is not verified yet."""

    code = "email_not_verified"


class AccountLocked(PermissionDenied):
    """The account is locked (too many failures, or by an administrator)."""

    code = "account_locked"


class MfaRequired(AuthenticationError):
    """The account has TOTP enabled and no valid ``totp_code`` was sent."""

    code = "mfa_required"


def _email_key(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:32]


async def _progressive_delay(kit: SecurityKit, key: str) -> None:
    failures = kit.login_failures.get(key, 0)
    if failures >= _DELAY_FREE_FAILURES:
        exponent = failures - _DELAY_FREE_FAILURES
        await asyncio.sleep(min(kit.login_delay_max, kit.login_delay_base * 2**exponent))


def _note_failure(kit: SecurityKit, key: str) -> None:
    if len(kit.login_failures) >= _MAX_TRACKED_EMAILS:
        kit.login_failures.clear()
    kit.login_failures[key] = kit.login_failures.get(key, 0) + 1


async def _record_failed_password(kit: SecurityKit, user: User, origin: Origin) -> None:
    from sqlalchemy import update

    from dashtam_core.adapters.sqlalchemy.tables import users

    now = datetime.now(UTC)
    async with kit.engine.begin() as conn:
        count = (
            await conn.execute(
                update(users)
                .where(users.c.id == user.id)
                .values(failed_login_count=users.c.failed_login_count + 1)
                .returning(users.c.failed_login_count)
            )
        ).scalar_one()
        await audit(
            conn,
            kit.audit_key,
            origin,
            "session.login",
            outcome=AuditOutcome.FAILURE,
            object_type="user",
            object_id=user.id,
            details={"reason": "invalid_credentials", "failures": count},
        )
        if count >= LOCK_AFTER_FAILURES and not is_locked(user, now):
            await conn.execute(
                update(users)
                .where(users.c.id == user.id)
                .values(is_locked=True, locked_until=now + LOCK_DURATION)
            )
            await audit(
                conn,
                kit.audit_key,
                origin,
                "user.locked",
                object_type="user",
                object_id=user.id,
                details={"reason": "too_many_failures", "minutes": 30},
            )


async def login(
    kit: SecurityKit,
    email: str,
    password: str,
    *,
    origin: Origin,
    totp_code: str | None = None,
) -> TokenPair:
    """Authenticate with email and password (and TOTP when enabled) and open a session.

    Raises:
        AuthenticationError: unknown email or wrong password (``invalid_credentials``, the
            same for both), or a wrong TOTP code.
        MfaRequired: TOTP is enabled and no code was sent.
        EmailNotVerified: the email address is not verified.
        AccountLocked: the account is locked.
    """
    email = normalize_email(email)
    key = _email_key(email)
    await _progressive_delay(kit, key)
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get_by_email(email)
    if user is None:
        await kit.hasher.dummy_verify(password)
        _note_failure(kit, key)
        await audit_failure(
            kit.engine, kit.audit_key, origin, "session.login", details={"reason": "unknown_email"}
        )
        raise AuthenticationError("invalid email or password")
    ok = await kit.hasher.verify(user.password_hash, password)
    who = origin.as_actor(user.id)
    if is_locked(user, now):
        await audit_failure(
            kit.engine, kit.audit_key, who, "session.login", object_type="user",
            object_id=user.id, details={"reason": "account_locked"},
        )  # fmt: skip
        raise AccountLocked("this account is locked; try again later or contact an administrator")
    if not ok:
        _note_failure(kit, key)
        await _record_failed_password(kit, user, who)
        raise AuthenticationError("invalid email or password")
    if not user.email_verified:
        await audit_failure(
            kit.engine, kit.audit_key, who, "session.login", object_type="user",
            object_id=user.id, details={"reason": "email_not_verified"},
        )  # fmt: skip
        raise EmailNotVerified("verify your email address first")
    if user.mfa_enabled:
        await _check_totp(kit, user, totp_code, who)
    kit.login_failures.pop(key, None)
    new_hash = (
        await kit.hasher.hash(password) if kit.hasher.needs_rehash(user.password_hash) else None
    )
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        fresh = await uow.users.get(user.id)
        if fresh is None:
            raise AuthenticationError("invalid email or password")
        fresh.failed_login_count = 0
        if fresh.is_locked and not is_locked(fresh, now):
            fresh.is_locked, fresh.locked_until = False, None
        if new_hash is not None:
            fresh.password_hash = new_hash
        await uow.users.update(fresh)
        pair = await open_session(kit, uow, fresh, who, now)
        await audit(
            uow.connection, kit.audit_key, who, "session.login", object_type="session",
            object_id=pair.session_id, details={"mfa": str(fresh.mfa_enabled).lower()},
        )  # fmt: skip
        await uow.commit()
        kit.revocation_changed()
    if kit.send_login_notices:
        await kit.mailer.send(
            new_session_email(fresh.email, when=now, ip=origin.ip, user_agent=origin.user_agent)
        )
    return pair


async def _check_totp(kit: SecurityKit, user: User, code: str | None, who: Origin) -> None:
    if not code:
        await audit_failure(
            kit.engine, kit.audit_key, who, "session.login", object_type="user",
            object_id=user.id, details={"reason": "mfa_required"},
        )  # fmt: skip
        raise MfaRequired("this account needs a TOTP code (totp_code)")
    secret = mfa_secret(kit, user)
    if secret is None or not await kit.totp.verify(secret, code, subject=str(user.id)):
        await _record_failed_password(kit, user, who)
        raise AuthenticationError("invalid email, password or code")


__all__ = [
    "LOCK_AFTER_FAILURES",
    "LOCK_DURATION",
    "AccountLocked",
    "EmailNotVerified",
    "MfaRequired",
    "login",
]
