"""The scaled shape: API with Redis, syncs run by a separate ``dashtam worker`` process.

Connect Alpaca over HTTP: the API queues the initial sync on the Redis job queue, the worker
process runs it, and the API reads the stored figures (to the cent) and the finished sync.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import dashtam_api_test_support as support
from dashtam_core.testing.databases import services_required
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

pytestmark = pytest.mark.redis


def _redis_url() -> str:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if not url:
        if services_required():
            pytest.fail("DASHTAM_TEST_REDIS_URL is required (DASHTAM_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("Redis not configured: set DASHTAM_TEST_REDIS_URL")
    return url


def _dashtam() -> list[str]:
    script = Path(sys.executable).parent / "dashtam"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dashtam_api.cli.app"]


@pytest_asyncio.fixture
async def scaled(
    migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    redis_url = _redis_url()
    queue = f"dashtam:test-jobs:{secrets.token_hex(4)}"
    monkeypatch.setenv("DASHTAM_JOBS_QUEUE", queue)
    async with support.serve(migrated_url, tmp_path, redis_url=redis_url) as served:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
        env.update(
            DASHTAM_DATABASE_URL=migrated_url,
            DASHTAM_REDIS_URL=redis_url,
            DASHTAM_SANDBOX="true",
            DASHTAM_PUBLIC_BASE_URL=served.base,
            DASHTAM_SECRET_DIR=str(tmp_path / "keys"),
            DASHTAM_MAIL_OUTBOX=str(tmp_path / "outbox"),
            DASHTAM_LOAD_PLUGINS="schwab,alpaca,chase",
            DASHTAM_JOBS_QUEUE=queue,
        )
        worker = await asyncio.create_subprocess_exec(
            *_dashtam(),
            "worker",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            yield served
        finally:
            worker.terminate()
            _, err = await worker.communicate()
            assert worker.returncode is not None
            assert b"Traceback" not in err, err.decode(errors="replace")


async def test_worker_runs_the_sync_the_api_queued(scaled: Any) -> None:
    _, headers = await scaled.user()
    r = await scaled.client.post(
        "/api/v1/connections",
        json={
            "provider": "alpaca",
            "credentials": {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY},
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    assert scaled.runtime.jobs is not None
    assert not scaled.runtime.tasks  # nothing runs inside the API process
    done = await scaled.wait_sync(headers, r.json()["sync_id"])
    assert done["status"] == "succeeded", done
    assert done["counts"]["transactions_added"] == 11
    accounts = (await scaled.client.get("/api/v1/accounts", headers=headers)).json()["data"]
    assert accounts[0]["balance"] == {"current": "13272.09", "available": "2610.24"}
    txs = (await scaled.client.get("/api/v1/transactions", headers=headers)).json()["data"]
    assert sum(Decimal(t["amount"]) for t in txs) == Decimal("2610.24")
