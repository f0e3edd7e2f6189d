"""Build a plugin manager from the ``dashtam`` entry points."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

import pluggy

from dashtam_core.plugins import hookspecs
from dashtam_core.plugins.registry import ProviderRegistry
from dashtam_core.plugins.spec import ProviderSpec

ENTRY_POINT_GROUP = "dashtam"


@dataclass
class LoadedPlugins:
    """The result of plugin discovery."""

    manager: pluggy.PluginManager
    providers: ProviderRegistry
    event_handlers: list[tuple[type[Any], Callable[..., Any]]] = field(default_factory=list)
    hooks: dict[str, list[str]] = field(default_factory=dict)  # plugin name -> hook names


def _wanted(load_only: Iterable[str] | None) -> set[str] | None:
    if load_only is not None:
        return {s.strip() for s in load_only if s.strip()}
    raw = os.environ.get("DASHTAM_LOAD_PLUGINS", "").strip()
    if not raw:
        return None
    return {s.strip() for s in raw.split(",") if s.strip()}


def build_plugin_manager(
    *,
    load_only: Iterable[str] | None = None,
    extra_plugins: Iterable[tuple[str, ModuleType | object]] = (),
) -> LoadedPlugins:
    """Discover plugins from entry points and collect their registrations.

    Args:
        load_only: restrict to these entry-point names (default: ``DASHTAM_LOAD_PLUGINS``,
            a comma list; unset means all).
        extra_plugins: ``(name, module_or_object)`` pairs registered directly (tests, embedding).

    Returns:
        A fresh :class:`LoadedPlugins`; nothing is cached globally.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    registry = ProviderRegistry()
    handlers: list[tuple[type[Any], Callable[..., Any]]] = []
    wanted = _wanted(load_only)
    origins: dict[str, tuple[str, str, str]] = {}

    eps: list[EntryPoint] = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    for ep in eps:
        if wanted is not None and ep.name not in wanted:
            continue
        module = ep.load()
        dist = ep.dist
        origins[ep.name] = (
            dist.name if dist else "unknown",
            dist.version if dist else "0",
            ep.value,
        )
        if pm.get_plugin(ep.name) is None:
            pm.register(module, name=ep.name)
    for name, plugin in extra_plugins:
        origins.setdefault(name, (name, "0", name))
        pm.register(plugin, name=name)

    current: list[str] = []

    def register(spec: ProviderSpec) -> None:
        dist, version, value = (
            origins.get(current[0], ("unknown", "0", "")) if current else ("unknown", "0", "")
        )
        registry.add(spec, distribution=dist, version=version, entry_point=value)

    for plugin_name, plugin in pm.list_name_plugin():
        impl = getattr(plugin, "register_providers", None)
        if impl is None:
            continue
        current[:] = [plugin_name]
        impl(register=register)
    current.clear()

    def register_handler(event: type[Any], handler: Callable[..., Any]) -> None:
        handlers.append((event, handler))

    pm.hook.register_event_handlers(register=register_handler)

    hooks: dict[str, list[str]] = {}
    for plugin_name, plugin in pm.list_name_plugin():
        caller_names = [hc.name for hc in pm.get_hookcallers(plugin) or []]
        hooks[plugin_name] = sorted(caller_names)
    return LoadedPlugins(manager=pm, providers=registry, event_handlers=handlers, hooks=hooks)


__all__ = ["ENTRY_POINT_GROUP", "LoadedPlugins", "build_plugin_manager"]
