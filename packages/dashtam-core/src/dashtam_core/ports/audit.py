"""The audit port: appending sealed records and reading the chain back in ``seq`` order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from uuid import UUID

from dashtam_core.domain.audit import AuditRecord


@dataclass(frozen=True, slots=True)
class SequencedAuditRecord:
    """An audit record with its position (``seq``) in the append-only log."""

    seq: int
    record: AuditRecord


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Outcome of a hash-chain check (``GET /admin/audit-events/verification``)."""

    valid: bool
    checked: int
    first_bad_id: UUID | None = None

    def as_dict(self) -> dict[str, object]:
        """Return the API / CLI shape ``{"valid", "checked", "first_bad_id"}``."""
        return {
            "valid": self.valid,
            "checked": self.checked,
            "first_bad_id": str(self.first_bad_id) if self.first_bad_id else None,
        }


@runtime_checkable
class AuditLog(Protocol):
    """Append-only audit storage."""

    async def append(self, record: AuditRecord) -> AuditRecord:
        """Seal ``record`` onto the chain (setting ``prev_mac``/``mac``) and store it."""
        ...

    def iter_chain(self) -> AsyncIterator[SequencedAuditRecord]:
        """Yield every record in ascending ``seq`` order (streaming)."""
        ...


__all__ = ["AuditLog", "SequencedAuditRecord", "VerificationResult"]
