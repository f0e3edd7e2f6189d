"""The message bus: a command has exactly one handler; an event any number.

Handlers are ``async`` callables. Handling a command may raise events (collected from the
unit of work by the caller or returned); :meth:`MessageBus.publish` runs every subscriber of an
event, isolating failures so one broken subscriber cannot stop the others (failures are
returned, never swallowed silently).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from dashtam_core.domain.events import DomainEvent
from dashtam_core.errors import ConfigurationError
from dashtam_core.registries.events import EVENT_REGISTRY, HANDLER_ROLES

log = structlog.get_logger(__name__)

CommandHandler = Callable[[Any], Awaitable[Any]]
EventHandler = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """A subscriber that raised while handling an event."""

    event: DomainEvent
    handler: str
    error: str


@dataclass
class MessageBus:
    """Dispatch commands to their single handler and events to their subscribers.

    Event subscribers are registered by *role* (see the event registry): the registry says
    which roles react to which event, and :meth:`subscribe_role` supplies the callable for a
    role. Plugins add extra handlers with :meth:`subscribe`.
    """

    _commands: dict[type[Any], CommandHandler] = field(default_factory=dict)
    _roles: dict[str, EventHandler] = field(default_factory=dict)
    _extra: dict[type[DomainEvent], list[EventHandler]] = field(default_factory=dict)

    def register_command(self, command: type[Any], handler: CommandHandler) -> None:
        """Set the one handler for ``command``; a second registration is an error."""
        if command in self._commands:
            raise ConfigurationError(f"command {command.__name__} already has a handler")
        self._commands[command] = handler

    def subscribe_role(self, role: str, handler: EventHandler) -> None:
        """Provide the callable for a handler role named in the event registry."""
        if role not in HANDLER_ROLES:
            raise ConfigurationError(f"unknown handler role {role!r}")
        self._roles[role] = handler

    def subscribe(self, event: type[DomainEvent], handler: EventHandler) -> None:
        """Add an extra subscriber (plugins' ``register_event_handlers``)."""
        self._extra.setdefault(event, []).append(handler)

    async def handle(self, command: object) -> Any:
        """Run the command's handler and return its result."""
        handler = self._commands.get(type(command))
        if handler is None:
            raise ConfigurationError(f"no handler for command {type(command).__name__}")
        return await handler(command)

    def handlers_for(self, event: DomainEvent) -> list[tuple[str, EventHandler]]:
        """The (name, callable) subscribers of ``event``, registry roles first."""
        meta = EVENT_REGISTRY.get(type(event))
        if meta is None:
            raise ConfigurationError(f"event {event.name} is not in the event registry")
        found: list[tuple[str, EventHandler]] = [
            (role, self._roles[role]) for role in meta.handlers if role in self._roles
        ]
        for extra in self._extra.get(type(event), []):
            found.append((getattr(extra, "__qualname__", repr(extra)), extra))
        return found

    async def publish(self, *events: DomainEvent) -> list[HandlerFailure]:
        """Deliver events to every subscriber; return the failures (also logged)."""
        failures: list[HandlerFailure] = []
        for event in events:
            for name, handler in self.handlers_for(event):
                try:
                    await handler(event)
                except Exception as exc:
                    failures.append(HandlerFailure(event, name, f"{type(exc).__name__}: {exc}"))
                    log.error(
                        "event_handler_failed",
                        event_name=event.name,
                        handler=name,
                        error_type=type(exc).__name__,
                    )
        return failures


__all__ = ["CommandHandler", "EventHandler", "HandlerFailure", "MessageBus"]
