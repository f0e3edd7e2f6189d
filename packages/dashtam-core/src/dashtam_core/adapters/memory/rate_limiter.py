"""In-process GCRA rate limiter (embedded default, and Redis fallback for security rules).

GCRA (generic cell rate algorithm) keeps one number per key, the theoretical arrival time
``tat``. With emission interval ``T = period / limit`` a hit at ``now`` is allowed when
``max(tat, now) + T - period <= now``, and then ``tat`` advances by ``T``. This is a token bucket
of ``limit`` tokens refilled continuously over ``period``, in O(1) time and memory per key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dashtam_core.ports.rate_limit import Decision, RateLimitRule

#: Tolerance for float rounding when ``limit`` hits land at the same instant.
_EPS = 1e-9


class InMemoryRateLimiter:
    """A single-process GCRA limiter.

    Args:
        clock: monotonic seconds (injectable for tests).
        max_keys: per-rule key count above which expired keys are swept.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._tables: dict[str, dict[str, float]] = {}
        self._max_keys = max_keys
        self._sweep_at: dict[str, int] = {}

    def _table(self, rule: RateLimitRule) -> dict[str, float]:
        table = self._tables.get(rule.name)
        if table is None:
            table = self._tables[rule.name] = {}
            self._sweep_at[rule.name] = self._max_keys
        return table

    def _maybe_sweep(self, rule: RateLimitRule, table: dict[str, float], now: float) -> None:
        if len(table) <= self._sweep_at[rule.name]:
            return
        for key in [k for k, tat in table.items() if tat <= now]:
            del table[key]
        self._sweep_at[rule.name] = max(self._max_keys, 2 * len(table))

    def allow(self, key: str, rule: RateLimitRule) -> bool:
        """Record a hit and return only whether it is allowed (the hot path)."""
        limit = rule.limit
        if not limit:
            return True
        now = self._clock()
        table = self._tables.get(rule.name) or self._table(rule)
        tat = table.get(key, now)
        if tat < now:
            tat = now
        period = rule.period_seconds
        new_tat = tat + period / limit
        if new_tat - period > now + _EPS:
            return False
        table[key] = new_tat
        if len(table) > self._sweep_at[rule.name]:
            self._maybe_sweep(rule, table, now)
        return True

    def check(self, key: str, rule: RateLimitRule) -> Decision:
        """Record a hit and return the full decision (synchronous)."""
        limit = rule.limit
        if not limit:
            return Decision(True, 0, 0, 0.0, 0.0)
        now = self._clock()
        table = self._tables.get(rule.name) or self._table(rule)
        tat = table.get(key, now)
        if tat < now:
            tat = now
        period = rule.period_seconds
        interval = period / limit
        new_tat = tat + interval
        allow_at = new_tat - period
        if allow_at > now + _EPS:
            return Decision(False, limit, 0, tat - now, allow_at - now)
        table[key] = new_tat
        if len(table) > self._sweep_at[rule.name]:
            self._maybe_sweep(rule, table, now)
        remaining = int((now - allow_at) / interval + _EPS)
        return Decision(True, limit, min(remaining, limit), new_tat - now, 0.0)

    async def hit(self, key: str, rule: RateLimitRule) -> Decision:
        """Record one hit of ``key`` under ``rule`` (the ``RateLimiter`` protocol)."""
        return self.check(key, rule)

    def reset(self, key: str | None = None, rule: RateLimitRule | None = None) -> None:
        """Forget one key of one rule, or everything."""
        if key is None or rule is None:
            self._tables.clear()
            return
        self._tables.get(rule.name, {}).pop(key, None)

    def __len__(self) -> int:
        return sum(len(t) for t in self._tables.values())


__all__ = ["InMemoryRateLimiter"]
