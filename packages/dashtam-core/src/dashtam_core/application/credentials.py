"""Stored provider credentials: sealing, refresh under a per-connection lock, health, expiry.

* Credentials are sealed by the vault with the connection id as associated data; the stored
  document holds the values and the access / refresh expiries.
* :func:`refresh_credentials` serializes refreshes of one connection across processes:
  PostgreSQL ``SELECT ... FOR UPDATE`` on the connection row, SQLite the database write lock
  (``BEGIN IMMEDIATE``). The holder re-reads the stored tokens first, so a second waiter uses the
  token the first one stored; the new token is committed before it is returned.
* A provider refusal (``AuthExpired`` / ``InvalidCredentials``) marks the connection
  ``needs_reauth`` (:func:`mark_needs_reauth`).
* :func:`expiry_warnings` raises ``ConnectionExpiring`` once per connection and expiry.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import select

from dashtam_core.adapters.sqlalchemy.tables import provider_connections
from dashtam_core.adapters.sqlalchemy.tables_data import outbox
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.container import Container
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import (
    ConnectionExpiring,
    ConnectionStatusChanged,
    CredentialsRefreshed,
    DomainEvent,
)
from dashtam_core.errors import (
    AuthExpired,
    DashtamError,
    InvalidCredentials,
    NotFound,
    ProviderError,
)
from dashtam_core.ports.provider import Credentials, OAuth2Auth
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.outbox import write_events

#: An access token this close to expiry is refreshed first (when the provider has no rule).
DEFAULT_REFRESH_MARGIN = timedelta(minutes=5)


def _now() -> datetime:
    return datetime.now(UTC)


def status_event(conn: ProviderConnection, old: ConnectionStatus) -> list[DomainEvent]:
    """A ``ConnectionStatusChanged`` for ``conn`` if its status differs from ``old``."""
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


async def emit_events(uow: SqlAlchemyUnitOfWork, events: list[DomainEvent]) -> None:
    """Write ``events`` to the outbox in the unit of work's transaction."""
    if events:
        await write_events(uow.connection, events, now=_now())


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
        await emit_events(uow, status_event(conn, old))
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
        await emit_events(uow, [CredentialsRefreshed(user_id=conn.user_id, connection_id=conn.id)])
        await uow.commit()
    merged = unseal_credentials(container, conn)
    return merged


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
        await emit_events(uow, list(raised))
        await uow.commit()
    return raised


__all__ = [
    "DEFAULT_REFRESH_MARGIN",
    "emit_events",
    "expiry_warnings",
    "mark_needs_reauth",
    "refresh_credentials",
    "seal_credentials",
    "status_event",
    "unseal_credentials",
]
