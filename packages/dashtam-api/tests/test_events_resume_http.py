"""``GET /api/v1/events`` resume from the outbox: ``Last-Event-ID`` survives a restart.

The scenario runs real servers (uvicorn) one after the other on one database: a client reads
events from server A, A stops; server B produces more events (a statement import and a
disconnect) while a second client watches live; B stops; a statement is imported with no server
running at all (its events stay undispatched in the outbox); server C starts and the first
client reconnects with its ``Last-Event-ID``. It must receive exactly the durable events it
missed, in id order, each once, then live ones; a replay bounded to a few events continues over
reconnects. With Redis the servers run as replicas (two at once), and the client reconnects to
another replica as well as to a fresh one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from sqlalchemy import select

import dashtam_api_test_support as support
from dashtam_api.events_hub import DURABLE_EVENTS, EPHEMERAL_EVENTS, EVENT_NAMES
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables_data import outbox
from dashtam_core.application.container import Container
from dashtam_core.application.imports import import_statement
from dashtam_core.settings import CoreSettings
from dashtam_core.testing.databases import services_required
from dashtam_provider_alpaca.sandbox import SANDBOX_API_KEY_ID, SANDBOX_SECRET_KEY

KEYS = {"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY}
STATE = {"sse_heartbeat_seconds": 0.2}
EPHEMERAL = {EVENT_NAMES.get(name, name) for name in EPHEMERAL_EVENTS}
Messages = list[dict[str, Any]]


async def read_events(
    served: Any,
    headers: dict[str, str],
    until: Callable[[Messages, list[str]], bool],
    *,
    last_event_id: str | None = None,
    seconds: float = 30.0,
) -> tuple[Messages, list[str], bool]:
    """Read SSE messages (and comments) until ``until`` says stop or the server ends the stream.

    Returns:
        The messages, the comments, and whether the server ended the stream.
    """
    messages: Messages = []
    comments: list[str] = []
    extra = {"Last-Event-ID": last_event_id} if last_event_id else {}
    ended = True
    async with served.client.stream("GET", "/api/v1/events", headers={**headers, **extra}) as r:
        assert r.status_code == 200, await r.aread()
        current: dict[str, Any] = {}
        async with asyncio.timeout(seconds):
            async for line in r.aiter_lines():
                if line == "":
                    if "data" in current:
                        current["data"] = orjson.loads(current["data"])
                        messages.append(current)
                    current = {}
                    if until(messages, comments):
                        ended = False
                        break
                elif line.startswith(":"):
                    comments.append(line)
                else:
                    key, _, value = line.partition(": ")
                    current[key] = value
    return messages, comments, ended


def idle(_: Messages, comments: list[str]) -> bool:
    """Stop at the second heartbeat: the replay (sent before any heartbeat) is complete."""
    return comments.count(": ping") >= 2


async def subscribed(served: Any, user_id: UUID, count: int = 1) -> None:
    for _ in range(1000):
        runtime = getattr(served.app.state, "runtime", None)
        if runtime is not None and runtime.hub.subscriber_count(user_id) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the stream did not subscribe")


async def import_file(served: Any, headers: dict[str, str], name: str) -> dict[str, Any]:
    r = await served.client.post(
        "/api/v1/imports",
        files={"file": (name, (support.FIXTURES / "chase" / name).read_bytes())},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def stored_ids(database_url: str, user_id: UUID, after: str) -> list[str]:
    """The ids of the user's stored user-visible events after ``after`` (plain SQL)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(outbox.c.id, outbox.c.event)
                .where(outbox.c.user_id == user_id)
                .order_by(outbox.c.id)
            )
            return [str(r.id) for r in rows if r.event in DURABLE_EVENTS and r.id > UUID(after)]
    finally:
        await engine.dispose()


async def offline_import(database_url: str, tmp_path: Path, user_id: UUID, name: str) -> str:
    """Import a statement through the application layer while no server runs (not dispatched)."""
    settings = CoreSettings(
        _env_file=None,
        database_url=database_url,
        secret_dir=tmp_path / "keys",
        load_plugins="chase",
    )
    container = await Container.create(settings, migrate=False)
    try:
        data = (support.FIXTURES / "chase" / name).read_bytes()
        done = (await import_statement(container, user_id, name, data)).unwrap()
    finally:
        await container.aclose()
    return str(done.id)


