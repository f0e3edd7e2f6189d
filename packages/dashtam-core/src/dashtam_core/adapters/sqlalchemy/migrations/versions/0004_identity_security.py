"""Identity and security: seed the Casbin RBAC policies into ``casbin_rule``.

The default policies are frozen here as data (``admin`` ⊃ ``user`` ⊃ ``readonly``, plus
``auditor``; a test checks they equal
:func:`dashtam_core.adapters.security.authorizer.default_policies`). The append-only triggers
of ``audit_events`` come with ``0001_initial``.

Revision ID: 0004_identity_security
Revises: 0002_financial_data
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_identity_security"
# Revision 0003 was reserved for sync bookkeeping and turned out unnecessary; 0004 follows 0002.
down_revision = "0002_financial_data"
branch_labels = None
depends_on = None

#: (ptype, v0, v1, v2) rows seeded into ``casbin_rule``.
POLICY_ROWS: tuple[tuple[str, str, str, str | None], ...] = (
    ("g", "user", "readonly", None),
    ("g", "admin", "user", None),
    ("p", "readonly", "users/me", "read"),
    ("p", "readonly", "users/me", "write"),
    ("p", "readonly", "sessions", "read"),
    ("p", "readonly", "sessions", "write"),
    ("p", "auditor", "users/me", "read"),
    ("p", "auditor", "users/me", "write"),
    ("p", "auditor", "sessions", "read"),
    ("p", "auditor", "sessions", "write"),
    ("p", "readonly", "providers", "read"),
    ("p", "readonly", "connections", "read"),
    ("p", "readonly", "syncs", "read"),
    ("p", "readonly", "imports", "read"),
    ("p", "readonly", "accounts", "read"),
    ("p", "readonly", "transactions", "read"),
    ("p", "readonly", "holdings", "read"),
    ("p", "readonly", "net_worth", "read"),
    ("p", "readonly", "exports", "read"),
    ("p", "readonly", "events", "read"),
    ("p", "user", "connections", "write"),
    ("p", "user", "syncs", "write"),
    ("p", "user", "imports", "write"),
    ("p", "auditor", "admin/audit_events", "read"),
    ("p", "admin", "admin/*", "*"),
)


def upgrade() -> None:
    """Seed the policies."""
    rule = sa.table(
        "casbin_rule",
        sa.column("ptype", sa.String),
        sa.column("v0", sa.String),
        sa.column("v1", sa.String),
        sa.column("v2", sa.String),
    )
    op.bulk_insert(
        rule, [{"ptype": p, "v0": v0, "v1": v1, "v2": v2} for p, v0, v1, v2 in POLICY_ROWS]
    )


def downgrade() -> None:
    """Remove the seeded policies."""
    for ptype, v0, v1, v2 in POLICY_ROWS:
        conditions = "ptype = :p AND v0 = :v0 AND v1 = :v1 AND " + (
            "v2 = :v2" if v2 is not None else "v2 IS NULL"
        )
        op.execute(
            sa.text(f"DELETE FROM casbin_rule WHERE {conditions}").bindparams(
                **{"p": ptype, "v0": v0, "v1": v1, **({"v2": v2} if v2 is not None else {})}
            )
        )
