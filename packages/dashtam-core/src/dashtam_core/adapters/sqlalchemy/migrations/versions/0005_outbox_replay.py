"""Outbox replay: SSE ``Last-Event-ID`` resume reads a user's events after an id.

Adds the ``(user_id, id)`` index of ``outbox`` and makes every existing row's ``id`` its
event's ``event_id`` (new rows are written that way), so a replayed message carries the same
SSE ``id`` as the live one did.

Revision ID: 0005_outbox_replay
Revises: 0004_identity_security
"""

from __future__ import annotations

from alembic import op

revision = "0005_outbox_replay"
down_revision = "0004_identity_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Re-key the rows by their event id and add the replay index."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE outbox SET id = CAST(payload ->> 'event_id' AS uuid) "
            "WHERE payload ->> 'event_id' IS NOT NULL"
        )
    else:  # SQLite: UUIDs are stored as 32 lowercase hex digits
        op.execute(
            "UPDATE outbox SET id = lower(replace(json_extract(payload, '$.event_id'), '-', '')) "
            "WHERE json_extract(payload, '$.event_id') IS NOT NULL"
        )
    op.create_index("ix_outbox_user_id_id", "outbox", ["user_id", "id"])


def downgrade() -> None:
    """Drop the replay index (the re-keyed ids stay: they are valid UUIDv7 ids)."""
    op.drop_index("ix_outbox_user_id_id", table_name="outbox")
