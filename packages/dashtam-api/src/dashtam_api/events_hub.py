"""Server-sent events fan-out (``GET /api/v1/events``): one stream per connected client.

The hub is the message bus's ``notify`` role: every user-visible domain event (sync started /
progressed / finished, connection status changes, statement imports, data changes) becomes an
SSE message for its owner.

* **Embedded default** (no Redis): events are delivered in-process to the streams of that user.
* **Redis** (``DASHTAM_REDIS_URL``): :meth:`EventsHub.publish` PUBLISHes the message on
  :data:`CHANNEL`; every API replica runs one listener (:meth:`EventsHub.start`) that delivers
  what it hears to its local streams, so an event produced by a worker process (which publishes
  with :func:`publish_to_redis`) reaches whichever replica holds the user's stream.

Resume: every message's SSE ``id`` is the event's UUIDv7 (time-ordered). Each replica keeps the
last :attr:`EventsHub.buffer_size` messages per user; a client reconnecting with
``Last-Event-ID`` first receives the buffered messages with a greater id, then live ones.
Duplicates (an outbox event dispatched twice) are dropped by id. A stream whose client reads
too slowly is ended (the client reconnects with ``Last-Event-ID``). Heartbeat comments
(``: ping``) keep proxies from closing idle streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import structlog

from dashtam_core.domain.events import DomainEvent
from dashtam_core.registries.events import EVENT_REGISTRY
from dashtam_core.sync.outbox import event_to_payload

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
    """Per-user SSE fan-out with a bounded resume buffer.

    Attributes:
        redis: a ``redis.asyncio`` client, or ``None`` for in-process delivery only.
        buffer_size: messages kept per user for ``Last-Event-ID`` resume.
        queue_size: messages a slow stream may lag behind before it is ended.
        heartbeat_seconds: idle time after which a ``: ping`` comment is sent.
    """

    redis: Any | None = None
    buffer_size: int = 256
    queue_size: int = 1024
    heartbeat_seconds: float = 15.0
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

    def backlog(self, user_id: UUID, last_event_id: str | None) -> list[SseMessage]:
        """Buffered messages of ``user_id`` after ``last_event_id`` (all when it is unknown)."""
        buffered = list(self._buffers.get(user_id, ()))
        if not last_event_id:
            return []
        try:
            after = UUID(last_event_id.strip())
        except ValueError:
            return buffered
        return [m for m in buffered if m.id > after]

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
    ) -> AsyncIterator[bytes]:
        """The SSE byte stream of ``user_id``: backlog after ``last_event_id``, then live."""
        sub = _Subscriber(asyncio.Queue(maxsize=self.queue_size))
        self._subscribers.setdefault(user_id, set()).add(sub)
        try:
            yield b"retry: 3000\n: connected\n\n"
            for message in self.backlog(user_id, last_event_id):
                yield message.encode()
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
    "EVENT_NAMES",
    "EventsHub",
    "SseMessage",
    "message_for",
    "publish_to_redis",
    "redis_notify_handler",
]