def _redis_url() -> str:
    url = os.environ.get("DASHTAM_TEST_REDIS_URL", "").strip()
    if not url:
        if services_required():
            pytest.fail("DASHTAM_TEST_REDIS_URL is required (DASHTAM_TEST_REQUIRE_SERVICES=1)")
        pytest.skip("Redis not configured: set DASHTAM_TEST_REDIS_URL")
    return url


@asynccontextmanager
async def serving(url: str, tmp_path: Path, redis_url: str | None) -> AsyncIterator[Any]:
    async with support.serve(url, tmp_path, redis_url=redis_url, app_state=STATE) as served:
        yield served


async def first_session(served: Any, *, sync: bool) -> tuple[Any, dict[str, str], str]:
    """Server A: a user reads events while they happen; return the last id the client got."""
    user, headers = await served.user()
    wanted = {"connection.created", "holdings.updated", "transactions.changed", "sync.finished"}
    if not sync:
        wanted = {"connection.created", "import.finished", "transactions.changed"}
    reader = asyncio.create_task(
        read_events(served, headers, lambda m, _: wanted <= {x["event"] for x in m})
    )
    await subscribed(served, user.id)
    if sync:
        r = await served.client.post(
            "/api/v1/connections",
            json={"provider": "alpaca", "credentials": KEYS},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        await served.wait_sync(headers, r.json()["sync_id"])
    else:
        await import_file(served, headers, "checking.csv")
    messages, _, ended = await reader
    assert not ended
    return user, headers, str(messages[-1]["id"])


async def produce_on_b(served: Any, user: Any, headers: dict[str, str]) -> Messages:
    """Server B: an import, an OAuth connection started and disconnected; a client watches live.

    Returns:
        The messages the watcher got (all durable), in id order.
    """
    reader = asyncio.create_task(
        read_events(
            served,
            headers,
            lambda m, _: any(x["event"] == "connection.disconnected" for x in m),
        )
    )
    await subscribed(served, user.id)
    await import_file(served, headers, "credit_card.qfx")
    started = await served.client.post(
        "/api/v1/connections", json={"provider": "schwab"}, headers=headers
    )
    assert started.status_code == 201, started.text
    gone = await served.client.delete(
        f"/api/v1/connections/{started.json()['connection']['id']}", headers=headers
    )
    assert gone.status_code == 200, gone.text
    messages, _, _ = await reader
    kinds = [m["event"] for m in messages]
    assert not set(kinds) & EPHEMERAL
    assert {"import.finished", "connection.created", "connection.status_changed"} <= set(kinds)
    return sorted(messages, key=lambda m: UUID(m["id"]))


async def resume_on_c(
    served: Any,
    user: Any,
    headers: dict[str, str],
    last_id: str,
    expected_ids: list[str],
    from_b: Messages,
) -> None:
    """Server C: resume with ``last_id``; the replay is exactly ``expected_ids``, then live."""
    live_import: dict[str, str] = {}

    def done(messages: Messages, _: list[str]) -> bool:
        return any(
            m["event"] == "import.finished" and m["data"]["import_id"] == live_import.get("id", "-")
            for m in messages
        )

    reader = asyncio.create_task(read_events(served, headers, done, last_event_id=last_id))
    await subscribed(served, user.id)
    # Publish the events nobody dispatched yet (they are in the replay too) and make new ones.
    await served.runtime.dispatch()
    live_import["id"] = (await import_file(served, headers, "credit_card.csv"))["id"]
    messages, _, _ = await reader

    ids = [m["id"] for m in messages]
    assert len(set(ids)) == len(ids), "a message came twice"
    assert ids[: len(expected_ids)] == expected_ids
    assert all(UUID(i) > UUID(last_id) for i in ids)
    assert sorted(ids, key=UUID) == ids  # the live events are newer than every replayed one
    replayed = {m["id"]: m for m in messages[: len(expected_ids)]}
    assert [replayed[m["id"]] for m in from_b] == from_b  # same id, name and data as live
    assert not {m["event"] for m in messages[: len(expected_ids)]} & EPHEMERAL


async def paged_resume(
    served: Any, headers: dict[str, str], last_id: str, expected_ids: list[str]
) -> None:
    """A replay bounded to 2 events ends each stream; reconnecting continues without a gap."""
    served.runtime.hub.replay_limit = 2
    got: list[str] = []
    cursor = last_id
    for _ in range(len(expected_ids) + 2):
        messages, _, ended = await read_events(
            served, headers, lambda m, c: len(m) > 2 or idle(m, c), last_event_id=cursor
        )
        assert len(messages) <= 2
        got.extend(m["id"] for m in messages)
        if not ended:  # a short page: the replay was complete and the stream went live
            break
        assert len(messages) == 2
        cursor = messages[-1]["id"]
    assert got == expected_ids
    served.runtime.hub.replay_limit = 500


async def test_resume_after_restart_replays_exactly_the_missed_events(
    migrated_url: str, tmp_path: Path
) -> None:
    async with serving(migrated_url, tmp_path, None) as a:
        user, headers, last_id = await first_session(a, sync=True)
    async with serving(migrated_url, tmp_path, None) as b:
        from_b = await produce_on_b(b, user, headers)
    offline = await offline_import(migrated_url, tmp_path, user.id, "checking.qfx")

    expected = await stored_ids(migrated_url, user.id, last_id)
    from_b_ids = [m["id"] for m in from_b]
    assert from_b_ids == [i for i in expected if i in set(from_b_ids)]
    assert set(from_b_ids) < set(expected)  # plus the offline import's events

    async with serving(migrated_url, tmp_path, None) as c:
        # The offline import is replayed too (it was never dispatched).
        replay, _, _ = await read_events(c, headers, idle, last_event_id=last_id)
        assert [m["id"] for m in replay] == expected
        assert any(
            m["event"] == "import.finished" and m["data"]["import_id"] == offline for m in replay
        )
        await resume_on_c(c, user, headers, last_id, expected, from_b)
        everything = await stored_ids(migrated_url, user.id, last_id)
        await paged_resume(c, headers, last_id, everything)
        # Resuming from the newest id: nothing to replay.
        nothing, _, _ = await read_events(c, headers, idle, last_event_id=everything[-1])
        assert nothing == []


@pytest.mark.redis
async def test_resume_on_another_replica_and_after_a_restart_with_redis(
    migrated_url: str, tmp_path: Path
) -> None:
    redis_url = _redis_url()
    async with (
        serving(migrated_url, tmp_path, redis_url) as a,
        serving(migrated_url, tmp_path, redis_url) as b,
    ):
        # The replicas share the database and the key directory: one login works on both.
        user, headers, last_id = await first_session(a, sync=False)
        # The client is away while the other replica makes events.
        from_b = await produce_on_b(b, user, headers)
        expected = await stored_ids(migrated_url, user.id, last_id)
        assert [m["id"] for m in from_b] == [i for i in expected if i in {m["id"] for m in from_b}]
        # Either replica replays them from the database.
        for replica in (a, b):
            replay, _, _ = await read_events(replica, headers, idle, last_event_id=last_id)
            assert [m["id"] for m in replay] == expected
            assert [m for m in replay if m in from_b] == from_b
    # Both replicas are gone; a fresh one replays the same.
    async with serving(migrated_url, tmp_path, redis_url) as c:
        await resume_on_c(c, user, headers, last_id, expected, from_b)


async def test_invalid_last_event_id_is_ignored_and_too_long_is_422(
    migrated_url: str, tmp_path: Path
) -> None:
    async with serving(migrated_url, tmp_path, None) as served:
        user, headers, _ = await first_session(served, sync=False)
        for bad in ("not-a-uuid", "01a2178d-17ff-7000-zzzz-000000000000"):
            messages, comments, _ = await read_events(served, headers, idle, last_event_id=bad)
            assert messages == []
            assert comments[0] == ": connected"
        # The query parameter works like the header.
        first = (await stored_ids(served.database_url, user.id, str(UUID(int=0))))[0]
        r_messages: Messages = []
        async with served.client.stream(
            "GET", f"/api/v1/events?last_event_id={first}", headers=headers
        ) as r:
            assert r.status_code == 200
            async with asyncio.timeout(30):
                async for line in r.aiter_lines():
                    if line.startswith("id: "):
                        r_messages.append({"id": line[4:]})
                    if line == ": ping":
                        break
        later = await stored_ids(served.database_url, user.id, first)
        assert [m["id"] for m in r_messages] == later
        too_long = await served.client.get(
            "/api/v1/events", headers={**headers, "Last-Event-ID": "x" * 65}
        )
        assert too_long.status_code == 422
        assert too_long.headers["content-type"].startswith("application/problem+json")
        assert too_long.json()["code"] == "validation_error"
