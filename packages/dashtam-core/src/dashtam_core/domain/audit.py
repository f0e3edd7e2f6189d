"""Audit records (PCI DSS 10.2): who, what, outcome, when, where, which object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class AuditOutcome(StrEnum):
    """Whether the audited action succeeded."""

    SUCCESS = "success"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One append-only audit entry. ``mac`` chains it to the previous entry's ``mac``."""

    id: UUID
    occurred_at: datetime
    actor_id: UUID | None
    action: str
    outcome: AuditOutcome
    object_type: str | None = None
    object_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    prev_mac: str = ""
    mac: str = ""


__all__ = ["AuditOutcome", "AuditRecord"]
