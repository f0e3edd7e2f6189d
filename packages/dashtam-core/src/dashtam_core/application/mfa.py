"""TOTP second factor: enrolment (secret stored encrypted, bound to the user id) and activation.

Codes are checked by the kit's :class:`~dashtam_core.adapters.security.totp.TotpVerifier`, whose
replay guard claims the code's time step in the database (``users.mfa_last_step``) in a
transaction of its own: a code accepted once is refused afterwards by every process, here and at
login. The claim runs before the activating transaction opens (on SQLite a claim inside an
open write transaction of the same process would wait for its own lock).
"""

from __future__ import annotations

from typing import NoReturn
from uuid import UUID

from dashtam_core.adapters.security.totp import new_totp_secret, provisioning_uri
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.audit import Origin, audit, audit_failure
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.application.sessions import mfa_secret
from dashtam_core.errors import Conflict, FieldError, NotFound, ValidationError


class InvalidTotpCode(ValidationError):
    """The TOTP code does not match the enrolment secret."""

    code = "invalid_totp_code"


async def start_mfa(kit: SecurityKit, user_id: UUID, *, origin: Origin) -> dict[str, str]:
    """Begin TOTP enrolment: a new secret (stored encrypted, not yet active).

    Raises:
        Conflict: TOTP is already enabled.
    """
    secret = new_totp_secret()
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("no such user")
        if user.mfa_enabled:
            raise Conflict("two-factor authentication is already enabled")
        user.mfa_secret_encrypted = kit.vault.encrypt(secret.encode(), user.id)
        await uow.users.update(user)
        await audit(
            uow.connection, kit.audit_key, origin, "user.mfa_enrolment_started",
            object_type="user", object_id=user.id,
        )  # fmt: skip
        await uow.commit()
    return {"secret": secret, "otpauth_uri": provisioning_uri(secret, user.email)}


async def confirm_mfa(kit: SecurityKit, user_id: UUID, code: str, *, origin: Origin) -> None:
    """Activate TOTP with a code from the authenticator.

    Raises:
        InvalidTotpCode: wrong code or no enrolment started.
    """
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get(user_id)
    if user is None:
        raise NotFound("no such user")
    secret = mfa_secret(kit, user)
    if secret is None or not await kit.totp.verify(secret, code, subject=str(user.id)):
        await _refuse(kit, user_id, origin)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        fresh = await uow.users.get(user_id)
        if fresh is None:
            raise NotFound("no such user")
        if fresh.mfa_secret_encrypted != user.mfa_secret_encrypted:
            # enrolment restarted meanwhile: the code was for the replaced secret
            await uow.rollback()
            await _refuse(kit, user_id, origin)
        user = fresh
        user.mfa_enabled = True
        await uow.users.update(user)
        await audit(
            uow.connection, kit.audit_key, origin, "user.mfa_enabled", object_type="user",
            object_id=user.id,
        )  # fmt: skip
        await uow.commit()


async def _refuse(kit: SecurityKit, user_id: UUID, origin: Origin) -> NoReturn:
    """Audit the failed activation (own transaction) and raise :class:`InvalidTotpCode`."""
    await audit_failure(
        kit.engine, kit.audit_key, origin, "user.mfa_enabled", object_type="user",
        object_id=user_id,
    )  # fmt: skip
    raise InvalidTotpCode(
        "the code does not match", errors=[FieldError("code", "invalid", "wrong code")]
    )


__all__ = ["InvalidTotpCode", "confirm_mfa", "start_mfa"]
