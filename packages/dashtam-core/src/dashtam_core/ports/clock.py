"""The clock port: every "now" in the application comes from a :class:`Clock`.

Handlers take a clock instead of calling :func:`datetime.now` so tests can pin time with
:class:`FixedClock` (token expiry, lockouts, sync windows).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> datetime:
        """Return the current time as a timezone-aware UTC datetime."""
        ...


class SystemClock:
    """The real wall clock (UTC)."""

    def now(self) -> datetime:
        """Return ``datetime.now(UTC)``."""
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that only moves when told to (tests).

    Args:
        at: the initial time; must be timezone-aware (it is converted to UTC).

    Raises:
        ValueError: if ``at`` is naive.
    """

    def __init__(self, at: datetime) -> None:
        self._now = _aware_utc(at)

    def now(self) -> datetime:
        """Return the pinned time."""
        return self._now

    def set(self, at: datetime) -> None:
        """Pin the clock to ``at`` (timezone-aware)."""
        self._now = _aware_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        self._now = self._now + delta
        return self._now

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()})"


def _aware_utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("FixedClock needs a timezone-aware datetime")
    return at.astimezone(UTC)


__all__ = ["Clock", "FixedClock", "SystemClock"]
