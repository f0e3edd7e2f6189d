"""Security ports: password hashing, access tokens, authorization, credential encryption."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from dashtam_core.errors import AuthenticationError, DashtamError
from dashtam_core.result import Result


class CredentialDecryptionError(DashtamError):
    """Stored credentials cannot be decrypted (wrong connection, unknown key, tampering)."""

    code = "credential_decryption_failed"
    status = 500


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The verified claims of an access token (``typ: at+jwt``)."""

    sub: str
    sid: str
    roles: tuple[str, ...]
    iss: str
    aud: str
    iat: int
    nbf: int
    exp: int
    jti: str


@runtime_checkable
class PasswordHasher(Protocol):
    """Hashes and verifies passwords off the event loop."""

    async def hash(self, password: str) -> str:
        """Return an encoded hash of ``password``."""
        ...

    async def verify(self, encoded: str, password: str) -> bool:
        """Return True when ``password`` matches ``encoded``."""
        ...

    async def dummy_verify(self, password: str) -> bool:
        """Spend the time of one verification and return False (unknown accounts)."""
        ...

    def needs_rehash(self, encoded: str) -> bool:
        """Return True when ``encoded`` uses weaker parameters than the current ones."""
        ...


@runtime_checkable
class AccessTokenIssuer(Protocol):
    """Signs access tokens."""

    def issue(
        self,
        sub: str | UUID,
        sid: str | UUID,
        roles: Sequence[str],
        *,
        now: float | None = None,
        ttl_seconds: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Return a compact JWT for ``sub`` in session ``sid``."""
        ...


@runtime_checkable
class AccessTokenVerifier(Protocol):
    """Verifies access tokens."""

    def verify(
        self, token: str, *, now: float | None = None
    ) -> Result[AccessTokenClaims, AuthenticationError]:
        """Return the claims of a valid token, else ``Err(AuthenticationError)``."""
        ...


@runtime_checkable
class Authorizer(Protocol):
    """Role-based access decisions; deny by default and on any failure."""

    async def can(self, roles: Sequence[str], obj: str, act: str) -> bool:
        """Return True when one of ``roles`` may perform ``act`` on ``obj``."""
        ...


@runtime_checkable
class CredentialCipher(Protocol):
    """Encrypts provider credentials bound to a connection id."""

    def encrypt(self, plaintext: bytes | Mapping[str, Any], connection_id: UUID | str) -> bytes:
        """Return an encrypted blob."""
        ...

    def decrypt(
        self, blob: bytes, connection_id: UUID | str
    ) -> Result[bytes, CredentialDecryptionError]:
        """Return the plaintext of ``blob`` or a typed error."""
        ...


__all__ = [
    "AccessTokenClaims",
    "AccessTokenIssuer",
    "AccessTokenVerifier",
    "Authorizer",
    "CredentialCipher",
    "CredentialDecryptionError",
    "PasswordHasher",
]
