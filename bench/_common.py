"""Shared helpers of the security benchmarks (S2, S3, S4, S9, S10): output, services, timing, HTTP.

Every figure is printed as one JSON line ``{"scenario", "value", "unit", "ceiling", "ratio",
"target", "python", "db", ...}`` by :func:`emit`. A benchmark whose required service is not
configured calls :func:`skip`: it prints ``skipped: <reason>`` on stderr and exits 0 without
any JSON line (with ``DASHTAM_TEST_REQUIRE_SERVICES=1`` it exits 2 instead). Services come from
``--postgres-url`` / ``--redis-url`` or ``DASHTAM_TEST_POSTGRES_URL`` / ``DASHTAM_TEST_REDIS_URL``.

The bench scripts import this module as ``_common`` (``python bench/<script>.py`` puts
``bench/`` first on ``sys.path``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from pathlib import Path
from typing import IO, Any, NoReturn

PYTHON = platform.python_version()
POSTGRES_ENV = "DASHTAM_TEST_POSTGRES_URL"
REDIS_ENV = "DASHTAM_TEST_REDIS_URL"
REQUIRE_ENV = "DASHTAM_TEST_REQUIRE_SERVICES"
#: Keys every result line carries (tests/test_bench_quick.py checks them).
REQUIRED_KEYS = ("scenario", "value", "unit", "ceiling", "ratio", "target", "python", "db")


def emit(
    scenario: str,
    value: float,
    unit: str,
    ceiling: float,
    target: str,
    db: str,
    **extra: Any,
) -> dict[str, Any]:
    """Print one result line and return it.

    Args:
        scenario: the scenario id (``s9_redis_checks``).
        value: the measured figure.
        unit: its unit.
        ceiling: the same-run ceiling (or reference) in the same unit; must be > 0.
        target: the target, as text (``">= 0.65"``).
        db: the store the figure was measured on (``postgresql``, ``sqlite``, ``redis``, ``-``).
        **extra: further JSON-serializable facts (counts, latencies, settings).

    Returns:
        The printed row.
    """
    if not ceiling > 0 or not math.isfinite(value):
        raise ValueError(f"{scenario}: bad measurement value={value!r} ceiling={ceiling!r}")
    row: dict[str, Any] = {
        "scenario": scenario,
        "value": round(value, 4),
        "unit": unit,
        "ceiling": round(ceiling, 4),
        "ratio": round(value / ceiling, 4),
        "target": target,
        "python": PYTHON,
        "db": db,
    }
    row.update(extra)
    print(json.dumps(row), flush=True)
    return row


def skip(reason: str) -> NoReturn:
    """Exit cleanly because a required service is not configured.

    Prints ``skipped: <reason>`` on stderr and exits 0, or exits 2 when
    ``DASHTAM_TEST_REQUIRE_SERVICES=1`` (missing services must fail there).
    """
    print(f"skipped: {reason}", file=sys.stderr, flush=True)
    required = os.environ.get(REQUIRE_ENV, "").strip() in ("1", "true", "yes")
    raise SystemExit(2 if required else 0)


def parser(doc: str | None, *, seconds: float = 5.0) -> argparse.ArgumentParser:
    """An argument parser with ``--quick``, ``--seconds``, ``--postgres-url``, ``--redis-url``."""
    result = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    result.add_argument("--quick", action="store_true", help="tiny workloads (CI proof of life)")
    result.add_argument("--seconds", type=float, default=seconds, help="seconds per timed phase")
    result.add_argument("--postgres-url", default=os.environ.get(POSTGRES_ENV) or None)
    result.add_argument("--redis-url", default=os.environ.get(REDIS_ENV) or None)
    return result


@asynccontextmanager
async def database(postgres_url: str | None) -> AsyncIterator[tuple[str, str]]:
    """A throwaway database: PostgreSQL when ``postgres_url`` is given, else a SQLite file.

    Yields:
        ``(url, kind)`` with kind ``"postgresql"`` or ``"sqlite"``; the database is dropped
        (PostgreSQL) or deleted (SQLite) on exit.
    """
    async with AsyncExitStack() as stack:
        if postgres_url:
            from dashtam_core.testing.databases import make_postgres_database

            url = await stack.enter_async_context(make_postgres_database(postgres_url))
            yield url, "postgresql"
        else:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            yield f"sqlite+aiosqlite:///{directory / 'bench.db'}", "sqlite"


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN of a SQLAlchemy ``postgresql+asyncpg://`` URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of ``values`` (inf when empty)."""
    if not values:
        return math.inf
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


async def closed_loop(
    clients: int, seconds: float, work: Callable[[int, int], Awaitable[object]]
) -> tuple[float, int]:
    """Run ``work(client, i)`` back to back from ``clients`` tasks for ``seconds``.

    Returns:
        ``(operations per second, operations)``.
    """
    deadline = time.perf_counter() + seconds

    async def client(n: int) -> int:
        i = 0
        while time.perf_counter() < deadline:
            await work(n, i)
            i += 1
        return i

    started = time.perf_counter()
    done = sum(await asyncio.gather(*(client(n) for n in range(clients))))
    return done / (time.perf_counter() - started), done


async def fixed_count(
    clients: int, per_client: int, work: Callable[[int, int], Awaitable[object]]
) -> float:
    """Run ``per_client`` calls of ``work(client, i)`` in each of ``clients`` tasks; ops/s."""

    async def client(n: int) -> None:
        for i in range(per_client):
            await work(n, i)

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    return clients * per_client / (time.perf_counter() - started)


# -- HTTP over loopback ---------------------------------------------------------------------------


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_request(
    method: str, path: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """The raw bytes of one HTTP/1.1 keep-alive request (JSON body when given)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection (Content-Length bodies only, as uvicorn sends)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        """Connect to ``127.0.0.1:port``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def exchange(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request; return ``(status, body)``."""
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        self._writer.close()
        with suppress(OSError):
            await self._writer.wait_closed()


class Server:
    """A benchmark server child process (its stdout and stderr go to a temporary file)."""

    def __init__(self, proc: subprocess.Popen[bytes], log: IO[bytes], port: int) -> None:
        self.proc = proc
        self.log = log
        self.port = port

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def stderr_text(self) -> str:
        """What the child wrote on stdout and stderr so far."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        """Terminate the child (kill after 10 s) and close its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def start_server(script: str, args: Sequence[str], env: dict[str, str], port: int) -> Server:
    """Start ``python <script> <args>`` and wait until it listens on ``127.0.0.1:port``.

    Raises:
        RuntimeError: the child died (its stderr is in the message) or did not listen in 60 s.
    """
    log = tempfile.TemporaryFile()  # noqa: SIM115 - owned by the returned Server
    proc = subprocess.Popen(
        [sys.executable, script, *args],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(proc, log, port)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            if proc.poll() is not None:
                text = server.stderr_text()
                server.stop()
                raise RuntimeError(f"server exited with {proc.returncode}: {text}") from None
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("server did not start listening within 60 s")


__all__ = [
    "POSTGRES_ENV",
    "PYTHON",
    "REDIS_ENV",
    "REQUIRED_KEYS",
    "HttpConnection",
    "Server",
    "asyncpg_dsn",
    "closed_loop",
    "database",
    "emit",
    "fixed_count",
    "free_port",
    "http_request",
    "parser",
    "percentile",
    "skip",
    "start_server",
]
