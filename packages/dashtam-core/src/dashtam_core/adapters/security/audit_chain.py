"""Audit hash chain (PCI DSS 10.5): HMAC-SHA256 over each record's fields and the previous MAC.

``mac_n = HMAC(key, canonical(record_n) || prev_mac)`` where ``canonical`` is a stable JSON
encoding (sorted keys, UTC timestamps with microseconds, no whitespace) and ``prev_mac`` of the
first record is ``""``. Verification streams the records in ``seq`` order and reports the first
record whose MAC, link or position is wrong, so edits, deletions (a gap in ``seq`` or a broken link)
and reordering are all detected.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

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
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if value.year < 1000:  # isoformat pads the year, strftime("%Y") does not: keep the old form
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


def _canonical(
    id_: object,
    occurred_at: datetime,
    actor_id: object,
    action: str,
    outcome: str,
    object_type: str | None,
    object_id: str | None,
    ip: str | None,
    user_agent: str | None,
    details: Any,
    prev_mac: str,
) -> bytes:
    return orjson.dumps(
        {
            "v": CANONICAL_VERSION,
            "id": str(id_),
            "occurred_at": _timestamp(occurred_at),
            "actor_id": str(actor_id) if actor_id else None,
            "action": action,
            "outcome": str(outcome),
            "object_type": object_type,
            "object_id": object_id,
            "ip": ip,
            "user_agent": user_agent,
            "details": {str(k): str(v) for k, v in details.items()} if details else {},
            "prev_mac": prev_mac,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def canonical_bytes(record: AuditRecord) -> bytes:
    """The stable serialization of every field of ``record`` except ``mac``.

    ``prev_mac`` is part of it, which is what links the chain.
    """
    return _canonical(
        record.id,
        record.occurred_at,
        record.actor_id,
        record.action,
        record.outcome,
        record.object_type,
        record.object_id,
        record.ip,
        record.user_agent,
        record.details,
        record.prev_mac,
    )


def compute_mac(key: bytes, record: AuditRecord) -> str:
    """Return the hex HMAC-SHA256 of ``record`` (its ``prev_mac`` included)."""
    return hmac.digest(key, canonical_bytes(record), "sha256").hex()


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


#: ``orjson`` options of the fast canonical form: the reference form's sorted keys, and
#: ``datetime`` values rendered natively (``...T12:00:00.123456Z`` for a UTC timestamp).
_FAST_OPTION = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z


class _Mac(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _mac_factory(key: bytes) -> Callable[[], _Mac]:
    """Fresh HMAC-SHA256 states for ``key``: copies of one keyed template (no re-keying per record).

    The OpenSSL-backed ``_hashlib`` object is used directly where available: copying it costs
    one C call, against a Python-level ``hmac.HMAC.copy``.
    """
    try:
        from _hashlib import hmac_new
    except ImportError:  # pragma: no cover - CPython without OpenSSL
        return hmac.new(key, digestmod="sha256").copy
    return hmac_new(key, digestmod="sha256").copy


def _exact_mac_matches(key: bytes, row: Any) -> bool:
    """Whether ``row``'s MAC is right by the reference canonical form (:func:`_canonical`).

    A row whose fields cannot be put in canonical form (say ``details`` edited into a list)
    was not written by :class:`AuditChainer`: it does not match.
    """
    canonical: Callable[..., bytes] = _canonical
    try:
        payload = canonical(*row[1:10], _load_details(row[10]), row[11])
        return hmac.compare_digest(row[12], hmac.digest(key, payload, "sha256").hex())
    except (TypeError, ValueError, AttributeError):
        return False


def _verify_rows(
    rows: Iterable[Sequence[Any]],
    key: bytes,
    state: _TableState,
    new_mac: Callable[[], _Mac],
    load: Callable[[Any], Any],
) -> bool:
    """Check raw ``_VERIFY_COLUMNS`` rows against ``state``; False at the first bad one.

    Each record's MAC is first recomputed over a fast rendering of its stored fields: one
    ``orjson.dumps`` of the row's values as read (``datetime`` and ``details`` rendered by
    orjson). For every value the writer can store it is byte for byte the canonical form;
    where it is not (a zero microsecond field, a year before 1000, ``details`` that are not
    all strings, an edit that breaks decoding), its bytes are not a canonical form at all,
    so they can never match a sealed MAC by accident: the record is then rechecked with the
    reference :func:`_canonical`, which alone decides that it is bad. Either way the MAC is
    recomputed from every stored field, and ``seq`` and the ``prev_mac`` link are checked
    from the stored columns.

    Args:
        rows: ``seq, id .. details, prev_mac, mac`` rows in ``seq`` order.
        key: the audit HMAC key.
        state: the chain state carried over from the previous batch (updated in place).
        new_mac: fresh keyed HMAC states (:func:`_mac_factory`).
        load: turns a stored ``details`` value into a mapping (``orjson.loads`` for text).
    """
    dumps, option = orjson.dumps, _FAST_OPTION
    same = hmac.compare_digest
    prev_mac = state.prev_mac
    next_seq = state.next_seq
    checked = state.checked
    ok = True
    for row in rows:
        checked += 1
        seq, id_, at, actor, action, outcome, otype, oid, ip, agent, details, prev, mac = row
        if (next_seq is not None and seq != next_seq) or prev != prev_mac:
            state.first_bad_id = id_
            ok = False
            break
        try:
            h = new_mac()
            h.update(
                dumps(
                    {
                        "v": CANONICAL_VERSION,
                        "id": id_,
                        "occurred_at": at,
                        "actor_id": actor,
                        "action": action,
                        "outcome": outcome,
                        "object_type": otype,
                        "object_id": oid,
                        "ip": ip,
                        "user_agent": agent,
                        "details": load(details),
                        "prev_mac": prev,
                    },
                    option=option,
                )
            )
            good = same(h.hexdigest(), mac)
        except (TypeError, ValueError):  # undecodable details, a MAC edited to non-ASCII, ...
            good = False
        if not good and not _exact_mac_matches(key, row):
            state.first_bad_id = id_
            ok = False
            break
        prev_mac = mac
        next_seq = seq + 1
    state.prev_mac = prev_mac
    state.next_seq = next_seq
    state.checked = checked
    return ok


def _identity(value: Any) -> Any:
    return value


def _load_details(value: Any) -> Any:
    """``details`` as read: a mapping, or its JSON text (PostgreSQL ``jsonb::text``)."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:  # e.g. a number beyond float range: the stdlib reads it
        return json.loads(value)


