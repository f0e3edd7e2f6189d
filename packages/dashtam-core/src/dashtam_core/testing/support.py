"""Shared machinery of the conformance kit: loading the plugin, building providers, checks."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import secrets
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import httpx
import pytest
import structlog
from pydantic_settings import BaseSettings

from dashtam_core.domain.connection import AuthType
from dashtam_core.plugins.manager import ENTRY_POINT_GROUP
from dashtam_core.plugins.spec import ProviderSpec
from dashtam_core.ports.provider import CAPABILITY_METHODS, Credentials

ISO_CURRENCY = re.compile(r"^[A-Z]{3}$")
FETCH_METHODS = ("fetch_accounts", "fetch_holdings", "fetch_transactions")


def load_module(plugin: ModuleType | str) -> ModuleType:
    """The plugin module itself (import it when given by dotted name)."""
    return importlib.import_module(plugin) if isinstance(plugin, str) else plugin


def specs_of(module: ModuleType) -> list[ProviderSpec]:
    """Every spec the module registers through its ``register_providers`` hook."""
    hook = getattr(module, "register_providers", None)
    if hook is None:
        return []
    collected: list[ProviderSpec] = []
    hook(register=collected.append)
    return collected


def declared_entry_points(module_name: str, start: Path) -> dict[str, str] | None:
    """Entry-point names → values for ``module_name``: installed ones, else a nearby pyproject.

    Installed distributions win; otherwise the closest ``pyproject.toml`` above ``start``
    that declares ``[project.entry-points.dashtam]`` is read (a package under development
    whose tests run from its source tree). ``None`` when neither exists.
    """
    installed = {
        ep.name: ep.value
        for ep in entry_points(group=ENTRY_POINT_GROUP)
        if ep.value.split(":")[0] == module_name
    }
    if installed:
        return installed
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if not candidate.is_file():
            continue
        data = tomllib.loads(candidate.read_text("utf-8"))
        table = data.get("project", {}).get("entry-points", {}).get(ENTRY_POINT_GROUP)
        if table:
            return {
                str(name): str(value)
                for name, value in table.items()
                if str(value).split(":")[0] == module_name
            }
    return None


def implemented(provider: object, name: str) -> bool:
    """True when ``provider`` has a callable ``name``."""
    return callable(getattr(provider, name, None))


def fetch_methods(provider: object) -> list[str]:
    """The fetch methods the provider implements, in a fixed order."""
    return [name for name in FETCH_METHODS if implemented(provider, name)]


def required_methods(spec: ProviderSpec) -> set[str]:
    """Methods the spec's capabilities and auth type oblige the provider to have."""
    if spec.auth_type is AuthType.FILE_IMPORT:
        return {"sniff", "parse_statement"}
    needed = {CAPABILITY_METHODS[c] for c in spec.capabilities}
    if spec.auth_type is AuthType.API_KEY:
        needed.add("validate_credentials")
    elif spec.auth_type is AuthType.OAUTH2:
        needed |= {"authorization_request", "exchange_code", "refresh"}
    return needed


def is_async(provider: object, name: str) -> bool:
    """True when ``provider.name`` is a coroutine function."""
    return inspect.iscoroutinefunction(getattr(provider, name, None))


def check_money(value: object, what: str) -> None:
    """Assert ``value`` is a finite ``Decimal`` (``None`` allowed by callers beforehand)."""
    assert isinstance(value, Decimal), f"{what} must be a Decimal, got {type(value).__name__}"
    assert value.is_finite(), f"{what} must be finite, got {value}"


def check_currency(code: object, what: str) -> None:
    """Assert ``code`` is an ISO 4217-shaped currency code."""
    assert isinstance(code, str), f"{what} currency must be a str, got {code!r}"
    assert ISO_CURRENCY.match(code), f"{what} currency must be an ISO 4217 code, got {code!r}"


def canary() -> str:
    """A random string that must never show up in logs, reprs or errors."""
    return "canary" + secrets.token_hex(12)


