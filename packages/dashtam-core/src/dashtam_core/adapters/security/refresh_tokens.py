"""Opaque tokens (refresh, email verification, password reset), stored only as HMAC-SHA256.

The raw token goes to the client once; the database keeps ``TokenHasher.digest(token)`` (hex), so a
database leak does not yield usable tokens, and lookups are by digest.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: 32 random bytes = 256 bits (refresh tokens); verification/reset tokens use the same size.
TOKEN_BYTES = 32
MIN_KEY_BYTES = 32


def generate_token(nbytes: int = TOKEN_BYTES) -> str:
    """Return a URL-safe random token of ``nbytes`` bytes of entropy (at least 16)."""
    if nbytes < 16:
        raise ValueError("tokens need at least 128 bits of randomness")
    return secrets.token_urlsafe(nbytes)


def generate_refresh_token() -> str:
    """Return a new opaque 256-bit refresh token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in time independent of where they differ."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


class TokenHasher:
    """HMAC-SHA256 of opaque tokens under a server key.

    Args:
        key: at least 32 bytes of secret key material (``refresh_token_hmac.key``).

    Example:
        >>> h = TokenHasher(b"k" * 32)
        >>> token = generate_refresh_token()
        >>> h.matches(token, h.digest(token))
        True
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError("token HMAC key must be at least 32 bytes")
        self._key = key

    def digest(self, token: str) -> str:
        """Return the hex HMAC-SHA256 of ``token`` (the value to store and look up)."""
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def matches(self, token: str, stored_digest: str) -> bool:
        """Return True when ``token`` hashes to ``stored_digest`` (constant time)."""
        return hmac.compare_digest(self.digest(token).encode(), stored_digest.encode())

    def __repr__(self) -> str:
        return "TokenHasher(key=<hidden>)"


__all__ = [
    "TOKEN_BYTES",
    "TokenHasher",
    "constant_time_equals",
    "generate_refresh_token",
    "generate_token",
]
