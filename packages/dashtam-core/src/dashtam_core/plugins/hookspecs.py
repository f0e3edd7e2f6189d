"""Dashtam hook specifications (the plugin API).

A plugin is a module registered under the ``dashtam`` entry-point group. It implements any of
these hooks with ``@dashtam_core.plugins.hookimpl``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

from dashtam_core.plugins.spec import ProviderSpec

PROJECT = "dashtam"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

RegisterProvider = Callable[[ProviderSpec], None]
RegisterEventHandler = Callable[[type[Any], Callable[..., Any]], None]


@hookspec
def register_providers(register: RegisterProvider) -> None:
    """Register provider specs by calling ``register(spec)`` once per provider.

    Args:
        register: adds a :class:`ProviderSpec` to the registry; a duplicate slug is an error
            naming both distributions.
    """


@hookspec
def register_event_handlers(register: RegisterEventHandler) -> None:
    """Subscribe extra handlers to domain events: ``register(EventClass, handler)``.

    Handlers are ``async def handler(event) -> None`` and run after the event's unit of work
    commits (through the outbox), so they must be idempotent.
    """


@hookspec
def startup(context: dict[str, Any]) -> None:
    """Called once when the service or CLI starts; ``context`` holds ``settings``."""


@hookspec
def shutdown(context: dict[str, Any]) -> None:
    """Called once when the service or CLI stops."""


__all__ = [
    "PROJECT",
    "RegisterEventHandler",
    "RegisterProvider",
    "hookimpl",
    "hookspec",
    "register_event_handlers",
    "register_providers",
    "shutdown",
    "startup",
]
