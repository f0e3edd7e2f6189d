"""Explicit row ↔ domain mapping for the tables of :mod:`.tables`.

``*_to_row`` returns the column dict for an INSERT/UPDATE; ``*_from_row`` builds the domain
object from a result row (any mapping of column name to value, e.g. ``Row._mapping``).
Enums are stored as their string values; lists and dicts are copied so a domain object never
shares mutable state with a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.domain.session import RefreshToken, Session
from dashtam_core.domain.user import Role, User

Row = Mapping[Any, Any]


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def user_to_row(user: User) -> dict[str, Any]:
    """Return the ``users`` columns of ``user``."""
    return {
        "id": user.id,
        "email": user.email,
        "password_hash": user.password_hash,
        "created_at": user.created_at,
        "email_verified": user.email_verified,
        "roles": [role.value for role in user.roles],
        "is_locked": user.is_locked,
        "locked_until": user.locked_until,
        "failed_login_count": user.failed_login_count,
        "mfa_secret_encrypted": user.mfa_secret_encrypted,
        "mfa_enabled": user.mfa_enabled,
        "tokens_valid_after": user.tokens_valid_after,
    }


def user_from_row(row: Row) -> User:
    """Build a :class:`User` from a ``users`` row."""
    return User(
        id=row["id"],
        email=row["email"],
        password_hash=row["password_hash"],
        created_at=row["created_at"],
        email_verified=bool(row["email_verified"]),
        roles=[Role(role) for role in row["roles"]],
        is_locked=bool(row["is_locked"]),
        locked_until=row["locked_until"],
        failed_login_count=int(row["failed_login_count"]),
        mfa_secret_encrypted=_bytes(row["mfa_secret_encrypted"]),
        mfa_enabled=bool(row["mfa_enabled"]),
        tokens_valid_after=row["tokens_valid_after"],
    )


def session_to_row(session: Session) -> dict[str, Any]:
    """Return the ``sessions`` columns of ``session``."""
    return {
        "id": session.id,
        "user_id": session.user_id,
        "created_at": session.created_at,
        "last_used_at": session.last_used_at,
        "expires_at": session.expires_at,
        "user_agent": session.user_agent,
        "ip": session.ip,
        "revoked_at": session.revoked_at,
        "revoked_reason": session.revoked_reason,
    }


def session_from_row(row: Row) -> Session:
    """Build a :class:`Session` from a ``sessions`` row."""
    return Session(
        id=row["id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        user_agent=row["user_agent"],
        ip=row["ip"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
    )


def refresh_token_to_row(token: RefreshToken) -> dict[str, Any]:
    """Return the ``refresh_tokens`` columns of ``token``."""
    return {
        "id": token.id,
        "session_id": token.session_id,
        "token_hash": token.token_hash,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "parent_id": token.parent_id,
        "used_at": token.used_at,
        "revoked_at": token.revoked_at,
    }


def refresh_token_from_row(row: Row) -> RefreshToken:
    """Build a :class:`RefreshToken` from a ``refresh_tokens`` row."""
    return RefreshToken(
        id=row["id"],
        session_id=row["session_id"],
        token_hash=row["token_hash"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        parent_id=row["parent_id"],
        used_at=row["used_at"],
        revoked_at=row["revoked_at"],
    )


def connection_to_row(connection: ProviderConnection) -> dict[str, Any]:
    """Return the ``provider_connections`` columns of ``connection``."""
    return {
        "id": connection.id,
        "user_id": connection.user_id,
        "provider": connection.provider,
        "status": connection.status.value,
        "created_at": connection.created_at,
        "alias": connection.alias,
        "credentials_encrypted": connection.credentials_encrypted,
        "credentials_key_id": connection.credentials_key_id,
        "auth_expires_at": connection.auth_expires_at,
        "access_expires_at": connection.access_expires_at,
        "last_synced_at": connection.last_synced_at,
        "last_error": connection.last_error,
        "options": dict(connection.options) if connection.options is not None else None,
    }


def connection_from_row(row: Row) -> ProviderConnection:
    """Build a :class:`ProviderConnection` from a ``provider_connections`` row."""
    options = row["options"]
    return ProviderConnection(
        id=row["id"],
        user_id=row["user_id"],
        provider=row["provider"],
        status=ConnectionStatus(row["status"]),
        created_at=row["created_at"],
        alias=row["alias"],
        credentials_encrypted=_bytes(row["credentials_encrypted"]),
        credentials_key_id=row["credentials_key_id"],
        auth_expires_at=row["auth_expires_at"],
        access_expires_at=row["access_expires_at"],
        last_synced_at=row["last_synced_at"],
        last_error=row["last_error"],
        options=dict(options) if options is not None else None,
    )


def account_to_row(account: Account) -> dict[str, Any]:
    """Return the ``accounts`` columns of ``account``."""
    return {
        "id": account.id,
        "connection_id": account.connection_id,
        "user_id": account.user_id,
        "provider": account.provider,
        "provider_account_id": account.provider_account_id,
        "name": account.name,
        "type": account.type.value,
        "currency": account.currency,
        "created_at": account.created_at,
        "subtype": account.subtype,
        "mask": account.mask,
        "balance_current": account.balance_current,
        "balance_available": account.balance_available,
        "balance_as_of": account.balance_as_of,
        "is_closed": account.is_closed,
    }


def account_from_row(row: Row) -> Account:
    """Build an :class:`Account` from an ``accounts`` row."""
    return Account(
        id=row["id"],
        connection_id=row["connection_id"],
        user_id=row["user_id"],
        provider=row["provider"],
        provider_account_id=row["provider_account_id"],
        name=row["name"],
        type=AccountType(row["type"]),
        currency=row["currency"],
        created_at=row["created_at"],
        subtype=row["subtype"],
        mask=row["mask"],
        balance_current=row["balance_current"],
        balance_available=row["balance_available"],
        balance_as_of=row["balance_as_of"],
        is_closed=bool(row["is_closed"]),
    )


def audit_record_to_row(record: AuditRecord, seq: int) -> dict[str, Any]:
    """Return the ``audit_events`` columns of ``record`` at chain position ``seq``."""
    return {
        "id": record.id,
        "seq": seq,
        "occurred_at": record.occurred_at,
        "actor_id": record.actor_id,
        "action": record.action,
        "outcome": record.outcome.value,
        "object_type": record.object_type,
        "object_id": record.object_id,
        "ip": record.ip,
        "user_agent": record.user_agent,
        "details": dict(record.details),
        "prev_mac": record.prev_mac,
        "mac": record.mac,
    }


def audit_record_from_row(row: Row) -> AuditRecord:
    """Build an :class:`AuditRecord` from an ``audit_events`` row (``seq`` is not part of it)."""
    return AuditRecord(
        id=row["id"],
        occurred_at=row["occurred_at"],
        actor_id=row["actor_id"],
        action=row["action"],
        outcome=AuditOutcome(row["outcome"]),
        object_type=row["object_type"],
        object_id=row["object_id"],
        ip=row["ip"],
        user_agent=row["user_agent"],
        details={str(k): str(v) for k, v in (row["details"] or {}).items()},
        prev_mac=row["prev_mac"],
        mac=row["mac"],
    )


__all__ = [
    "Row",
    "account_from_row",
    "account_to_row",
    "audit_record_from_row",
    "audit_record_to_row",
    "connection_from_row",
    "connection_to_row",
    "refresh_token_from_row",
    "refresh_token_to_row",
    "session_from_row",
    "session_to_row",
    "user_from_row",
    "user_to_row",
]
