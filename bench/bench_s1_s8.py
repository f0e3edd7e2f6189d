"""Benchmarks S1 (authenticated transaction list) and S8 (streamed exports), performance.md.

S1: ``GET /api/v1/transactions?limit=50`` through the whole stack (JWT verification, revocation
check, Redis rate limit, Casbin authorization, keyset query, serialization) on PostgreSQL + Redis
with ``--rows`` transactions (1M by default) of one user. Load comes from this process (the
server is a separate uvicorn process) at a fixed rate over keep-alive connections; latency is
measured from each request's *scheduled* start (no coordinated omission). The value is the
highest rate whose p99 stays <= 50 ms (stepped search). The ceiling is the same measurement
against a bare FastAPI endpoint returning a prebuilt 50-row JSON body under the same uvicorn
settings. Target ratio >= 0.30.

S8: export 10k transactions as JSON and CSV (``GET /api/v1/exports/transactions``): download
MB/s (the median of ``--s8-runs`` downloads over one keep-alive connection, after a first, cold
one) and the server's RSS growth during that first download (peak minus before, sampled from
``/proc`` at every chunk) relative to the payload. Ceiling: ``orjson.dumps`` of the same rows
(API dicts) in-process, the median of as many runs. Targets: ratio >= 0.25, RSS growth < 2x
payload.

Each result prints one JSON line ``{"scenario","value","unit","ceiling","ratio","target",
"python","db", ...}``. ``--quick`` (CI): 20k rows, short load steps.

Usage: ``.venv/bin/python bench/bench_s1_s8.py [--quick] [--only s1|s8] [--rows N]
[--export-rows N] [--s8-runs N] [--postgres-url URL] [--redis-url URL]`` (defaults: both scenarios,
``DASHTAM_TEST_POSTGRES_URL`` / ``DASHTAM_TEST_REDIS_URL`` or the local services).
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
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

P99_BUDGET = 0.050
ROW_TEMPLATE = {
    "currency": "USD",
    "merchant": None,
    "type": "other",
    "subtype": "purchase",
    "status": "posted",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emit(**fields: Any) -> None:
    fields.setdefault("python", platform.python_version())
    print(json.dumps(fields), flush=True)


# -- servers (run in child processes) --------------------------------------------------------


def serve_baseline(port: int) -> None:
    """A bare FastAPI endpoint returning a prebuilt 50-row body (the S1 ceiling)."""
    import orjson
    import uvicorn
    from fastapi import FastAPI
    from starlette.responses import Response

    row = {
        "id": "01900000-0000-7000-8000-000000000000",
        "account_id": "01900000-0000-7000-8000-000000000001",
        "provider_transaction_id": "bench-1",
        "date": "2025-01-01",
        "posted_at": None,
        "amount": "-12.34",
        "description": "BENCH PURCHASE 1",
        "pending_transaction_id": None,
        "security": None,
        **ROW_TEMPLATE,
    }
    body = orjson.dumps({"data": [row] * 50, "next_cursor": "x" * 40})
    app = FastAPI()

    @app.get("/api/v1/transactions")
    async def transactions() -> Response:
        return Response(body, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_dashtam(port: int) -> None:
    """The real service from ``DASHTAM_*`` settings (the S1/S8 value)."""
    import uvicorn

    from dashtam_api.main import create_served_app

    uvicorn.run(
        create_served_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def _start(kind: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, __file__, f"--serve-{kind}", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "died") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- fixed-rate keep-alive load -----------------------------------------------------------------


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def fixed_rate(
    port: int, raw: bytes, rate: float, seconds: float, connections: int = 64
) -> dict[str, float]:
    """Send ``rate`` requests/s for ``seconds``; latency from each scheduled start."""
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (scheduled := await queue.get()) is not None:
                status = await _request(reader, writer, raw)
                latencies.append(time.perf_counter() - scheduled)
                if status != 200:
                    errors += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    total = int(rate * seconds)
    start = time.perf_counter() + 0.05
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(at)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("inf")
    return {"rate": rate, "p99": p99, "errors": float(errors), "n": float(len(latencies))}


async def max_rate(port: int, raw: bytes, *, quick: bool) -> tuple[float, list[dict[str, float]]]:
    """The highest tested rate whose p99 <= 50 ms without errors (doubling, then bisecting)."""
    seconds = 1.5 if quick else 5.0
    # Warm-up: open every connection (and the server's database pool) at a gentle rate.
    await fixed_rate(port, raw, 64, 2.0)
    steps: list[dict[str, float]] = []
    good, bad, rate = 0.0, 0.0, 25.0
    while True:
        result = await fixed_rate(port, raw, rate, seconds)
        steps.append(result)
        if result["p99"] <= P99_BUDGET and not result["errors"]:
            good = rate
            rate *= 2
            if rate > 40000:
                return good, steps
        else:
            bad = rate
            break
    for _ in range(3 if quick else 5):
        rate = (good + bad) / 2
        result = await fixed_rate(port, raw, rate, seconds)
        steps.append(result)
        if result["p99"] <= P99_BUDGET and not result["errors"]:
            good = rate
        else:
            bad = rate
    return good, steps


# -- data -----------------------------------------------------------------------------------------


async def _seed(url: str, rows: int, export_rows: int, secret_dir: Path) -> dict[str, Any]:
    """Two users (S1 with ``rows``, S8 with ``export_rows``); returns their emails."""
    import asyncpg

    from dashtam_core.adapters.security.passwords import TEST_PARAMS, Argon2idHasher
    from dashtam_core.adapters.sqlalchemy.engine import create_engine
    from dashtam_core.adapters.sqlalchemy.migrate import upgrade
    from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory
    from dashtam_core.domain.account import Account, AccountType
    from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
    from dashtam_core.domain.ids import uuid7
    from dashtam_core.domain.user import Role, User

    await upgrade(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    hasher = Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True)
    out: dict[str, Any] = {"password": "bench password 1234567"}
    plan = (("s1", rows), ("s8", export_rows))
    accounts: dict[str, Any] = {}
    async with SqlAlchemyUnitOfWorkFactory(engine)() as uow:
        for name, _ in plan:
            user = User(
                id=uuid7(),
                email=f"{name}@bench.example.com",
                password_hash=hasher.hash_sync(out["password"]),
                created_at=now,
                email_verified=True,
                roles=[Role.USER],
            )
            (await uow.users.add(user)).unwrap()
            conn = ProviderConnection(uuid7(), user.id, "chase", ConnectionStatus.ACTIVE, now)
            await uow.connections.add(conn)
            account = Account(
                uuid7(),
                conn.id,
                user.id,
                "chase",
                f"bench-{name}",
                "Bench",
                AccountType.CHECKING,
                "USD",
                now,
            )
            await uow.accounts.add(account)
            accounts[name] = account.id
            out[name] = user.email
        await uow.commit()
    await engine.dispose()
    raw = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        columns = [
            "id",
            "account_id",
            "provider_transaction_id",
            "dedupe_key",
            "date",
            "amount",
            "currency",
            "description",
            "type",
            "subtype",
            "status",
            "content_hash",
            "created_at",
            "updated_at",
        ]
        for name, count in plan:
            if not count:
                continue
            start = date(2020, 1, 1)
            records = [
                (
                    uuid7(),
                    accounts[name],
                    f"bench-{i}",
                    f"bench-{i}",
                    start + timedelta(days=i % 2000),
                    Decimal(f"-{(i % 9000) + 1}.{i % 100:02d}"),
                    "USD",
                    f"BENCH PURCHASE {i}",
                    "other",
                    "purchase",
                    "posted",
                    "0" * 64,
                    now,
                    now,
                )
                for i in range(count)
            ]
            await raw.copy_records_to_table("transactions", records=records, columns=columns)
        await raw.execute("ANALYZE transactions")
    finally:
        await raw.close()
    return out


# -- scenarios ------------------------------------------------------------------------------------


async def _token(port: int, email: str, password: str) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.post("/api/v1/sessions", json={"email": email, "password": password})
        r.raise_for_status()
        return str(r.json()["access_token"])


def _get(path: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()


async def s1(dashtam_port: int, baseline_port: int, token: str, args: argparse.Namespace) -> None:
    raw = _get("/api/v1/transactions?limit=50", token)
    value, steps = await max_rate(dashtam_port, raw, quick=args.quick)
    ceiling, base_steps = await max_rate(
        baseline_port, _get("/api/v1/transactions"), quick=args.quick
    )
    _emit(
        scenario="S1 authenticated list",
        value=round(value, 1),
        unit="requests/s at p99 <= 50 ms",
        ceiling=round(ceiling, 1),
        ratio=round(value / ceiling, 3) if ceiling else None,
        target=">= 0.30",
        db="postgresql+redis",
        rows=args.rows,
        steps=[{k: round(v, 4) for k, v in s.items()} for s in steps],
        ceiling_steps=[{k: round(v, 4) for k, v in s.items()} for s in base_steps],
    )


async def _download(
    client: Any, fmt: str, token: str, pid: int | None = None
) -> tuple[float, int, int]:
    """Seconds, bytes and (when ``pid`` is given) the server's peak RSS growth of one export."""
    before = peak = _rss_kib(pid) if pid else 0
    size = 0
    t0 = time.perf_counter()
    async with client.stream(
        "GET",
        f"/api/v1/exports/transactions?format={fmt}",
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        r.raise_for_status()
        async for chunk in r.aiter_raw():
            size += len(chunk)
            if pid:
                peak = max(peak, _rss_kib(pid))
    return time.perf_counter() - t0, size, (peak - before) * 1024


async def s8(
    port: int, pid: int, token: str, url: str, email: str, args: argparse.Namespace
) -> None:
    """Export throughput: the median of ``--s8-runs`` downloads after a first (cold) one.

    The first download of each format also gives the RSS growth (sampled from ``/proc`` at every
    chunk; the cold case, before the allocator has grown); the timed downloads do not sample.
    The ceiling is the median of as many in-process ``orjson.dumps`` of the same rows.
    """
    import statistics

    import httpx
    import orjson
    from sqlalchemy import select

    from dashtam_api.schemas.data import TransactionOut
    from dashtam_core.adapters.sqlalchemy.engine import create_engine
    from dashtam_core.adapters.sqlalchemy.tables import accounts, users
    from dashtam_core.adapters.sqlalchemy.tables_data import transactions
    from dashtam_core.sync.rows import transaction_from_row

    engine = create_engine(url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(transactions)
                .join(accounts, accounts.c.id == transactions.c.account_id)
                .join(users, users.c.id == accounts.c.user_id)
                .where(users.c.email == email)
            )
        ).all()
    await engine.dispose()
    dicts = [TransactionOut.of(transaction_from_row(r)).model_dump(mode="json") for r in rows]
    runs = args.s8_runs
    ceilings = []
    for _ in range(runs):
        t0 = time.perf_counter()
        ceiling_bytes = len(orjson.dumps({"data": dicts}))
        ceilings.append(ceiling_bytes / (time.perf_counter() - t0) / 1e6)
    ceiling = statistics.median(ceilings)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        for fmt in ("json", "csv"):
            cold, size, growth = await _download(client, fmt, token, pid)
            timed = [(await _download(client, fmt, token))[0] for _ in range(runs)]
            value = size / statistics.median(timed) / 1e6
            _emit(
                scenario=f"S8 export {fmt}",
                value=round(value, 2),
                unit="MB/s",
                ceiling=round(ceiling, 2),
                ratio=round(value / ceiling, 3),
                target=">= 0.25; RSS growth < 2x payload",
                db="postgresql+redis",
                transactions=len(dicts),
                payload_bytes=size,
                runs=runs,
                runs_mb_s=[round(size / t / 1e6, 2) for t in timed],
                ceiling_runs_mb_s=[round(c, 2) for c in ceilings],
                cold_mb_s=round(size / cold / 1e6, 2),
                rss_growth_bytes=growth,
                rss_growth_over_payload=round(growth / size, 3),
            )


