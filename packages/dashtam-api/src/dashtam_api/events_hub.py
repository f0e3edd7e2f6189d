"""Server-sent events fan-out (``GET /api/v1/events``): one stream per connected client.

The hub is the message bus's ``notify`` role: every user-visible domain event (sync started /
progressed / finished, connection status changes, statement imports, data changes) becomes an
SSE message for its owner.

* **Embedded default** (no Redis): events are delivered in-process to the streams of that user.
* **Redis** (``DASHTAM_REDIS_URL``): :meth:`EventsHub.publish` PUBLISHes the message on
  :data:`CHANNEL`; every API replica runs one listener (:meth:`EventsHub.start`) that delivers
  what it hears to its local streams, so an event produced by a worker process (which publishes
  with :func:`publish_to_redis`) reaches whichever replica holds the user's stream.

Resume: every message's SSE ``id`` is the event's UUIDv7 (time-ordered). A client reconnecting
with ``Last-Event-ID`` first receives the messages with a greater id, in id order, then live
ones:

* **Durable** events (every user-visible event except :data:`EPHEMERAL_EVENTS`) are written to
  the transactional outbox with their data and kept there for ``DASHTAM_EVENT_RETENTION_DAYS``;
  they are replayed from the database (one indexed query per reconnect,
  :func:`~dashtam_core.sync.outbox.events_after`), so resume survives an API restart and works
  on any replica. An id older than the retention window replays what is still stored.
* **Ephemeral** events (:data:`EPHEMERAL_EVENTS`: sync started / progress / finished, published
  straight on the bus) are replayed only from this process's buffer (the last
  :attr:`EventsHub.buffer_size` messages per user): after a restart they are gone (poll
  ``GET /api/v1/syncs/{id}`` for a sync's outcome).

A stream subscribes to live messages *before* it reads the replay, then drops the live messages
it already replayed, so nothing falls between the two and nothing comes twice. The replay is
bounded (:attr:`EventsHub.replay_limit` durable events): when more are stored, the stream sends
that many and ends, and the client's automatic reconnect (``retry: 3000``) continues from the
last id it got. A ``Last-Event-ID`` that is not a UUID is ignored (live messages only).
Duplicates (an outbox event dispatched twice) are dropped by id. A stream whose client reads
too slowly is ended (the client reconnects with ``Last-Event-ID``). Heartbeat comments
(``: ping``) keep proxies from closing idle streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.domain.events import DomainEvent
from dashtam_core.registries.events import EVENT_REGISTRY
from dashtam_core.sync.outbox import event_to_payload, events_after

log = structlog.get_logger(__name__)

#: Redis pub/sub channel shared by the API replicas and the workers.
CHANNEL = "dashtam:events"
#: SSE names of the events (``event:`` field); others use their snake-cased class name.
EVENT_NAMES: dict[str, str] = {
    "SyncStarted": "sync.started",
    "SyncProgressed": "sync.progress",
    "SyncFinished": "sync.finished",
    "ConnectionCreated": "connection.created",
    "ConnectionStatusChanged": "connection.status_changed",
    "ConnectionDisconnected": "connection.disconnected",
    "ConnectionExpiring": "connection.expiring",
    "StatementImported": "import.finished",
    "TransactionsChanged": "transactions.changed",
    "PendingTransactionPosted": "transactions.pending_posted",
    "HoldingsSnapshotted": "holdings.updated",
}
#: User-visible events published straight on the bus (progress notifications), not through the
#: outbox: replayed only from a process's in-memory buffer.
EPHEMERAL_EVENTS: frozenset[str] = frozenset({"SyncStarted", "SyncProgressed", "SyncFinished"})
#: User-visible events written to the outbox with their change: replayed from the database.
DURABLE_EVENTS: frozenset[str] = (
    frozenset(cls.__name__ for cls, meta in EVENT_REGISTRY.items() if meta.user_visible)
    - EPHEMERAL_EVENTS
)
_EPHEMERAL_SSE_NAMES = frozenset(EVENT_NAMES.get(name, name) for name in EPHEMERAL_EVENTS)


@dataclass(frozen=True, slots=True)
class SseMessage:
    """One message for one user."""

    id: UUID
    user_id: UUID
    event: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        """The SSE wire form (``id``, ``event``, one ``data`` line, blank line)."""
        body = orjson.dumps(self.data).decode("utf-8")
        return f"id: {self.id}\nevent: {self.event}\ndata: {body}\n\n".encode()

    def to_json(self) -> bytes:
        """Serialized for the Redis channel."""
        return orjson.dumps(
            {
                "id": str(self.id),
                "user_id": str(self.user_id),
                "event": self.event,
                "data": self.data,
            }
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> SseMessage:
        """Parse :meth:`to_json` output."""
        doc = orjson.loads(raw)
        return cls(UUID(doc["id"]), UUID(doc["user_id"]), str(doc["event"]), dict(doc["data"]))

    @property
    def durable(self) -> bool:
        """Whether the message's event is stored in the outbox (replayable after a restart)."""
        return self.event not in _EPHEMERAL_SSE_NAMES


