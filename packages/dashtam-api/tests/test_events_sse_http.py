"""``GET /api/v1/events`` over real HTTP: live events, Last-Event-ID resume, heartbeats, isolation,
and (with Redis) fan-out across two API replicas and from a separate worker process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
import pytest_asyncio

import dashtam_api_test_support as support
from dashtam_core.testing.databases import services_required
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
Messages = list[dict[str, Any]]


@pytest_asyncio.fixture
async def served(migrated_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    async with support.serve(migrated_url, tmp_path, app_state={"sse_heartbeat_seconds": 0.2}) as s:
        yield s


async def read_events(
    served: Any,
    headers: dict[str, str],
    until: Callable[[Messages, list[str]], bool],
    *,
    last_event_id: str | None = None,
    seconds: float = 30.0,
) -> tuple[Messages, list[str]]:
    """Read SSE messages (and comments) until ``until`` says stop."""
    messages: Messages = []
    comments: list[str] = []
    extra = {"Last-Event-ID": last_event_id} if last_event_id else {}
    async with served.client.stream("GET", "/api/v1/events", headers={**headers, **extra}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        current: dict[str, Any] = {}
        async with asyncio.timeout(seconds):
            async for line in r.aiter_lines():
                if line == "":
                    if "data" in current:
                        current["data"] = orjson.loads(current["data"])
                        messages.append(current)
                    current = {}
                    if until(messages, comments):
                        break
                elif line.startswith(":"):
                    comments.append(line)
                else:
                    field, _, value = line.partition(": ")
                    current[field] = value
    return messages, comments


def _kinds(messages: Messages) -> list[str]:
    return [m["event"] for m in messages]


async def _subscribed(served: Any, user_id: UUID) -> None:
    for _ in range(500):
        runtime = getattr(served.app.state, "runtime", None)
        if runtime is not None and runtime.hub.subscriber_count(user_id):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the stream did not subscribe")


async def test_live_events_resume_heartbeat_and_isolation(served: Any) -> None:
    alice, headers = await served.user()
    _, bob = await served.user()

    def done(messages: Messages, _: list[str]) -> bool:
        kinds = _kinds(messages)
        return "sync.finished" in kinds and "import.finished" in kinds

    reader = asyncio.create_task(read_events(served, headers, done))
    await _subscribed(served, alice.id)
    r = await served.client.post(
        "/api/v1/connections", json={"provider": "alpaca", "credentials": KEYS}, headers=headers
    )
    assert r.status_code == 201, r.text
    await served.wait_sync(headers, r.json()["sync_id"])
    imported = await served.client.post(
        "/api/v1/imports",
        files={"file": ("card.qfx", (support.FIXTURES / "chase" / "credit_card.qfx").read_bytes())},
        headers=headers,
    )
    assert imported.status_code == 201
    messages, _ = await reader

    kinds = _kinds(messages)
    assert kinds.index("sync.started") < kinds.index("sync.finished")
    assert "sync.progress" in kinds
    finished = next(m for m in messages if m["event"] == "sync.finished")["data"]
    assert finished["sync_id"] == r.json()["sync_id"]
    assert finished["status"] == "succeeded"
    assert finished["transactions_added"] == 11
    assert "user_id" not in finished
    done_import = next(m for m in messages if m["event"] == "import.finished")["data"]
    assert done_import["import_id"] == imported.json()["id"]
    assert done_import["transactions_added"] == 15
    ids = [m["id"] for m in messages]
    assert len(set(ids)) == len(ids)

    # Resume after the first message: every later id, in id order (durable events from the
    # outbox, sync progress from this process's buffer), the same messages as live.
    expected = [str(m.id) for m in served.runtime.hub.backlog(alice.id, UUID(ids[0]))]
    assert set(ids) - {ids[0]} - set(expected) == {i for i in ids if UUID(i) < UUID(ids[0])}
    rest, _ = await read_events(
        served, headers, lambda m, _: len(m) >= len(expected), last_event_id=ids[0]
    )
    assert [m["id"] for m in rest] == expected
    live = {m["id"]: m for m in messages}
    assert [m for m in rest if m["id"] in live] == [live[i] for i in expected if i in live]

    # Bob sees none of Alice's events; an idle stream gets heartbeats.
    bob_messages, _comments = await read_events(
        served,
        bob,
        lambda _m, c: c.count(": ping") >= 2,
        last_event_id="00000000-0000-7000-8000-000000000000",
    )
    assert bob_messages == []
    assert served.runtime.hub.backlog(alice.id, UUID(ids[0]))


def _redis_url() -> str:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if not url:
        if services_required():
            pytest.fail("DASHTAM_TEST_REDIS_URL is required (DASHTAM_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("Redis not configured: set DASHTAM_TEST_REDIS_URL")
    return url


WORKER = textwrap.dedent(
    """
    import asyncio, sys, uuid
    from redis.asyncio import Redis
    from dashtam_api.events_hub import publish_to_redis
    from dashtam_core.domain.events import SyncFinished

    async def main() -> None:
        redis = Redis.from_url(sys.argv[1])
        event = SyncFinished(
            user_id=uuid.UUID(sys.argv[2]), sync_id=uuid.uuid4(), connection_id=uuid.uuid4(),
            status="succeeded", transactions_added=7,
        )
        assert await publish_to_redis(redis, event)
        await redis.aclose()

    asyncio.run(main())
    """
)


@pytest.mark.redis
async def test_redis_fan_out_across_replicas_and_from_a_worker(
    migrated_url: str, tmp_path: Path
) -> None:
    redis_url = _redis_url()
    state = {"sse_heartbeat_seconds": 0.5}
    async with (
        support.serve(migrated_url, tmp_path, redis_url=redis_url, app_state=state) as a,
        support.serve(migrated_url, tmp_path, redis_url=redis_url, app_state=state) as b,
    ):
        # The replicas share the database and the key directory: one login works on both.
        user, headers = await a.user()

        def done(messages: Messages, _: list[str]) -> bool:
            kinds = _kinds(messages)
            return "import.finished" in kinds and "sync.finished" in kinds

        reader = asyncio.create_task(read_events(b, headers, done))
        await _subscribed(b, user.id)
        imported = await a.client.post(
            "/api/v1/imports",
            files={"file": ("c.qfx", (support.FIXTURES / "chase" / "checking.qfx").read_bytes())},
            headers=headers,
        )
        assert imported.status_code == 201, imported.text
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, redis_url, str(user.id)
        )
        assert await worker.wait() == 0
        messages, _ = await reader
        by_kind = {m["event"]: m["data"] for m in messages}
        assert by_kind["import.finished"]["import_id"] == imported.json()["id"]
        assert by_kind["sync.finished"]["transactions_added"] == 7