async def main(args: argparse.Namespace) -> None:
    from dashtam_core.adapters.security.keys import generate_all_keys
    from dashtam_core.testing.databases import make_postgres_database

    async with make_postgres_database(args.postgres_url) as url:
        with tempfile.TemporaryDirectory() as tmp:
            secret_dir = Path(tmp) / "keys"
            generate_all_keys(secret_dir)
            seeded = await _seed(url, args.rows, args.export_rows, secret_dir)
            env = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
            env.update(
                DASHTAM_DATABASE_URL=url,
                DASHTAM_REDIS_URL=args.redis_url,
                DASHTAM_SECRET_DIR=str(secret_dir),
                DASHTAM_MAIL_OUTBOX=str(Path(tmp) / "outbox"),
                DASHTAM_LOAD_PLUGINS="chase",
                # Checked on every request (one Redis round trip) but never refusing the load.
                DASHTAM_RATE_LIMITS="read_user=100000000/min,login_ip=1000/min",
            )
            dport, bport = _free_port(), _free_port()
            servers = [_start("dashtam", dport, env)]
            try:
                if "s1" in args.only:
                    servers.append(_start("baseline", bport, env))
                    token = await _token(dport, seeded["s1"], seeded["password"])
                    await s1(dport, bport, token, args)
                if "s8" in args.only:
                    token8 = await _token(dport, seeded["s8"], seeded["password"])
                    await s8(dport, servers[0].pid, token8, url, seeded["s8"], args)
            finally:
                for proc in servers:
                    proc.terminate()
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run")
    parser.add_argument("--rows", type=int, default=None, help="S1 transactions (default 1M)")
    parser.add_argument("--export-rows", type=int, default=10_000)
    parser.add_argument(
        "--s8-runs", type=int, default=None, help="timed downloads per format (default 5, 3 quick)"
    )
    parser.add_argument(
        "--only",
        choices=("s1", "s8"),
        action="append",
        default=None,
        help="run only this scenario (repeatable; default both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "DASHTAM_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("DASHTAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--serve-baseline", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--serve-dashtam", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.only = tuple(args.only or ("s1", "s8"))
    if args.s8_runs is None:
        args.s8_runs = 3 if args.quick else 5
    if args.rows is None:
        args.rows = 20_000 if args.quick else 1_000_000
    if "s1" not in args.only:
        args.rows = 0  # nothing to seed for S1
    return args


if __name__ == "__main__":
    options = _parse()
    if options.serve_baseline is not None:
        serve_baseline(options.serve_baseline)
    elif options.serve_dashtam is not None:
        serve_dashtam(options.serve_dashtam)
    else:
        asyncio.run(main(options))
