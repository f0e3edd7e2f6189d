"""taskiq brokers for both deployment shapes.

* Embedded default (no ``DASHTAM_REDIS_URL``): :class:`taskiq.InMemoryBroker`, tasks run as
  asyncio tasks inside the process that kicks them (``dashtam serve``).
* Scaled: :class:`taskiq_redis.ListQueueBroker` on ``DASHTAM_REDIS_URL`` with a
  :class:`taskiq_redis.RedisAsyncResultBackend`; ``dashtam worker`` processes consume the queue
  and one ``dashtam scheduler`` kicks the periodic tasks.

A popped message whose worker is killed is lost by the Redis list; that is safe because the
database is the truth: the periodic ``scheduled_syncs`` task re-kicks queued runs nobody started
and fails (then re-queues) runs left ``running`` by a dead worker.
"""

from __future__ import annotations

import os

from taskiq import AsyncBroker, InMemoryBroker

from dashtam_core.settings import CoreSettings

#: The Redis list the scaled shape uses.
QUEUE_NAME = "dashtam:jobs"
#: Environment variable naming another queue.
QUEUE_ENV = "DASHTAM_JOBS_QUEUE"
#: Seconds task results stay in Redis.
RESULT_TTL_SECONDS = 3600


def build_broker(
    settings: CoreSettings, *, redis_url: str | None = None, queue_name: str | None = None
) -> AsyncBroker:
    """The broker for ``settings``: Redis when a URL is configured, else in-memory.

    Args:
        settings: core settings (``redis_url``).
        redis_url: overrides ``settings.redis_url`` (tests).
        queue_name: the Redis list (default ``DASHTAM_JOBS_QUEUE`` or :data:`QUEUE_NAME`;
            separate deployments or test runs sharing one Redis use their own).
    """
    queue_name = queue_name or os.environ.get(QUEUE_ENV) or QUEUE_NAME
    url = redis_url or settings.redis_url
    if not url:
        return InMemoryBroker(await_inplace=False)
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    backend: RedisAsyncResultBackend[object] = RedisAsyncResultBackend(
        redis_url=url, result_ex_time=RESULT_TTL_SECONDS
    )
    return ListQueueBroker(url, queue_name=queue_name).with_result_backend(backend)


__all__ = ["QUEUE_ENV", "QUEUE_NAME", "RESULT_TTL_SECONDS", "build_broker"]
