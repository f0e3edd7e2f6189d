"""Benchmark S4: refresh-token rotation on PostgreSQL (performance.md).

Result lines:

* ``s4_refresh``: refreshes/s of one token chain through
  :func:`~dashtam_core.adapters.security.refresh_tokens.rotate_refresh_token` (one transaction:
  the guarded spend ``UPDATE ... RETURNING``, the session touch, the child ``INSERT``) plus
  signing the new access token (EdDSA JWT); ceiling: a raw asyncpg loop of the same three
  statements (prepared) in a transaction plus the same JWT sign and the same token
  generation + HMAC. Target ratio >= 0.50.
* ``s4_refresh_service``: the whole ``application.sessions.refresh`` (also loads the user and
  appends the ``session.refresh`` audit record), same ceiling, for reference.
* ``s4_reuse_race``: 50 concurrent rotations of one token (each in its own transaction): the
  number of children the token got (must be exactly 1; ratio = children / 1). ``winners`` and
  ``reuse_detected`` count the outcomes; the script exits 1 if anything but one child appears.

Needs PostgreSQL (``--postgres-url`` or ``DASHTAM_TEST_POSTGRES_URL``; a throwaway database is
created and dropped); without it the script prints ``skipped: ...`` on stderr and exits 0.

Usage: ``.venv/bin/python bench/bench_s4_refresh.py [--quick] [--seconds S] [--postgres-url URL]``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from _common import asyncpg_dsn, database, emit, parser, skip
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.keys import generate_all_keys
from dashtam_core.adapters.security.refresh_tokens import (
    InvalidRefreshToken,
    RefreshTokenReused,
    generate_refresh_token,
    issue_refresh_token,
    rotate_refresh_token,
)
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application import sessions
from dashtam_core.application.audit import Origin
from dashtam_core.application.security_kit import SecurityKit, build_security_kit
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.session import Session
from dashtam_core.domain.user import Role, User
from dashtam_core.result import Ok
from dashtam_core.settings import CoreSettings

SPEND = """
UPDATE refresh_tokens SET used_at = $1
WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1
  AND session_id IN (SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > $1)
RETURNING id, session_id
"""
TOUCH = "UPDATE sessions SET last_used_at = $1 WHERE id = $2 RETURNING user_id, expires_at"
ADD = """
INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at, parent_id)
VALUES ($1, $2, $3, $4, $5, $6)
"""
RACERS = 50


async def seed_user(engine: AsyncEngine) -> UUID:
    """One verified user (the password is never used: sessions are opened directly)."""
    async with SqlAlchemyUnitOfWork(engine) as uow:
        user = User(
            id=uuid7(),
            email="s4@bench.example.com",
            password_hash="$argon2id$unused",
            created_at=datetime.now(UTC),
            email_verified=True,
            roles=[Role.USER],
        )
        (await uow.users.add(user)).unwrap()
        await uow.commit()
    return user.id


async def open_chain(kit: SecurityKit, user_id: UUID) -> tuple[UUID, str, UUID]:
    """A new session with its first refresh token; returns ``(session_id, token, token_id)``."""
    now = datetime.now(UTC)
    async with SqlAlchemyUnitOfWork(kit.engine) as uow:
        session = Session(uuid7(), user_id, now, now, now + timedelta(days=30))
        await uow.sessions.add(session)
        issued = await issue_refresh_token(
            uow.connection,
            kit.token_hasher,
            session_id=session.id,
            user_id=user_id,
            now=now,
            idle=timedelta(days=7),
            session_expires_at=session.expires_at,
        )
        await uow.commit()
    return session.id, issued.token, issued.token_id


async def adapter_rate(kit: SecurityKit, token: str, seconds: float) -> tuple[float, str]:
    """Rotations/s through ``rotate_refresh_token`` + JWT sign; returns the chain's last token."""
    idle = timedelta(days=7)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        async with kit.engine.begin() as conn:
            result = await rotate_refresh_token(
                conn, kit.token_hasher, token, now=datetime.now(UTC), idle=idle
            )
        if not isinstance(result, Ok):
            raise RuntimeError(f"rotation failed: {result.error!r}")
        child = result.value
        kit.issuer.issue(child.user_id, child.session_id, ["user"])
        token = child.token
        count += 1
    return count / (time.perf_counter() - started), token


async def service_rate(kit: SecurityKit, token: str, seconds: float) -> tuple[float, str]:
    """Refreshes/s through ``application.sessions.refresh``; returns the chain's last token."""
    origin = Origin(None, "127.0.0.1", "dashtam-bench/1.0")
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        token = (await sessions.refresh(kit, token, origin=origin)).refresh_token
        count += 1
    return count / (time.perf_counter() - started), token