def default_credentials(spec: ProviderSpec, secret: str) -> Credentials:
    """Credentials carrying ``secret`` in every field the provider's auth type uses."""
    now = datetime.now(UTC)
    if spec.auth_type is AuthType.OAUTH2:
        return Credentials(
            {"access_token": f"{secret}-access", "refresh_token": f"{secret}-refresh"},
            expires_at=now + timedelta(hours=1),
            refresh_expires_at=now + timedelta(days=7),
        )
    names = [f.name for f in spec.credential_fields] or ["api_key"]
    return Credentials({name: f"{secret}-{name}" for name in names})


@contextmanager
def capture_all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Capture stdlib logging (every logger, DEBUG) and structlog events as text lines."""
    lines: list[str] = []
    with caplog.at_level(logging.DEBUG), structlog.testing.capture_logs() as events:
        yield lines
    lines.extend(record.getMessage() for record in caplog.records)
    lines.extend(
        logging.Formatter().formatException(r.exc_info) for r in caplog.records if r.exc_info
    )
    lines.extend(repr(event) for event in events)


Handler = Callable[[httpx.Request], httpx.Response]


class KitBase:
    """What every kit base class shares: the plugin, its spec, settings and credentials.

    Subclasses set ``plugin_module`` (the module registered under the ``dashtam`` entry
    point, or its dotted name) and, when that module registers several providers, ``slug``.
    """

    __dashtam_kit_base__: ClassVar[bool] = True

    plugin_module: ClassVar[ModuleType | str]
    slug: ClassVar[str | None] = None
    #: The provider account id used when the kit calls per-account methods offline.
    offline_account_id: ClassVar[str] = "kit-account-1"

    @property
    def module(self) -> ModuleType:
        """The plugin module."""
        plugin = getattr(type(self), "plugin_module", None)
        if plugin is None:
            pytest.fail(f"{type(self).__name__} must set plugin_module")
        return load_module(plugin)

    @property
    def spec(self) -> ProviderSpec:
        """The spec under test."""
        specs = specs_of(self.module)
        if self.slug is not None:
            specs = [s for s in specs if s.slug == self.slug]
        if len(specs) != 1:
            pytest.fail(
                f"{self.module.__name__} registers {len(specs)} matching provider specs; "
                "set `slug` on the test class to pick one"
            )
        return specs[0]

    def make_settings(self) -> BaseSettings:
        """Settings for offline tests (override to point at a sandbox or tweak limits)."""
        return self.spec.settings_model()

    def make_credentials(self, secret: str) -> Credentials:
        """Credentials whose every value contains ``secret`` (override for odd field names)."""
        return default_credentials(self.spec, secret)

    def build_provider(self, handler: Handler) -> tuple[object, httpx.AsyncClient]:
        """``spec.factory(settings, client)`` where the client answers through ``handler``."""
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        return self.spec.factory(self.make_settings(), client), client

    async def call_all(self, provider: object, credentials: Credentials) -> dict[str, object]:
        """Call each implemented fetch method once; method name → returned value."""
        today = date.today()
        calls: dict[str, Any] = {
            "fetch_accounts": lambda p: p.fetch_accounts(credentials),
            "fetch_holdings": lambda p: p.fetch_holdings(credentials, self.offline_account_id),
            "fetch_transactions": lambda p: p.fetch_transactions(
                credentials, self.offline_account_id, today - timedelta(days=30), today
            ),
        }
        return {name: await calls[name](provider) for name in fetch_methods(provider)}


__all__ = [
    "FETCH_METHODS",
    "ISO_CURRENCY",
    "Handler",
    "KitBase",
    "canary",
    "capture_all_logs",
    "check_currency",
    "check_money",
    "declared_entry_points",
    "default_credentials",
    "fetch_methods",
    "implemented",
    "is_async",
    "load_module",
    "required_methods",
    "specs_of",
]
