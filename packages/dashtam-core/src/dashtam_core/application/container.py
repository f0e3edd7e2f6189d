"""The application container: everything a command needs, built once from :class:`CoreSettings`.

Both the API and the CLI build one :class:`Container` per process (``await
Container.create(settings)``) and close it at exit (``await container.aclose()``). It owns:

* the database engine and the unit-of-work factory;
* the loaded plugins and one provider instance per slug, built lazily with
  ``spec.factory(settings_model(**overrides), http_client)``;
* the credential vault (keys from ``DASHTAM_VAULT_KEYS`` or ``DASHTAM_SECRET_DIR``; on the
  embedded SQLite default missing keys are generated there once, mode 0600);
* the message bus (plugins' event handlers subscribed) and the outbox dispatcher;
* the audit HMAC key (loaded on first use, like the security kit's: ``DASHTAM_AUDIT_HMAC_KEY``
  or ``audit_hmac.key`` under the secret directory, generated there on the embedded SQLite
  default) and :meth:`Container.audit` / :meth:`Container.audit_failure`, with which the
  services record the changes they make in the same transaction (security.md, audit trail).

Sandbox mode (``DASHTAM_SANDBOX=true``) points providers that ship a simulator at it. With
``sandbox_transport="http"`` (the API server) they talk HTTP to
``{public_base_url}/sandbox/{slug}``, where the service mounts the simulators; with ``"asgi"``
(the CLI: no server running) each provider gets an ``httpx.ASGITransport`` over its own
in-process simulator app, so ``dashtam connect alpaca`` and ``dashtam sync`` work offline.
A provider settings model with a ``for_sandbox(base_url)`` method decides the URLs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import httpx
from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dashtam_core.adapters.http.budget import RequestBudget
from dashtam_core.adapters.http.client import build_provider_client
from dashtam_core.adapters.security.vault import VAULT_KEYS_FILE, CredentialVault
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory
from dashtam_core.application.audit import Origin, audit, audit_failure
from dashtam_core.application.messagebus import HandlerFailure, MessageBus
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.errors import ConfigurationError, DashtamError, NotFound
from dashtam_core.plugins.manager import LoadedPlugins, build_plugin_manager
from dashtam_core.plugins.registry import RegisteredProvider
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.outbox import mark_dispatched, pending_events

SandboxTransport = Literal["http", "asgi"]
#: The base URL in-process (ASGI) sandboxes are addressed with; never resolved on a network.
ASGI_SANDBOX_BASE = "http://sandbox.invalid"


def sandbox_prefix(slug: str) -> str:
    """The path the API mounts ``slug``'s simulator at (``/sandbox/schwab``)."""
    return f"/sandbox/{slug}"


def _sandbox_settings(model: BaseSettings, base_url: str) -> BaseSettings:
    convert = getattr(model, "for_sandbox", None)
    if callable(convert):
        result = convert(base_url)
        if isinstance(result, BaseSettings):
            return result
    if "base_url" in type(model).model_fields:
        return model.model_copy(update={"base_url": base_url})
    return model


def _generate_vault_once(secret_dir: Path) -> CredentialVault:
    """Create the vault key file unless another process won the race; load the winner's."""
    path = secret_dir / VAULT_KEYS_FILE
    secret_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = secret_dir / f".{VAULT_KEYS_FILE}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(CredentialVault.generate().to_json())
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # atomic "create if absent": the first process wins
    except FileExistsError:
        pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return CredentialVault.load(secret_dir)


def load_vault(settings: CoreSettings) -> CredentialVault:
    """The credential vault for ``settings`` (generated once on the embedded default).

    Raises:
        ConfigurationError: no keys configured outside the embedded SQLite default.
    """
    try:
        return CredentialVault.load(settings.secret_dir)
    except ConfigurationError:
        if not settings.is_sqlite or (settings.secret_dir / VAULT_KEYS_FILE).exists():
            raise
    return _generate_vault_once(settings.secret_dir)


