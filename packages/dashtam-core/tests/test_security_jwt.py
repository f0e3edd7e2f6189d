"""JWT issuer/verifier and key ring: happy path, rotation, and an attack corpus (all refused)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dashtam_core.adapters.security.jwt import InvalidToken, JwtIssuer, JwtVerifier
from dashtam_core.adapters.security.keyring import SigningKey, SigningKeyRing, jwk_thumbprint
from dashtam_core.errors import ConfigurationError
from dashtam_core.result import Err, Ok

ISS, AUD = "dashtam", "dashtam-api"
NOW = 1_800_000_000.0


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def ring() -> SigningKeyRing:
    return SigningKeyRing.generate(now=NOW - 10)


@pytest.fixture
def issuer(ring: SigningKeyRing) -> JwtIssuer:
    return JwtIssuer(ring, issuer=ISS, audience=AUD)


@pytest.fixture
def verifier(ring: SigningKeyRing) -> JwtVerifier:
    return JwtVerifier(ring, issuer=ISS, audience=AUD)


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "user-1",
        "sid": "session-1",
        "iat": int(NOW),
        "nbf": int(NOW),
        "exp": int(NOW) + 900,
        "jti": "j1",
        "roles": ["user"],
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def sign(ring: SigningKeyRing, payload: dict[str, Any], **headers: Any) -> str:
    key = ring.signing_key(NOW)
    hdr = {"kid": key.kid, "typ": "at+jwt"}
    hdr.update(headers)
    hdr = {k: v for k, v in hdr.items() if v is not None}
    return pyjwt.encode(payload, key.private_key, algorithm="EdDSA", headers=hdr)


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(header)}.{b64(payload)}.{b64(signature)}"


def test_issue_and_verify_round_trip(issuer: JwtIssuer, verifier: JwtVerifier) -> None:
    token = issuer.issue("user-1", "session-1", ["user", "readonly"], now=NOW)
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == issuer.keyring.signing_key(NOW).kid
    result = verifier.verify(token, now=NOW + 60)
    assert isinstance(result, Ok)
    c = result.value
    assert (c.sub, c.sid, c.roles, c.iss, c.aud) == (
        "user-1",
        "session-1",
        ("user", "readonly"),
        ISS,
        AUD,
    )
    assert c.exp - c.iat == 900
    assert c.nbf == c.iat
    assert len(c.jti) >= 16


def test_extra_claims_cannot_override_registered(issuer: JwtIssuer, verifier: JwtVerifier) -> None:
    token = issuer.issue("u", "s", [], now=NOW, extra={"sub": "admin", "roles": ["admin"], "x": 1})
    payload = pyjwt.decode(token, options={"verify_signature": False})
    assert payload["sub"] == "u"
    assert payload["roles"] == []
    assert payload["x"] == 1
    assert verifier.verify(token, now=NOW).unwrap().roles == ()


def test_kid_is_rfc7638_thumbprint() -> None:
    # RFC 8037 appendix A.3 test vector.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    pub = Ed25519PrivateKey.from_private_bytes(
        base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    ).public_key()
    assert (
        base64.urlsafe_b64encode(pub.public_bytes(Encoding.Raw, PublicFormat.Raw))
        .rstrip(b"=")
        .decode()
        == x
    )
    assert jwk_thumbprint(pub) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_rotation_publishes_before_signing_and_retires_after_lifetime() -> None:
    ring = SigningKeyRing.generate(now=NOW, max_token_lifetime=900)
    old = ring.signing_key(NOW)
    new = ring.rotate(now=NOW + 100, publish_lead=300)
    # published immediately, signing only after the lead time
    assert {k["kid"] for k in ring.jwks(NOW + 100)["keys"]} == {old.kid, new.kid}
    assert ring.signing_key(NOW + 200).kid == old.kid
    assert ring.signing_key(NOW + 400).kid == new.kid
    # the old key still verifies for max_token_lifetime after the new one took over
    assert ring.public_key(old.kid, NOW + 400 + 899) is not None
    assert ring.public_key(old.kid, NOW + 400 + 900) is None
    assert [k["kid"] for k in ring.jwks(NOW + 2000)["keys"]] == [new.kid]
    jwk = ring.jwks(NOW)["keys"][0]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert "d" not in jwk


def test_token_from_retired_key_is_refused() -> None:
    ring = SigningKeyRing.generate(now=NOW, max_token_lifetime=900)
    issuer = JwtIssuer(ring, issuer=ISS, audience=AUD)
    verifier = JwtVerifier(ring, issuer=ISS, audience=AUD, max_lifetime=900)
    token = issuer.issue("u", "s", [], now=NOW)
    ring.rotate(now=NOW + 1, publish_lead=0)
    assert isinstance(verifier.verify(token, now=NOW + 800), Ok)
    later = verifier.verify(token, now=NOW + 2000)
    assert isinstance(later, Err)


def test_no_active_key_raises() -> None:
    ring = SigningKeyRing([SigningKey.generate(now=NOW, activates_at=NOW + 100)])
    with pytest.raises(ConfigurationError):
        ring.signing_key(NOW)


def test_keyring_persistence_mode_0600_and_env(tmp_path: Path) -> None:
    ring = SigningKeyRing.generate(now=NOW)
    ring.rotate(now=NOW, publish_lead=10)
    path = ring.save(tmp_path / "keys")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = SigningKeyRing.load(tmp_path / "keys", environ={})
    assert [k.kid for k in loaded.keys] == [k.kid for k in ring.keys]
    from_env = SigningKeyRing.load(None, environ={"DASHTAM_JWT_SIGNING_KEYS": path.read_text()})
    assert [k.kid for k in from_env.keys] == [k.kid for k in ring.keys]
    seeds = [entry["d"] for entry in json.loads(path.read_text())["keys"]]
    assert not any(seed in repr(ring) or seed in repr(ring.keys) for seed in seeds)
    with pytest.raises(ConfigurationError):
        SigningKeyRing.load(tmp_path / "missing", environ={})
    with pytest.raises(ConfigurationError):
        SigningKeyRing.from_json(b'{"keys": [{"d": "!!"}]}')


def _attacks(ring: SigningKeyRing) -> dict[str, str]:
    key = ring.signing_key(NOW)
    kid = key.kid
    pub_raw = key.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pub_pem = key.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    good = sign(ring, claims())
    h, p, s = good.split(".")
    attacker = Ed25519PrivateKey.generate()
    attacker_x = b64(attacker.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def hs256(secret: bytes, header: dict[str, Any]) -> str:
        signing_input = f"{b64(header)}.{b64(claims())}".encode()
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        return f"{signing_input.decode()}.{b64(mac)}"

    def attacker_signed(**headers: Any) -> str:
        hdr = {"alg": "EdDSA", "typ": "at+jwt", "kid": kid, **headers}
        return pyjwt.encode(claims(), attacker, algorithm="EdDSA", headers=hdr)

    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "alg_none": forge({"alg": "none", "typ": "at+jwt", "kid": kid}, claims()),
        "alg_None": forge({"alg": "None", "typ": "at+jwt", "kid": kid}, claims()),
        "alg_NONE_with_sig": forge({"alg": "NONE", "typ": "at+jwt", "kid": kid}, claims(), b"x"),
        "alg_missing": forge({"typ": "at+jwt", "kid": kid}, claims(), b"x"),
        "hs256_public_raw": hs256(pub_raw, {"alg": "HS256", "typ": "at+jwt", "kid": kid}),
        "hs256_public_pem": hs256(pub_pem, {"alg": "HS256", "typ": "at+jwt", "kid": kid}),
        "hs256_labelled_eddsa": hs256(pub_pem, {"alg": "EdDSA", "typ": "at+jwt", "kid": kid}),
        "rs256_other_key": pyjwt.encode(
            claims(), rsa, algorithm="RS256", headers={"kid": kid, "typ": "at+jwt"}
        ),
        "unknown_kid": attacker_signed(kid="attacker"),
        "kid_not_string": forge({"alg": "EdDSA", "typ": "at+jwt", "kid": 1}, claims(), b"x"),
        "kid_missing": pyjwt.encode(
            claims(), key.private_key, algorithm="EdDSA", headers={"typ": "at+jwt"}
        ),
        "attacker_key_same_kid": attacker_signed(),
        "embedded_jwk": attacker_signed(jwk={"kty": "OKP", "crv": "Ed25519", "x": attacker_x}),
        "jku_header": attacker_signed(jku="https://evil.example/jwks.json"),
        "x5u_header": attacker_signed(x5u="https://evil.example/cert.pem"),
        "x5c_header": attacker_signed(x5c=["MIIB"]),
        "crit_header": sign(ring, claims(), crit=["exp"]),
        "typ_jwt": sign(ring, claims(), typ="JWT"),
        "typ_missing": sign(ring, claims(), typ=None),
        "expired": sign(
            ring, claims(iat=int(NOW) - 2000, nbf=int(NOW) - 2000, exp=int(NOW) - 1000)
        ),
        "not_yet_valid": sign(ring, claims(nbf=int(NOW) + 600)),
        "issued_in_future": sign(
            ring, claims(iat=int(NOW) + 600, nbf=int(NOW) + 600, exp=int(NOW) + 900)
        ),
        "wrong_audience": sign(ring, claims(aud="other-api")),
        "wrong_issuer": sign(ring, claims(iss="evil")),
        "missing_exp": sign(ring, claims(exp=None)),
        "missing_nbf": sign(ring, claims(nbf=None)),
        "missing_iat": sign(ring, claims(iat=None)),
        "missing_aud": sign(ring, claims(aud=None)),
        "missing_iss": sign(ring, claims(iss=None)),
        "missing_sub": sign(ring, claims(sub=None)),
        "roles_not_list": sign(ring, claims(roles="admin")),
        "exp_as_string": sign(ring, claims(exp=str(int(NOW) + 900))),
        "lifetime_too_long": sign(ring, claims(exp=int(NOW) + 365 * 86400)),
        "payload_tampered": f"{h}.{b64(claims(roles=['admin']))}.{s}",
        "signature_stripped": f"{h}.{p}.",
        "signature_altered": f"{h}.{p}.{s[:-4]}AAAA",
        "two_segments": f"{h}.{p}",
        "four_segments": f"{good}.x",
        "garbage": "not-a-jwt",
        "empty": "",
        "header_not_json": f"{b64(b'{not json')}.{p}.{s}",
        "header_is_list": f"{b64(b'[1,2]')}.{p}.{s}",
        "payload_not_json": f"{h}.{b64(b'nope')}.{s}",
        "oversized": sign(ring, claims(pad="x" * 10_000)),
    }


def test_attack_corpus_all_refused(ring: SigningKeyRing, verifier: JwtVerifier) -> None:
    corpus = _attacks(ring)
    assert len(corpus) >= 20
    # sanity: the untouched token verifies
    assert isinstance(verifier.verify(sign(ring, claims()), now=NOW), Ok)
    accepted = []
    for name, token in corpus.items():
        result = verifier.verify(token, now=NOW)
        if not isinstance(result, Err):
            accepted.append(name)
        else:
            assert isinstance(result.error, InvalidToken)
            assert result.error.status == 401
    assert accepted == []


def test_leeway_tolerates_small_skew(ring: SigningKeyRing, verifier: JwtVerifier) -> None:
    token = sign(ring, claims(iat=int(NOW) + 10, nbf=int(NOW) + 10, exp=int(NOW) + 900))
    assert isinstance(verifier.verify(token, now=NOW), Ok)
    token = sign(ring, claims(exp=int(NOW) - 10))
    assert isinstance(verifier.verify(token, now=NOW), Ok)
    assert isinstance(verifier.verify(token, now=NOW + 60), Err)


def test_real_clock_default(issuer: JwtIssuer) -> None:
    ring = SigningKeyRing.generate()
    token = JwtIssuer(ring, issuer=ISS, audience=AUD).issue("u", "s", ["user"])
    assert JwtVerifier(ring, issuer=ISS, audience=AUD).verify(token).unwrap().exp > time.time()


def test_verified_token_cache_rechecks_claims_and_key() -> None:
    ring = SigningKeyRing.generate(now=NOW, max_token_lifetime=900)
    issuer = JwtIssuer(ring, issuer=ISS, audience=AUD)
    verifier = JwtVerifier(ring, issuer=ISS, audience=AUD, max_lifetime=900, cache_size=2)
    token = issuer.issue("u", "s", ["user"], now=NOW)
    assert isinstance(verifier.verify(token, now=NOW), Ok)
    assert isinstance(verifier.verify(token, now=NOW + 10), Ok)  # served from the cache
    assert isinstance(verifier.verify(token, now=NOW + 2000), Err)  # expired, even if cached
    ring.rotate(now=NOW + 1, publish_lead=0)
    assert isinstance(verifier.verify(token, now=NOW + 500), Ok)
    ring.prune(NOW + 1000)
    assert isinstance(verifier.verify(token, now=NOW + 500), Err)  # key retired: refused
    # a tampered copy of a cached token is not a cache hit
    h, p, s = token.split(".")
    assert isinstance(verifier.verify(f"{h}.{p}.{s[:-2]}AA", now=NOW), Err)
    for n in range(5):  # the cache stays bounded
        verifier.verify(issuer.issue(f"u{n}", "s", [], now=NOW + 1000), now=NOW + 1000)
    assert len(verifier._verified) <= 2
