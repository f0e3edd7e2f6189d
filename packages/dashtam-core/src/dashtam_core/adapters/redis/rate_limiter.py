"""Redis GCRA rate limiter: one atomic Lua script per hit, shared by every process.

The script reads the clock from Redis (``TIME``) so that every API replica agrees, keeps one
``tat`` value per key (milliseconds, expiring when the bucket is full again), and answers
``{allowed, remaining, reset_after_ms, retry_after_ms}``. It is invoked with ``EVALSHA`` and loaded
with ``SCRIPT LOAD`` when Redis does not know it (restart, ``SCRIPT FLUSH``).

When Redis fails, ``security`` rules fall back to a local in-process limiter (never fail open)
and ``capacity`` rules allow the request (fail open). After a failure Redis is skipped for
``retry_interval`` seconds so that a dead Redis costs no connect timeout per request.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from dashtam_core.adapters.memory.rate_limiter import InMemoryRateLimiter
from dashtam_core.ports.rate_limit import Decision, RateLimitKind, RateLimitRule

logger = logging.getLogger(__name__)

GCRA_LUA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local eps = 0.01
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = period / limit
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now + eps then
  return {0, 0, string.format('%.3f', tat - now), string.format('%.3f', allow_at - now)}
end
local ttl = math.ceil(new_tat - now) + 1
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', ttl)
local remaining = math.floor((now - allow_at) / interval + eps)
if remaining > limit then
  remaining = limit
end
return {1, remaining, string.format('%.3f', new_tat - now), '0'}
"""
GCRA_SHA = hashlib.sha1(GCRA_LUA.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1


class RedisRateLimiter:
    """GCRA limiter over Redis.

    Args:
        client: a ``redis.asyncio.Redis`` client.
        prefix: key namespace (``dashtam:rl:``).
        fallback: local limiter for ``security`` rules while Redis is down.
        retry_interval: seconds to skip Redis after a failure.
        clock: monotonic clock (for the retry interval).
    """

    def __init__(
        self,
        client: Redis[Any],
        *,
        prefix: str = "dashtam:rl:",
        fallback: InMemoryRateLimiter | None = None,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fallback = fallback or InMemoryRateLimiter()
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self._sha = GCRA_SHA
        self.degraded_hits = 0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisRateLimiter:
        """Build a limiter from a ``redis://`` URL (short timeouts so a dead Redis is noticed)."""
        client = Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        return cls(client, **kwargs)

    @property
    def healthy(self) -> bool:
        """False while Redis is being skipped after a failure."""
        return self._clock() >= self._down_until

    async def _eval(self, key: str, rule: RateLimitRule) -> Any:
        args = (rule.limit, rule.period_seconds * 1000.0)
        try:
            return await self._client.evalsha(self._sha, 1, key, *args)  # type: ignore[no-untyped-call]
        except NoScriptError:
            self._sha = await self._client.script_load(GCRA_LUA)  # type: ignore[no-untyped-call]
            return await self._client.evalsha(self._sha, 1, key, *args)  # type: ignore[no-untyped-call]

    async def hit(self, key: str, rule: RateLimitRule) -> Decision:
        """Record one hit of ``key`` under ``rule``."""
        if rule.unlimited:
            return Decision(True, 0, 0, 0.0, 0.0)
        if self._clock() >= self._down_until:
            try:
                reply = await self._eval(f"{self._prefix}{rule.name}|{key}", rule)
            except (RedisError, OSError) as exc:
                self._down_until = self._clock() + self._retry_interval
                logger.warning("rate limiter: Redis unavailable (%s)", type(exc).__name__)
            else:
                allowed, remaining, reset_ms, retry_ms = reply
                return Decision(
                    allowed=bool(int(allowed)),
                    limit=rule.limit,
                    remaining=int(remaining),
                    reset_after=float(reset_ms) / 1000.0,
                    retry_after=float(retry_ms) / 1000.0,
                )
        self.degraded_hits += 1
        if rule.kind is RateLimitKind.SECURITY:
            return self._fallback.check(key, rule)
        return Decision(True, rule.limit, rule.limit, 0.0, 0.0)

    async def aclose(self) -> None:
        """Close the Redis client."""
        await self._client.aclose()  # type: ignore[attr-defined]


__all__ = ["GCRA_LUA", "GCRA_SHA", "RedisRateLimiter"]
