"""The transactional outbox: domain events stored in the same transaction as the data.

A dispatcher (the jobs layer) reads undispatched rows in ``created_at`` order, rebuilds the
events with :func:`event_from_payload` and publishes them on the message bus, then marks them
dispatched. Because the rows commit with the data, an event exists if and only if its change
does.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import outbox
from dashtam_core.domain import events as ev
from dashtam_core.domain.ids import uuid7


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An undispatched outbox row."""

    id: UUID
    event: ev.DomainEvent
    created_at: datetime


def _json_value(value: object) -> object:
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_json_value(v) for v in value]
    return value


def event_to_payload(event: ev.DomainEvent) -> dict[str, Any]:
    """Serialize an event's fields to JSON-safe values (UUID/Decimal/datetime as strings)."""
    return {f.name: _json_value(getattr(event, f.name)) for f in dataclasses.fields(event)}


def _event_class(name: str) -> type[ev.DomainEvent]:
    cls = getattr(ev, name, None)
    if not (isinstance(cls, type) and issubclass(cls, ev.DomainEvent)):
        raise KeyError(f"unknown event {name!r}")
    return cls


def _parse(value: object, hint: object) -> object:
    if value is None:
        return None
    args = typing.get_args(hint)
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return _parse(value, inner[0]) if len(inner) == 1 else value
    if hint is UUID:
        return UUID(str(value))
    if hint is datetime:
        return datetime.fromisoformat(str(value))
    if hint is date:
        return date.fromisoformat(str(value))
    if hint is Decimal:
        return Decimal(str(value))
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(value)
    return value


def event_from_payload(name: str, payload: dict[str, Any]) -> ev.DomainEvent:
    """Rebuild the event named ``name`` from :func:`event_to_payload` output."""
    cls = _event_class(name)
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {
        f.name: _parse(payload[f.name], hints[f.name])
        for f in dataclasses.fields(cls)
        if f.name in payload
    }
    return cls(**kwargs)


async def write_events(
    conn: AsyncConnection, events: Sequence[ev.DomainEvent], *, now: datetime
) -> int:
    """Store ``events`` in the outbox (one executemany); return how many were written."""
    if not events:
        return 0
    await conn.execute(
        insert(outbox),
        [
            {
                "id": uuid7(),
                "event": e.name,
                "payload": event_to_payload(e),
                "user_id": e.user_id,
                "created_at": now,
            }
            for e in events
        ],
    )
    return len(events)


async def pending_events(conn: AsyncConnection, limit: int = 100) -> list[OutboxMessage]:
    """Undispatched events, oldest first."""
    rows = await conn.execute(
        select(outbox.c.id, outbox.c.event, outbox.c.payload, outbox.c.created_at)
        .where(outbox.c.dispatched_at.is_(None))
        .order_by(outbox.c.created_at, outbox.c.id)
        .limit(limit)
    )
    return [
        OutboxMessage(
            id=r.id, event=event_from_payload(r.event, r.payload), created_at=r.created_at
        )
        for r in rows
    ]


async def mark_dispatched(conn: AsyncConnection, ids: Sequence[UUID], *, now: datetime) -> int:
    """Mark outbox rows dispatched; return how many changed."""
    if not ids:
        return 0
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(list(ids)), outbox.c.dispatched_at.is_(None))
        .values(dispatched_at=now)
    )
    return int(result.rowcount)


__all__ = [
    "OutboxMessage",
    "event_from_payload",
    "event_to_payload",
    "mark_dispatched",
    "pending_events",
    "write_events",
]
