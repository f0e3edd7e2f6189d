"""Credential vault (AES-256-GCM, connection-bound) and key files (mode 0600, rotation)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dashtam_core.adapters.security.keyring import SigningKeyRing
from dashtam_core.adapters.security.keys import (
    generate_all_keys,
    load_hmac_key,
    retire_vault_keys,
    rotate_signing_key,
    rotate_vault_key,
)
from dashtam_core.adapters.security.vault import CredentialDecryptionError, CredentialVault
from dashtam_core.errors import ConfigurationError
from dashtam_core.result import Err, Ok

SECRET = {"api_key_id": "AKTEST123", "secret_key": "s3cr3t-value"}


def test_round_trip_bytes_and_json() -> None:
    vault = CredentialVault.generate()
    cid = uuid4()
    blob = vault.encrypt(SECRET, cid)
    assert b"s3cr3t" not in blob
    assert b"AKTEST" not in blob
    assert vault.decrypt_json(blob, cid) == Ok(SECRET)
    assert vault.decrypt_json(blob, str(cid)) == Ok(SECRET)
    raw = vault.encrypt(b"\x00\x01binary", cid)
    assert vault.decrypt(raw, cid) == Ok(b"\x00\x01binary")
    not_json = vault.decrypt_json(raw, cid)
    assert isinstance(not_json, Err)


def test_blob_layout_and_fresh_nonces() -> None:
    vault = CredentialVault.generate()
    cid = uuid4()
    blobs = [vault.encrypt(b"same", cid) for _ in range(50)]
    kid = vault.primary.encode()
    for blob in blobs:
        assert blob[0] == 1
        assert blob[1] == len(kid)
        assert blob[2 : 2 + len(kid)] == kid
        assert len(blob) == 2 + len(kid) + 12 + len(b"same") + 16
    nonces = {b[2 + len(kid) : 2 + len(kid) + 12] for b in blobs}
    assert len(nonces) == 50
    assert len(set(blobs)) == 50


def test_blob_moved_to_other_connection_fails() -> None:
    vault = CredentialVault.generate()
    blob = vault.encrypt(SECRET, uuid4())
    result = vault.decrypt(blob, uuid4())
    assert isinstance(result, Err)
    assert isinstance(result.error, CredentialDecryptionError)
    assert "s3cr3t" not in result.error.message


@pytest.mark.parametrize("position", [0, 1, 5, 12, -1, -17])
def test_tampering_detected(position: int) -> None:
    vault = CredentialVault.generate()
    cid = uuid4()
    blob = bytearray(vault.encrypt(SECRET, cid))
    blob[position] ^= 0x01
    assert isinstance(vault.decrypt(bytes(blob), cid), Err)


def test_malformed_and_unknown_key() -> None:
    vault = CredentialVault.generate()
    cid = uuid4()
    for blob in (
        b"",
        b"\x01",
        b"\x02\x08abcdefgh" + b"0" * 40,
        b"\x01\x08abc",
        b"\x01\x02\xff\xfe" + b"0" * 40,
    ):
        assert isinstance(vault.decrypt(blob, cid), Err)
    other = CredentialVault.generate()
    result = other.decrypt(vault.encrypt(SECRET, cid), cid)
    assert isinstance(result, Err)
    assert "not in the key ring" in result.error.message


def test_interoperates_with_plain_aesgcm() -> None:
    key = AESGCM.generate_key(bit_length=256)
    vault = CredentialVault({"k1": key}, "k1")
    cid = uuid4()
    blob = vault.encrypt(b"hello", cid)
    header_len = 2 + 2 + 12
    plain = AESGCM(key).decrypt(blob[4:16], blob[header_len:], blob[:header_len] + cid.bytes)
    assert plain == b"hello"


def test_rotation_and_reencryption() -> None:
    vault = CredentialVault.generate()
    cid = uuid4()
    old_blob = vault.encrypt(SECRET, cid)
    rotated = vault.rotated()
    assert rotated.primary != vault.primary
    assert set(vault.key_ids) < set(rotated.key_ids)
    assert rotated.decrypt_json(old_blob, cid) == Ok(SECRET)
    assert rotated.needs_reencryption(old_blob)
    new_blob = rotated.reencrypt(old_blob, cid).unwrap()
    assert not rotated.needs_reencryption(new_blob)
    assert CredentialVault.key_id_of(new_blob) == rotated.primary
    pruned = rotated.without_keys_except_primary()
    assert pruned.decrypt_json(new_blob, cid) == Ok(SECRET)
    assert isinstance(pruned.decrypt(old_blob, cid), Err)
    assert isinstance(rotated.reencrypt(old_blob, uuid4()), Err)


def test_invalid_key_ring_rejected() -> None:
    with pytest.raises(ConfigurationError):
        CredentialVault({"k": b"short"}, "k")
    with pytest.raises(ConfigurationError):
        CredentialVault({"k": b"x" * 32}, "missing")
    with pytest.raises(ConfigurationError):
        CredentialVault.from_json("{not json")
    with pytest.raises(ConfigurationError):
        CredentialVault.from_json('{"primary": "a", "keys": {"a": "AAAA"}}')


def test_repr_hides_keys() -> None:
    vault = CredentialVault.generate()
    doc = json.loads(vault.to_json())
    assert doc["keys"][vault.primary] not in repr(vault)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_generate_all_keys_mode_0600_and_idempotent(tmp_path: Path) -> None:
    secret_dir = tmp_path / "keys"
    report = generate_all_keys(secret_dir)
    assert set(report.values()) == {"created"}
    assert set(report) == {
        "jwt_signing_keys.json",
        "vault_keys.json",
        "token_hmac.key",
        "audit_hmac.key",
    }
    assert _mode(secret_dir) == 0o700
    for name in report:
        assert _mode(secret_dir / name) == 0o600
    before = {n: (secret_dir / n).read_bytes() for n in report}
    again = generate_all_keys(secret_dir)
    assert set(again.values()) == {"exists"}
    assert {n: (secret_dir / n).read_bytes() for n in report} == before
    assert not [p for p in secret_dir.iterdir() if p.name.endswith(".tmp")]
    assert len(load_hmac_key("token_hmac", secret_dir, environ={})) == 32
    assert load_hmac_key("audit_hmac", secret_dir, environ={}) != load_hmac_key(
        "token_hmac", secret_dir, environ={}
    )
    SigningKeyRing.load(secret_dir, environ={}).signing_key()


def test_rotate_vault_key_on_disk(tmp_path: Path) -> None:
    generate_all_keys(tmp_path)
    first = CredentialVault.load(tmp_path, environ={})
    cid = uuid4()
    blob = first.encrypt(SECRET, cid)
    new_kid = rotate_vault_key(tmp_path)
    assert _mode(tmp_path / "vault_keys.json") == 0o600
    second = CredentialVault.load(tmp_path, environ={})
    assert second.primary == new_kid != first.primary
    new_blob = second.reencrypt(blob, cid).unwrap()
    assert retire_vault_keys(tmp_path) == [first.primary]
    third = CredentialVault.load(tmp_path, environ={})
    assert third.key_ids == (new_kid,)
    assert third.decrypt_json(new_blob, cid) == Ok(SECRET)


def test_rotate_signing_key_on_disk(tmp_path: Path) -> None:
    generate_all_keys(tmp_path)
    old = SigningKeyRing.load(tmp_path, environ={}).signing_key().kid
    new = rotate_signing_key(tmp_path, publish_lead=300)
    ring = SigningKeyRing.load(tmp_path, environ={})
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old, new}
    assert ring.signing_key().kid == old


def test_load_from_env(tmp_path: Path) -> None:
    vault = CredentialVault.generate()
    env = {
        "DASHTAM_VAULT_KEYS": vault.to_json().decode(),
        "DASHTAM_TOKEN_HMAC_KEY": "A" * 43,
    }
    assert CredentialVault.load(None, environ=env).primary == vault.primary
    assert load_hmac_key("token_hmac", None, environ=env) == b"\x00" * 32
    with pytest.raises(ConfigurationError):
        CredentialVault.load(tmp_path, environ={})
    with pytest.raises(ConfigurationError):
        load_hmac_key("token_hmac", tmp_path, environ={})
    with pytest.raises(ConfigurationError):
        load_hmac_key("audit_hmac", None, environ={"DASHTAM_AUDIT_HMAC_KEY": "AAAA"})
    with pytest.raises(ConfigurationError):
        load_hmac_key("nope", None, environ={})
