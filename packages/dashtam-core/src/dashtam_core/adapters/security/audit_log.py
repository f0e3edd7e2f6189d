"""The ``audit_events`` writer and reader (SQLAlchemy Core): the :class:`AuditLog` port.

Appending reads the chain head and inserts the next record in the caller's transaction, so the
audit record commits or rolls back with the change it describes. Writers are serialized for
that: on PostgreSQL by a transaction-scoped advisory lock, on SQLite by the write lock that the
engine takes at ``BEGIN IMMEDIATE`` (see ``adapters.sqlalchemy.engine``).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

from dashtam_core.adapters.security.audit_chain import (
    GENESIS_MAC,
    AuditChainer,
    iter_audit_table,
    verify_audit_table,
)
from dashtam_core.domain.audit import AuditRecord
from dashtam_core.ports.audit import SequencedAuditRecord, VerificationResult

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

#: The PostgreSQL advisory lock key that serializes audit appends.
AUDIT_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"dashtam.audit_events").digest()[:8], "big", signed=True
)


class SqlAlchemyAuditLog:
    """Append-only, hash-chained audit storage on an ``AsyncConnection``.

    Args:
        conn: the connection whose transaction the records join.
        key: the audit HMAC key (``load_hmac_key("audit_hmac", ...)``).
        table: the ``audit_events`` table (default: ``adapters.sqlalchemy.tables``).
    """

    def __init__(self, conn: AsyncConnection, key: bytes, *, table: Table | None = None) -> None:
        if table is None:
            from dashtam_core.adapters.sqlalchemy.tables import audit_events

            table = audit_events
        self._conn = conn
        self._key = key
        self._table = table

    async def _head(self) -> tuple[int, str]:
        from sqlalchemy import select, text

        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY}
            )
        c = self._table.c
        row = (
            await self._conn.execute(select(c.seq, c.mac).order_by(c.seq.desc()).limit(1))
        ).first()
        return (int(row.seq), str(row.mac)) if row is not None else (0, GENESIS_MAC)

    async def append(self, record: AuditRecord) -> AuditRecord:
        """Seal ``record`` after the current head and insert it (same transaction)."""
        return (await self.append_sequenced(record)).record

    async def append_sequenced(self, record: AuditRecord) -> SequencedAuditRecord:
        """Like :meth:`append`, also returning the assigned ``seq``."""
        from sqlalchemy import insert

        last_seq, last_mac = await self._head()
        sealed = AuditChainer(self._key, last_mac).seal(
            replace(record, details={str(k): str(v) for k, v in record.details.items()})
        )
        await self._conn.execute(
            insert(self._table).values(
                id=sealed.id,
                seq=last_seq + 1,
                occurred_at=sealed.occurred_at,
                actor_id=sealed.actor_id,
                action=sealed.action,
                outcome=str(sealed.outcome),
                object_type=sealed.object_type,
                object_id=sealed.object_id,
                ip=sealed.ip,
                user_agent=sealed.user_agent,
                details=sealed.details,
                prev_mac=sealed.prev_mac,
                mac=sealed.mac,
            )
        )
        return SequencedAuditRecord(last_seq + 1, sealed)

    def iter_chain(self) -> AsyncIterator[SequencedAuditRecord]:
        """Every record in ``seq`` order (keyset pages)."""
        return iter_audit_table(self._conn, table=self._table)

    async def verify(self) -> VerificationResult:
        """Verify the whole chain."""
        return await verify_audit_table(self._conn, self._key, table=self._table)


__all__ = ["AUDIT_LOCK_KEY", "SqlAlchemyAuditLog"]