def parse_event_id(value: str | None) -> UUID | None:
    """The UUID of a ``Last-Event-ID`` value, or ``None`` when absent or not a UUID."""
    if not value or not value.strip():
        return None
    try:
        return UUID(value.strip())
    except ValueError:
        return None


def message_for(event: DomainEvent) -> SseMessage | None:
    """The SSE message of ``event``, or ``None`` when it is not streamed to a user."""
    meta = EVENT_REGISTRY.get(type(event))
    if meta is None or not meta.user_visible or event.user_id is None:
        return None
    payload = event_to_payload(event)
    payload.pop("user_id", None)
    payload["type"] = EVENT_NAMES.get(event.name, event.name)
    return SseMessage(event.event_id, event.user_id, payload["type"], payload)


async def publish_to_redis(redis: Any, event: DomainEvent) -> bool:
    """PUBLISH ``event`` for the API replicas (workers call this as their ``notify`` role).

    Returns:
        Whether the event is user-visible (and was published).
    """
    message = message_for(event)
    if message is None:
        return False
    await redis.publish(CHANNEL, message.to_json())
    return True


def redis_notify_handler(redis: Any) -> Callable[[DomainEvent], Awaitable[None]]:
    """A ``notify`` bus handler for worker processes: user-visible events go to Redis.

    ``dashtam worker`` subscribes it (``container.bus.subscribe_role("notify", ...)``) so the
    events of the syncs it runs reach the API replica holding the user's stream.
    """

    async def notify(event: DomainEvent) -> None:
        await publish_to_redis(redis, event)

    return notify


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[SseMessage | None]


