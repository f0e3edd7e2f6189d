"""TOTP second factor (RFC 6238): enrolment secret, otpauth URI, verification with replay guard.

Codes are accepted for the current 30-second step and one step either side. A code's time step
must be newer than the last step accepted for the same subject (the replay guard), so an
observed code cannot be used twice. :class:`SqlAlchemyTotpReplayGuard` keeps that step in the
database (``users.mfa_last_step``), so the guard holds across processes and API replicas without
Redis; :class:`InMemoryTotpReplayGuard` is the process-local one for unit tests.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from uuid import UUID

import pyotp

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

DEFAULT_ISSUER = "Dashtam"


def new_totp_secret() -> str:
    """A new base32 secret (160 bits) for enrolment."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, account_name: str, issuer: str = DEFAULT_ISSUER) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=issuer)


@runtime_checkable
class TotpReplayGuard(Protocol):
    """Remembers the last accepted time step per subject."""

    async def claim(self, subject: str, timestep: int) -> bool:
        """Record ``timestep`` for ``subject`` and return True if it is newer than any before."""
        ...


class InMemoryTotpReplayGuard:
    """A process-local replay guard (unit tests; not shared between processes)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    async def claim(self, subject: str, timestep: int) -> bool:
        """See :class:`TotpReplayGuard`."""
        if timestep <= self._last.get(subject, -1):
            return False
        self._last[subject] = timestep
        return True


class SqlAlchemyTotpReplayGuard:
    """The replay guard shared by every process on one database: ``users.mfa_last_step``.

    The subject is a user id. A claim is one compare-and-set ``UPDATE users SET mfa_last_step =
    :step WHERE id = :user AND (mfa_last_step IS NULL OR mfa_last_step < :step)`` committed in a
    transaction of its own: on PostgreSQL a concurrent claim waits for the row lock and then
    re-checks the condition, on SQLite writers are serialized by the write lock, so of two
    processes claiming the same step exactly one wins. A claimed step stays spent even if the
    caller then fails (the safe side). Do not call it while this process holds an open write
    transaction on the same SQLite database (it would wait for its own lock).

    Args:
        engine: the database engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim(self, subject: str, timestep: int) -> bool:
        """See :class:`TotpReplayGuard` (False as well for an unknown user or a non-UUID)."""
        from sqlalchemy import or_, update

        from dashtam_core.adapters.sqlalchemy.tables import users

        try:
            user_id = UUID(subject)
        except ValueError:
            return False
        last = users.c.mfa_last_step
        stmt = (
            update(users)
            .where(users.c.id == user_id, or_(last.is_(None), last < timestep))
            .values(mfa_last_step=timestep)
            .returning(users.c.id)
        )
        async with self.engine.begin() as conn:
            won = (await conn.execute(stmt)).one_or_none()
        return won is not None


class TotpVerifier:
    """Verifies 6-digit TOTP codes with a ±``window`` step tolerance.

    Args:
        guard: replay guard (default: in-memory, this process only; the security kit passes
            a :class:`SqlAlchemyTotpReplayGuard`).
        window: steps accepted either side of now (1 = ±30 s).
        interval: step length in seconds.
        digits: code length.
    """

    def __init__(
        self,
        guard: TotpReplayGuard | None = None,
        *,
        window: int = 1,
        interval: int = 30,
        digits: int = 6,
    ) -> None:
        self.guard = guard or InMemoryTotpReplayGuard()
        self.window = window
        self.interval = interval
        self.digits = digits

    def matching_step(self, secret: str, code: str, now: float | None = None) -> int | None:
        """The time step ``code`` belongs to (within the window), or None; no replay check."""
        code = code.strip().replace(" ", "")
        if len(code) != self.digits or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret, digits=self.digits, interval=self.interval)
        moment = time.time() if now is None else now
        current = int(moment // self.interval)
        found: int | None = None
        for offset in range(-self.window, self.window + 1):
            step = current + offset
            candidate = totp.generate_otp(step)
            if hmac.compare_digest(candidate.encode(), code.encode()) and found is None:
                found = step
        return found

    async def verify(
        self, secret: str, code: str, *, subject: str, now: float | None = None
    ) -> bool:
        """True for a valid code whose step was not used before by ``subject``."""
        step = self.matching_step(secret, code, now)
        if step is None:
            return False
        return await self.guard.claim(subject, step)


__all__ = [
    "InMemoryTotpReplayGuard",
    "SqlAlchemyTotpReplayGuard",
    "TotpReplayGuard",
    "TotpVerifier",
    "new_totp_secret",
    "provisioning_uri",
]