@dataclass
class Container:
    """Process-wide dependencies of the application layer.

    Attributes:
        settings: the core settings.
        engine: the database engine (owned: disposed by :meth:`aclose`).
        uow_factory: makes units of work on ``engine``.
        plugins: discovered plugins and the provider registry.
        vault: encrypts provider credentials bound to the connection id.
        bus: the message bus outbox events are published on.
        sandbox_transport: how sandboxed providers are reached (``http`` or ``asgi``).
        http_transports: per-slug transports to use instead of the network (tests, sandboxes).
        provider_settings_overrides: slug -> settings fields applied over the environment.
        request_budget: optional per-provider request budget shared by the HTTP clients
            (e.g. a ``RateLimiterBudget`` on Redis shared by every worker).
        audit_hmac_key: the audit HMAC key (``None``: loaded on first use, see
            :attr:`audit_key`).
    """

    settings: CoreSettings
    engine: AsyncEngine
    uow_factory: SqlAlchemyUnitOfWorkFactory
    plugins: LoadedPlugins
    vault: CredentialVault
    bus: MessageBus = field(default_factory=MessageBus)
    sandbox_transport: SandboxTransport = "http"
    http_transports: dict[str, httpx.AsyncBaseTransport] = field(default_factory=dict)
    provider_settings_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_budget: RequestBudget | None = None
    audit_hmac_key: bytes | None = field(default=None, repr=False)
    _providers: dict[str, object] = field(default_factory=dict, repr=False)
    _clients: list[httpx.AsyncClient] = field(default_factory=list, repr=False)
    owns_engine: bool = field(default=True, repr=False)

    @classmethod
    async def create(
        cls,
        settings: CoreSettings,
        *,
        sandbox_transport: SandboxTransport = "http",
        plugins: LoadedPlugins | None = None,
        vault: CredentialVault | None = None,
        engine: AsyncEngine | None = None,
        migrate: bool | None = None,
        http_transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        provider_settings_overrides: dict[str, dict[str, Any]] | None = None,
        request_budget: RequestBudget | None = None,
        audit_key: bytes | None = None,
    ) -> Container:
        """Build the container.

        Args:
            settings: core (or API) settings.
            sandbox_transport: ``http`` (API server) or ``asgi`` (CLI, no server).
            plugins: already-loaded plugins (default: discover entry points).
            vault: a vault to use (default: :func:`load_vault`).
            engine: an engine to use (not disposed by :meth:`aclose` when given).
            migrate: run migrations first (default: only on the embedded SQLite default).
            http_transports: slug -> transport overrides (tests against a live sandbox).
            provider_settings_overrides: slug -> settings field overrides.
            request_budget: per-provider request budget for the HTTP clients.
            audit_key: the audit HMAC key (default: loaded on first use).
        """
        if migrate is None:
            migrate = settings.is_sqlite and engine is None
        if migrate:
            from dashtam_core.adapters.sqlalchemy.migrate import ensure_schema

            await ensure_schema(settings.database_url)
        own_engine = engine is None
        eng = engine or create_engine(settings.database_url)
        loaded = plugins or build_plugin_manager(
            load_only=settings.load_plugins.split(",") if settings.load_plugins else None
        )
        container = cls(
            settings=settings,
            engine=eng,
            uow_factory=SqlAlchemyUnitOfWorkFactory(eng),
            plugins=loaded,
            vault=vault or load_vault(settings),
            sandbox_transport=sandbox_transport,
            http_transports=dict(http_transports or {}),
            provider_settings_overrides=dict(provider_settings_overrides or {}),
            request_budget=request_budget,
            audit_hmac_key=audit_key,
        )
        container.owns_engine = own_engine
        for event_type, handler in loaded.event_handlers:
            container.bus.subscribe(event_type, handler)
        return container

    # -- providers -----------------------------------------------------------------------------

    def registered(self, slug: str) -> RegisteredProvider:
        """The registered provider ``slug`` (``NotFound`` when not installed)."""
        return self.plugins.providers.get(slug)

    def provider_settings(self, slug: str) -> BaseSettings:
        """The settings model instance of ``slug`` (sandbox URLs applied in sandbox mode)."""
        spec = self.registered(slug).spec
        model = spec.settings_model(**self.provider_settings_overrides.get(slug, {}))
        if self.settings.sandbox and spec.sandbox is not None:
            if self.sandbox_transport == "asgi":
                base = ASGI_SANDBOX_BASE
            else:
                base = self.settings.public_base_url.rstrip("/") + sandbox_prefix(slug)
            model = _sandbox_settings(model, base)
            if "redirect_uri" in type(model).model_fields and "redirect_uri" not in (
                model.model_fields_set
            ):
                callback = f"{self.settings.public_base_url.rstrip('/')}/oauth/{slug}/callback"
                model = model.model_copy(update={"redirect_uri": callback})
        return model

    def http_transport(self, slug: str) -> httpx.AsyncBaseTransport | None:
        """The transport provider ``slug`` uses (None: the network).

        In ASGI sandbox mode this is the in-process simulator, which a caller can also use
        to play the browser of an OAuth flow.
        """
        return self._transport(slug)

    def _transport(self, slug: str) -> httpx.AsyncBaseTransport | None:
        if slug in self.http_transports:
            return self.http_transports[slug]
        spec = self.registered(slug).spec
        if self.settings.sandbox and spec.sandbox is not None and self.sandbox_transport == "asgi":
            app = spec.sandbox()
            transport = httpx.ASGITransport(app=app)
            self.http_transports[slug] = transport
            return transport
        return None

    def provider(self, slug: str) -> object:
        """The provider instance of ``slug`` (one per container; ``NotFound`` if unknown)."""
        found = self._providers.get(slug)
        if found is not None:
            return found
        spec = self.registered(slug).spec
        client = build_provider_client(
            slug, transport=self._transport(slug), budget=self.request_budget
        )
        self._clients.append(client)
        instance = spec.factory(self.provider_settings(slug), client)
        self._providers[slug] = instance
        return instance

    def set_provider(self, slug: str, instance: object) -> None:
        """Use ``instance`` as provider ``slug`` (embedding, tests, a patched mapping)."""
        self.registered(slug)
        self._providers[slug] = instance

    def file_import_slugs(self) -> list[str]:
        """Slugs of installed ``file_import`` providers, sorted."""
        return [p.spec.slug for p in self.plugins.providers if p.spec.auth_type == "file_import"]

    # -- audit trail ---------------------------------------------------------------------------

    @property
    def audit_key(self) -> bytes:
        """The audit HMAC key, loaded once (key files generated first on the embedded default).

        Raises:
            ConfigurationError: no audit key outside the embedded SQLite default.
        """
        if self.audit_hmac_key is None:
            from dashtam_core.adapters.security.keys import generate_all_keys, load_hmac_key

            if self.settings.is_sqlite:
                generate_all_keys(self.settings.secret_dir)
            self.audit_hmac_key = load_hmac_key("audit_hmac", self.settings.secret_dir)
        return self.audit_hmac_key

    async def audit(
        self,
        conn: AsyncConnection,
        origin: Origin | None,
        action: str,
        *,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        object_type: str | None = None,
        object_id: object = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Record ``action`` in the open transaction of ``conn`` (nothing when ``origin`` is None).

        Services call it as the last statement before they commit the change it describes,
        so the record commits or rolls back with the change, and the audit chain's lock
        (held to the end of the transaction) is taken after every other lock.

        Args:
            conn: the connection of the caller's open transaction.
            origin: who acts and from where; ``None`` for callers that do not audit.
            action: the dotted action name (``connection.create``).
            outcome: success, or failure for a change that records one (a failed sync).
            object_type: the kind of object acted on.
            object_id: its id.
            details: extra non-secret facts.
        """
        if origin is None:
            return
        await audit(
            conn,
            self.audit_key,
            origin,
            action,
            outcome=outcome,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )

    async def audit_failure(
        self,
        origin: Origin | None,
        action: str,
        error: Exception,
        *,
        object_type: str | None = None,
        object_id: object = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Record a refused ``action`` in a transaction of its own (nothing when no ``origin``).

        The ``reason`` detail is the error's stable code (``internal_error`` for an error
        that is not a :class:`~dashtam_core.errors.DashtamError`); its message is not stored,
        as it may quote provider answers.
        """
        if origin is None:
            return
        reason = error.code if isinstance(error, DashtamError) else "internal_error"
        await audit_failure(
            self.engine,
            self.audit_key,
            origin,
            action,
            object_type=object_type,
            object_id=object_id,
            details={**(details or {}), "reason": reason},
        )

    # -- events --------------------------------------------------------------------------------

    async def dispatch_outbox(
        self,
        *,
        limit: int = 500,
        user_id: UUID | None = None,
        since: datetime | None = None,
    ) -> list[HandlerFailure]:
        """Publish undispatched outbox events on the bus and mark them dispatched.

        Delivery is at least once: a crash between publishing and marking re-publishes.
        ``user_id`` / ``since`` narrow it to one user's events stored since then (one sync's).
        A row whose event can no longer be rebuilt is marked dispatched without being published
        (logged; the row stays for the retention window) so it never blocks the events after it.
        """
        failures: list[HandlerFailure] = []
        unreadable: list[UUID] = []
        async with self.engine.begin() as conn:
            messages = await pending_events(
                conn, limit=limit, user_id=user_id, since=since, unreadable=unreadable
            )
            if unreadable:
                await mark_dispatched(conn, unreadable, now=datetime.now(UTC))
            if not messages:
                return failures
            for message in messages:
                failures.extend(await self.bus.publish(message.event))
            await mark_dispatched(conn, [m.id for m in messages], now=datetime.now(UTC))
        return failures

    async def aclose(self) -> None:
        """Close the HTTP clients and dispose the engine (if the container made it)."""
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        self._providers.clear()
        if self.owns_engine:
            await self.engine.dispose()

    def require_provider(self, slug: str) -> RegisteredProvider:
        """Like :meth:`registered` but with a message naming the installed providers."""
        if slug not in self.plugins.providers:
            installed = ", ".join(self.plugins.providers.slugs()) or "none"
            raise NotFound(f"no provider {slug!r} is installed (installed: {installed})")
        return self.registered(slug)


__all__ = [
    "ASGI_SANDBOX_BASE",
    "Container",
    "SandboxTransport",
    "load_vault",
    "sandbox_prefix",
]
