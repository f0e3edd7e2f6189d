"""Initial schema: users, sessions, tokens, connections, OAuth states, accounts, audit, casbin.

``audit_events`` is append-only (PCI DSS 10.2): triggers reject UPDATE and DELETE on both
databases and TRUNCATE on PostgreSQL. Tests that tamper with the chain on purpose drop the
triggers first (``DROP TRIGGER ...``) or create the table without migrations.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dashtam_core.adapters.sqlalchemy.base import ExactDecimal, JSONType, UTCDateTime, UUIDType

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: Raised by the append-only guard on ``audit_events`` (both databases).
APPEND_ONLY_MESSAGE = "audit_events is append-only"

_PG_GUARD = f"""
CREATE FUNCTION dashtam_audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _guard_audit_events() -> None:
    """Make ``audit_events`` append-only: UPDATE, DELETE (and TRUNCATE) raise."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION dashtam_audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION dashtam_audit_events_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
            f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )


def _fk(column: str, table: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}", ondelete=ondelete
    )


def upgrade() -> None:
    """Create the identity, connection, account, audit and bookkeeping tables."""
    op.create_table(
        "users",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("email_verified", sa.Boolean(), nullable=False),
        sa.Column("roles", JSONType, nullable=False),
        sa.Column("is_locked", sa.Boolean(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("failed_login_count", sa.Integer(), nullable=False),
        sa.Column("mfa_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("mfa_enabled", sa.Boolean(), nullable=False),
        sa.Column("tokens_valid_after", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_used_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_reason", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_sessions"),
        _fk("user_id", "sessions", "users", "CASCADE"),
    )
    op.create_index("ix_sessions_user_id_created_at", "sessions", ["user_id", "created_at"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("session_id", UUIDType(), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("parent_id", UUIDType(), nullable=True),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_refresh_tokens"),
        _fk("session_id", "refresh_tokens", "sessions", "CASCADE"),
        _fk("parent_id", "refresh_tokens", "refresh_tokens", "SET NULL"),
        sa.UniqueConstraint("token_hash", name="uq_refresh_tokens_token_hash"),
    )
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_table(
        "one_time_tokens",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_one_time_tokens"),
        _fk("user_id", "one_time_tokens", "users", "CASCADE"),
        sa.UniqueConstraint("token_hash", name="uq_one_time_tokens_token_hash"),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'reset_password')", name="ck_one_time_tokens_purpose"
        ),
    )
    op.create_index("ix_one_time_tokens_user_id_purpose", "one_time_tokens", ["user_id", "purpose"])
    op.create_table(
        "provider_connections",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("alias", sa.String(255), nullable=True),
        sa.Column("credentials_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("credentials_key_id", sa.String(64), nullable=True),
        sa.Column("auth_expires_at", UTCDateTime(), nullable=True),
        sa.Column("access_expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("options", JSONType, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_provider_connections"),
        _fk("user_id", "provider_connections", "users", "CASCADE"),
    )
    op.create_index(
        "ix_provider_connections_user_id_created_at",
        "provider_connections",
        ["user_id", "created_at"],
    )
    op.create_index(
        "ix_provider_connections_status_last_synced_at",
        "provider_connections",
        ["status", "last_synced_at"],
    )
    op.create_table(
        "oauth_states",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("state_hash", sa.String(128), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("connection_id", UUIDType(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_oauth_states"),
        _fk("user_id", "oauth_states", "users", "CASCADE"),
        _fk("connection_id", "oauth_states", "provider_connections", "CASCADE"),
        sa.UniqueConstraint("state_hash", name="uq_oauth_states_state_hash"),
    )
    op.create_index("ix_oauth_states_connection_id", "oauth_states", ["connection_id"])
    op.create_table(
        "accounts",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("connection_id", UUIDType(), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_account_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("subtype", sa.String(64), nullable=True),
        sa.Column("mask", sa.String(16), nullable=True),
        sa.Column("balance_current", ExactDecimal(), nullable=True),
        sa.Column("balance_available", ExactDecimal(), nullable=True),
        sa.Column("balance_as_of", UTCDateTime(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        _fk("connection_id", "accounts", "provider_connections", "CASCADE"),
        _fk("user_id", "accounts", "users", "CASCADE"),
        sa.UniqueConstraint(
            "connection_id",
            "provider_account_id",
            name="uq_accounts_connection_id_provider_account_id",
        ),
    )
    op.create_index("ix_accounts_user_id_type", "accounts", ["user_id", "type"])
    op.create_table(
        "audit_events",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("actor_id", UUIDType(), nullable=True),
        sa.Column("action", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=True),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(512), nullable=True),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("prev_mac", sa.String(128), nullable=False),
        sa.Column("mac", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("seq", name="uq_audit_events_seq"),
    )
    op.create_index(
        "ix_audit_events_actor_id_occurred_at", "audit_events", ["actor_id", "occurred_at"]
    )
    op.create_index("ix_audit_events_action_occurred_at", "audit_events", ["action", "occurred_at"])
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"])
    _guard_audit_events()
    op.create_table(
        "idempotency_keys",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(128), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        _fk("user_id", "idempotency_keys", "users", "CASCADE"),
        sa.UniqueConstraint("user_id", "key", name="uq_idempotency_keys_user_id_key"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "casbin_rule",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ptype", sa.String(255), nullable=True),
        sa.Column("v0", sa.String(255), nullable=True),
        sa.Column("v1", sa.String(255), nullable=True),
        sa.Column("v2", sa.String(255), nullable=True),
        sa.Column("v3", sa.String(255), nullable=True),
        sa.Column("v4", sa.String(255), nullable=True),
        sa.Column("v5", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_casbin_rule"),
    )


def downgrade() -> None:
    """Drop everything :func:`upgrade` created (indexes go with their tables)."""
    for table in (
        "casbin_rule",
        "idempotency_keys",
        "audit_events",
        "accounts",
        "oauth_states",
        "provider_connections",
        "one_time_tokens",
        "refresh_tokens",
        "sessions",
        "users",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION dashtam_audit_events_append_only()")
