"""Audit hash chain (PCI DSS 10.5): HMAC-SHA256 over each record's fields and the previous MAC.

``mac_n = HMAC(key, canonical(record_n) || prev_mac)`` where ``canonical`` is a stable JSON
encoding (sorted keys, UTC timestamps with microseconds, no whitespace) and ``prev_mac`` of the
first record is ``""``. Verification streams the records in ``seq`` order and reports the first
record whose MAC, link or position is wrong, so edits, deletions (a gap in ``seq`` or a broken link)
and reordering are all detected.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.ports.audit import SequencedAuditRecord, VerificationResult

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

CANONICAL_VERSION = 1
GENESIS_MAC = ""


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(record: AuditRecord) -> bytes:
    """The stable serialization of every field of ``record`` except ``mac``.

    ``prev_mac`` is part of it, which is what links the chain.
    """
    return orjson.dumps(
        {
            "v": CANONICAL_VERSION,
            "id": str(record.id),
            "occurred_at": _timestamp(record.occurred_at),
            "actor_id": str(record.actor_id) if record.actor_id else None,
            "action": record.action,
            "outcome": str(record.outcome),
            "object_type": record.object_type,
            "object_id": record.object_id,
            "ip": record.ip,
            "user_agent": record.user_agent,
            "details": {str(k): str(v) for k, v in record.details.items()},
            "prev_mac": record.prev_mac,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def compute_mac(key: bytes, record: AuditRecord) -> str:
    """Return the hex HMAC-SHA256 of ``record`` (its ``prev_mac`` included)."""
    return hmac.new(key, canonical_bytes(record), hashlib.sha256).hexdigest()


class AuditChainer:
    """Seals records onto a chain; the writer holds the chain head under a lock/row lock.

    Args:
        key: the audit HMAC key (at least 32 bytes).
        last_mac: the MAC of the newest stored record (``""`` for an empty log).
    """

    def __init__(self, key: bytes, last_mac: str = GENESIS_MAC) -> None:
        if len(key) < 32:
            raise ValueError("audit HMAC key must be at least 32 bytes")
        self._key = key
        self.last_mac = last_mac

    def seal(self, record: AuditRecord) -> AuditRecord:
        """Return ``record`` with ``prev_mac`` = the chain head and its own ``mac``; advance."""
        linked = replace(record, prev_mac=self.last_mac, mac="")
        sealed = replace(linked, mac=compute_mac(self._key, linked))
        self.last_mac = sealed.mac
        return sealed

    def __repr__(self) -> str:
        return f"AuditChainer(last_mac={self.last_mac[:12]!r}...)"


def chain(
    records: Iterable[AuditRecord], key: bytes, prev_mac: str = GENESIS_MAC
) -> list[AuditRecord]:
    """Seal ``records`` in order, starting after ``prev_mac``."""
    chainer = AuditChainer(key, prev_mac)
    return [chainer.seal(r) for r in records]


class ChainVerifier:
    """Incremental verifier: feed records in ``seq`` order, read :attr:`result` at the end.

    Args:
        key: the audit HMAC key.
        prev_mac: the expected ``prev_mac`` of the first record fed (``""`` from the start).
        first_seq: the expected ``seq`` of the first record (None: whatever comes first).
        contiguous: require ``seq`` to increase by exactly one (a gap means a deletion).
    """

    def __init__(
        self,
        key: bytes,
        *,
        prev_mac: str = GENESIS_MAC,
        first_seq: int | None = None,
        contiguous: bool = True,
    ) -> None:
        self._key = key
        self._prev_mac = prev_mac
        self._next_seq = first_seq
        self._last_seq: int | None = None
        self._contiguous = contiguous
        self.checked = 0
        self.first_bad: AuditRecord | None = None

    def feed(self, item: SequencedAuditRecord) -> bool:
        """Check one record; return False (and remember it) at the first bad one."""
        if self.first_bad is not None:
            return False
        record = item.record
        self.checked += 1
        bad = (
            (self._next_seq is not None and item.seq != self._next_seq)
            or (self._last_seq is not None and item.seq <= self._last_seq)
            or not hmac.compare_digest(record.prev_mac, self._prev_mac)
            or not hmac.compare_digest(record.mac, compute_mac(self._key, record))
        )
        if bad:
            self.first_bad = record
            return False
        self._prev_mac = record.mac
        self._last_seq = item.seq
        self._next_seq = item.seq + 1 if self._contiguous else None
        return True

    @property
    def last_mac(self) -> str:
        """The MAC of the last good record (the chain head after a full run)."""
        return self._prev_mac

    @property
    def result(self) -> VerificationResult:
        """The outcome so far."""
        bad = self.first_bad
        return VerificationResult(
            valid=bad is None, checked=self.checked, first_bad_id=bad.id if bad else None
        )


def verify(
    records: Iterable[SequencedAuditRecord],
    key: bytes,
    *,
    prev_mac: str = GENESIS_MAC,
    first_seq: int | None = None,
    contiguous: bool = True,
) -> VerificationResult:
    """Verify a chain streamed in ``seq`` order; stops at the first bad record."""
    verifier = ChainVerifier(key, prev_mac=prev_mac, first_seq=first_seq, contiguous=contiguous)
    for item in records:
        if not verifier.feed(item):
            break
    return verifier.result


async def verify_async(
    records: AsyncIterable[SequencedAuditRecord],
    key: bytes,
    *,
    prev_mac: str = GENESIS_MAC,
    first_seq: int | None = None,
    contiguous: bool = True,
) -> VerificationResult:
    """:func:`verify` over an async stream (e.g. a server-side database cursor)."""
    verifier = ChainVerifier(key, prev_mac=prev_mac, first_seq=first_seq, contiguous=contiguous)
    async for item in records:
        if not verifier.feed(item):
            break
    return verifier.result


def _record_from_row(row: Any) -> AuditRecord:
    return AuditRecord(
        id=row.id,
        occurred_at=row.occurred_at,
        actor_id=row.actor_id,
        action=row.action,
        outcome=AuditOutcome(row.outcome),
        object_type=row.object_type,
        object_id=row.object_id,
        ip=row.ip,
        user_agent=row.user_agent,
        details=dict(row.details or {}),
        prev_mac=row.prev_mac,
        mac=row.mac,
    )


async def iter_audit_table(
    conn: AsyncConnection, *, table: Table | None = None, batch_size: int = 1000
) -> AsyncIterator[SequencedAuditRecord]:
    """Stream ``audit_events`` in ``seq`` order, one keyset page of ``batch_size`` at a time."""
    from sqlalchemy import select

    if table is None:
        from dashtam_core.adapters.sqlalchemy.tables import audit_events

        table = audit_events
    last: int | None = None
    while True:
        stmt = select(table).order_by(table.c.seq).limit(batch_size)
        if last is not None:
            stmt = stmt.where(table.c.seq > last)
        rows = (await conn.execute(stmt)).all()
        for row in rows:
            yield SequencedAuditRecord(int(row.seq), _record_from_row(row))
        if len(rows) < batch_size:
            return
        last = int(rows[-1].seq)


async def verify_audit_table(
    conn: AsyncConnection, key: bytes, *, table: Table | None = None, batch_size: int = 1000
) -> VerificationResult:
    """Verify the whole ``audit_events`` chain (``dashtam audit verify``, the admin endpoint)."""
    return await verify_async(
        iter_audit_table(conn, table=table, batch_size=batch_size), key, first_seq=None
    )


__all__ = [
    "GENESIS_MAC",
    "AuditChainer",
    "ChainVerifier",
    "canonical_bytes",
    "chain",
    "compute_mac",
    "iter_audit_table",
    "verify",
    "verify_async",
    "verify_audit_table",
]
