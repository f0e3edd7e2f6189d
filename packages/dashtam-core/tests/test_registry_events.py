"""Self-enforcing event registry and the message bus contract."""

import dataclasses
from uuid import uuid4

import pytest

from dashtam_core.application.messagebus import MessageBus
from dashtam_core.domain import events as ev
from dashtam_core.errors import ConfigurationError
from dashtam_core.registries.events import (
    EVENT_REGISTRY,
    HANDLER_ROLES,
    all_event_types,
    event_by_name,
)


def test_every_event_has_metadata_and_a_handler() -> None:
    missing = [c.__name__ for c in all_event_types() if c not in EVENT_REGISTRY]
    assert missing == [], f"events without registry metadata: {missing}"
    for cls, meta in EVENT_REGISTRY.items():
        assert meta.handlers, f"{cls.__name__} has no handler"
        assert set(meta.handlers) <= HANDLER_ROLES, cls.__name__
        if meta.audit_action is not None:
            assert "audit" in meta.handlers, cls.__name__
            assert "." in meta.audit_action


def test_events_are_frozen_past_tense_and_named() -> None:
    for cls in all_event_types():
        assert dataclasses.is_dataclass(cls)
        assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        assert event_by_name(cls.__name__) is cls


async def test_command_has_exactly_one_handler() -> None:
    bus = MessageBus()

    class DoIt:
        pass

    async def handler(cmd: DoIt) -> str:
        return "done"

    bus.register_command(DoIt, handler)
    with pytest.raises(ConfigurationError):
        bus.register_command(DoIt, handler)
    assert await bus.handle(DoIt()) == "done"
    with pytest.raises(ConfigurationError):
        await bus.handle(object())


async def test_events_reach_every_subscriber_and_failures_are_isolated() -> None:
    bus = MessageBus()
    seen: list[str] = []

    async def audit(e: ev.DomainEvent) -> None:
        seen.append(f"audit:{e.name}")

    async def notify(e: ev.DomainEvent) -> None:
        raise RuntimeError("broken subscriber")

    async def plugin(e: ev.DomainEvent) -> None:
        seen.append(f"plugin:{e.name}")

    bus.subscribe_role("audit", audit)
    bus.subscribe_role("notify", notify)
    bus.subscribe(ev.ConnectionCreated, plugin)
    event = ev.ConnectionCreated(connection_id=uuid4(), provider="alpaca")
    failures = await bus.publish(event)
    assert seen == ["audit:ConnectionCreated", "plugin:ConnectionCreated"]
    assert [f.handler for f in failures] == ["notify"]
    with pytest.raises(ConfigurationError):
        bus.subscribe_role("nope", audit)
