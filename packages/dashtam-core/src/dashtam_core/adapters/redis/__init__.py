"""Redis adapters: the Lua GCRA rate limiter (cache and fan-out live alongside)."""

from dashtam_core.adapters.redis.rate_limiter import GCRA_LUA, GCRA_SHA, RedisRateLimiter

__all__ = ["GCRA_LUA", "GCRA_SHA", "RedisRateLimiter"]
