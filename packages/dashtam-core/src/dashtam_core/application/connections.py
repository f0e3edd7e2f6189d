"""Connection lifecycle commands: connect, OAuth start/complete, refresh, repair, disconnect.

Rules (sync.md rule 8, security.md):

* API-key credentials are validated with the provider before anything is stored; bad keys
  return ``Err(InvalidCredentials)`` and write nothing.
* Credentials are sealed by the vault with the connection id as associated data.
* OAuth ``state`` is random, stored only as its SHA-256, single use, bound to the user, valid
  10 minutes; the PKCE verifier never leaves the server. Repair re-runs the flow on the same
  connection (same id, same accounts).
* Refreshes of one connection are serialized across processes: PostgreSQL ``SELECT ... FOR
  UPDATE`` on the connection row, SQLite the database write lock (``BEGIN IMMEDIATE``). The
  holder re-reads the stored tokens first, so a second waiter uses the token the first one
  stored; the new token is committed before it is returned (before anyone uses it).
* A provider refusal (``AuthExpired``/``InvalidCredentials``) marks the connection
  ``needs_reauth``.
Connection events go to the transactional outbox with the change they describe.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select, update

from dashtam_core.adapters.sqlalchemy.tables import oauth_states, provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import outbox
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.container import Container
from dashtam_core.domain.connection import AuthType, ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import (
    ConnectionCreated,
    ConnectionDisconnected,
    ConnectionExpiring,
    ConnectionStatusChanged,
    CredentialsRefreshed,
    DomainEvent,
)
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import (
    AuthExpired,
    ConfigurationError,
    DashtamError,
    InvalidCredentials,
    NotFound,
    ProviderError,
    ValidationError,
)
from dashtam_core.ports.provider import ApiKeyAuth, Credentials, OAuth2Auth
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.outbox import write_events

#: Life of an OAuth ``state``.
OAUTH_STATE_TTL = timedelta(minutes=10)
#: An access token this close to expiry is refreshed first (when the provider has no rule).
DEFAULT_REFRESH_MARGIN = timedelta(minutes=5)


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


def seal_credentials(container: Container, connection_id: UUID, creds: Credentials) -> bytes:
    """Encrypt ``creds`` (values and expiries) for ``connection_id``."""
    doc: dict[str, Any] = {
        "values": dict(creds),
        "expires_at": creds.expires_at.isoformat() if creds.expires_at else None,
        "refresh_expires_at": (
            creds.refresh_expires_at.isoformat() if creds.refresh_expires_at else None
        ),
    }
    return container.vault.encrypt(doc, connection_id)


def unseal_credentials(
    container: Container, connection: ProviderConnection
) -> Result[Credentials, DashtamError]:
    """Decrypt a connection's credentials, with its non-secret options merged in."""
    if connection.credentials_encrypted is None:
        return Err(AuthExpired(f"connection {connection.id} has no stored credentials"))
    opened = container.vault.decrypt_json(connection.credentials_encrypted, connection.id)
    if isinstance(opened, Err):
        return Err(opened.error)
    doc = opened.value
    values = {str(k): str(v) for k, v in dict(doc.get("values") or {}).items()}
    for key, value in (connection.options or {}).items():
        values.setdefault(key, value)

    def _dt(raw: object) -> datetime | None:
        return datetime.fromisoformat(raw) if isinstance(raw, str) else None

    return Ok(
        Credentials(
            values,
            expires_at=_dt(doc.get("expires_at")),
            refresh_expires_at=_dt(doc.get("refresh_expires_at")),
        )
    )


def _status_event(conn: ProviderConnection, old: ConnectionStatus) -> list[DomainEvent]:
    if conn.status == old:
        return []
    return [
        ConnectionStatusChanged(
            user_id=conn.user_id,
            connection_id=conn.id,
            old_status=str(old),
            new_status=str(conn.status),
            reason=conn.last_error,
        )
    ]


