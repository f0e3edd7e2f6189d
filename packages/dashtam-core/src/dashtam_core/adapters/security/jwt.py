"""Access tokens: EdDSA (Ed25519) JWTs with ``typ: at+jwt`` (RFC 9068, RFC 8725).

The verifier pins the algorithm list in code, accepts only the ``alg``/``typ``/``kid`` header
parameters, looks keys up by ``kid`` in the local key ring only (never ``jku``/``jwk``/``x5u``),
and checks ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` and the lifetime itself.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import jwt as pyjwt

from dashtam_core.adapters.security._files import b64u_decode
from dashtam_core.adapters.security.keyring import SigningKeyRing
from dashtam_core.errors import AuthenticationError
from dashtam_core.ports.security import AccessTokenClaims
from dashtam_core.result import Err, Ok, Result

ALGORITHMS = ["EdDSA"]
TOKEN_TYPE = "at+jwt"
_ALLOWED_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_ALLOWED_HEADERS = frozenset({"alg", "typ", "kid"})
_RESERVED = frozenset({"iss", "aud", "sub", "sid", "iat", "nbf", "exp", "jti", "roles"})
MAX_TOKEN_BYTES = 8192


class InvalidToken(AuthenticationError):
    """An access token was refused; ``reason`` says why (for logs, not for clients)."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid access token: {reason}")
        self.reason = reason


class JwtIssuer:
    """Signs access tokens with the ring's current key.

    Args:
        keyring: the signing key ring.
        issuer: the ``iss`` claim (``DASHTAM_JWT_ISSUER``).
        audience: the ``aud`` claim (``DASHTAM_JWT_AUDIENCE``).
        ttl_seconds: default lifetime (15 minutes).
    """

    def __init__(
        self, keyring: SigningKeyRing, *, issuer: str, audience: str, ttl_seconds: int = 900
    ) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

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
        """Return a compact JWT for user ``sub`` in session ``sid`` with ``roles``.

        ``extra`` claims may not override the registered ones.
        """
        moment = time.time() if now is None else now
        issued = int(moment)
        key = self.keyring.signing_key(moment)
        payload: dict[str, Any] = {k: v for k, v in (extra or {}).items() if k not in _RESERVED}
        payload.update(
            iss=self.issuer,
            aud=self.audience,
            sub=str(sub),
            sid=str(sid),
            iat=issued,
            nbf=issued,
            exp=issued + (ttl_seconds or self.ttl_seconds),
            jti=secrets.token_urlsafe(16),
            roles=list(roles),
        )
        return pyjwt.encode(
            payload,
            key.private_key,
            algorithm="EdDSA",
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class JwtVerifier:
    """Verifies access tokens against the key ring.

    Args:
        keyring: keys that may verify (published ones only).
        issuer: the required ``iss``.
        audience: the required ``aud``.
        leeway: clock skew tolerance in seconds.
        max_lifetime: the longest ``exp - iat`` accepted (seconds).
        cache_size: how many signature-verified tokens to remember (0 disables). A cached
            token skips only the Ed25519 check; its key must still be published and every
            claim (``exp``, ``nbf``, ...) is checked again on each call.
    """

    def __init__(
        self,
        keyring: SigningKeyRing,
        *,
        issuer: str,
        audience: str,
        leeway: int = 30,
        max_lifetime: int = 3600,
        cache_size: int = 10_000,
    ) -> None:
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self._cache_size = cache_size
        self._verified: dict[str, tuple[str, dict[str, Any]]] = {}

    def _header(self, token: str) -> dict[str, Any] | str:
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            return "malformed"
        try:
            header = json.loads(b64u_decode(parts[0]))
        except ValueError:
            return "malformed header"
        if not isinstance(header, dict):
            return "malformed header"
        extra = set(header) - _ALLOWED_HEADERS
        if extra:
            return f"forbidden header parameters {sorted(extra)}"
        if header.get("alg") not in ALGORITHMS:
            return "algorithm not allowed"
        if header.get("typ") not in _ALLOWED_TYPES:
            return "wrong typ"
        if not isinstance(header.get("kid"), str):
            return "missing kid"
        return header

    def verify(
        self, token: str, *, now: float | None = None
    ) -> Result[AccessTokenClaims, AuthenticationError]:
        """Return the claims of a valid token, else ``Err(InvalidToken)``."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES:
            return Err(InvalidToken("malformed"))
        now = time.time() if now is None else now
        cached = self._verified.get(token)
        if cached is not None and self.keyring.public_key(cached[0], now) is not None:
            return self._check_claims(cached[1], now)
        header = self._header(token)
        if isinstance(header, str):
            return Err(InvalidToken(header))
        public_key = self.keyring.public_key(header["kid"], now)
        if public_key is None:
            return Err(InvalidToken("unknown kid"))
        try:
            claims = pyjwt.decode(
                token,
                public_key,
                algorithms=ALGORITHMS,
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                },
            )
        except pyjwt.PyJWTError:
            return Err(InvalidToken("bad signature or encoding"))
        result = self._check_claims(claims, now)
        if self._cache_size and isinstance(result, Ok):
            if len(self._verified) >= self._cache_size:
                self._verified.clear()
            self._verified[token] = (header["kid"], claims)
        return result

    def _check_claims(
        self, c: dict[str, Any], now: float
    ) -> Result[AccessTokenClaims, AuthenticationError]:
        for name in ("exp", "nbf", "iat"):
            if not _is_int(c.get(name)):
                return Err(InvalidToken(f"missing or invalid {name}"))
        for name in ("iss", "sub", "sid", "jti"):
            if not isinstance(c.get(name), str) or not c[name]:
                return Err(InvalidToken(f"missing or invalid {name}"))
        if c["iss"] != self.issuer:
            return Err(InvalidToken("wrong issuer"))
        aud = c.get("aud")
        if not (aud == self.audience or (isinstance(aud, list) and self.audience in aud)):
            return Err(InvalidToken("wrong audience"))
        roles = c.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            return Err(InvalidToken("missing or invalid roles"))
        if c["exp"] <= now - self.leeway:
            return Err(InvalidToken("expired"))
        if c["nbf"] > now + self.leeway:
            return Err(InvalidToken("not yet valid"))
        if c["iat"] > now + self.leeway:
            return Err(InvalidToken("issued in the future"))
        if c["exp"] - c["iat"] > self.max_lifetime:
            return Err(InvalidToken("lifetime too long"))
        return Ok(
            AccessTokenClaims(
                sub=c["sub"],
                sid=c["sid"],
                roles=tuple(roles),
                iss=c["iss"],
                aud=self.audience,
                iat=c["iat"],
                nbf=c["nbf"],
                exp=c["exp"],
                jti=c["jti"],
            )
        )


__all__ = ["ALGORITHMS", "TOKEN_TYPE", "InvalidToken", "JwtIssuer", "JwtVerifier"]
