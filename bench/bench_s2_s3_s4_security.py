"""Benchmarks S2 (security stack overhead), S3 (login storm) and S4 (refresh rotation).

* ``s2_security_overhead``: requests/s of an authenticated route returning a prebuilt 50-row JSON
  body (JWT check, rate limit, revocation query, Casbin) divided by the same handler without the
  security dependency, both served by one uvicorn worker in a child process and driven by
  keep-alive HTTP/1.1 clients from this process; target >= 0.80.
* ``s3_login_storm``: logins/s per core (half valid, half unknown emails, production argon2id)
  while ``/health`` is probed every 20 ms; ceiling: cores / argon2id verify time measured in this
  run; target >= 0.85; ``s3_health_p99`` is the probe's p99 in ms (target < 20).
* ``s4_refresh``: refresh rotations/s through the service (atomic spend + child + audit + JWT);
  ceiling: a raw driver loop of the same ``UPDATE ... RETURNING`` + ``INSERT`` + JWT sign;
  target >= 0.50. ``s4_race`` checks that 50 concurrent reuses of one token leave one child.

Database: SQLite (temporary directory) or PostgreSQL + Redis when ``DASHTAM_TEST_POSTGRES_URL``
/ ``DASHTAM_TEST_REDIS_URL`` are set (a throwaway database is created and dropped).
``--quick`` runs each phase for about a second so CI proves the benchmark works.

Usage: ``.venv/bin/python bench/bench_s2_s3_s4_security.py [--quick] [--seconds S]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from starlette.responses import Response

from dashtam_api.auth import CurrentPrincipal

PYTHON = platform.python_version()
PASSWORD = "correct horse battery staple 42"
USERS = 20
BODY = orjson.dumps(
    {
        "data": [
            {
                "id": f"0190{i:04d}-0000-7000-8000-000000000000",
                "amount": "-12.34",
                "currency": "USD",
                "description": f"row {i}",
                "date": "2025-04-28",
            }
            for i in range(50)
        ],
        "next_cursor": None,
    }
)


def emit(
    scenario: str, value: float, unit: str, ceiling: float | None, target: str, db: str
) -> None:
    """Print one result line."""
    row = {
        "scenario": scenario,
        "value": round(value, 3),
        "unit": unit,
        "ceiling": round(ceiling, 3) if ceiling else None,
        "ratio": round(value / ceiling, 3) if ceiling else None,
        "target": target,
        "python": PYTHON,
        "db": db,
    }
    print(json.dumps(row), flush=True)


# -- the server (child process) -----------------------------------------------------------------


def make_app() -> Any:
    """The service plus two benchmark routes: the same body with and without security."""
    from dashtam_api.main import create_app
    from dashtam_api.registry import RouteSpec
    from dashtam_api.settings import ApiSettings
    from dashtam_core.plugins.manager import build_plugin_manager

    async def secure(principal: CurrentPrincipal) -> Response:
        return Response(BODY, media_type="application/json")

    async def open_() -> Response:
        return Response(BODY, media_type="application/json")

    routes = [
        RouteSpec(
            name="bench.secure",
            method="GET",
            path="/bench/secure",
            handler=secure,
            auth="user",
            policy=("transactions", "read"),
            rate_limit="read_user",
        ),
        RouteSpec(
            name="bench.open",
            method="GET",
            path="/bench/open",
            handler=open_,
            auth="public",
            rate_limit="none",
            rate_limit_exempt="benchmark ceiling",
        ),
    ]
    app = create_app(ApiSettings(), plugins=build_plugin_manager(load_only=[]), extra_routes=routes)
    app.state.security_options = {"send_login_notices": False}
    return app


def serve(port: int) -> None:
    """Run one uvicorn worker (child process)."""
    import uvicorn

    uvicorn.run(make_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- load generation ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
) -> tuple[int, bytes]:
    writer.write(raw)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _drive(
    port: int, requests: list[bytes], clients: int, seconds: float
) -> tuple[float, dict[int, int]]:
    """Keep-alive clients cycling through ``requests``; returns (req/s, status counts)."""
    counts: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        try:
            while time.perf_counter() < deadline:
                status, _ = await _exchange(reader, writer, requests[(n + done) % len(requests)])
                counts[status] = counts.get(status, 0) + 1
                done += 1
        finally:
            writer.close()
        return done

    started = time.perf_counter()
    total = sum(await asyncio.gather(*(client(n) for n in range(clients))))
    return total / (time.perf_counter() - started), counts


async def _probe(port: int, stop: asyncio.Event) -> list[float]:
    latencies = []
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    raw = _request("GET", "/health", {})
    while not stop.is_set():
        started = time.perf_counter()
        await _exchange(reader, writer, raw)
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    writer.close()
    return latencies


async def _login(port: int, email: str) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = orjson.dumps({"email": email, "password": PASSWORD})
    status, data = await _exchange(reader, writer, _request("POST", "/api/v1/sessions", {}, body))
    writer.close()
    assert status == 201, data
    result: dict[str, Any] = orjson.loads(data)
    return result


# -- orchestration ------------------------------------------------------------------------------


async def _setup(env: dict[str, str]) -> None:
    from dashtam_api.settings import ApiSettings
    from dashtam_core.adapters.security.keys import generate_all_keys
    from dashtam_core.adapters.sqlalchemy.engine import create_engine
    from dashtam_core.adapters.sqlalchemy.migrate import upgrade
    from dashtam_core.application import identity
    from dashtam_core.application.audit import SYSTEM
    from dashtam_core.application.security_kit import build_security_kit

    settings = ApiSettings(**{k.removeprefix("DASHTAM_").lower(): v for k, v in env.items()})
    await upgrade(settings.database_url)
    generate_all_keys(settings.secret_dir)
    engine = create_engine(settings.database_url)
    kit = build_security_kit(settings, engine)
    for n in range(USERS):
        await identity.register(kit, f"u{n}@example.com", PASSWORD, origin=SYSTEM, verified=True)
    await engine.dispose()


async def bench_http(env: dict[str, str], db: str, seconds: float) -> None:
    port = _free_port()
    child_env = {**os.environ, **env}
    command = [sys.executable, __file__, "--serve", str(port)]
    server = subprocess.Popen(command, env=child_env)  # noqa: ASYNC220 - starts, never waits
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        tokens = [(await _login(port, f"u{n}@example.com"))["access_token"] for n in range(USERS)]
        secure = [
            _request("GET", "/bench/secure", {"Authorization": f"Bearer {t}"}) for t in tokens
        ]
        plain = [_request("GET", "/bench/open", {})]
        await _drive(port, secure, 16, min(1.0, seconds))  # warm up
        off, _ = await _drive(port, plain, 16, seconds)
        on, statuses = await _drive(port, secure, 16, seconds)
        assert set(statuses) == {200}, statuses
        emit("s2_security_overhead", on, "req/s", off, ">= 0.80", db)
        from dashtam_core.adapters.security.passwords import Argon2idHasher

        hasher = Argon2idHasher()
        encoded = hasher.hash_sync(PASSWORD)
        started = time.perf_counter()
        for _ in range(10):
            hasher.verify_sync(encoded, PASSWORD)
        verify_time = (time.perf_counter() - started) / 10
        cores = os.cpu_count() or 1
        logins = []
        for n in range(2000):  # valid logins and unknown emails (no lockout, no delay)
            email = f"u{n % USERS}@example.com" if n % 2 == 0 else f"nobody{n}@example.com"
            body = orjson.dumps({"email": email, "password": PASSWORD})
            logins.append(_request("POST", "/api/v1/sessions", {}, body))
        stop = asyncio.Event()
        probe = asyncio.create_task(_probe(port, stop))
        rate, statuses = await _drive(port, logins, 2 * cores + 2, seconds)
        stop.set()
        latencies = sorted(await probe)
        assert set(statuses) <= {201, 401}, statuses
        emit("s3_login_storm", rate / cores, "logins/s/core", 1 / verify_time, ">= 0.85", db)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        emit("s3_health_p99", p99, "ms", None, "< 20", db)
    finally:
        server.terminate()
        server.wait(timeout=10)


async def bench_refresh(env: dict[str, str], db: str, seconds: float) -> None:
    from sqlalchemy import func, select, text

    from dashtam_api.settings import ApiSettings
    from dashtam_core.adapters.security.refresh_tokens import generate_refresh_token
    from dashtam_core.adapters.sqlalchemy.engine import create_engine
    from dashtam_core.adapters.sqlalchemy.tables import refresh_tokens
    from dashtam_core.application import login, sessions
    from dashtam_core.application.audit import Origin
    from dashtam_core.application.security_kit import build_security_kit
    from dashtam_core.domain.ids import uuid7

    settings = ApiSettings(**{k.removeprefix("DASHTAM_").lower(): v for k, v in env.items()})
    engine = create_engine(settings.database_url)
    kit = build_security_kit(settings, engine, send_login_notices=False)
    origin = Origin(None, "127.0.0.1", "bench")
    pair = await login.login(kit, "u0@example.com", PASSWORD, origin=origin)
    token = pair.refresh_token
    count = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        token = (await sessions.refresh(kit, token, origin=origin)).refresh_token
        count += 1
    service_rate = count / (time.perf_counter() - started)

    # ceiling: the same statements through the driver, no service layer
    raw_token = generate_refresh_token()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            refresh_tokens.insert().values(
                id=uuid7(),
                session_id=pair.session_id,
                token_hash=kit.token_hasher.digest(raw_token),
                created_at=now,
                expires_at=now + timedelta(days=7),
            )
        )
    spend = text(
        "UPDATE refresh_tokens SET used_at = :now WHERE token_hash = :h AND used_at IS NULL "
        "RETURNING id, session_id"
    )
    add = refresh_tokens.insert()
    count = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            row = (
                await conn.execute(spend, {"now": now, "h": kit.token_hasher.digest(raw_token)})
            ).one()
            raw_token = generate_refresh_token()
            await conn.execute(
                add,
                {
                    "id": uuid7(),
                    "session_id": row.session_id,
                    "parent_id": row.id,
                    "token_hash": kit.token_hasher.digest(raw_token),
                    "created_at": now,
                    "expires_at": now + timedelta(days=7),
                },
            )
        kit.issuer.issue(pair.user_id, pair.session_id, ["user"])
        count += 1
    raw_rate = count / (time.perf_counter() - started)
    emit("s4_refresh", service_rate, "refreshes/s", raw_rate, ">= 0.50", db)

    race = await login.login(kit, "u1@example.com", PASSWORD, origin=origin)
    results = await asyncio.gather(
        *(sessions.refresh(kit, race.refresh_token, origin=origin) for _ in range(50)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    async with engine.connect() as conn:
        children = (
            await conn.execute(
                select(func.count())
                .select_from(refresh_tokens)
                .where(
                    refresh_tokens.c.session_id == race.session_id,
                    refresh_tokens.c.parent_id.is_not(None),
                )
            )
        ).scalar_one()
    assert len(winners) == 1, len(winners)
    assert children == 1, children
    emit("s4_race", float(children), "children of 50 concurrent reuses", None, "== 1", db)
    await engine.dispose()


async def main(args: argparse.Namespace) -> None:
    seconds = 1.0 if args.quick else args.seconds
    postgres = os.environ.get("DASHTAM_TEST_POSTGRES_URL")
    redis = os.environ.get("DASHTAM_TEST_REDIS_URL")
    async with AsyncExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if postgres:
            from dashtam_core.testing.databases import make_postgres_database

            url = await stack.enter_async_context(make_postgres_database(postgres))
            db = "postgresql+redis" if redis else "postgresql"
        else:
            url, db, redis = f"sqlite+aiosqlite:///{directory / 'bench.db'}", "sqlite", None
        env = {
            "DASHTAM_DATABASE_URL": url,
            "DASHTAM_SECRET_DIR": str(directory / "keys"),
            "DASHTAM_MAIL_OUTBOX": str(directory / "outbox"),
            "DASHTAM_RATE_LIMITS": "login_ip=100000000/min,login_email=100000000/min,"
            "read_user=100000000/min,refresh_session=100000000/min",
        }
        if redis:
            env["DASHTAM_REDIS_URL"] = redis
        await _setup(env)
        await bench_http(env, db, seconds)
        await bench_refresh(env, db, seconds)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--quick", action="store_true", help="about a second per phase (CI)")
        parser.add_argument("--seconds", type=float, default=10.0, help="seconds per phase")
        asyncio.run(main(parser.parse_args()))