class _TableState:
    __slots__ = ("checked", "first_bad_id", "next_seq", "prev_mac")

    def __init__(self) -> None:
        self.prev_mac = GENESIS_MAC
        self.next_seq: int | None = None
        self.checked = 0
        self.first_bad_id: Any = None


def _verify_columns(table: Table, dialect: str) -> list[Any]:
    """The ``_VERIFY_COLUMNS`` of ``table``; on PostgreSQL as text where that decodes faster.

    ``uuid::text`` is the same hyphenated form as ``str(UUID)`` and ``jsonb::text`` parses
    back to the same mapping, so the canonical bytes do not change.
    """
    from sqlalchemy import Text, cast

    columns: list[Any] = [table.c[name] for name in _VERIFY_COLUMNS]
    if dialect == "postgresql":
        for i, name in enumerate(_VERIFY_COLUMNS):
            if name in {"id", "actor_id", "details"}:
                columns[i] = cast(table.c[name], Text).label(name)
    return columns


async def _asyncpg_fetch(
    conn: AsyncConnection, table: Table, columns: list[Any]
) -> Callable[[int, int], Awaitable[Sequence[Any]]] | None:
    """On asyncpg, a prepared range query on the driver connection (no per-row SQLAlchemy work)."""
    if conn.dialect.driver != "asyncpg":
        return None
    from sqlalchemy import select

    c = table.c
    stmt = select(*columns).where(c.seq > -1, c.seq <= -2).order_by(c.seq)
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if sql.count("> -1") != 1 or sql.count("<= -2") != 1:  # pragma: no cover - defensive
        return None
    sql = sql.replace("> -1", "> $1").replace("<= -2", "<= $2")
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:  # pragma: no cover - a pooled connection always has one
        return None
    prepared = await driver.prepare(sql)

    async def fetch(low: int, high: int) -> Sequence[Any]:
        rows: Sequence[Any] = await prepared.fetch(low, high)
        return rows

    return fetch


async def verify_audit_table(
    conn: AsyncConnection, key: bytes, *, table: Table | None = None, batch_size: int = 5000
) -> VerificationResult:
    """Verify the whole ``audit_events`` chain (``dashtam audit verify``, the admin endpoint).

    Same checks as :func:`verify` from the start of the chain (``seq`` contiguous, every
    ``prev_mac`` link, every MAC), computed straight from the column values. Rows are read in
    ``seq`` ranges of ``batch_size`` up to the head found at the start, which the ``seq``
    index serves without sorting the table.
    """
    from sqlalchemy import func, select

    if table is None:
        from dashtam_core.adapters.sqlalchemy.tables import audit_events

        table = audit_events
    c = table.c
    columns = _verify_columns(table, conn.dialect.name)
    state = _TableState()
    fetch = await _asyncpg_fetch(conn, table, columns)
    if fetch is None:

        async def fetch(low: int, high: int) -> Sequence[Any]:
            stmt = select(*columns).where(c.seq > low, c.seq <= high).order_by(c.seq)
            return (await conn.execute(stmt)).all()

    bounds = (await conn.execute(select(func.min(c.seq), func.max(c.seq)))).one()
    if bounds[0] is None:
        return VerificationResult(valid=True, checked=0)
    low, head = int(bounds[0]) - 1, int(bounds[1])
    new_mac = _mac_factory(key)
    load = orjson.loads if conn.dialect.name == "postgresql" else _identity
    # The next range is requested before the current one is checked, so the database reads
    # and sends it while this process computes MACs (one query in flight at a time).
    pending: asyncio.Future[Sequence[Any]] | None = asyncio.ensure_future(
        fetch(low, min(low + batch_size, head))
    )
    try:
        while pending is not None:
            rows = await pending
            pending = None
            low = min(low + batch_size, head)
            if low < head:
                pending = asyncio.ensure_future(fetch(low, min(low + batch_size, head)))
                await asyncio.sleep(0)  # let it send the query
            if not _verify_rows(rows, key, state, new_mac, load):
                break
    finally:
        if pending is not None and not pending.done():  # leave the connection idle
            await pending
    bad = state.first_bad_id
    return VerificationResult(
        valid=bad is None,
        checked=state.checked,
        first_bad_id=None if bad is None else UUID(str(bad)),
    )


_VERIFY_COLUMNS = (
    *("seq", "id", "occurred_at", "actor_id", "action", "outcome", "object_type", "object_id"),
    *("ip", "user_agent", "details", "prev_mac", "mac"),
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
