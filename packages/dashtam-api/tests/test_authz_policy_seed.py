"""The migration's frozen policy seed equals the authorizer's default policies."""

from __future__ import annotations

import importlib.util

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.security.authorizer import (
    InMemoryPolicyStore,
    SqlAlchemyPolicyStore,
    default_policies,
)
from dashtam_core.adapters.sqlalchemy.migrate import MIGRATIONS_DIR
from dashtam_core.adapters.sqlalchemy.tables import casbin_rule


def _seed_rows() -> list[tuple[str, str, str, str | None]]:
    path = MIGRATIONS_DIR / "versions" / "0004_identity_security.py"
    spec = importlib.util.spec_from_file_location("seed_0004", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.POLICY_ROWS)


def test_frozen_seed_matches_default_policies() -> None:
    expected = [(r.ptype, r.v0, r.v1, r.v2) for r in default_policies()]
    assert _seed_rows() == expected


async def test_migrated_database_holds_exactly_the_seed(engine: AsyncEngine) -> None:
    rows = await SqlAlchemyPolicyStore(engine).load()
    assert sorted(rows, key=repr) == sorted(await InMemoryPolicyStore().load(), key=repr)
    async with engine.connect() as conn:
        count = len((await conn.execute(select(casbin_rule.c.id))).all())
    assert count == len(default_policies())
