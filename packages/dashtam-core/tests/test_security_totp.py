"""TOTP enrolment and verification (RFC 6238 vectors, window, replay protection)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import pyotp

from dashtam_core.adapters.security.totp import (
    InMemoryTotpReplayGuard,
    TotpReplayGuard,
    TotpVerifier,
    new_totp_secret,
    provisioning_uri,
)

# RFC 6238 appendix B, SHA-1 secret "12345678901234567890", 8 digits
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


def test_secret_and_uri() -> None:
    secret = new_totp_secret()
    assert len(base64.b32decode(secret)) == 20
    assert new_totp_secret() != secret
    uri = provisioning_uri(secret, "alice@example.com")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth"
    assert parsed.netloc == "totp"
    assert "alice%40example.com" in parsed.path or "alice@example.com" in parsed.path
    query = parse_qs(parsed.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["Dashtam"]


def test_rfc6238_vectors() -> None:
    verifier = TotpVerifier(digits=8, window=0)
    for moment, code in [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924")]:
        assert verifier.matching_step(RFC_SECRET, code, now=moment) == moment // 30


async def test_window_and_format() -> None:
    secret = new_totp_secret()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    verifier = TotpVerifier()
    for offset, ok in [(-60, False), (-30, True), (0, True), (30, True), (60, False)]:
        code = totp.at(now + offset)
        assert (verifier.matching_step(secret, code, now) is not None) is ok, offset
    code = totp.at(now)
    assert verifier.matching_step(secret, f" {code[:3]} {code[3:]} ", now) is not None
    for bad in ("", "12345", "1234567", "abcdef", "12345a"):
        assert verifier.matching_step(secret, bad, now) is None


async def test_replay_rejected() -> None:
    secret = new_totp_secret()
    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    guard = InMemoryTotpReplayGuard()
    assert isinstance(guard, TotpReplayGuard)
    verifier = TotpVerifier(guard)
    code = totp.at(now)
    assert await verifier.verify(secret, code, subject="u1", now=now)
    assert not await verifier.verify(secret, code, subject="u1", now=now + 5)
    # an older (still in-window) code is also refused once a newer step was used
    assert not await verifier.verify(secret, totp.at(now - 30), subject="u1", now=now)
    # another subject is independent; the next step works
    assert await verifier.verify(secret, code, subject="u2", now=now)
    assert await verifier.verify(secret, totp.at(now + 30), subject="u1", now=now + 30)
    assert not await verifier.verify(
        secret, "000000" if code != "000000" else "111111", subject="u3", now=now
    )
