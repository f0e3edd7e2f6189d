"""Administration: users and roles, locks, global token rotation, credential key rotation.

Every action is audited in its own transaction together with the change. Role changes, locks and
the global rotation revoke sessions (refresh tokens) and move ``tokens_valid_after``, so access
tokens issued before stop working on the next request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.access import whole_second
from dashtam_core.application.audit import Origin, audit
from dashtam_core.application.identity import user_view
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.application.sessions import revoke_user_sessions
from dashtam_core.domain.user import Role
from dashtam_core.errors import FieldError, NotFound, ValidationError
from dashtam_core.result import Err


class InvalidRoles(ValidationError):
    """The role list is empty or names an unknown role."""

    code = "invalid_roles"


def parse_roles(names: Sequence[str]) -> list[Role]:
    """Validate role names (``admin``, ``user``, ``readonly``, ``auditor``), keeping order.

    Raises:
        InvalidRoles: empty list or unknown role.
    """
    known = {r.value for r in Role}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        message = f"unknown roles {unknown}" if unknown else "at least one role is required"
        raise InvalidRoles(message, errors=[FieldError("roles", "invalid_roles", message)])
    return [Role(n) for n in dict.fromkeys(names)]


async def list_users(
    kit: SecurityKit, *, limit: int = 50, after: UUID | None = None
) -> tuple[list[dict[str, Any]], UUID | None]:
    """Users with roles and status, keyset-paginated by id."""
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        found = await uow.users.list_all(limit=limit + 1, after=after)
    now = datetime.now(UTC)
    page = found[:limit]
    data = [{**user_view(u, now), "failed_login_count": u.failed_login_count} for u in page]
    return data, (page[-1].id if len(found) > limit else None)


async def set_roles(
    kit: SecurityKit, user_id: UUID, roles: Sequence[str], *, origin: Origin
) -> dict[str, Any]:
    """Replace the user's roles; revoke their sessions and tokens.

    Raises:
        NotFound: no such user.
        InvalidRoles: bad role list.
    """
    parsed = parse_roles(roles)
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("no such user")
        before = ",".join(str(r) for r in user.roles)
        user.roles = parsed
        user.tokens_valid_after = whole_second(now)
        await uow.users.update(user)
        revoked = await revoke_user_sessions(uow, user.id, now=now, reason="role_change")
        await audit(
            uow.connection,
            kit.audit_key,
            origin,
            "admin.user.roles",
            object_type="user",
            object_id=user.id,
            details={"before": before, "after": ",".join(map(str, parsed)), "revoked": revoked},
        )
        await uow.commit()
        kit.revocation_changed()
    return user_view(user, now)


async def set_lock(
    kit: SecurityKit, user_id: UUID, locked: bool, *, origin: Origin
) -> dict[str, Any]:
    """Lock (indefinitely, revoking every session) or unlock an account.

    Raises:
        NotFound: no such user.
    """
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        user = await uow.users.get(user_id)
        if user is None:
            raise NotFound("no such user")
        user.is_locked = locked
        user.locked_until = None
        user.failed_login_count = 0
        revoked = 0
        if locked:
            user.tokens_valid_after = whole_second(now)
            revoked = await revoke_user_sessions(uow, user.id, now=now, reason="locked")
        await uow.users.update(user)
        await audit(
            uow.connection,
            kit.audit_key,
            origin,
            "admin.user.lock" if locked else "admin.user.unlock",
            object_type="user",
            object_id=user.id,
            details={"revoked": revoked},
        )
        await uow.commit()
        kit.revocation_changed()
    return user_view(user, now)


@dataclass(frozen=True, slots=True)
class Rotation:
    """Result of a global token rotation."""

    valid_after: datetime
    sessions_revoked: int
    users: int


async def rotate_all_tokens(kit: SecurityKit, reason: str, *, origin: Origin) -> Rotation:
    """Invalidate every access and refresh token issued before now (all users)."""
    from sqlalchemy import update

    from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens, sessions, users

    now = datetime.now(UTC)
    valid_after = whole_second(now)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        conn = uow.connection
        touched = (
            await conn.execute(update(users).values(tokens_valid_after=valid_after))
        ).rowcount
        await conn.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        revoked = (
            await conn.execute(
                update(sessions)
                .where(sessions.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason="global_rotation")
            )
        ).rowcount
        await audit(
            conn,
            kit.audit_key,
            origin,
            "admin.security.rotation",
            object_type="system",
            details={"reason": reason[:500], "sessions_revoked": revoked},
        )
        await uow.commit()
        kit.revocation_changed()
    return Rotation(valid_after, int(revoked), int(touched))


async def job_overview(kit: SecurityKit, *, failures: int = 20) -> dict[str, Any]:
    """Sync jobs by status and the most recent failures (``GET /admin/jobs``)."""
    from sqlalchemy import func, select

    from dashtam_core.adapters.sqlalchemy.tables_data import sync_runs as sr

    async with kit.engine.connect() as conn:
        rows = await conn.execute(select(sr.c.status, func.count()).group_by(sr.c.status))
        counts: dict[str, int] = {str(status): int(n) for status, n in rows.all()}
        failed = (
            await conn.execute(
                select(sr.c.id, sr.c.connection_id, sr.c.finished_at, sr.c.error)
                .where(sr.c.status == "failed")
                .order_by(sr.c.finished_at.desc(), sr.c.id.desc())
                .limit(failures)
            )
        ).all()
    return {
        "syncs": {s: int(counts.get(s, 0)) for s in ("queued", "running", "succeeded", "failed")},
        "recent_failures": [
            {
                "id": r.id,
                "connection_id": r.connection_id,
                "finished_at": r.finished_at,
                "error": r.error,
            }
            for r in failed
        ],
    }


@dataclass(frozen=True, slots=True)
class KeyRotation:
    """Result of ``dashtam keys rotate``."""

    new_key_id: str
    reencrypted: int
    mfa_secrets: int


def _decrypt(kit: SecurityKit, blob: Any, owner_id: UUID) -> bytes:
    decrypted = kit.vault.decrypt(bytes(blob), owner_id)
    if isinstance(decrypted, Err):
        raise decrypted.error
    return decrypted.value


async def reencrypt_credentials(
    kit: SecurityKit, new_vault: CredentialVault, *, origin: Origin
) -> KeyRotation:
    """Re-encrypt every stored provider credential (and MFA secret) under ``new_vault``'s key.

    Blobs are decrypted with the current vault (any key of its ring) and encrypted with the
    new primary key, all in one transaction: either every row moves or none does.

    Raises:
        CredentialDecryptionError: a blob does not decrypt (nothing is changed).
    """
    from sqlalchemy import select, update

    from dashtam_core.adapters.sqlalchemy.tables import provider_connections as pc
    from dashtam_core.adapters.sqlalchemy.tables import users

    count = 0
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        conn = uow.connection
        rows = (
            await conn.execute(
                select(pc.c.id, pc.c.credentials_encrypted).where(
                    pc.c.credentials_encrypted.is_not(None)
                )
            )
        ).all()
        for row in rows:
            blob = new_vault.encrypt(_decrypt(kit, row.credentials_encrypted, row.id), row.id)
            await conn.execute(
                update(pc)
                .where(pc.c.id == row.id)
                .values(credentials_encrypted=blob, credentials_key_id=new_vault.primary)
            )
            count += 1
        mfa_rows = (
            await conn.execute(
                select(users.c.id, users.c.mfa_secret_encrypted).where(
                    users.c.mfa_secret_encrypted.is_not(None)
                )
            )
        ).all()
        for row in mfa_rows:
            plain = _decrypt(kit, row.mfa_secret_encrypted, row.id)
            await conn.execute(
                update(users)
                .where(users.c.id == row.id)
                .values(mfa_secret_encrypted=new_vault.encrypt(plain, row.id))
            )
        await audit(
            conn,
            kit.audit_key,
            origin,
            "admin.keys.rotate",
            object_type="vault",
            object_id=new_vault.primary,
            details={"credentials": count, "mfa_secrets": len(mfa_rows)},
        )
        await uow.commit()
    return KeyRotation(new_vault.primary, count, len(mfa_rows))


__all__ = [
    "InvalidRoles",
    "KeyRotation",
    "Rotation",
    "job_overview",
    "list_users",
    "parse_roles",
    "reencrypt_credentials",
    "rotate_all_tokens",
    "set_lock",
    "set_roles",
]
