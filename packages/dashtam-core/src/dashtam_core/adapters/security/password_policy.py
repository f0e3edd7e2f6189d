"""Password policy (NIST SP 800-63B-4): length, strength estimate, common list, email local part.

No composition rules. The reason of a rejection is a stable code plus a human sentence, carried
by :class:`~dashtam_core.errors.WeakPassword` (``message`` = ``"<code>: <text>"``, ``reason`` =
the code alone).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from importlib.resources import files

from zxcvbn import zxcvbn

from dashtam_core.errors import WeakPassword
from dashtam_core.result import Err, Ok, Result

MIN_LENGTH = 12
MAX_LENGTH = 256
MIN_SCORE = 3
#: zxcvbn refuses longer input; its estimate saturates long before this anyway.
_ZXCVBN_MAX_CHARS = 72

#: Stable reason codes and their texts.
REASONS: dict[str, str] = {
    "too_short": f"Password must be at least {MIN_LENGTH} characters long.",
    "too_long": f"Password must be at most {MAX_LENGTH} characters long.",
    "common_password": "Password is in a list of commonly used passwords.",
    "contains_email": "Password must not contain the email address's local part.",
    "too_guessable": "Password is too easy to guess; use a longer phrase of unrelated words.",
}


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """Return the bundled common-password list (lower case)."""
    text = files("dashtam_core.adapters.security").joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


class PasswordPolicyViolation(WeakPassword):
    """A :class:`WeakPassword` that also carries the stable ``reason`` code."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason}: {REASONS[reason]}")
        self.reason = reason


def _weak(reason: str) -> Err[WeakPassword]:
    return Err(PasswordPolicyViolation(reason))


def check_password(password: str, email: str | None = None) -> Result[None, WeakPassword]:
    """Check ``password`` against the policy.

    Args:
        password: the candidate password (any characters).
        email: the account's email; its local part (if ≥ 3 characters) must not appear.

    Returns:
        ``Ok(None)`` or ``Err(WeakPassword)`` whose ``reason`` attribute is one of
        :data:`REASONS` (``too_short``, ``too_long``, ``common_password``, ``contains_email``,
        ``too_guessable``).
    """
    if len(password) < MIN_LENGTH:
        return _weak("too_short")
    if len(password) > MAX_LENGTH:
        return _weak("too_long")
    lowered = password.casefold()
    if lowered in common_passwords():
        return _weak("common_password")
    user_inputs: list[str] = []
    if email:
        local = email.rsplit("@", 1)[0].casefold()
        if len(local) >= 3:
            if local in lowered:
                return _weak("contains_email")
            user_inputs = [local, email.casefold()]
    estimate = zxcvbn(password[:_ZXCVBN_MAX_CHARS], user_inputs=user_inputs)
    if int(estimate["score"]) < MIN_SCORE:
        return _weak("too_guessable")
    return Ok(None)


async def check_password_async(
    password: str, email: str | None = None
) -> Result[None, WeakPassword]:
    """:func:`check_password` in a worker thread (the strength estimate takes milliseconds)."""
    return await asyncio.to_thread(check_password, password, email)


__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "MIN_SCORE",
    "REASONS",
    "PasswordPolicyViolation",
    "check_password",
    "check_password_async",
    "common_passwords",
]
