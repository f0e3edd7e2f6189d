"""argon2id password hashing (OWASP parameters), run off the event loop."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: OWASP / security.md minimum: m = 19 MiB (19456 KiB), t = 2, p = 1.
MIN_MEMORY_KIB = 19456
MIN_TIME_COST = 2
MIN_PARALLELISM = 1


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """argon2id cost parameters."""

    memory_cost_kib: int = MIN_MEMORY_KIB
    time_cost: int = MIN_TIME_COST
    parallelism: int = MIN_PARALLELISM
    hash_len: int = 32
    salt_len: int = 16

    @property
    def below_minimum(self) -> bool:
        """True when weaker than the security.md minimum."""
        return (
            self.memory_cost_kib < MIN_MEMORY_KIB
            or self.time_cost < MIN_TIME_COST
            or self.parallelism < MIN_PARALLELISM
        )


#: Cheap parameters for tests only; pass ``allow_weak_parameters=True`` to use them.
TEST_PARAMS = Argon2Params(memory_cost_kib=64, time_cost=1, parallelism=1)


class Argon2idHasher:
    """Hash and verify passwords with argon2id in a worker thread.

    Args:
        params: cost parameters; defaults to m=19456 KiB, t=2, p=1.
        allow_weak_parameters: must be True to accept parameters below the minimum
            (tests only).

    Raises:
        ValueError: weak parameters without ``allow_weak_parameters``.

    Example:
        >>> import asyncio
        >>> h = Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True)
        >>> encoded = asyncio.run(h.hash("correct horse battery staple"))
        >>> asyncio.run(h.verify(encoded, "correct horse battery staple"))
        True
    """

    def __init__(
        self, params: Argon2Params | None = None, *, allow_weak_parameters: bool = False
    ) -> None:
        self.params = params or Argon2Params()
        if self.params.below_minimum and not allow_weak_parameters:
            raise ValueError(
                "argon2id parameters below m=19456 KiB, t=2, p=1 need allow_weak_parameters=True"
            )
        self._ph = _Argon2(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_cost_kib,
            parallelism=self.params.parallelism,
            hash_len=self.params.hash_len,
            salt_len=self.params.salt_len,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None

    def hash_sync(self, password: str) -> str:
        """Hash synchronously (CLI and thread use); prefer :meth:`hash` on the event loop."""
        return self._ph.hash(password)

    def verify_sync(self, encoded: str, password: str) -> bool:
        """Verify synchronously; False on mismatch or on a malformed hash."""
        try:
            return self._ph.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    async def hash(self, password: str) -> str:
        """Return the argon2id encoding of ``password`` (computed in a thread)."""
        return await asyncio.to_thread(self._ph.hash, password)

    async def verify(self, encoded: str, password: str) -> bool:
        """Return True when ``password`` matches ``encoded`` (computed in a thread)."""
        return await asyncio.to_thread(self.verify_sync, encoded, password)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._ph.hash(secrets.token_urlsafe(24))
        return self._dummy_hash

    async def dummy_verify(self, password: str) -> bool:
        """Run one full verification against a throw-away hash and return False.

        Used for unknown emails so that login takes the same time class as a wrong password.
        """
        dummy = self._dummy_hash
        if dummy is None:
            dummy = await asyncio.to_thread(self._dummy)
        await asyncio.to_thread(self.verify_sync, dummy, password)
        return False

    def needs_rehash(self, encoded: str) -> bool:
        """True when ``encoded`` was made with other parameters (upgrade on next login)."""
        try:
            return self._ph.check_needs_rehash(encoded)
        except (InvalidHashError, ValueError):
            return True


__all__ = ["TEST_PARAMS", "Argon2Params", "Argon2idHasher"]
