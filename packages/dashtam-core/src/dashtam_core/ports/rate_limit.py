"""The rate-limit port: rules, decisions and the ``RateLimiter`` protocol.

A rule says how many hits (``limit``) a key may make per ``period_seconds``; its ``scope`` says
what the key is built from and its ``kind`` how a limiter behaves when its store is down
(``security`` rules fall back to a local limiter, ``capacity`` rules fail open).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class RateLimitScope(StrEnum):
    """What a rate-limit key is built from."""

    IP = "ip"
    USER = "user"
    USER_PROVIDER = "user+provider"
    SESSION = "session"
    EMAIL = "email"
    CONNECTION = "connection"
    NONE = "none"


class RateLimitKind(StrEnum):
    """How a limiter behaves when its shared store is unavailable."""

    SECURITY = "security"
    CAPACITY = "capacity"


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    """A named rule: ``limit`` hits per ``period_seconds`` per key (``limit == 0``: unlimited)."""

    name: str
    limit: int
    period_seconds: float
    scope: RateLimitScope
    kind: RateLimitKind = RateLimitKind.CAPACITY

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError("limit must be >= 0")
        if self.period_seconds <= 0:
            raise ValueError("period_seconds must be > 0")

    @property
    def unlimited(self) -> bool:
        """True for the ``none`` rule (and any rule with ``limit == 0``)."""
        return self.limit == 0


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one hit.

    Attributes:
        allowed: whether the request may proceed.
        limit: the rule's limit (the quota).
        remaining: hits still allowed right now.
        reset_after: seconds until the quota is entirely restored.
        retry_after: seconds to wait before the next hit can succeed (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float


@runtime_checkable
class RateLimiter(Protocol):
    """Counts hits per key and rule."""

    async def hit(self, key: str, rule: RateLimitRule) -> Decision:
        """Record one hit of ``key`` under ``rule`` and say whether it is allowed."""
        ...


__all__ = ["Decision", "RateLimitKind", "RateLimitRule", "RateLimitScope", "RateLimiter"]
