"""Credential vault: AES-256-GCM with a key ring, bound to the connection id.

Blob layout (version 1)::

    0x01 | len(key_id) (1 byte) | key_id (ASCII) | nonce (12 bytes) | ciphertext + tag (16 bytes)

The associated data is the blob header (version, key id, nonce) followed by the connection id's
16 UUID bytes, so a blob copied to another connection row, or with its header altered, does not
decrypt. Every encryption uses a fresh random 96-bit nonce. Rotation adds a new primary key;
older keys stay in the ring to decrypt until :meth:`CredentialVault.reencrypt` has moved every
blob to the primary.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dashtam_core.adapters.security._files import b64u_decode, b64u_encode, write_secret_file
from dashtam_core.errors import ConfigurationError
from dashtam_core.ports.security import CredentialDecryptionError
from dashtam_core.result import Err, Ok, Result

BLOB_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
VAULT_KEYS_FILE = "vault_keys.json"
ENV_VAR = "DASHTAM_VAULT_KEYS"


def _connection_bytes(connection_id: UUID | str) -> bytes:
    return (connection_id if isinstance(connection_id, UUID) else UUID(str(connection_id))).bytes


def new_key_id() -> str:
    """A short random key id (8 hex characters)."""
    return secrets.token_hex(4)


class CredentialVault:
    """AES-256-GCM encryption of provider credentials with a key ring.

    Args:
        keys: key id -> 32-byte key.
        primary: the key id new blobs are encrypted with.

    Example:
        >>> from uuid import uuid4
        >>> vault = CredentialVault.generate()
        >>> cid = uuid4()
        >>> blob = vault.encrypt({"api_key_id": "AK1"}, cid)
        >>> vault.decrypt_json(blob, cid).unwrap()
        {'api_key_id': 'AK1'}
    """

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if primary not in keys:
            raise ConfigurationError("vault primary key is not in the key ring")
        for kid, key in keys.items():
            if len(key) != KEY_BYTES or not kid or len(kid.encode()) > 255 or not kid.isascii():
                raise ConfigurationError("vault keys must be 32 bytes with short ASCII ids")
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._keys = dict(keys)
        self.primary = primary

    @classmethod
    def generate(cls) -> CredentialVault:
        """A vault with one fresh key (tests, first start)."""
        kid = new_key_id()
        return cls({kid: AESGCM.generate_key(bit_length=256)}, kid)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Key ids in the ring."""
        return tuple(self._keys)

    def encrypt(self, plaintext: bytes | Mapping[str, Any], connection_id: UUID | str) -> bytes:
        """Encrypt ``plaintext`` (bytes, or a mapping serialized as JSON) for ``connection_id``."""
        data = plaintext if isinstance(plaintext, bytes) else orjson.dumps(dict(plaintext))
        kid = self.primary.encode("ascii")
        nonce = os.urandom(NONCE_BYTES)
        header = bytes([BLOB_VERSION, len(kid)]) + kid + nonce
        sealed = self._ciphers[self.primary].encrypt(
            nonce, data, header + _connection_bytes(connection_id)
        )
        return header + sealed

    @staticmethod
    def key_id_of(blob: bytes) -> str | None:
        """The key id a blob was encrypted with, or None if the blob is malformed."""
        if len(blob) < 2 or blob[0] != BLOB_VERSION or len(blob) < 2 + blob[1]:
            return None
        try:
            return blob[2 : 2 + blob[1]].decode("ascii")
        except UnicodeDecodeError:
            return None

    def decrypt(
        self, blob: bytes, connection_id: UUID | str
    ) -> Result[bytes, CredentialDecryptionError]:
        """Decrypt a blob made for ``connection_id``; typed error on any mismatch."""
        kid = self.key_id_of(blob)
        if kid is None:
            return Err(CredentialDecryptionError("credential blob is malformed"))
        cipher = self._ciphers.get(kid)
        if cipher is None:
            return Err(CredentialDecryptionError(f"credential key {kid!r} is not in the key ring"))
        start = 2 + blob[1]
        nonce = blob[start : start + NONCE_BYTES]
        body = blob[start + NONCE_BYTES :]
        if len(nonce) != NONCE_BYTES or len(body) < 16:
            return Err(CredentialDecryptionError("credential blob is malformed"))
        try:
            aad = blob[: start + NONCE_BYTES] + _connection_bytes(connection_id)
            return Ok(cipher.decrypt(nonce, body, aad))
        except (InvalidTag, ValueError):
            return Err(
                CredentialDecryptionError(
                    "credentials do not decrypt for this connection (moved or tampered)"
                )
            )

    def decrypt_json(
        self, blob: bytes, connection_id: UUID | str
    ) -> Result[dict[str, Any], CredentialDecryptionError]:
        """Decrypt a blob whose plaintext is a JSON object."""
        match self.decrypt(blob, connection_id):
            case Ok(data):
                try:
                    value = orjson.loads(data)
                except orjson.JSONDecodeError:
                    value = None
                if isinstance(value, dict):
                    return Ok(value)
                return Err(CredentialDecryptionError("decrypted credentials are not a JSON object"))
            case Err(error):
                return Err(error)

    def needs_reencryption(self, blob: bytes) -> bool:
        """True when ``blob`` is not under the primary key."""
        return self.key_id_of(blob) != self.primary

    def reencrypt(
        self, blob: bytes, connection_id: UUID | str
    ) -> Result[bytes, CredentialDecryptionError]:
        """Decrypt with whichever key made ``blob`` and encrypt again under the primary key."""
        match self.decrypt(blob, connection_id):
            case Ok(data):
                return Ok(self.encrypt(data, connection_id))
            case Err(error):
                return Err(error)

    def rotated(self) -> CredentialVault:
        """A new vault whose ring adds a fresh primary key (old keys kept for decryption)."""
        kid = new_key_id()
        while kid in self._keys:
            kid = new_key_id()
        return CredentialVault({**self._keys, kid: AESGCM.generate_key(bit_length=256)}, kid)

    def without_keys_except_primary(self) -> CredentialVault:
        """A vault holding only the primary key (after every blob was re-encrypted)."""
        return CredentialVault({self.primary: self._keys[self.primary]}, self.primary)

    # -- persistence ---------------------------------------------------------------------------

    def to_json(self) -> bytes:
        """Serialize the key ring (a secret)."""
        doc = {
            "version": 1,
            "primary": self.primary,
            "keys": {kid: b64u_encode(key) for kid, key in self._keys.items()},
        }
        return json.dumps(doc, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> CredentialVault:
        """Load a key ring serialized by :meth:`to_json`.

        Raises:
            ConfigurationError: malformed key material.
        """
        try:
            doc: Any = json.loads(data)
            keys = {str(kid): b64u_decode(str(v)) for kid, v in doc["keys"].items()}
            return cls(keys, str(doc["primary"]))
        except ConfigurationError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(f"vault keys are malformed ({type(exc).__name__})") from None

    def save(self, secret_dir: Path) -> Path:
        """Write the ring to ``secret_dir/vault_keys.json`` with mode 0600."""
        path = Path(secret_dir) / VAULT_KEYS_FILE
        write_secret_file(path, self.to_json())
        return path

    @classmethod
    def load(
        cls, secret_dir: Path | None = None, *, environ: Mapping[str, str] | None = None
    ) -> CredentialVault:
        """Load from ``DASHTAM_VAULT_KEYS`` (same JSON) if set, else from ``secret_dir``.

        Raises:
            ConfigurationError: no keys or malformed keys.
        """
        env = os.environ if environ is None else environ
        if env.get(ENV_VAR):
            return cls.from_json(env[ENV_VAR])
        if secret_dir is None or not (Path(secret_dir) / VAULT_KEYS_FILE).is_file():
            raise ConfigurationError("no vault keys: run `dashtam keys generate`")
        return cls.from_json((Path(secret_dir) / VAULT_KEYS_FILE).read_bytes())

    def __repr__(self) -> str:
        return f"CredentialVault(primary={self.primary!r}, key_ids={list(self._keys)!r})"


__all__ = [
    "BLOB_VERSION",
    "ENV_VAR",
    "VAULT_KEYS_FILE",
    "CredentialDecryptionError",
    "CredentialVault",
    "new_key_id",
]
