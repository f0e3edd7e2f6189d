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
from datetime import UTC
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import text

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
_LOCK_SQL = text("SELECT pg_advisory_xact_lock(:key)")


_COLUMNS = (
    "id",
    "seq",
    "occurred_at",
    "actor_id",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "ip",
    "user_agent",
    "details",
    "prev_mac",
    "mac",
)


@lru_cache(maxsize=8)
def _insert_sql(table_name: str) -> str:
    """The asyncpg INSERT of one record (``details`` passed as JSON text)."""
    marks = ", ".join(
        "$11::text::jsonb" if c == "details" else f"${i + 1}" for i, c in enumerate(_COLUMNS)
    )
    return f"INSERT INTO {table_name} ({', '.join(_COLUMNS)}) VALUES ({marks})"


@lru_cache(maxsize=8)
def _predicted_insert_sql(table: Table, dialect: Any) -> str:
    """The asyncpg INSERT of one record after a predicted head, in one round trip.

    It reads the head in its own snapshot (taken after the advisory lock was granted) and
    inserts only if that head is the predicted one (``$2 - 1``, ``$12``); it returns the
    inserted ``seq`` (NULL when nothing was inserted) and the head it saw.
    """
    name = dialect.identifier_preparer.format_table(table)
    marks = ", ".join(
        "$11::text::jsonb"
        if c == "details"
        else f"${i + 1}::{table.c[c].type.compile(dialect=dialect)}"
        for i, c in enumerate(_COLUMNS)
    )
    return (
        f"WITH head AS (SELECT seq, mac FROM {name} ORDER BY seq DESC LIMIT 1), "
        f"ins AS (INSERT INTO {name} ({', '.join(_COLUMNS)}) SELECT {marks} "
        "WHERE coalesce((SELECT seq FROM head), 0) = $2::bigint - 1 "
        "AND coalesce((SELECT mac FROM head), '') = $12::text RETURNING seq) "
        "SELECT (SELECT seq FROM ins), (SELECT seq FROM head), (SELECT mac FROM head)"
    )


#: The head this process last appended per (database, table): a prediction only, checked by
#: the INSERT itself (another process may have appended since, or the transaction rolled back).
_LAST_HEAD: dict[tuple[Any, str], tuple[int, str]] = {}


@lru_cache(maxsize=8)
def _insert_statement(table: Table) -> Any:
    from sqlalchemy import insert

    return insert(table)


@lru_cache(maxsize=8)
def _head_statement(table: Table) -> Any:
    from sqlalchemy import select

    return select(table.c.seq, table.c.mac).order_by(table.c.seq.desc()).limit(1)


