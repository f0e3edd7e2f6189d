"""Administration (api.md): users and roles, locks, audit trail, token rotation, jobs.

Admin routes need role ``admin`` (Casbin ``admin/*``); the audit-trail reads also allow
``auditor``. Every call is audited, reads of the audit trail included.
"""

from __future__ import annotations

import os
from datetime import datetime
from uuid import UUID

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field

from dashtam_api.auth import CurrentPrincipal, SecurityDep
from dashtam_api.deps import get_redis
from dashtam_api.registry import RouteSpec
from dashtam_core.application import admin
from dashtam_core.application.audit import (
    AuditQuery,
    audit,
    list_audit_events,
    verify_audit_trail,
)
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.errors import FieldError, ValidationError

_AUTH_ERRORS = ("unauthorized", "invalid_token", "token_revoked", "forbidden")


class AdminUserOut(BaseModel):
    """A user as administrators see it."""

    id: UUID
    email: str
    email_verified: bool
    roles: list[str]
    mfa_enabled: bool
    created_at: datetime
    locked: bool
    failed_login_count: int = 0


class AdminUserList(BaseModel):
    """A page of users."""

    data: list[AdminUserOut]
    next_cursor: str | None


class RolesIn(BaseModel):
    """New role list."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(min_length=1, max_length=8)


class AuditEventOut(BaseModel):
    """One audit record."""

    id: UUID
    seq: int
    occurred_at: datetime
    actor_id: UUID | None
    action: str
    outcome: str
    object_type: str | None
    object_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, str]


class AuditEventList(BaseModel):
    """A page of audit records in chain order."""

    data: list[AuditEventOut]
    next_cursor: str | None


class VerificationOut(BaseModel):
    """Hash-chain verification result."""

    valid: bool
    checked: int
    first_bad_id: UUID | None


class RotationIn(BaseModel):
    """Why every token is being invalidated."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class RotationOut(BaseModel):
    """Result of a global rotation."""

    valid_after: datetime
    sessions_revoked: int


class QueueOut(BaseModel):
    """The job queue: where jobs run and how many wait."""

    backend: str
    depth: int


class SyncCountsOut(BaseModel):
    """Sync runs by status."""

    queued: int
    running: int
    succeeded: int
    failed: int


class FailureOut(BaseModel):
    """One failed sync run."""

    id: UUID
    connection_id: UUID
    finished_at: datetime | None
    error: str | None


class JobsOut(BaseModel):
    """Queue depth, workers and recent failures."""

    queue: QueueOut
    workers: str
    syncs: SyncCountsOut
    recent_failures: list[FailureOut]


def _cursor(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise ValidationError(
            "cursor is not valid", errors=[FieldError("query.cursor", "invalid", "bad cursor")]
        )
    return int(value)


async def list_users(
    principal: CurrentPrincipal,
    kit: SecurityDep,
    limit: int = Query(50, ge=1, le=500),
    cursor: UUID | None = None,
) -> AdminUserList:
    """Users with roles and lock status."""
    data, following = await admin.list_users(kit, limit=limit, after=cursor)
    return AdminUserList(
        data=[AdminUserOut(**u) for u in data],
        next_cursor=str(following) if following else None,
    )


async def set_roles(
    id: UUID, body: RolesIn, principal: CurrentPrincipal, kit: SecurityDep
) -> AdminUserOut:
    """Replace a user's roles (their sessions are revoked)."""
    return AdminUserOut(**await admin.set_roles(kit, id, body.roles, origin=principal.origin))


async def lock_user(id: UUID, principal: CurrentPrincipal, kit: SecurityDep) -> AdminUserOut:
    """Lock an account (every session revoked) until an admin unlocks it."""
    return AdminUserOut(**await admin.set_lock(kit, id, True, origin=principal.origin))


async def unlock_user(id: UUID, principal: CurrentPrincipal, kit: SecurityDep) -> AdminUserOut:
    """Unlock an account and clear its failure counter."""
    return AdminUserOut(**await admin.set_lock(kit, id, False, origin=principal.origin))


async def list_audit(
    principal: CurrentPrincipal,
    kit: SecurityDep,
    actor_id: UUID | None = None,
    action: str | None = Query(None, max_length=128),
    outcome: AuditOutcome | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=32),
) -> AuditEventList:
    """Audit records (filters `actor_id`, `action`, `outcome`, `start`, `end`)."""
    query = AuditQuery(
        actor_id=actor_id,
        action=action,
        outcome=outcome,
        start=start,
        end=end,
        after_seq=_cursor(cursor),
        limit=limit,
    )
    async with kit.engine.begin() as conn:
        data, following = await list_audit_events(conn, query)
        await audit(
            conn, kit.audit_key, principal.origin, "audit.read", object_type="audit_events",
            details={"returned": len(data), "action": action or "", "outcome": outcome or ""},
        )  # fmt: skip
    return AuditEventList(
        data=[AuditEventOut(**row) for row in data],
        next_cursor=str(following) if following is not None else None,
    )


