"""Connection lifecycle commands: connect, OAuth start/complete, repair, disconnect.

Rules (sync.md rule 8, security.md):

* API-key credentials are validated with the provider before anything is stored; bad keys
  return ``Err(InvalidCredentials)`` and write nothing.
* Credentials are sealed by the vault with the connection id as associated data
  (:mod:`dashtam_core.application.credentials`, which also holds the serialized
  :func:`refresh_credentials`, :func:`mark_needs_reauth` and :func:`expiry_warnings`,
  re-exported here).
* OAuth ``state`` is random, stored only as its SHA-256, single use, bound to the user, valid
  10 minutes; the PKCE verifier never leaves the server. Repair re-runs the flow on the same
  connection (same id, same accounts); the tokens are stored before anyone uses them.
* Disconnecting destroys the credentials and keeps the data.

Connection events go to the transactional outbox with the change they describe. Given an
``origin`` (the API passes the caller's, the CLI its own), every command also writes its audit
record in the transaction of the change (security.md, audit trail): ``connection.create``
(API keys, or an OAuth start), ``connection.reauthorize`` (a repair starts),
``connection.authorize`` (an OAuth grant completes), ``connection.rename``,
``connection.disconnect``; object ``connection``. A refused command records a failure (``reason``
= the error code) in a transaction of its own; a command that changes nothing (renaming to the
same alias, disconnecting twice) records nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from uuid import UUID

from sqlalchemy import update

from dashtam_core.adapters.sqlalchemy.tables import oauth_states
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.audit import Origin
from dashtam_core.application.container import Container
from dashtam_core.application.credentials import (
    DEFAULT_REFRESH_MARGIN,
    emit_events,
    expiry_warnings,
    mark_needs_reauth,
    refresh_credentials,
    seal_credentials,
    status_event,
    unseal_credentials,
)
from dashtam_core.domain.audit import AuditOutcome
from dashtam_core.domain.connection import AuthType, ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import (
    ConnectionCreated,
    ConnectionDisconnected,
    DomainEvent,
)
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import (
    ConfigurationError,
    DashtamError,
    InvalidCredentials,
    NotFound,
    ValidationError,
)
from dashtam_core.ports.provider import ApiKeyAuth, Credentials, OAuth2Auth
from dashtam_core.result import Err, Ok, Result

#: Life of an OAuth ``state``.
OAUTH_STATE_TTL = timedelta(minutes=10)

_T = TypeVar("_T")
_E = TypeVar("_E", bound=DashtamError)


class InvalidOAuthState(ValidationError):
    """The OAuth ``state`` is unknown, used, expired or belongs to someone else."""

    code = "invalid_oauth_state"


@dataclass(frozen=True, slots=True)
class OAuthStart:
    """What ``POST /connections`` returns for an OAuth provider."""

    connection: ProviderConnection
    authorization_url: str
    state: str
    expires_in: int


def _now() -> datetime:
    return datetime.now(UTC)


def hash_state(state: str) -> str:
    """The stored form of an OAuth ``state`` (SHA-256 hex)."""
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


async def audit_refusal(
    container: Container,
    origin: Origin | None,
    action: str,
    result: Result[_T, _E],
    *,
    object_type: str | None = None,
    object_id: object = None,
    details: Mapping[str, object] | None = None,
) -> Result[_T, _E]:
    """Return ``result``, recording a failure of ``action`` first when it is an ``Err``.

    The failure record commits in a transaction of its own (nothing else was written);
    nothing is recorded without an ``origin``.
    """
    if isinstance(result, Err):
        await container.audit_failure(
            origin,
            action,
            result.error,
            object_type=object_type,
            object_id=object_id,
            details=details,
        )
    return result


def _require_audit_key(container: Container, origin: Origin | None) -> None:
    """Load the audit key before anything happens (a missing key stops the command first)."""
    if origin is not None:
        container.audit_key  # noqa: B018 - loads (or refuses) the key


async def connect_api_key(
    container: Container,
    user_id: UUID,
    provider: str,
    credentials: Mapping[str, str],
    *,
    options: Mapping[str, str] | None = None,
    alias: str | None = None,
    origin: Origin | None = None,
) -> Result[ProviderConnection, DashtamError]:
    """Validate API keys with the provider, then store an active connection.

    Audited as ``connection.create`` by ``origin`` (a failure when refused; the keys are never
    recorded).

    Returns:
        The new connection, or ``Err(InvalidCredentials)`` (nothing stored), ``Err(NotFound)``
        for an unknown provider, ``Err(ValidationError)`` for a provider that is not API-key.
    """
    _require_audit_key(container, origin)
    made = await _connect_api_key(container, user_id, provider, credentials, options, alias, origin)
    return await audit_refusal(
        container,
        origin,
        "connection.create",
        made,
        object_type="connection",
        details={"provider": provider, "auth_type": str(AuthType.API_KEY)},
    )


async def _connect_api_key(
    container: Container,
    user_id: UUID,
    provider: str,
    credentials: Mapping[str, str],
    options: Mapping[str, str] | None,
    alias: str | None,
    origin: Origin | None,
) -> Result[ProviderConnection, DashtamError]:
    try:
        spec = container.require_provider(provider).spec
    except NotFound as exc:
        return Err(exc)
    if spec.auth_type != AuthType.API_KEY:
        return Err(ValidationError(f"provider {provider!r} does not use API keys"))
    instance = container.provider(provider)
    if not isinstance(instance, ApiKeyAuth):
        return Err(ConfigurationError(f"provider {provider!r} cannot validate API keys"))
    opts = {str(k): str(v) for k, v in (options or {}).items()}
    secret = {str(k): str(v) for k, v in credentials.items()}
    checked = await instance.validate_credentials(Credentials({**opts, **secret}))
    if isinstance(checked, Err):
        return Err(checked.error)
    conn = ProviderConnection(
        id=uuid7(),
        user_id=user_id,
        provider=provider,
        status=ConnectionStatus.ACTIVE,
        created_at=_now(),
        alias=alias,
        options=opts or None,
    )
    conn.credentials_encrypted = seal_credentials(container, conn.id, Credentials(secret))
    conn.credentials_key_id = container.vault.primary
    async with container.uow_factory() as uow:
        await uow.connections.add(conn)
        await emit_events(
            uow, [ConnectionCreated(user_id=user_id, connection_id=conn.id, provider=provider)]
        )
        await container.audit(
            uow.connection,
            origin,
            "connection.create",
            object_type="connection",
            object_id=conn.id,
            details={"provider": provider, "auth_type": str(spec.auth_type), "status": conn.status},
        )
        await uow.commit()
    return Ok(conn)


async def start_oauth(
    container: Container,
    user_id: UUID,
    provider: str,
    *,
    alias: str | None = None,
    connection_id: UUID | None = None,
    origin: Origin | None = None,
) -> Result[OAuthStart, DashtamError]:
    """Begin the OAuth flow: a pending connection (or a repair of ``connection_id``).

    Audited by ``origin`` as ``connection.create`` (status ``pending``), or
    ``connection.reauthorize`` for a repair; a failure when refused.

    Returns:
        The connection, the authorization URL and the ``state`` the callback must bring back.
    """
    _require_audit_key(container, origin)
    started = await _start_oauth(container, user_id, provider, alias, connection_id, origin)
    action = "connection.create" if connection_id is None else "connection.reauthorize"
    details = {"provider": provider, "auth_type": str(AuthType.OAUTH2)}
    return await audit_refusal(
        container,
        origin,
        action,
        started,
        object_type="connection",
        object_id=connection_id,
        details=details,
    )


async def _start_oauth(
    container: Container,
    user_id: UUID,
    provider: str,
    alias: str | None,
    connection_id: UUID | None,
    origin: Origin | None,
) -> Result[OAuthStart, DashtamError]:
    try:
        spec = container.require_provider(provider).spec
    except NotFound as exc:
        return Err(exc)
    if spec.auth_type != AuthType.OAUTH2:
        return Err(ValidationError(f"provider {provider!r} does not use OAuth"))
    instance = container.provider(provider)
    if not isinstance(instance, OAuth2Auth):
        return Err(ConfigurationError(f"provider {provider!r} has no OAuth flow"))
    state = secrets.token_urlsafe(32)
    try:
        request = instance.authorization_request(state)
    except ConfigurationError as exc:
        return Err(exc)
    now = _now()
    async with container.uow_factory() as uow:
        events: list[DomainEvent] = []
        if connection_id is None:
            conn = ProviderConnection(
                id=uuid7(),
                user_id=user_id,
                provider=provider,
                status=ConnectionStatus.PENDING,
                created_at=now,
                alias=alias,
            )
            await uow.connections.add(conn)
            events.append(
                ConnectionCreated(user_id=user_id, connection_id=conn.id, provider=provider)
            )
        else:
            found = await uow.connections.get_for_user(connection_id, user_id)
            if found is None or found.provider != provider:
                return Err(NotFound("connection not found"))
            if found.status == ConnectionStatus.DISCONNECTED:
                return Err(ValidationError("a disconnected connection cannot be repaired"))
            conn = found
        await uow.connection.execute(
            oauth_states.insert().values(
                id=uuid7(),
                state_hash=hash_state(state),
                user_id=user_id,
                connection_id=conn.id,
                provider=provider,
                code_verifier=request.code_verifier,
                created_at=now,
                expires_at=now + OAUTH_STATE_TTL,
            )
        )
        await emit_events(uow, events)
        await container.audit(
            uow.connection,
            origin,
            "connection.create" if connection_id is None else "connection.reauthorize",
            object_type="connection",
            object_id=conn.id,
            details={"provider": provider, "auth_type": str(spec.auth_type), "status": conn.status},
        )
        await uow.commit()
    return Ok(OAuthStart(conn, request.url, state, int(OAUTH_STATE_TTL.total_seconds())))


async def _fail_pending(
    container: Container,
    connection_id: UUID,
    error: DashtamError,
    origin: Origin | None,
    provider: str,
) -> None:
    """A refused or failed grant: a pending connection turns ``error``; audited as a failure.

    The failure record commits with the status change (or alone when nothing changes, e.g.
    a failed repair of an active connection).
    """
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        if conn is not None and conn.status == ConnectionStatus.PENDING:
            old = conn.status
            conn.transition(ConnectionStatus.ERROR, error=error.message)
            await uow.connections.update(conn)
            await emit_events(uow, status_event(conn, old))
        await container.audit(
            uow.connection,
            origin,
            "connection.authorize",
            outcome=AuditOutcome.FAILURE,
            object_type="connection",
            object_id=connection_id,
            details={"provider": provider, "reason": error.code},
        )
        await uow.commit()


async def complete_oauth(
    container: Container,
    state: str,
    *,
    code: str | None = None,
    error: str | None = None,
    user_id: UUID | None = None,
    origin: Origin | None = None,
) -> Result[ProviderConnection, DashtamError]:
    """Finish the OAuth flow for ``state`` (consumed even when the exchange fails).

    Audited as ``connection.authorize`` of the connection by ``origin`` (its actor, when it
    has none, is the user the ``state`` was issued to): success in the transaction that stores
    the tokens, a failure when the state is refused, the user declined or the exchange failed.

    Args:
        container: the application container.
        state: the ``state`` query parameter of the callback.
        code: the authorization code (absent when the user refused).
        error: the provider's ``error`` parameter, if any.
        user_id: when known (a logged-in callback), the state must belong to this user.
        origin: who acts and from where (``None``: not audited).
    """
    _require_audit_key(container, origin)
    now = _now()
    s = oauth_states
    async with container.uow_factory() as uow:
        row = (
            await uow.connection.execute(
                update(s)
                .where(
                    s.c.state_hash == hash_state(state),
                    s.c.used_at.is_(None),
                    s.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(s.c.user_id, s.c.connection_id, s.c.provider, s.c.code_verifier)
            )
        ).one_or_none()
        if row is not None and (user_id is None or row.user_id == user_id):
            await uow.commit()
    if row is None or (user_id is not None and row.user_id != user_id):
        refused = InvalidOAuthState("the authorization request is unknown or expired")
        return await audit_refusal(container, origin, "connection.authorize", Err(refused))
    who = None if origin is None else origin.as_actor(origin.actor_id or row.user_id)
    details = {"provider": row.provider}
    if error or not code:
        denied = InvalidCredentials(f"authorization refused ({error or 'no code'})")
        await _fail_pending(container, row.connection_id, denied, who, row.provider)
        return Err(denied)
    instance = container.provider(row.provider)
    if not isinstance(instance, OAuth2Auth):
        unusable = ConfigurationError(f"provider {row.provider!r} has no OAuth flow")
        await _fail_pending(container, row.connection_id, unusable, who, row.provider)
        return Err(unusable)
    exchanged = await instance.exchange_code(code, row.code_verifier)
    if isinstance(exchanged, Err):
        await _fail_pending(container, row.connection_id, exchanged.error, who, row.provider)
        return Err(exchanged.error)
    creds = exchanged.value
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(row.connection_id)
        if conn is not None and conn.status != ConnectionStatus.DISCONNECTED:
            await _store_grant(container, uow, conn, creds, who, details)
    if conn is None or conn.status == ConnectionStatus.DISCONNECTED:
        return await audit_refusal(
            container,
            who,
            "connection.authorize",
            Err(NotFound("connection not found")),
            object_type="connection",
            object_id=row.connection_id,
            details=details,
        )
    return Ok(conn)


async def _store_grant(
    container: Container,
    uow: SqlAlchemyUnitOfWork,
    conn: ProviderConnection,
    creds: Credentials,
    who: Origin | None,
    details: Mapping[str, object],
) -> None:
    """Seal the new tokens, activate the connection, audit and commit (one transaction)."""
    old = conn.status
    conn.credentials_encrypted = seal_credentials(container, conn.id, creds)
    conn.credentials_key_id = container.vault.primary
    conn.access_expires_at = creds.expires_at
    conn.auth_expires_at = creds.refresh_expires_at
    conn.transition(ConnectionStatus.ACTIVE)
    await uow.connections.update(conn)
    await emit_events(uow, status_event(conn, old))
    await container.audit(
        uow.connection,
        who,
        "connection.authorize",
        object_type="connection",
        object_id=conn.id,
        details=details,
    )
    await uow.commit()


async def rename(
    container: Container,
    user_id: UUID,
    connection_id: UUID,
    alias: str | None,
    *,
    origin: Origin | None = None,
) -> Result[ProviderConnection, NotFound]:
    """Set a connection's ``alias``; audited as ``connection.rename`` (unless unchanged)."""
    _require_audit_key(container, origin)
    async with container.uow_factory() as uow:
        conn = await uow.connections.get_for_user(connection_id, user_id)
        if conn is not None and conn.alias != alias:
            conn.alias = alias
            await uow.connections.update(conn)
            await container.audit(
                uow.connection,
                origin,
                "connection.rename",
                object_type="connection",
                object_id=conn.id,
                details={"alias": alias or ""},
            )
            await uow.commit()
    if conn is None:
        missing: Result[ProviderConnection, NotFound] = Err(NotFound("connection not found"))
        return await audit_refusal(
            container,
            origin,
            "connection.rename",
            missing,
            object_type="connection",
            object_id=connection_id,
        )
    return Ok(conn)


