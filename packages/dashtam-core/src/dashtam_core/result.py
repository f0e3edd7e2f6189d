"""``Result``: expected failures are values, not exceptions.

A function that can fail in an expected way (bad credentials, a rate limit, a malformed
statement) returns ``Ok(value)`` or ``Err(error)``. Callers branch with ``match`` or
``isinstance``; :meth:`Ok.unwrap` / :meth:`Err.unwrap` make the happy path short in tests.

Example:
    >>> from dashtam_core.result import Ok, Err, Result
    >>> def half(n: int) -> Result[int, str]:
    ...     return Ok(n // 2) if n % 2 == 0 else Err("odd")
    >>> match half(4):
    ...     case Ok(value):
    ...         print(value)
    ...     case Err(error):
    ...         print("failed:", error)
    2
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeAlias, TypeVar

T = TypeVar("T")
E = TypeVar("E")
U = TypeVar("U")
F = TypeVar("F")


class UnwrapError(RuntimeError):
    """Raised when ``unwrap`` is called on the wrong variant: a programming error."""


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """The success variant carrying ``value``."""

    value: T

    def is_ok(self) -> bool:
        """Return True: this is a success."""
        return True

    def is_err(self) -> bool:
        """Return False: this is not a failure."""
        return False

    def unwrap(self) -> T:
        """Return the value."""
        return self.value

    def unwrap_err(self) -> NoReturn:
        """Raise :class:`UnwrapError`: there is no error."""
        raise UnwrapError(f"unwrap_err() on Ok({self.value!r})")

    def unwrap_or(self, default: object) -> T:
        """Return the value (the default is ignored)."""
        return self.value

    def map(self, fn: Callable[[T], U]) -> Ok[U]:
        """Apply ``fn`` to the value."""
        return Ok(fn(self.value))

    def map_err(self, fn: Callable[[object], object]) -> Ok[T]:
        """Return self unchanged."""
        return self


@dataclass(frozen=True, slots=True)
class Err(Generic[E]):
    """The failure variant carrying ``error``."""

    error: E

    def is_ok(self) -> bool:
        """Return False: this is not a success."""
        return False

    def is_err(self) -> bool:
        """Return True: this is a failure."""
        return True

    def unwrap(self) -> NoReturn:
        """Raise :class:`UnwrapError` naming the error."""
        raise UnwrapError(f"unwrap() on Err({self.error!r})")

    def unwrap_err(self) -> E:
        """Return the error."""
        return self.error

    def unwrap_or(self, default: U) -> U:
        """Return ``default``."""
        return default

    def map(self, fn: Callable[[object], object]) -> Err[E]:
        """Return self unchanged."""
        return self

    def map_err(self, fn: Callable[[E], F]) -> Err[F]:
        """Apply ``fn`` to the error."""
        return Err(fn(self.error))


Result: TypeAlias = Ok[T] | Err[E]

__all__ = ["Err", "Ok", "Result", "UnwrapError"]
