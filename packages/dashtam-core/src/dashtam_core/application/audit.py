"""Audit trail services: write records with the change they describe, list and verify them.

Successful changes are audited with :func:`audit` on the connection of the transaction that makes
the change, so the record commits or rolls back with it. Failures (refused logins, denied
requests) are audited with :func:`audit_failure`, which commits its own transaction, so a
failure is recorded even though nothing else is written. Details are free-form strings and must
never carry a secret (passwords, tokens, keys): callers pass only identifiers and reasons.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dashtam_core.adapters.security.audit_log import SqlAlchemyAuditLog
from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.domain.ids import uuid7
from dashtam_core.ports.audit import VerificationResult

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: Longest user agent stored (the column is 512 characters).
_MAX_USER_AGENT = 512


@dataclass(frozen=True, slots=True)
class Origin:
    """Who acts and from where: the actor (``None`` = anonymous or system), IP and user agent."""

    actor_id: UUID | None = None
    ip: str | None = None
    user_agent: str | None = None

    def as_actor(self, actor_id: UUID | None) -> Origin:
        """The same origin with another actor (e.g. once a login identified the user)."""
        return Origin(actor_id, self.ip, self.user_agent)


SYSTEM = Origin()


def origin_to_job(origin: Origin | None) -> dict[str, str | None] | None:
    """``origin`` as a JSON-ready job argument (a worker audits for the requester)."""
    if origin is None:
        return None
    actor = None if origin.actor_id is None else str(origin.actor_id)
    return {"actor_id": actor, "ip": origin.ip, "user_agent": origin.user_agent}


def origin_from_job(value: Mapping[str, str | None] | None) -> Origin | None:
    """The :class:`Origin` of :func:`origin_to_job` (``None`` stays ``None``)."""
    if value is None:
        return None
    actor = value.get("actor_id")
    return Origin(UUID(actor) if actor else None, value.get("ip"), value.get("user_agent"))


def _record(
    origin: Origin,
    action: str,
    outcome: AuditOutcome,
    object_type: str | None,
    object_id: object,
    details: Mapping[str, object] | None,
) -> AuditRecord:
    agent = origin.user_agent[:_MAX_USER_AGENT] if origin.user_agent else None
    return AuditRecord(
        id=uuid7(),
        occurred_at=datetime.now(UTC),
        actor_id=origin.actor_id,
        action=action,
        outcome=outcome,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        ip=origin.ip,
        user_agent=agent,
        details={str(k): str(v) for k, v in (details or {}).items()},
    )


async def audit(
    conn: AsyncConnection,
    key: bytes,
    origin: Origin,
    action: str,
    *,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    object_type: str | None = None,
    object_id: object = None,
    details: Mapping[str, object] | None = None,
) -> AuditRecord:
    """Append one record in the transaction of ``conn`` (commits with the caller's change).

    Args:
        conn: the connection of the caller's open transaction.
        key: the audit HMAC key.
        origin: actor, IP and user agent.
        action: dotted action name (``session.login``, ``admin.user.roles``).
        outcome: success or failure.
        object_type: the kind of object acted on (``user``, ``session``, ``connection``).
        object_id: its id.
        details: extra non-secret facts (reasons, role lists).

    Returns:
        The sealed record.
    """
    record = _record(origin, action, outcome, object_type, object_id, details)
    return await SqlAlchemyAuditLog(conn, key).append(record)


async def audit_failure(
    engine: AsyncEngine,
    key: bytes,
    origin: Origin,
    action: str,
    *,
    object_type: str | None = None,
    object_id: object = None,
    details: Mapping[str, object] | None = None,
) -> AuditRecord:
    """Append a failure record in a transaction of its own and commit it."""
    async with engine.begin() as conn:
        return await audit(
            conn,
            key,
            origin,
            action,
            outcome=AuditOutcome.FAILURE,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of ``GET /api/v1/admin/audit-events`` (all optional, combined with AND)."""

    actor_id: UUID | None = None
    action: str | None = None
    outcome: AuditOutcome | None = None
    start: datetime | None = None
    end: datetime | None = None
    after_seq: int | None = None
    limit: int = 50


async def list_audit_events(
    conn: AsyncConnection, query: AuditQuery
) -> tuple[list[dict[str, Any]], int | None]:
    """Audit records matching ``query`` in ``seq`` order, one keyset page.

    Returns:
        The records as API dicts and the ``seq`` to continue after (``None`` on the last page).
    """
    from sqlalchemy import select

    from dashtam_core.adapters.sqlalchemy.tables import audit_events as t

    stmt = select(t).order_by(t.c.seq).limit(query.limit + 1)
    if query.actor_id is not None:
        stmt = stmt.where(t.c.actor_id == query.actor_id)
    if query.action:
        stmt = stmt.where(t.c.action == query.action)
    if query.outcome is not None:
        stmt = stmt.where(t.c.outcome == str(query.outcome))
    if query.start is not None:
        stmt = stmt.where(t.c.occurred_at >= query.start)
    if query.end is not None:
        stmt = stmt.where(t.c.occurred_at < query.end)
    if query.after_seq is not None:
        stmt = stmt.where(t.c.seq > query.after_seq)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    data = [
        {
            "id": str(r.id),
            "seq": int(r.seq),
            "occurred_at": r.occurred_at,
            "actor_id": str(r.actor_id) if r.actor_id else None,
            "action": r.action,
            "outcome": r.outcome,
            "object_type": r.object_type,
            "object_id": r.object_id,
            "ip": r.ip,
            "user_agent": r.user_agent,
            "details": dict(r.details or {}),
        }
        for r in rows
    ]
    return data, (int(rows[-1].seq) if more and rows else None)


async def verify_audit_trail(engine: AsyncEngine, key: bytes) -> VerificationResult:
    """Verify the whole hash chain (read-only)."""
    async with engine.connect() as conn:
        return await SqlAlchemyAuditLog(conn, key).verify()


__all__ = [
    "SYSTEM",
    "AuditQuery",
    "Origin",
    "audit",
    "audit_failure",
    "list_audit_events",
    "origin_from_job",
    "origin_to_job",
    "verify_audit_trail",
]