async def verify_audit(principal: CurrentPrincipal, kit: SecurityDep) -> VerificationOut:
    """Verify the audit hash chain (edits, deletions and reordering are detected)."""
    result = await verify_audit_trail(kit.engine, kit.audit_key)
    async with kit.engine.begin() as conn:
        await audit(
            conn, kit.audit_key, principal.origin, "audit.verify", object_type="audit_events",
            details={"valid": result.valid, "checked": result.checked},
        )  # fmt: skip
    return VerificationOut(
        valid=result.valid, checked=result.checked, first_bad_id=result.first_bad_id
    )


async def rotate_tokens(
    body: RotationIn, principal: CurrentPrincipal, kit: SecurityDep
) -> RotationOut:
    """Invalidate every access and refresh token issued before now."""
    rotation = await admin.rotate_all_tokens(kit, body.reason, origin=principal.origin)
    return RotationOut(valid_after=rotation.valid_after, sessions_revoked=rotation.sessions_revoked)


async def jobs(request: Request, principal: CurrentPrincipal, kit: SecurityDep) -> JobsOut:
    """Queue depth, where workers run, sync runs by status and the latest failures."""
    overview = await admin.job_overview(kit)
    redis = get_redis(request)
    if redis is not None:
        from dashtam_core.adapters.jobs.broker import QUEUE_ENV, QUEUE_NAME

        depth = int(await redis.llen(os.environ.get(QUEUE_ENV) or QUEUE_NAME))
        queue = QueueOut(backend="redis", depth=depth)
        workers = "dashtam worker processes (Redis queue)"
    else:
        queue = QueueOut(backend="in-process", depth=overview["syncs"]["queued"])
        workers = "in-process (the API server runs jobs)"
    return JobsOut(
        queue=queue,
        workers=workers,
        syncs=SyncCountsOut(**overview["syncs"]),
        recent_failures=[FailureOut(**f) for f in overview["recent_failures"]],
    )


_USERS = ("admin/users", "read")
_USERS_WRITE = ("admin/users", "write")
_AUDIT = ("admin/audit_events", "read")

ROUTES = (
    RouteSpec(
        name="admin.jobs",
        method="GET",
        path="/api/v1/admin/jobs",
        handler=jobs,
        auth="admin",
        policy=("admin/jobs", "read"),
        rate_limit="read_user",
        response_model=JobsOut,
        errors=_AUTH_ERRORS,
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.users.list",
        method="GET",
        path="/api/v1/admin/users",
        handler=list_users,
        auth="admin",
        policy=_USERS,
        rate_limit="read_user",
        response_model=AdminUserList,
        errors=_AUTH_ERRORS,
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.users.roles",
        method="PUT",
        path="/api/v1/admin/users/{id}/roles",
        handler=set_roles,
        auth="admin",
        policy=_USERS_WRITE,
        rate_limit="write_user",
        response_model=AdminUserOut,
        errors=(*_AUTH_ERRORS, "not_found", "invalid_roles"),
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.users.lock",
        method="POST",
        path="/api/v1/admin/users/{id}/lock",
        handler=lock_user,
        auth="admin",
        policy=_USERS_WRITE,
        rate_limit="write_user",
        response_model=AdminUserOut,
        errors=(*_AUTH_ERRORS, "not_found"),
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.users.unlock",
        method="POST",
        path="/api/v1/admin/users/{id}/unlock",
        handler=unlock_user,
        auth="admin",
        policy=_USERS_WRITE,
        rate_limit="write_user",
        response_model=AdminUserOut,
        errors=(*_AUTH_ERRORS, "not_found"),
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.audit_events.list",
        method="GET",
        path="/api/v1/admin/audit-events",
        handler=list_audit,
        auth="auditor",
        policy=_AUDIT,
        rate_limit="read_user",
        response_model=AuditEventList,
        errors=(*_AUTH_ERRORS, "validation_error"),
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.audit_events.verify",
        method="GET",
        path="/api/v1/admin/audit-events/verification",
        handler=verify_audit,
        auth="auditor",
        policy=_AUDIT,
        rate_limit="read_user",
        response_model=VerificationOut,
        errors=_AUTH_ERRORS,
        tags=("admin",),
    ),
    RouteSpec(
        name="admin.security.rotate",
        method="POST",
        path="/api/v1/admin/security/rotations",
        handler=rotate_tokens,
        auth="admin",
        policy=("admin/security", "write"),
        rate_limit="write_user",
        response_model=RotationOut,
        status_code=201,
        errors=_AUTH_ERRORS,
        tags=("admin",),
    ),
)

__all__ = ["ROUTES"]
