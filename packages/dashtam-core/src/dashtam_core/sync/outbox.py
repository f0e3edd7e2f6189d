"""The transactional outbox: domain events stored in the same transaction as the data.

A dispatcher (the jobs layer) reads undispatched rows in id order (the events' creation order),
rebuilds the events with :func:`event_from_payload` and publishes them on the message bus, then
marks them dispatched. Because the rows commit with the data, an event exists if and only if its
change does.

A row's ``id`` is its event's ``event_id`` (a UUIDv7), so the SSE ``id`` of a live message and
of its replay are the same. Dispatched rows are kept for ``DASHTAM_EVENT_RETENTION_DAYS`` (the
``dashtam.prune`` job deletes older ones): :func:`events_after` reads them back for SSE
``Last-Event-ID`` resume (one range scan of the ``(user_id, id)`` index).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Collection, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dashtam_core.adapters.sqlalchemy.tables_data import outbox
from dashtam_core.domain import events as ev

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class OutboxMessage:
    """An outbox row with its rebuilt event (``id`` equals ``event.event_id``)."""

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
    """Store ``events`` in the outbox (one executemany); return how many were written.

    Each row's id is the event's ``event_id``: an event is stored once.
    """
    if not events:
        return 0
    await conn.execute(
        insert(outbox),
        [
            {
                "id": e.event_id,
                "event": e.name,
                "payload": event_to_payload(e),
                "user_id": e.user_id,
                "created_at": now,
            }
            for e in events
        ],
    )
    return len(events)


async def pending_events(
    conn: AsyncConnection,
    limit: int = 100,
    *,
    user_id: UUID | None = None,
    since: datetime | None = None,
    unreadable: list[UUID] | None = None,
) -> list[OutboxMessage]:
    """Undispatched events, oldest first (in id order: the SSE resume order).

    ``user_id`` / ``since``: only that user's events, only those stored at or after ``since``
    (e.g. the events of one sync run). ``unreadable``: a row whose event can no longer be
    rebuilt (its class removed or changed incompatibly) is skipped with a warning and its id
    appended here, instead of raising (which would stop every later event behind it).
    """
    stmt = select(outbox.c.id, outbox.c.event, outbox.c.payload, outbox.c.created_at).where(
        outbox.c.dispatched_at.is_(None)
    )
    if user_id is not None:
        stmt = stmt.where(outbox.c.user_id == user_id)
    if since is not None:
        stmt = stmt.where(outbox.c.created_at >= since)
    found: list[OutboxMessage] = []
    for r in await conn.execute(stmt.order_by(outbox.c.id).limit(limit)):
        try:
            event = event_from_payload(r.event, r.payload)
        except (KeyError, TypeError, ValueError) as exc:
            if unreadable is None:
                raise
            log.warning(
                "outbox_row_unreadable", id=str(r.id), name=r.event, error=type(exc).__name__
            )
            unreadable.append(r.id)
            continue
        found.append(OutboxMessage(id=r.id, event=event, created_at=r.created_at))
    return found


async def events_after(
    conn: AsyncConnection,
    user_id: UUID,
    after: UUID,
    *,
    names: Collection[str],
    limit: int,
) -> tuple[list[OutboxMessage], bool]:
    """The stored events of ``user_id`` with an id greater than ``after``, in id order.

    Dispatched or not: SSE resume replays what committed. One range scan of the
    ``(user_id, id)`` index (``limit + 1`` rows, to learn whether more follow). A row whose
    event can no longer be rebuilt (an event class removed or changed incompatibly) is skipped
    with a warning.

    Args:
        conn: any connection.
        user_id: the events' owner.
        after: an event id (any UUID; UUIDv7 ids compare by time).
        names: the event names to return (rows of other events are filtered out by the query).
        limit: at most this many rows are read back.

    Returns:
        The events, and whether more rows follow the last one.
    """
    if limit < 1 or not names:
        return [], False
    rows = (
        await conn.execute(
            select(outbox.c.id, outbox.c.event, outbox.c.payload, outbox.c.created_at)
            .where(
                outbox.c.user_id == user_id,
                outbox.c.id > after,
                outbox.c.event.in_(sorted(names)),
            )
            .order_by(outbox.c.id)
            .limit(limit + 1)
        )
    ).all()
    found: list[OutboxMessage] = []
    for r in rows[:limit]:
        try:
            event = event_from_payload(r.event, r.payload)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "outbox_row_unreadable", id=str(r.id), name=r.event, error=type(exc).__name__
            )
            continue
        found.append(OutboxMessage(id=r.id, event=event, created_at=r.created_at))
    return found, len(rows) > limit


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
    "events_after",
    "mark_dispatched",
    "pending_events",
    "write_events",
]