async def disconnect(
    container: Container,
    user_id: UUID,
    connection_id: UUID,
    *,
    origin: Origin | None = None,
) -> Result[ProviderConnection, NotFound]:
    """Destroy a connection's credentials and mark it disconnected (its data is kept).

    Audited as ``connection.disconnect`` by ``origin`` (nothing when it already was; a failure
    for an unknown connection).
    """
    _require_audit_key(container, origin)
    async with container.uow_factory() as uow:
        conn = await uow.connections.get_for_user(connection_id, user_id)
        if conn is not None and conn.status != ConnectionStatus.DISCONNECTED:
            old = conn.status
            conn.transition(ConnectionStatus.DISCONNECTED)
            conn.credentials_encrypted = None
            conn.credentials_key_id = None
            conn.access_expires_at = None
            await uow.connections.update(conn)
            await uow.connection.execute(
                oauth_states.delete().where(oauth_states.c.connection_id == conn.id)
            )
            events = status_event(conn, old)
            events.append(ConnectionDisconnected(user_id=user_id, connection_id=conn.id))
            await emit_events(uow, events)
            await container.audit(
                uow.connection,
                origin,
                "connection.disconnect",
                object_type="connection",
                object_id=conn.id,
                details={"provider": conn.provider},
            )
            await uow.commit()
    if conn is None:
        missing: Result[ProviderConnection, NotFound] = Err(NotFound("connection not found"))
        return await audit_refusal(
            container,
            origin,
            "connection.disconnect",
            missing,
            object_type="connection",
            object_id=connection_id,
        )
    return Ok(conn)


__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "OAUTH_STATE_TTL",
    "InvalidOAuthState",
    "OAuthStart",
    "audit_refusal",
    "complete_oauth",
    "connect_api_key",
    "disconnect",
    "expiry_warnings",
    "hash_state",
    "mark_needs_reauth",
    "refresh_credentials",
    "rename",
    "seal_credentials",
    "start_oauth",
    "unseal_credentials",
]
