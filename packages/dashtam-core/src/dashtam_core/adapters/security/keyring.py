"""Ed25519 signing key ring for access tokens: rotation, JWKS, persistence (mode 0600).

Life of a key: it is *published* (in the JWKS) from creation, used for *signing* from
``activates_at`` (rotation publishes a new key ``publish_lead`` seconds before it signs, so
every verifier has it by then) and *retired* (no longer verifies, dropped from the JWKS) once
its successor has been signing for longer than the maximum token lifetime.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from dashtam_core.adapters.security._files import b64u_decode, b64u_encode, write_secret_file
from dashtam_core.errors import ConfigurationError

KEYS_FILE = "jwt_signing_keys.json"
ENV_VAR = "DASHTAM_JWT_SIGNING_KEYS"
#: Default maximum access-token lifetime (seconds) a retired key must still verify.
DEFAULT_MAX_TOKEN_LIFETIME = 3600.0


def _public_x(public_key: Ed25519PublicKey) -> str:
    return b64u_encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def jwk_thumbprint(public_key: Ed25519PublicKey) -> str:
    """Return the RFC 7638 SHA-256 thumbprint (base64url) of an Ed25519 public key."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _public_x(public_key)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64u_encode(hashlib.sha256(canonical.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One Ed25519 key of the ring; ``kid`` is its RFC 7638 thumbprint."""

    kid: str
    private_key: Ed25519PrivateKey
    created_at: float
    activates_at: float

    @classmethod
    def generate(cls, *, now: float | None = None, activates_at: float | None = None) -> SigningKey:
        """Create a fresh key (active at ``activates_at``, default now)."""
        now = time.time() if now is None else now
        private = Ed25519PrivateKey.generate()
        return cls(
            kid=jwk_thumbprint(private.public_key()),
            private_key=private,
            created_at=now,
            activates_at=now if activates_at is None else activates_at,
        )

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The verification key."""
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, str]:
        """The public JWK (RFC 8037) as published in the JWKS."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _public_x(self.public_key),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, activates_at={self.activates_at!r})"


class SigningKeyRing:
    """The ordered set of signing keys.

    Args:
        keys: keys in any order (sorted by ``activates_at`` internally).
        max_token_lifetime: seconds a superseded key keeps verifying.
    """

    def __init__(
        self,
        keys: Sequence[SigningKey],
        *,
        max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME,
    ) -> None:
        self._keys = sorted(keys, key=lambda k: (k.activates_at, k.created_at))
        self.max_token_lifetime = max_token_lifetime

    @classmethod
    def generate(
        cls, *, now: float | None = None, max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME
    ) -> SigningKeyRing:
        """A ring with one key that signs immediately."""
        return cls([SigningKey.generate(now=now)], max_token_lifetime=max_token_lifetime)

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """Every key, oldest activation first."""
        return tuple(self._keys)

    def _retires_at(self, index: int) -> float:
        later = [k.activates_at for k in self._keys[index + 1 :]]
        return (min(later) + self.max_token_lifetime) if later else float("inf")

    def signing_key(self, now: float | None = None) -> SigningKey:
        """The key to sign with now: the latest one whose activation time has come.

        Raises:
            ConfigurationError: no key is active yet.
        """
        now = time.time() if now is None else now
        active = [k for k in self._keys if k.activates_at <= now]
        if not active:
            raise ConfigurationError("no active JWT signing key")
        return active[-1]

    def published(self, now: float | None = None) -> list[SigningKey]:
        """Keys that verify now: pending and active ones, and retired ones in their grace time."""
        now = time.time() if now is None else now
        return [k for i, k in enumerate(self._keys) if now < self._retires_at(i)]

    def public_key(self, kid: str, now: float | None = None) -> Ed25519PublicKey | None:
        """The public key for ``kid`` if it is published now, else None."""
        for key in self.published(now):
            if key.kid == kid:
                return key.public_key
        return None

    def jwks(self, now: float | None = None) -> dict[str, list[dict[str, str]]]:
        """The JSON Web Key Set for ``/.well-known/jwks.json``."""
        return {"keys": [k.public_jwk() for k in self.published(now)]}

    def rotate(self, *, now: float | None = None, publish_lead: float = 300.0) -> SigningKey:
        """Add a new key, published now and signing from ``now + publish_lead``; prune old keys."""
        now = time.time() if now is None else now
        key = SigningKey.generate(now=now, activates_at=now + publish_lead)
        self._keys.append(key)
        self.prune(now)
        return key

    def prune(self, now: float | None = None) -> None:
        """Drop keys whose verification grace time is over."""
        self._keys = self.published(now)

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> bytes:
        """Serialize private keys (handle as a secret)."""
        entries = [
            {
                "kid": k.kid,
                "d": b64u_encode(
                    k.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
                ),
                "created_at": k.created_at,
                "activates_at": k.activates_at,
            }
            for k in self._keys
        ]
        return json.dumps({"version": 1, "keys": entries}, indent=1).encode()

    @classmethod
    def from_json(
        cls, data: bytes | str, *, max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME
    ) -> SigningKeyRing:
        """Load a ring serialized by :meth:`to_json`.

        Raises:
            ConfigurationError: malformed data or a ``kid`` that does not match its key.
        """
        try:
            doc: Any = json.loads(data)
            keys = []
            for entry in doc["keys"]:
                private = Ed25519PrivateKey.from_private_bytes(b64u_decode(entry["d"]))
                kid = jwk_thumbprint(private.public_key())
                if entry.get("kid", kid) != kid:
                    raise ConfigurationError("JWT key ring: kid does not match its key")
                keys.append(
                    SigningKey(
                        kid=kid,
                        private_key=private,
                        created_at=float(entry["created_at"]),
                        activates_at=float(entry["activates_at"]),
                    )
                )
        except ConfigurationError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"JWT key ring is malformed ({type(exc).__name__})") from None
        if not keys:
            raise ConfigurationError("JWT key ring is empty")
        return cls(keys, max_token_lifetime=max_token_lifetime)

    def save(self, secret_dir: Path) -> Path:
        """Write the ring to ``secret_dir/jwt_signing_keys.json`` (mode 0600)."""
        path = Path(secret_dir) / KEYS_FILE
        write_secret_file(path, self.to_json())
        return path

    @classmethod
    def load(
        cls,
        secret_dir: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        max_token_lifetime: float = DEFAULT_MAX_TOKEN_LIFETIME,
    ) -> SigningKeyRing:
        """Load from ``DASHTAM_JWT_SIGNING_KEYS`` if set, else from ``secret_dir``.

        Raises:
            ConfigurationError: nothing to load or malformed keys.
        """
        env = os.environ if environ is None else environ
        if env.get(ENV_VAR):
            return cls.from_json(env[ENV_VAR], max_token_lifetime=max_token_lifetime)
        if secret_dir is None or not (Path(secret_dir) / KEYS_FILE).is_file():
            raise ConfigurationError("no JWT signing keys: run `dashtam keys generate`")
        data = (Path(secret_dir) / KEYS_FILE).read_bytes()
        return cls.from_json(data, max_token_lifetime=max_token_lifetime)

    def __repr__(self) -> str:
        return f"SigningKeyRing(kids={[k.kid for k in self._keys]!r})"


__all__ = ["ENV_VAR", "KEYS_FILE", "SigningKey", "SigningKeyRing", "jwk_thumbprint"]