def _values(sealed: AuditRecord, seq: int) -> dict[str, Any]:
    return {
        "id": sealed.id,
        "seq": seq,
        "occurred_at": sealed.occurred_at,
        "actor_id": sealed.actor_id,
        "action": sealed.action,
        "outcome": str(sealed.outcome),
        "object_type": sealed.object_type,
        "object_id": sealed.object_id,
        "ip": sealed.ip,
        "user_agent": sealed.user_agent,
        "details": sealed.details,
        "prev_mac": sealed.prev_mac,
        "mac": sealed.mac,
    }


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
        if self._conn.dialect.name == "postgresql":
            await self._conn.execute(_LOCK_SQL, {"key": AUDIT_LOCK_KEY})
        row = (await self._conn.execute(_head_statement(self._table))).first()
        return (int(row.seq), str(row.mac)) if row is not None else (0, GENESIS_MAC)

    async def append(self, record: AuditRecord) -> AuditRecord:
        """Seal ``record`` after the current head and insert it (same transaction)."""
        return (await self.append_sequenced(record)).record

    async def _driver(self) -> Any:
        """The asyncpg connection when the caller's transaction is already open on it, else None.

        Appending through it skips SQLAlchemy's per-statement work; the statements still join
        the caller's transaction (the advisory lock and the insert commit or roll back with it).
        """
        if self._conn.dialect.driver != "asyncpg":
            return None
        driver = (await self._conn.get_raw_connection()).driver_connection
        if driver is None or not driver.is_in_transaction():
            return None
        return driver

    async def append_sequenced(self, record: AuditRecord) -> SequencedAuditRecord:
        """Like :meth:`append`, also returning the assigned ``seq``."""
        details = {str(k): str(v) for k, v in record.details.items()}
        record = replace(record, details=details)
        driver = await self._driver()
        if driver is not None:
            return await self._append_on_driver(driver, record)
        last_seq, last_mac = await self._head()
        sealed = AuditChainer(self._key, last_mac).seal(record)
        await self._conn.execute(_insert_statement(self._table), _values(sealed, last_seq + 1))
        return SequencedAuditRecord(last_seq + 1, sealed)

    async def _append_on_driver(self, driver: Any, record: AuditRecord) -> SequencedAuditRecord:
        """Append through asyncpg: the lock, then usually one INSERT after the predicted head.

        The advisory lock is taken first, in its own statement, so that the INSERT's snapshot
        sees every append committed before it; the INSERT then only goes ahead if the head it
        reads is the one this process predicted. Otherwise (another process appended, or the
        predicted append rolled back) the record is sealed after the real head and inserted.
        """
        if record.occurred_at.tzinfo is None:  # as the UTCDateTime column type refuses them
            raise TypeError("timestamps must be timezone-aware datetimes")
        record = replace(record, occurred_at=record.occurred_at.astimezone(UTC))
        dialect = self._conn.dialect
        cache_key = (self._conn.engine.url, self._table.fullname)
        await driver.fetchval("SELECT pg_advisory_xact_lock($1)", AUDIT_LOCK_KEY)
        predicted = _LAST_HEAD.get(cache_key)
        if predicted is not None:
            sealed = AuditChainer(self._key, predicted[1]).seal(record)
            values = _values(sealed, predicted[0] + 1)
            values["details"] = orjson.dumps(sealed.details).decode()
            row = await driver.fetchrow(
                _predicted_insert_sql(self._table, dialect), *(values[c] for c in _COLUMNS)
            )
            if row[0] is not None:
                return self._appended(cache_key, int(row[0]), sealed)
            head = (int(row[1]), str(row[2])) if row[1] is not None else (0, GENESIS_MAC)
        else:
            name = dialect.identifier_preparer.format_table(self._table)
            row = await driver.fetchrow(f"SELECT seq, mac FROM {name} ORDER BY seq DESC LIMIT 1")
            head = (int(row[0]), str(row[1])) if row is not None else (0, GENESIS_MAC)
        sealed = AuditChainer(self._key, head[1]).seal(record)
        values = _values(sealed, head[0] + 1)
        values["details"] = orjson.dumps(sealed.details).decode()
        name = dialect.identifier_preparer.format_table(self._table)
        await driver.execute(_insert_sql(name), *(values[c] for c in _COLUMNS))
        return self._appended(cache_key, head[0] + 1, sealed)

    @staticmethod
    def _appended(
        cache_key: tuple[Any, str], seq: int, sealed: AuditRecord
    ) -> SequencedAuditRecord:
        if len(_LAST_HEAD) >= 64 and cache_key not in _LAST_HEAD:
            _LAST_HEAD.clear()
        _LAST_HEAD[cache_key] = (seq, sealed.mac)
        return SequencedAuditRecord(seq, sealed)

    def iter_chain(self) -> AsyncIterator[SequencedAuditRecord]:
        """Every record in ``seq`` order (keyset pages)."""
        return iter_audit_table(self._conn, table=self._table)

    async def verify(self) -> VerificationResult:
        """Verify the whole chain."""
        return await verify_audit_table(self._conn, self._key, table=self._table)


__all__ = ["AUDIT_LOCK_KEY", "SqlAlchemyAuditLog"]
