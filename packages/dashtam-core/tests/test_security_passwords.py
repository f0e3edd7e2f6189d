"""argon2id hasher and the password policy."""

from __future__ import annotations

import asyncio
import time

import pytest
from argon2 import PasswordHasher as RawArgon2

from dashtam_core.adapters.security.password_policy import (
    REASONS,
    PasswordPolicyViolation,
    check_password,
    check_password_async,
    common_passwords,
)
from dashtam_core.adapters.security.passwords import TEST_PARAMS, Argon2idHasher, Argon2Params
from dashtam_core.errors import WeakPassword
from dashtam_core.ports.security import PasswordHasher
from dashtam_core.result import Err, Ok


@pytest.fixture(scope="module")
def fast() -> Argon2idHasher:
    return Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True)


def test_default_parameters_meet_owasp_minimum() -> None:
    hasher = Argon2idHasher()
    assert isinstance(hasher, PasswordHasher)
    encoded = hasher.hash_sync("correct horse battery staple")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify_sync(encoded, "correct horse battery staple")
    assert not hasher.needs_rehash(encoded)


def test_weak_parameters_need_explicit_opt_in() -> None:
    with pytest.raises(ValueError):
        Argon2idHasher(TEST_PARAMS)
    with pytest.raises(ValueError):
        Argon2idHasher(Argon2Params(memory_cost_kib=19456, time_cost=1))
    assert Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True).params == TEST_PARAMS


async def test_hash_verify_async(fast: Argon2idHasher) -> None:
    encoded = await fast.hash("a long enough passphrase")
    assert encoded != await fast.hash("a long enough passphrase")  # salted
    assert await fast.verify(encoded, "a long enough passphrase")
    assert not await fast.verify(encoded, "a long enough passphrasE")
    assert not await fast.verify("not-a-hash", "x")
    assert not await fast.verify("", "x")


async def test_hashing_runs_off_the_event_loop() -> None:
    hasher = Argon2idHasher()  # real parameters: tens of milliseconds of CPU
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    encoded = await hasher.hash("p" * 20)
    assert await hasher.verify(encoded, "p" * 20)
    during = ticks - before
    task.cancel()
    assert during >= 3  # the loop kept serving while argon2 ran in a thread


def test_needs_rehash_for_older_parameters(fast: Argon2idHasher) -> None:
    strong = Argon2idHasher()
    weak_hash = fast.hash_sync("upgrade me please")
    assert strong.needs_rehash(weak_hash)
    assert strong.verify_sync(weak_hash, "upgrade me please")  # still verifies, then upgrade
    argon2i = RawArgon2(time_cost=2, memory_cost=19456, parallelism=1)
    assert not strong.needs_rehash(argon2i.hash("x"))
    assert strong.needs_rehash("garbage")


async def test_dummy_verify_same_timing_class() -> None:
    hasher = Argon2idHasher()
    encoded = await hasher.hash("the real password!")
    await hasher.dummy_verify("warm up")

    async def timed(coro_factory: object) -> float:
        start = time.perf_counter()
        await coro_factory()  # type: ignore[operator]
        return time.perf_counter() - start

    real = min([await timed(lambda: hasher.verify(encoded, "wrong password!!")) for _ in range(3)])
    dummy = min([await timed(lambda: hasher.dummy_verify("wrong password!!")) for _ in range(3)])
    assert await hasher.dummy_verify("the real password!") is False
    assert 0.33 < dummy / real < 3.0  # a shortcut (no argon2 work) would be ~0.001


def test_policy_accepts_strong_passwords() -> None:
    for password in (
        "correct horse battery staple",
        "yellow-moose-kettle-47",
        "Ünïcödé pässwörd fûn ☃☃",
        "x" * 11 + "Q7$kd93jvK",
        "p" * 3 + "R9#mLq2!vZ8@wK" + "z" * 239,
    ):
        assert check_password(password, "alice@example.com") == Ok(None), password


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short", "too_short"),
        ("elevenchars", "too_short"),
        ("a" * 257, "too_long"),
        ("password1234", "common_password"),
        ("Password1234", "common_password"),
        ("qwertyuiop123", "common_password"),
        ("1qaz2wsx3edc", "common_password"),
        ("ALICE-horse-battery-99", "contains_email"),
        ("aaaaaaaaaaaaaaaa", "too_guessable"),
        ("qwerqwerqwerqwer", "too_guessable"),
        ("123412341234", "too_guessable"),
    ],
)
def test_policy_rejections(password: str, reason: str) -> None:
    result = check_password(password, "Alice@Example.com")
    assert isinstance(result, Err)
    error = result.error
    assert isinstance(error, WeakPassword)
    assert isinstance(error, PasswordPolicyViolation)
    assert error.code == "weak_password"
    assert error.status == 422
    assert error.reason == reason
    assert error.message == f"{reason}: {REASONS[reason]}"


def test_email_local_part_rule_needs_three_chars() -> None:
    assert check_password("Eddie correct horse staple", "ed@example.com") == Ok(None)
    assert isinstance(check_password("zebra-correct-horse", "zebra@example.com"), Err)
    assert check_password("correct horse battery staple") == Ok(None)


async def test_async_check_matches_sync() -> None:
    assert await check_password_async("correct horse battery staple", "a@b.c") == Ok(None)
    weak = await check_password_async("password1234")
    assert isinstance(weak, Err)
    assert weak.error.message.startswith("common_password")


def test_common_list_is_bundled() -> None:
    words = common_passwords()
    assert 1000 <= len(words) <= 10_000
    assert "password1234" in words
    assert all(w == w.lower() for w in words)
