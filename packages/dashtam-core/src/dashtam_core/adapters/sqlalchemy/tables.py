"""Identity, connection, account, audit and bookkeeping tables (SQLAlchemy Core).

Every table lives on :data:`~dashtam_core.adapters.sqlalchemy.base.metadata`. Rows are mapped to
and from domain objects explicitly in :mod:`~dashtam_core.adapters.sqlalchemy.mapping` (no ORM,
no lazy loading). Migration ``0001_initial`` creates exactly these tables; the financial data
tables are in :mod:`~dashtam_core.adapters.sqlalchemy.tables_data`.

Notes:
    * Primary keys are UUIDv7 (:func:`dashtam_core.domain.ids.uuid7`), except ``casbin_rule``
      which keeps the standard Casbin SQL layout (integer ``id``).
    * ``audit_events.seq`` orders the hash chain; it is unique and assigned by the writer.
    * ``audit_events.actor_id`` has no foreign key: the trail outlives the users it mentions.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from dashtam_core.adapters.sqlalchemy.base import (
    ExactDecimal,
    JSONType,
    UTCDateTime,
    UUIDType,
    metadata,
)

users = Table(
    "users",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("email_verified", Boolean(), nullable=False),
    Column("roles", JSONType, nullable=False),
    Column("is_locked", Boolean(), nullable=False),
    Column("locked_until", UTCDateTime(), nullable=True),
    Column("failed_login_count", Integer(), nullable=False),
    Column("mfa_secret_encrypted", LargeBinary(), nullable=True),
    Column("mfa_enabled", Boolean(), nullable=False),
    Column("tokens_valid_after", UTCDateTime(), nullable=True),
    # TOTP replay guard: the last accepted time step, claimed by a compare-and-set UPDATE
    # (adapters.security.totp.SqlAlchemyTotpReplayGuard); not part of the User domain object.
    Column("mfa_last_step", BigInteger(), nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_used_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("user_agent", String(512), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Column("revoked_reason", String(64), nullable=True),
    Index(None, "user_id", "created_at"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("session_id", UUIDType(), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column(
        "parent_id",
        UUIDType(),
        ForeignKey("refresh_tokens.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("used_at", UTCDateTime(), nullable=True),
    Column("revoked_at", UTCDateTime(), nullable=True),
    Index(None, "session_id"),
)

one_time_tokens = Table(
    "one_time_tokens",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", String(32), nullable=False),
    Column("token_hash", String(128), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose"),
    Index(None, "user_id", "purpose"),
)

provider_connections = Table(
    "provider_connections",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("alias", String(255), nullable=True),
    Column("credentials_encrypted", LargeBinary(), nullable=True),
    Column("credentials_key_id", String(64), nullable=True),
    Column("auth_expires_at", UTCDateTime(), nullable=True),
    Column("access_expires_at", UTCDateTime(), nullable=True),
    Column("last_synced_at", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("options", JSONType, nullable=True),
    Index(None, "user_id", "created_at"),
    Index(None, "status", "last_synced_at"),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("state_hash", String(128), nullable=False, unique=True),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column(
        "connection_id",
        UUIDType(),
        ForeignKey("provider_connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("provider", String(64), nullable=False),
    Column("code_verifier", String(128), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("used_at", UTCDateTime(), nullable=True),
    Index(None, "connection_id"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column(
        "connection_id",
        UUIDType(),
        ForeignKey("provider_connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("provider_account_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("subtype", String(64), nullable=True),
    Column("mask", String(16), nullable=True),
    Column("balance_current", ExactDecimal(), nullable=True),
    Column("balance_available", ExactDecimal(), nullable=True),
    Column("balance_as_of", UTCDateTime(), nullable=True),
    Column("is_closed", Boolean(), nullable=False),
    UniqueConstraint("connection_id", "provider_account_id"),
    Index(None, "user_id", "type"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("seq", BigInteger(), nullable=False, unique=True),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("actor_id", UUIDType(), nullable=True),
    Column("action", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("object_type", String(64), nullable=True),
    Column("object_id", String(255), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", String(512), nullable=True),
    Column("details", JSONType, nullable=False),
    Column("prev_mac", String(128), nullable=False),
    Column("mac", String(128), nullable=False),
    Index(None, "actor_id", "occurred_at"),
    Index(None, "action", "occurred_at"),
    Index(None, "occurred_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(128), nullable=False),
    Column("response_status", Integer(), nullable=True),
    Column("response_body", JSONType, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("user_id", "key"),
    Index(None, "created_at"),
)

casbin_rule = Table(
    "casbin_rule",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("ptype", String(255), nullable=True),
    Column("v0", String(255), nullable=True),
    Column("v1", String(255), nullable=True),
    Column("v2", String(255), nullable=True),
    Column("v3", String(255), nullable=True),
    Column("v4", String(255), nullable=True),
    Column("v5", String(255), nullable=True),
)

#: The tables migration ``0001_initial`` creates, in dependency order.
IDENTITY_TABLES: tuple[Table, ...] = (
    users,
    sessions,
    refresh_tokens,
    one_time_tokens,
    provider_connections,
    oauth_states,
    accounts,
    audit_events,
    idempotency_keys,
    casbin_rule,
)

__all__ = [
    "IDENTITY_TABLES",
    "accounts",
    "audit_events",
    "casbin_rule",
    "idempotency_keys",
    "oauth_states",
    "one_time_tokens",
    "provider_connections",
    "refresh_tokens",
    "sessions",
    "users",
]
