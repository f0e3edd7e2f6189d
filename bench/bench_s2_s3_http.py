"""Benchmarks S2 (security stack overhead) and S3 (login storm) over real HTTP (performance.md).

The real service (``dashtam_api.main.create_app``) runs in a child process under uvicorn (one
worker, loopback); this process generates the load over keep-alive HTTP/1.1 connections,
bounded in time.

* ``s2_security_overhead``: requests/s of ``GET /api/v1/transactions?limit=50`` (JWT check,
  revocation check, rate limit, Casbin, keyset query, serialization) over the same handler
  body mounted without the security dependencies (``GET /bench/transactions``, public, no rate
  limit, fixed user). 16 closed-loop clients; rounds alternate (best of each). Target >= 0.80.
* ``s3_login_storm``: logins/s per core of ``POST /api/v1/sessions`` (half valid, half invalid:
  wrong passwords of existing users and unknown emails), 4 clients per core; ceiling: 1 /
  (argon2id verify time with the service's production parameters, measured in this run), so the
  ratio is logins/s over cores / verify time. Target >= 0.85. The login rate limits are raised
  for the run (the storm measures hashing capacity, not the limiter) and login notice mails are
  off.
* ``s3_health_p99``: p99 of ``GET /health`` probed every 20 ms during the storm, in ms; the
  ceiling is the 20 ms budget (ratio < 1 meets it); ``idle_p99_ms`` is the same probe before
  the storm.

Database: PostgreSQL (throwaway database) with ``--postgres-url``/``DASHTAM_TEST_POSTGRES_URL``,
else SQLite; the rate limiter is Redis with ``--redis-url``/``DASHTAM_TEST_REDIS_URL``, else
in-process.

Usage: ``.venv/bin/python bench/bench_s2_s3_http.py [--quick] [--seconds S] [--postgres-url URL]
[--redis-url URL]``
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from _common import (
    HttpConnection,
    Server,
    closed_loop,
    database,
    emit,
    free_port,
    http_request,
    parser,
    percentile,
    start_server,
)

from dashtam_api.deps import ReadEngineDep
from dashtam_core.application.queries import DEFAULT_LIMIT
from dashtam_core.domain.ids import uuid7

PASSWORD = "storm-bench correct horse 1984"
VALID_USERS = 20
VICTIMS = 200
USER_ENV = "DASHTAM_BENCH_USER_ID"
S2_CLIENTS = 16
PROBE_INTERVAL = 0.02
HEALTH_BUDGET_MS = 20.0


# -- the server (child process) -------------------------------------------------------------------


def make_app() -> Any:
    """The service plus ``GET /bench/transactions``: the real list handler without security."""
    from dashtam_api.auth import Principal
    from dashtam_api.main import create_app
    from dashtam_api.registry import RouteSpec
    from dashtam_api.routes.data import list_transactions

    principal = Principal(UUID(os.environ[USER_ENV]), ("user",), uuid7())

    async def open_transactions(
        engine: ReadEngineDep,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Any:
        """``transactions.list`` called for a fixed principal: no JWT, revocation, limit, authz."""
        return await list_transactions(principal, engine, limit=limit, cursor=cursor)

    route = RouteSpec(
        name="bench.transactions_open",
        method="GET",
        path="/bench/transactions",
        handler=open_transactions,
        auth="public",
        rate_limit="none",
        rate_limit_exempt="S2 benchmark: the security-off twin of transactions.list",
        include_in_schema=False,
    )
    app = create_app(extra_routes=[route])
    app.state.security_options = {"send_login_notices": False}
    return app


def serve(port: int) -> None:
    """Run the service under one uvicorn worker on loopback."""
    import uvicorn

    uvicorn.run(make_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- data -----------------------------------------------------------------------------------------


async def seed(url: str, secret_dir: Path, rows: int) -> tuple[UUID, str]:
    """Users (one with ``rows`` transactions), keys; returns (data user id, its email)."""
    from sqlalchemy import insert

    from dashtam_core.adapters.security.keys import generate_all_keys
    from dashtam_core.adapters.security.passwords import Argon2idHasher
    from dashtam_core.adapters.sqlalchemy.engine import create_engine
    from dashtam_core.adapters.sqlalchemy.migrate import upgrade
    from dashtam_core.adapters.sqlalchemy.tables_data import transactions
    from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
    from dashtam_core.domain.account import Account, AccountType
    from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
    from dashtam_core.domain.user import Role, User

    await upgrade(url)
    generate_all_keys(secret_dir)
    encoded = Argon2idHasher().hash_sync(PASSWORD)  # production parameters
    now = datetime.now(UTC)
    emails = ["s2@bench.example.com"]
    emails += [f"valid{i}@bench.example.com" for i in range(VALID_USERS)]
    emails += [f"victim{i}@bench.example.com" for i in range(VICTIMS)]
    engine = create_engine(url)
    try:
        async with SqlAlchemyUnitOfWork(engine) as uow:
            users = [User(uuid7(), e, encoded, now, True, [Role.USER]) for e in emails]
            for user in users:
                (await uow.users.add(user)).unwrap()
            owner = users[0].id
            link = ProviderConnection(uuid7(), owner, "chase", ConnectionStatus.ACTIVE, now)
            await uow.connections.add(link)
            kind = AccountType.CHECKING
            account = Account(uuid7(), link.id, owner, "chase", "b-1", "Bench", kind, "USD", now)
            await uow.accounts.add(account)
            await uow.commit()
        first = date(2024, 1, 1)
        records = [
            {
                "id": uuid7(),
                "account_id": account.id,
                "provider_transaction_id": f"bench-{i}",
                "dedupe_key": f"bench-{i}",
                "date": first + timedelta(days=i % 700),
                "amount": Decimal(f"-{i % 900 + 1}.{i % 100:02d}"),
                "currency": "USD",
                "description": f"BENCH PURCHASE {i}",
                "type": "other",
                "subtype": "purchase",
                "status": "posted",
                "content_hash": f"{i:064x}",
                "created_at": now,
                "updated_at": now,
            }
            for i in range(rows)
        ]
        async with engine.begin() as conn:
            await conn.execute(insert(transactions), records)
    finally:
        await engine.dispose()
    return owner, emails[0]


# -- load -----------------------------------------------------------------------------------------


async def drive(
    port: int, clients: int, seconds: float, make: Any, statuses: dict[int, int]
) -> float:
    """Closed-loop keep-alive clients sending ``make(client, i)``; returns requests/s."""
    connections = [await HttpConnection.open(port) for _ in range(clients)]

    async def one(n: int, i: int) -> None:
        status, _ = await connections[n].exchange(make(n, i))
        statuses[status] = statuses.get(status, 0) + 1

    try:
        rate, _ = await closed_loop(clients, seconds, one)
    finally:
        for connection in connections:
            await connection.close()
    return rate


async def probe(port: int, stop: asyncio.Event, latencies: list[float]) -> None:
    """GET /health every 20 ms until ``stop``; appends latencies in ms."""
    connection = await HttpConnection.open(port)
    raw = http_request("GET", "/health")
    try:
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = await connection.exchange(raw)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"/health answered {status}")
            await asyncio.sleep(PROBE_INTERVAL)
    finally:
        await connection.close()


async def login(port: int, email: str) -> str:
    """Log in once; return the access token."""
    connection = await HttpConnection.open(port)
    try:
        body = orjson.dumps({"email": email, "password": PASSWORD})
        status, data = await connection.exchange(
            http_request("POST", "/api/v1/sessions", body=body)
        )
    finally:
        await connection.close()
    if status != 201:
        raise RuntimeError(f"login answered {status}: {data!r}")
    return str(orjson.loads(data)["access_token"])


async def bench_s2(port: int, email: str, seconds: float, rounds: int, db: str) -> None:
    """Security on vs off, same handler body."""
    token = await login(port, email)
    secure = http_request(
        "GET", "/api/v1/transactions?limit=50", headers={"Authorization": f"Bearer {token}"}
    )
    plain = http_request("GET", "/bench/transactions?limit=50")
    checks = []
    for raw in (secure, plain):
        connection = await HttpConnection.open(port)
        checks.append(await connection.exchange(raw))
        await connection.close()
    (s_status, s_body), (p_status, p_body) = checks
    if s_status != 200 or p_status != 200 or orjson.loads(s_body) != orjson.loads(p_body):
        raise RuntimeError(f"on/off bodies differ ({s_status}, {p_status})")
    statuses: dict[int, int] = {}
    await drive(port, S2_CLIENTS, min(0.5, seconds), lambda n, i: secure, statuses)
    await drive(port, S2_CLIENTS, min(0.5, seconds), lambda n, i: plain, statuses)
    on = off = 0.0
    for _ in range(rounds):
        off = max(off, await drive(port, S2_CLIENTS, seconds, lambda n, i: plain, statuses))
        on = max(on, await drive(port, S2_CLIENTS, seconds, lambda n, i: secure, statuses))
    if set(statuses) != {200}:
        raise RuntimeError(f"S2 saw non-200 answers: {statuses}")
    emit(
        "s2_security_overhead",
        on,
        "req/s",
        off,
        ">= 0.80",
        db,
        route="GET /api/v1/transactions?limit=50",
        rows_per_page=len(orjson.loads(s_body)["data"]),
        clients=S2_CLIENTS,
        rounds=rounds,
    )


def verify_seconds(samples: int) -> float:
    """Mean time of one argon2id verify with the production parameters (this process)."""
    from dashtam_core.adapters.security.passwords import Argon2idHasher

    hasher = Argon2idHasher()
    encoded = hasher.hash_sync(PASSWORD)
    hasher.verify_sync(encoded, PASSWORD)
    started = time.perf_counter()
    for _ in range(samples):
        hasher.verify_sync(encoded, PASSWORD)
    return (time.perf_counter() - started) / samples


def login_request(n: int, i: int) -> bytes:
    """Mix: 1/2 valid, 1/4 wrong password of an existing user, 1/4 unknown email."""
    k = n * 100_003 + i
    if k % 4 in (0, 2):
        email, password = f"valid{k // 4 % VALID_USERS}@bench.example.com", PASSWORD
    elif k % 4 == 1:
        email, password = f"victim{k // 4 % VICTIMS}@bench.example.com", "wrong password 1"
    else:
        email, password = f"nobody{k}-{n}@bench.example.com", PASSWORD
    body = orjson.dumps({"email": email, "password": password})
    return http_request("POST", "/api/v1/sessions", body=body)


async def bench_s3(port: int, seconds: float, samples: int, db: str) -> None:
    """Login storm with /health probes; ceiling from the measured argon2id verify time."""
    cores = len(os.sched_getaffinity(0))
    verify = verify_seconds(samples)
    idle: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(probe(port, stop, idle))
    await asyncio.sleep(min(1.0, seconds))
    stop.set()
    await task
    statuses: dict[int, int] = {}
    busy: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(probe(port, stop, busy))
    try:
        rate = await drive(port, 4 * cores, seconds, login_request, statuses)
    finally:
        stop.set()
        await task
    if not statuses or not set(statuses) <= {201, 401}:
        raise RuntimeError(f"S3 expected only 201 and 401 answers, got {statuses}")
    emit(
        "s3_login_storm",
        rate / cores,
        "logins/s/core",
        1.0 / verify,
        ">= 0.85",
        db,
        cores=cores,
        logins_per_s=round(rate, 3),
        verify_ms=round(verify * 1000, 3),
        answers={str(k): v for k, v in sorted(statuses.items())},
        clients=4 * cores,
    )
    emit(
        "s3_health_p99",
        percentile(busy, 0.99),
        "ms",
        HEALTH_BUDGET_MS,
        "< 20 ms (ratio < 1.0)",
        db,
        probes=len(busy),
        idle_p99_ms=round(percentile(idle, 0.99), 3),
    )


async def main() -> None:
    """Seed, start the service, run S2 then S3, stop the service."""
    args = parser(__doc__).parse_args()
    seconds = 0.5 if args.quick else args.seconds
    rounds = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as directory:
        async with database(args.postgres_url) as (url, kind):
            keys = Path(directory) / "keys"
            user_id, email = await seed(url, keys, 120 if args.quick else 1000)
            env = {
                "DASHTAM_DATABASE_URL": url,
                "DASHTAM_SECRET_DIR": str(keys),
                "DASHTAM_MAIL_OUTBOX": str(Path(directory) / "outbox"),
                "DASHTAM_RATE_LIMITS": "login_ip=100000000/min,login_email=100000000/min,"
                "read_user=100000000/min",
                USER_ENV: str(user_id),
            }
            db = kind
            if args.redis_url:
                env["DASHTAM_REDIS_URL"] = args.redis_url
                db = f"{kind}+redis"
            port = free_port()
            server: Server = start_server(__file__, ["--serve", str(port)], env, port)
            try:
                await bench_s2(port, email, seconds, rounds, db)
                await bench_s3(port, seconds, 3 if args.quick else 20, db)
            except BaseException:
                print(server.stderr_text()[-4000:], file=sys.stderr)
                raise
            finally:
                server.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        asyncio.run(main())
