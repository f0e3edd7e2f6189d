"""The SSE hub's replay on a real database: the subscribe/replay race, bounds and failures.

The HTTP scenarios (restart, another replica) are in ``test_events_resume_http.py``; these tests
drive :meth:`EventsHub.stream` directly so that the race between the replay query and live
delivery happens at a chosen point instead of by chance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_api.events_hub import DURABLE_EVENTS, EPHEMERAL_EVENTS, EventsHub, SseMessage
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.domain import events as ev
from dashtam_core.domain.ids import uuid7
from dashtam_core.registries.events import EVENT_REGISTRY
from dashtam_core.sync.outbox import mark_dispatched, write_events


def _changed(user_id: UUID, n: int = 1) -> ev.TransactionsChanged:
    return ev.TransactionsChanged(
        user_id=user_id, account_id=uuid7(), added=n, modified=0, removed=0
    )


def _progress(user_id: UUID) -> ev.SyncProgressed:
    return ev.SyncProgressed(
        user_id=user_id, sync_id=uuid7(), connection_id=uuid7(), stage="transactions", done=1
    )


async def _store(engine: AsyncEngine, *events: ev.DomainEvent, dispatched: bool = True) -> None:
    async with engine.begin() as conn:
        await write_events(conn, list(events), now=datetime.now(UTC))
        if dispatched:
            await mark_dispatched(conn, [e.event_id for e in events], now=datetime.now(UTC))


def _id(chunk: bytes) -> str:
    fields = dict(line.split(": ", 1) for line in chunk.decode().splitlines() if ": " in line)
    orjson.loads(fields["data"])
    return fields["id"]


class RacingHub(EventsHub):
    """Runs ``before_replay`` after the stream subscribed and before it reads the replay."""

    before_replay: Callable[[], Awaitable[None]] | None = None

    async def replay(
        self, user_id: UUID, after: UUID, engine: AsyncEngine | None
    ) -> tuple[list[SseMessage], bool]:
        if self.before_replay is not None:
            await self.before_replay()
        return await super().replay(user_id, after, engine)


def test_every_user_visible_event_is_durable_or_ephemeral() -> None:
    visible = {cls.__name__ for cls, meta in EVENT_REGISTRY.items() if meta.user_visible}
    assert visible == DURABLE_EVENTS | EPHEMERAL_EVENTS
    assert not DURABLE_EVENTS & EPHEMERAL_EVENTS
    assert {"SyncStarted", "SyncProgressed", "SyncFinished"} == EPHEMERAL_EVENTS


async def test_an_event_racing_the_replay_comes_once(engine: AsyncEngine) -> None:
    user = uuid7()
    seen_before = _changed(user)
    first = _changed(user)
    progress = _progress(user)  # ephemeral: only in the hub's buffer
    second = _changed(user)
    racing = _changed(user)
    hub = RacingHub(heartbeat_seconds=60)
    await _store(engine, seen_before, first, second)
    for event in (seen_before, first, progress, second):
        await hub.publish(event)  # delivered while nobody listened: buffered only

    async def commit_and_dispatch_meanwhile() -> None:
        await _store(engine, racing)
        await hub.publish(racing)  # reaches the just-subscribed stream's queue

    hub.before_replay = commit_and_dispatch_meanwhile
    stream = hub.stream(user, str(seen_before.event_id), engine=engine)
    assert (await anext(stream)).startswith(b"retry: 3000\n")
    replayed = [_id(await anext(stream)) for _ in range(4)]
    assert replayed == [str(e.event_id) for e in (first, progress, second, racing)]
    # Live: the queued copy of the racing event is dropped; the next event comes through.
    after = _changed(user)
    await hub.publish(after)
    assert _id(await anext(stream)) == str(after.event_id)
    assert hub.subscriber_count(user) == 1
    await stream.aclose()
    assert hub.subscriber_count(user) == 0


async def test_a_late_committed_event_is_delivered_live_not_dropped(engine: AsyncEngine) -> None:
    """An event created before the replayed ones but committed after the replay still arrives."""
    user = uuid7()
    last = _changed(user)
    created_early = _changed(user)  # its transaction commits only after the replay
    replayed = _changed(user)
    await _store(engine, last, replayed)
    hub = EventsHub(heartbeat_seconds=60)
    stream = hub.stream(user, str(last.event_id), engine=engine)
    await anext(stream)
    assert _id(await anext(stream)) == str(replayed.event_id)
    await _store(engine, created_early)
    await hub.publish(created_early)
    assert _id(await anext(stream)) == str(created_early.event_id)
    await stream.aclose()


async def test_a_bounded_replay_ends_the_stream_where_the_next_one_starts(
    engine: AsyncEngine,
) -> None:
    user = uuid7()
    start, d1, p1, d2, p2, d3 = (
        _changed(user),
        _changed(user),
        _progress(user),
        _changed(user),
        _progress(user),
        _changed(user),
    )
    await _store(engine, start, d1, d2)
    await _store(engine, d3, dispatched=False)  # committed, not dispatched yet: replayed too
    hub = EventsHub(heartbeat_seconds=60, replay_limit=2)
    for event in (p1, p2):
        await hub.publish(event)

    async def chunks(after: UUID) -> list[str]:
        return [_id(c) async for c in hub.stream(user, str(after), engine=engine) if b"id: " in c]

    page = await chunks(start.event_id)  # ends by itself: more is stored
    assert page == [str(e.event_id) for e in (d1, p1, d2)]
    stream = hub.stream(user, str(d2.event_id), engine=engine)
    await anext(stream)
    assert [_id(await anext(stream)) for _ in range(2)] == [str(p2.event_id), str(d3.event_id)]
    await stream.aclose()
    assert hub.subscriber_count() == 0


async def test_without_a_valid_id_or_a_database_the_stream_goes_live(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    user = uuid7()
    old = _changed(user)
    await _store(engine, old)
    hub = EventsHub(heartbeat_seconds=60)
    await hub.publish(old)
    for value in (None, "", "not-a-uuid"):
        stream = hub.stream(user, value, engine=engine)
        await anext(stream)
        live = _changed(user)
        await hub.publish(live)
        assert _id(await anext(stream)) == str(live.event_id)  # nothing replayed first
        await stream.aclose()

    # No engine (a hub used on its own): the buffer is the only replay source.
    buffered = hub.stream(user, str(UUID(int=0)))
    await anext(buffered)
    assert _id(await anext(buffered)) == str(old.event_id)
    await buffered.aclose()

    # The database cannot be read: the stream ends (the client reconnects and retries).
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        chunks = [c async for c in hub.stream(user, str(UUID(int=0)), engine=broken)]
    finally:
        await broken.dispose()
    assert len(chunks) == 1
    assert chunks[0].startswith(b"retry: 3000\n")
    assert hub.subscriber_count() == 0