async def _emit(uow: SqlAlchemyUnitOfWork, events: list[DomainEvent]) -> None:
    if events:
        await write_events(uow.connection, events, now=_now())


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
        await _emit(
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
        await _emit(uow, events)
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
        await _emit(uow, _status_event(conn, old))
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
        await _emit(uow, _status_event(conn, old))
        await uow.commit()
    return Ok(conn)


def _needs_refresh(instance: object, conn: ProviderConnection, creds: Credentials) -> bool:
    now = _now()
    if conn.access_expires_at is not None and conn.access_expires_at <= now + (
        DEFAULT_REFRESH_MARGIN
    ):
        return True
    rule = getattr(instance, "needs_refresh", None)
    if callable(rule):
        return bool(rule(creds))
    return creds.expires_at is not None and creds.expires_at <= now + DEFAULT_REFRESH_MARGIN


async def _lock_connection(uow: SqlAlchemyUnitOfWork, connection_id: UUID) -> None:
    """Serialize per connection: row lock on PostgreSQL; SQLite holds the write lock already."""
    pc = provider_connections
    await uow.connection.execute(select(pc.c.id).where(pc.c.id == connection_id).with_for_update())


async def mark_needs_reauth(container: Container, connection_id: UUID, reason: str) -> None:
    """Move a connection to ``needs_reauth`` (a provider refused its credentials)."""
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        if conn is None or not conn.can_transition(ConnectionStatus.NEEDS_REAUTH):
            return
        old = conn.status
        conn.transition(ConnectionStatus.NEEDS_REAUTH, error=reason)
        await uow.connections.update(conn)
        await _emit(uow, _status_event(conn, old))
        await uow.commit()


async def refresh_credentials(
    container: Container,
    connection_id: UUID,
    *,
    force: bool = False,
    used_access_token: str | None = None,
) -> Result[Credentials, DashtamError]:
    """Return usable credentials, refreshing OAuth tokens under the per-connection lock.

    Args:
        container: the application container.
        connection_id: the connection.
        force: refresh even if the stored token does not look expired.
        used_access_token: the token a caller saw refused; if the stored one differs, another
            process already refreshed and the stored one is returned without a provider call.

    Returns:
        The credentials to use, or an error (``needs_reauth`` recorded on refusal).
    """
    async with container.uow_factory() as uow:
        await _lock_connection(uow, connection_id)
        conn = await uow.connections.get(connection_id)
        if conn is None:
            return Err(NotFound("connection not found"))
        opened = unseal_credentials(container, conn)
        if isinstance(opened, Err):
            return opened
        creds = opened.value
        instance = container.provider(conn.provider)
        if not isinstance(instance, OAuth2Auth):
            return Ok(creds)
        stored_token = creds.get("access_token")
        if used_access_token is not None and stored_token != used_access_token:
            return Ok(creds)
        if not force and used_access_token is None and not _needs_refresh(instance, conn, creds):
            return Ok(creds)
        refreshed = await instance.refresh(creds)
        if isinstance(refreshed, Err):
            await uow.rollback()
            failure: ProviderError = refreshed.error
            if isinstance(failure, AuthExpired | InvalidCredentials):
                await mark_needs_reauth(container, connection_id, failure.message)
            return Err(failure)
        new = refreshed.value
        conn.credentials_encrypted = seal_credentials(container, conn.id, new)
        conn.credentials_key_id = container.vault.primary
        conn.access_expires_at = new.expires_at
        if new.refresh_expires_at is not None:
            conn.auth_expires_at = new.refresh_expires_at
        await uow.connections.update(conn)
        await _emit(uow, [CredentialsRefreshed(user_id=conn.user_id, connection_id=conn.id)])
        await uow.commit()
    merged = unseal_credentials(container, conn)
    return merged


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
        events = _status_event(conn, old)
        events.append(ConnectionDisconnected(user_id=user_id, connection_id=conn.id))
        await _emit(uow, events)
        await uow.commit()
    return Ok(conn)


async def expiry_warnings(
    container: Container, *, days: int = 2, now: datetime | None = None
) -> list[ConnectionExpiring]:
    """Raise ``ConnectionExpiring`` for connections whose authorization dies within ``days``.

    Idempotent: a warning already in the outbox for the same connection and expiry is not
    raised again.
    """
    now = now or _now()
    horizon = now + timedelta(days=days)
    pc = provider_connections
    raised: list[ConnectionExpiring] = []
    async with container.uow_factory() as uow:
        rows = (
            await uow.connection.execute(
                select(pc.c.id, pc.c.user_id, pc.c.auth_expires_at).where(
                    pc.c.status == str(ConnectionStatus.ACTIVE),
                    pc.c.auth_expires_at.is_not(None),
                    pc.c.auth_expires_at > now,
                    pc.c.auth_expires_at <= horizon,
                )
            )
        ).all()
        for row in rows:
            sent = (
                await uow.connection.execute(
                    select(outbox.c.payload).where(
                        outbox.c.event == "ConnectionExpiring", outbox.c.user_id == row.user_id
                    )
                )
            ).scalars()
            expiry = row.auth_expires_at.isoformat()
            if any(
                p.get("connection_id") == str(row.id) and p.get("expires_at") == expiry
                for p in sent
            ):
                continue
            raised.append(
                ConnectionExpiring(
                    user_id=row.user_id, connection_id=row.id, expires_at=row.auth_expires_at
                )
            )
        await _emit(uow, list(raised))
        await uow.commit()
    return raised


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
