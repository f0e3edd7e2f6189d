"""Raw payload archive and sync watermarks (sync.md rules 2 and 11).

Raw pages and statement files are stored zlib-compressed with the SHA-256 of the original bytes,
so mappings can be fixed and data re-normalized without fetching again. Compression of large
payloads runs in a worker thread to keep the event loop free.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import raw_payloads, sync_watermarks
from dashtam_core.domain.ids import uuid7
from dashtam_core.ports.provider import RawPayload
from dashtam_core.sync.upsert import insert_for

_THREAD_THRESHOLD = 256 * 1024


def _pack(payloads: Sequence[RawPayload]) -> list[tuple[bytes, str]]:
    return [(zlib.compress(p.content, 6), hashlib.sha256(p.content).hexdigest()) for p in payloads]


async def archive_raw_payloads(
    conn: AsyncConnection,
    *,
    connection_id: UUID,
    payloads: Sequence[RawPayload],
    sync_id: UUID | None = None,
    import_id: UUID | None = None,
) -> list[UUID]:
    """Store raw pages (compressed) in one executemany; return their ids in order."""
    if not payloads:
        return []
    if sum(len(p.content) for p in payloads) > _THREAD_THRESHOLD:
        packed = await asyncio.to_thread(_pack, payloads)
    else:
        packed = _pack(payloads)
    rows: list[dict[str, Any]] = []
    for p, (blob, digest) in zip(payloads, packed, strict=True):
        rows.append(
            {
                "id": uuid7(),
                "connection_id": connection_id,
                "kind": p.kind,
                "request": p.request,
                "provider_account_id": p.account_id,
                "content": blob,
                "content_type": p.content_type,
                "size": len(p.content),
                "sha256": digest,
                "fetched_at": p.fetched_at,
                "sync_id": sync_id,
                "import_id": import_id,
            }
        )
    await conn.execute(insert(raw_payloads), rows)
    return [r["id"] for r in rows]


async def load_raw_payload(conn: AsyncConnection, payload_id: UUID) -> RawPayload | None:
    """Read one archived payload back, decompressed (None when it does not exist)."""
    r = (
        await conn.execute(select(raw_payloads).where(raw_payloads.c.id == payload_id))
    ).one_or_none()
    if r is None:
        return None
    content = zlib.decompress(r.content)
    if hashlib.sha256(content).hexdigest() != r.sha256:
        raise ValueError(f"raw payload {payload_id} is corrupt (sha256 mismatch)")
    return RawPayload(
        kind=r.kind,
        content=content,
        content_type=r.content_type,
        fetched_at=r.fetched_at,
        request=r.request,
        account_id=r.provider_account_id,
    )


async def get_watermark(conn: AsyncConnection, account_id: UUID, kind: str) -> str | None:
    """The stored watermark of ``kind`` for the account (e.g. last synced date), if any."""
    w = sync_watermarks
    return (
        await conn.execute(select(w.c.value).where(w.c.account_id == account_id, w.c.kind == kind))
    ).scalar_one_or_none()


async def set_watermark(
    conn: AsyncConnection,
    account_id: UUID,
    kind: str,
    value: str,
    *,
    now: datetime | None = None,
) -> None:
    """Store a watermark in the caller's transaction (commit it with the rows it covers)."""
    w = sync_watermarks
    ins = insert_for(conn, w)
    await conn.execute(
        ins.values(
            account_id=account_id, kind=kind, value=value, updated_at=now or datetime.now(UTC)
        ).on_conflict_do_update(
            index_elements=[w.c.account_id, w.c.kind],
            set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
        )
    )


__all__ = ["archive_raw_payloads", "get_watermark", "load_raw_payload", "set_watermark"]