async def raw_rate(raw: Any, kit: SecurityKit, token: str, seconds: float) -> tuple[float, str]:
    """The ceiling: the same statements on a bare asyncpg connection, plus the same JWT sign."""
    spend, touch, add = await raw.prepare(SPEND), await raw.prepare(TOUCH), await raw.prepare(ADD)
    digest = kit.token_hasher.digest
    idle = timedelta(days=7)
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        now = datetime.now(UTC)
        async with raw.transaction():
            row = await spend.fetchrow(now, digest(token))
            if row is None:
                raise RuntimeError("raw rotation found no live token")
            session = await touch.fetchrow(now, row["session_id"])
            token = generate_refresh_token()
            expires = min(now + idle, session["expires_at"])
            await add.fetch(uuid7(), row["session_id"], digest(token), now, expires, row["id"])
        kit.issuer.issue(session["user_id"], row["session_id"], ["user"])
        count += 1
    return count / (time.perf_counter() - started), token


async def race(kit: SecurityKit, user_id: UUID) -> dict[str, int]:
    """50 concurrent rotations of one token; count winners, reuse detections and children."""
    _, token, token_id = await open_chain(kit, user_id)
    gate = asyncio.Event()

    async def rotate() -> str:
        await gate.wait()
        async with kit.engine.begin() as conn:
            result = await rotate_refresh_token(
                conn, kit.token_hasher, token, now=datetime.now(UTC), idle=timedelta(days=7)
            )
        if isinstance(result, Ok):
            return "won"
        if isinstance(result.error, RefreshTokenReused):
            return "reuse"
        if isinstance(result.error, InvalidRefreshToken):
            return "invalid"
        return type(result.error).__name__

    tasks = [asyncio.create_task(rotate()) for _ in range(RACERS)]
    await asyncio.sleep(0)
    gate.set()
    outcomes = await asyncio.gather(*tasks)
    async with kit.engine.connect() as conn:
        children = (
            await conn.execute(
                select(func.count())
                .select_from(refresh_tokens)
                .where(refresh_tokens.c.parent_id == token_id)
            )
        ).scalar_one()
    return {
        "children": int(children),
        "winners": outcomes.count("won"),
        "reuse_detected": outcomes.count("reuse"),
        "invalid": outcomes.count("invalid"),
    }


async def run(url: str, seconds: float, rounds: int, secret_dir: Path) -> bool:
    """Measure S4 on the migrated database at ``url``; returns whether the race held."""
    import asyncpg

    await upgrade(url)
    generate_all_keys(secret_dir)
    settings = CoreSettings(
        database_url=url, secret_dir=secret_dir, mail_outbox=secret_dir / "outbox"
    )
    engine = create_engine(url)
    raw = await asyncpg.connect(asyncpg_dsn(url))
    try:
        kit = build_security_kit(settings, engine, send_login_notices=False)
        user_id = await seed_user(engine)
        _, adapter_token, _ = await open_chain(kit, user_id)
        _, service_token, _ = await open_chain(kit, user_id)
        _, raw_token, _ = await open_chain(kit, user_id)
        warm = min(0.3, seconds)
        _, adapter_token = await adapter_rate(kit, adapter_token, warm)
        _, service_token = await service_rate(kit, service_token, warm)
        _, raw_token = await raw_rate(raw, kit, raw_token, warm)
        value = service = ceiling = 0.0
        for _ in range(rounds):
            rate, raw_token = await raw_rate(raw, kit, raw_token, seconds)
            ceiling = max(ceiling, rate)
            rate, adapter_token = await adapter_rate(kit, adapter_token, seconds)
            value = max(value, rate)
            rate, service_token = await service_rate(kit, service_token, seconds)
            service = max(service, rate)
        emit("s4_refresh", value, "refreshes/s", ceiling, ">= 0.50", "postgresql", rounds=rounds)
        emit(
            "s4_refresh_service",
            service,
            "refreshes/s",
            ceiling,
            "reference (adds user load + audit record)",
            "postgresql",
            rounds=rounds,
        )
        counts = await race(kit, user_id)
        emit(
            "s4_reuse_race",
            float(counts["children"]),
            "children of one token",
            1.0,
            "== 1 child (ratio 1.0)",
            "postgresql",
            racers=RACERS,
            **{k: v for k, v in counts.items() if k != "children"},
        )
        return counts["children"] == 1 and counts["winners"] == 1
    finally:
        await raw.close()
        await engine.dispose()


async def main() -> None:
    """Run S4."""
    args = parser(__doc__, seconds=3.0).parse_args()
    if not args.postgres_url:
        skip("S4 needs PostgreSQL: set DASHTAM_TEST_POSTGRES_URL or --postgres-url")
    seconds = 0.5 if args.quick else args.seconds
    with tempfile.TemporaryDirectory() as directory:
        async with database(args.postgres_url) as (url, _):
            held = await run(url, seconds, 1 if args.quick else 3, Path(directory) / "keys")
    if not held:
        raise SystemExit("S4 race: one token got other than exactly one child")


if __name__ == "__main__":
    asyncio.run(main())
