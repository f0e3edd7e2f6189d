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

Connection events go to the transactional outbox with the change they describe.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import update

from dashtam_core.adapters.sqlalchemy.tables import oauth_states
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


async def connect_api_key(
    container: Container,
    user_id: UUID,
    provider: str,
    credentials: Mapping[str, str],
    *,
    options: Mapping[str, str] | None = None,
    alias: str | None = None,
) -> Result[ProviderConnection, DashtamError]:
    """Validate API keys with the provider, then store an active connection.

    Returns:
        The new connection, or ``Err(InvalidCredentials)`` (nothing stored), ``Err(NotFound)``
        for an unknown provider, ``Err(ValidationError)`` for a provider that is not API-key.
    """
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
        await uow.commit()
    return Ok(conn)


async def start_oauth(
    container: Container,
    user_id: UUID,
    provider: str,
    *,
    alias: str | None = None,
    connection_id: UUID | None = None,
) -> Result[OAuthStart, DashtamError]:
    """Begin the OAuth flow: a pending connection (or a repair of ``connection_id``).

    Returns:
        The connection, the authorization URL and the ``state`` the callback must bring back.
    """
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
        await uow.commit()
    return Ok(OAuthStart(conn, request.url, state, int(OAUTH_STATE_TTL.total_seconds())))


async def _fail_pending(container: Container, connection_id: UUID, reason: str) -> None:
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        if conn is None or conn.status != ConnectionStatus.PENDING:
            return
        old = conn.status
        conn.transition(ConnectionStatus.ERROR, error=reason)
        await uow.connections.update(conn)
        await emit_events(uow, status_event(conn, old))
        await uow.commit()


async def complete_oauth(
    container: Container,
    state: str,
    *,
    code: str | None = None,
    error: str | None = None,
    user_id: UUID | None = None,
) -> Result[ProviderConnection, DashtamError]:
    """Finish the OAuth flow for ``state`` (consumed even when the exchange fails).

    Args:
        container: the application container.
        state: the ``state`` query parameter of the callback.
        code: the authorization code (absent when the user refused).
        error: the provider's ``error`` parameter, if any.
        user_id: when known (a logged-in callback), the state must belong to this user.
    """
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
        if row is None or (user_id is not None and row.user_id != user_id):
            return Err(InvalidOAuthState("the authorization request is unknown or expired"))
        await uow.commit()
    if error or not code:
        reason = f"authorization refused ({error or 'no code'})"
        await _fail_pending(container, row.connection_id, reason)
        return Err(InvalidCredentials(reason))
    instance = container.provider(row.provider)
    if not isinstance(instance, OAuth2Auth):
        return Err(ConfigurationError(f"provider {row.provider!r} has no OAuth flow"))
    exchanged = await instance.exchange_code(code, row.code_verifier)
    if isinstance(exchanged, Err):
        await _fail_pending(container, row.connection_id, exchanged.error.message)
        return Err(exchanged.error)
    creds = exchanged.value
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(row.connection_id)
        if conn is None or conn.status == ConnectionStatus.DISCONNECTED:
            return Err(NotFound("connection not found"))
        old = conn.status
        conn.credentials_encrypted = seal_credentials(container, conn.id, creds)
        conn.credentials_key_id = container.vault.primary
        conn.access_expires_at = creds.expires_at
        conn.auth_expires_at = creds.refresh_expires_at
        conn.transition(ConnectionStatus.ACTIVE)
        await uow.connections.update(conn)
        await emit_events(uow, status_event(conn, old))
        await uow.commit()
    return Ok(conn)


async def disconnect(
    container: Container, user_id: UUID, connection_id: UUID
) -> Result[ProviderConnection, NotFound]:
    """Destroy a connection's credentials and mark it disconnected (its data is kept)."""
    async with container.uow_factory() as uow:
        conn = await uow.connections.get_for_user(connection_id, user_id)
        if conn is None:
            return Err(NotFound("connection not found"))
        if conn.status == ConnectionStatus.DISCONNECTED:
            return Ok(conn)
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
        await uow.commit()
    return Ok(conn)


__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "OAUTH_STATE_TTL",
    "InvalidOAuthState",
    "OAuthStart",
    "complete_oauth",
    "connect_api_key",
    "disconnect",
    "expiry_warnings",
    "hash_state",
    "mark_needs_reauth",
    "refresh_credentials",
    "seal_credentials",
    "start_oauth",
    "unseal_credentials",
]
