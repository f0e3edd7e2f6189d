"""Key files in ``DASHTAM_SECRET_DIR``: generation and rotation for ``dashtam keys``.

Files (mode 0600, directory 0700):

- ``jwt_signing_keys.json`` — Ed25519 signing key ring (env ``DASHTAM_JWT_SIGNING_KEYS``)
- ``vault_keys.json`` — AES-256-GCM credential key ring (env ``DASHTAM_VAULT_KEYS``)
- ``token_hmac.key`` — HMAC key for refresh/verification/reset token digests
  (env ``DASHTAM_TOKEN_HMAC_KEY``, base64url)
- ``audit_hmac.key`` — HMAC key of the audit hash chain (env ``DASHTAM_AUDIT_HMAC_KEY``)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from dashtam_core.adapters.security._files import (
    b64u_decode,
    b64u_encode,
    ensure_secret_dir,
    write_secret_file,
)
from dashtam_core.adapters.security.keyring import KEYS_FILE, SigningKeyRing
from dashtam_core.adapters.security.vault import VAULT_KEYS_FILE, CredentialVault
from dashtam_core.errors import ConfigurationError

HMAC_KEYS: Mapping[str, str] = {
    "token_hmac": "DASHTAM_TOKEN_HMAC_KEY",
    "audit_hmac": "DASHTAM_AUDIT_HMAC_KEY",
}


def generate_all_keys(secret_dir: Path) -> dict[str, str]:
    """Create every missing key file in ``secret_dir``; never overwrite an existing one.

    Returns:
        file name -> ``"created"`` or ``"exists"``.
    """
    directory = ensure_secret_dir(Path(secret_dir))
    report: dict[str, str] = {}
    if (directory / KEYS_FILE).exists():
        report[KEYS_FILE] = "exists"
    else:
        SigningKeyRing.generate().save(directory)
        report[KEYS_FILE] = "created"
    if (directory / VAULT_KEYS_FILE).exists():
        report[VAULT_KEYS_FILE] = "exists"
    else:
        CredentialVault.generate().save(directory)
        report[VAULT_KEYS_FILE] = "created"
    for name in HMAC_KEYS:
        path = directory / f"{name}.key"
        if path.exists():
            report[path.name] = "exists"
        else:
            write_secret_file(path, (b64u_encode(secrets.token_bytes(32)) + "\n").encode())
            report[path.name] = "created"
    return report


def load_hmac_key(
    name: str, secret_dir: Path | None = None, *, environ: Mapping[str, str] | None = None
) -> bytes:
    """Load the ``token_hmac`` or ``audit_hmac`` key from its env variable or key file.

    Raises:
        ConfigurationError: unknown name, key missing, or shorter than 32 bytes.
    """
    if name not in HMAC_KEYS:
        raise ConfigurationError(f"unknown HMAC key {name!r}")
    env = os.environ if environ is None else environ
    text = env.get(HMAC_KEYS[name])
    if not text:
        path = Path(secret_dir) / f"{name}.key" if secret_dir is not None else None
        if path is None or not path.is_file():
            raise ConfigurationError(f"no {name} key: run `dashtam keys generate`")
        text = path.read_text()
    try:
        key = b64u_decode(text.strip())
    except ValueError:
        raise ConfigurationError(f"{name} key is not base64url") from None
    if len(key) < 32:
        raise ConfigurationError(f"{name} key must be at least 32 bytes")
    return key


def rotate_vault_key(secret_dir: Path) -> str:
    """Add a new primary credential key to the ring on disk; return its key id.

    Blobs under older keys keep decrypting; re-encrypt them with
    :meth:`CredentialVault.reencrypt`, then call :func:`retire_vault_keys`.
    """
    vault = CredentialVault.load(Path(secret_dir), environ={}).rotated()
    vault.save(Path(secret_dir))
    return vault.primary


def retire_vault_keys(secret_dir: Path) -> list[str]:
    """Drop every non-primary credential key from the ring on disk; return the dropped ids."""
    vault = CredentialVault.load(Path(secret_dir), environ={})
    dropped = [kid for kid in vault.key_ids if kid != vault.primary]
    vault.without_keys_except_primary().save(Path(secret_dir))
    return dropped


def rotate_signing_key(secret_dir: Path, *, publish_lead: float = 300.0) -> str:
    """Publish a new JWT signing key (signing after ``publish_lead`` seconds); return its kid."""
    ring = SigningKeyRing.load(Path(secret_dir), environ={})
    key = ring.rotate(publish_lead=publish_lead)
    ring.save(Path(secret_dir))
    return key.kid


__all__ = [
    "HMAC_KEYS",
    "generate_all_keys",
    "load_hmac_key",
    "retire_vault_keys",
    "rotate_signing_key",
    "rotate_vault_key",
]