@dataclass
class EventsHub:
    """Per-user SSE fan-out with database replay and a bounded in-memory buffer.

    Attributes:
        redis: a ``redis.asyncio`` client, or ``None`` for in-process delivery only.
        buffer_size: messages kept per user in this process (resume of ephemeral events).
        queue_size: messages a slow stream may lag behind before it is ended.
        heartbeat_seconds: idle time after which a ``: ping`` comment is sent.
        replay_limit: durable events replayed per connection at most (more: the stream ends
            after them and the client reconnects from there).
    """

    redis: Any | None = None
    buffer_size: int = 256
    queue_size: int = 1024
    heartbeat_seconds: float = 15.0
    replay_limit: int = 500
    _buffers: dict[UUID, deque[SseMessage]] = field(default_factory=dict)
    _subscribers: dict[UUID, set[_Subscriber]] = field(default_factory=dict)
    _listener: asyncio.Task[None] | None = None
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, event: DomainEvent) -> None:
        """The bus's ``notify`` handler: deliver ``event`` (via Redis when configured)."""
        message = message_for(event)
        if message is None:
            return
        if self.redis is not None and self._listener is not None:
            await self.redis.publish(CHANNEL, message.to_json())
        else:
            self.deliver(message)

    def deliver(self, message: SseMessage) -> None:
        """Buffer ``message`` and hand it to the user's local streams (duplicates dropped)."""
        buffer = self._buffers.setdefault(message.user_id, deque(maxlen=self.buffer_size))
        if any(m.id == message.id for m in buffer):
            return
        buffer.append(message)
        for sub in list(self._subscribers.get(message.user_id, ())):
            try:
                sub.queue.put_nowait(message)
            except asyncio.QueueFull:
                self._drop(message.user_id, sub)

    def _drop(self, user_id: UUID, sub: _Subscriber) -> None:
        self._subscribers.get(user_id, set()).discard(sub)
        with contextlib.suppress(asyncio.QueueFull):
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(None)

    def backlog(
        self, user_id: UUID, after: UUID, *, ephemeral_only: bool = False
    ) -> list[SseMessage]:
        """This process's buffered messages of ``user_id`` with an id above ``after``, by id.

        Args:
            user_id: the owner.
            after: the last id the client has.
            ephemeral_only: only messages of :data:`EPHEMERAL_EVENTS` (the durable ones are
                read from the outbox instead).
        """
        return sorted(
            (
                m
                for m in self._buffers.get(user_id, ())
                if m.id > after and not (ephemeral_only and m.durable)
            ),
            key=lambda m: m.id,
        )

    async def replay(
        self, user_id: UUID, after: UUID, engine: AsyncEngine | None
    ) -> tuple[list[SseMessage], bool]:
        """What a client resuming after ``after`` missed, in id order.

        Durable events come from the outbox (one query, at most :attr:`replay_limit`),
        ephemeral ones from this process's buffer. Without ``engine`` only the buffer is used.

        Returns:
            The messages, and whether that is everything (``False``: more durable events
            follow the last one).
        """
        if engine is None:
            found = self.backlog(user_id, after)
            return found[: self.replay_limit], len(found) <= self.replay_limit
        buffered = self.backlog(user_id, after, ephemeral_only=True)
        async with engine.connect() as conn:
            stored, more = await events_after(
                conn, user_id, after, names=DURABLE_EVENTS, limit=self.replay_limit
            )
        messages = [m for m in (message_for(s.event) for s in stored) if m is not None]
        if more and stored:
            # The next reconnect continues after the last stored event: send nothing beyond it.
            buffered = [m for m in buffered if m.id < stored[-1].id]
        return sorted([*messages, *buffered], key=lambda m: m.id), not (more and stored)

    def subscriber_count(self, user_id: UUID | None = None) -> int:
        """Open streams (of one user, or in total)."""
        if user_id is not None:
            return len(self._subscribers.get(user_id, ()))
        return sum(len(s) for s in self._subscribers.values())

    async def stream(
        self,
        user_id: UUID,
        last_event_id: str | None,
        is_disconnected: Callable[[], Awaitable[bool]] | None = None,
        *,
        engine: AsyncEngine | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The SSE byte stream of ``user_id``: what followed ``last_event_id``, then live.

        Args:
            user_id: the caller.
            last_event_id: the client's ``Last-Event-ID`` (ignored when not a UUID).
            is_disconnected: tells whether the client went away (checked when idle).
            engine: the database holding the outbox (durable events are replayed from it).
        """
        after = parse_event_id(last_event_id)
        sub = _Subscriber(asyncio.Queue(maxsize=self.queue_size))
        # Subscribe before reading the replay: a message published meanwhile is both queued
        # and replayed, and the queued copy is dropped below (no gap, no duplicate).
        self._subscribers.setdefault(user_id, set()).add(sub)
        try:
            yield b"retry: 3000\n: connected\n\n"
            replayed: set[UUID] = set()
            if after is not None:
                try:
                    messages, complete = await self.replay(user_id, after, engine)
                except Exception as exc:  # the client reconnects with the same Last-Event-ID
                    log.warning("events_replay_failed", error_type=type(exc).__name__)
                    return
                for message in messages:
                    replayed.add(message.id)
                    yield message.encode()
                if not complete:
                    log.info("events_replay_truncated", sent=len(messages))
                    return
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), self.heartbeat_seconds)
                except TimeoutError:
                    if is_disconnected is not None and await is_disconnected():
                        return
                    yield b": ping\n\n"
                    continue
                if item is None:
                    return
                if item.id in replayed:
                    continue
                yield item.encode()
        finally:
            subs = self._subscribers.get(user_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[user_id]

    async def start(self) -> None:
        """Start the Redis listener (no-op without Redis or when already running)."""
        if self.redis is None or self._listener is not None:
            return
        self._listener = asyncio.create_task(self._listen(), name="dashtam-events-listener")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def _listen(self) -> None:
        assert self.redis is not None
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self._ready.set()
            while True:
                item = await pubsub.get_message(timeout=1.0)
                if item is None or item.get("type") != "message":
                    continue
                try:
                    self.deliver(SseMessage.from_json(item["data"]))
                except (ValueError, KeyError, TypeError):
                    log.warning("events_bad_message")
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(CHANNEL)
            await pubsub.aclose()

    async def aclose(self) -> None:
        """Stop the listener and end every open stream."""
        task, self._listener = self._listener, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for user_id, subs in list(self._subscribers.items()):
            for sub in list(subs):
                self._drop(user_id, sub)


__all__ = [
    "CHANNEL",
    "DURABLE_EVENTS",
    "EPHEMERAL_EVENTS",
    "EVENT_NAMES",
    "EventsHub",
    "SseMessage",
    "message_for",
    "parse_event_id",
    "publish_to_redis",
    "redis_notify_handler",
]
