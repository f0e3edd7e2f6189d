"""Casbin RBAC authorizer: role hierarchy, deny by default, fail closed, casbin_rule store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from dashtam_core.adapters.security.authorizer import (
    CasbinAuthorizer,
    InMemoryPolicyStore,
    PolicyRow,
    SqlAlchemyPolicyStore,
    build_enforcer,
    default_policies,
)
from dashtam_core.adapters.sqlalchemy.tables import casbin_rule
from dashtam_core.errors import PermissionDenied
from dashtam_core.ports.security import Authorizer

DATA = ["accounts", "transactions", "holdings", "connections", "syncs", "imports", "net_worth"]
ADMIN = ["admin/users", "admin/audit_events", "admin/security", "admin/jobs"]


class FlakyStore:
    def __init__(self) -> None:
        self.fail = True
        self.calls = 0

    async def load(self) -> Sequence[PolicyRow]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("database is down")
        return default_policies()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def authorizer() -> CasbinAuthorizer:
    return CasbinAuthorizer(InMemoryPolicyStore())


async def test_role_matrix(authorizer: CasbinAuthorizer) -> None:
    assert isinstance(authorizer, Authorizer)
    can = authorizer.can
    for obj in DATA:
        assert await can(["readonly"], obj, "read")
        assert await can(["user"], obj, "read")
        assert await can(["admin"], obj, "read")
        assert not await can(["auditor"], obj, "read")
    for obj in ("connections", "syncs", "imports"):
        assert not await can(["readonly"], obj, "write")
        assert await can(["user"], obj, "write")
        assert await can(["admin"], obj, "write")
    for obj in ADMIN:
        assert await can(["admin"], obj, "read")
        assert await can(["admin"], obj, "write")
        assert not await can(["user"], obj, "read")
        assert not await can(["readonly"], obj, "read")
    assert await can(["auditor"], "admin/audit_events", "read")
    assert not await can(["auditor"], "admin/audit_events", "write")
    assert not await can(["auditor"], "admin/users", "read")
    for role in ("readonly", "user", "admin", "auditor"):
        assert await can([role], "users/me", "read")
        assert await can([role], "sessions", "write")


async def test_deny_by_default(authorizer: CasbinAuthorizer) -> None:
    assert not await authorizer.can([], "accounts", "read")
    assert not await authorizer.can(["superuser"], "accounts", "read")
    assert not await authorizer.can(["user"], "unknown", "read")
    assert not await authorizer.can(["user"], "accounts", "delete")
    assert not await authorizer.can(["user"], "admin", "read")
    assert not await authorizer.can(["admin"], "adminx/users", "read")
    assert await authorizer.can(["readonly", "auditor"], "admin/audit_events", "read")
    with pytest.raises(PermissionDenied):
        await authorizer.require(["user"], "admin/users", "write")
    await authorizer.require(["admin"], "admin/users", "write")


async def test_fails_closed_when_store_is_down_and_recovers() -> None:
    store = FlakyStore()
    clock = Clock()
    authorizer = CasbinAuthorizer(store, retry_interval=5, reload_interval=60, clock=clock)
    assert not await authorizer.can(["admin"], "admin/users", "write")
    assert not authorizer.loaded
    with pytest.raises(PermissionDenied):
        await authorizer.require(["admin"], "accounts", "read")
    assert store.calls == 1  # no retry storm within the retry interval
    store.fail = False
    clock.now = 6
    assert await authorizer.can(["admin"], "admin/users", "write")
    # a failed reload later drops the policy instead of serving stale grants
    store.fail = True
    clock.now = 70
    assert not await authorizer.can(["admin"], "admin/users", "write")


async def test_bad_rows_fail_closed() -> None:
    bad = InMemoryPolicyStore([PolicyRow("x", "a", "b", "c")])
    assert not await CasbinAuthorizer(bad).can(["a"], "b", "c")
    with pytest.raises(ValueError):
        build_enforcer([PolicyRow("p", "a", "b")])


async def test_policies_are_data_and_changes_apply_on_reload() -> None:
    store = InMemoryPolicyStore()
    authorizer = CasbinAuthorizer(store, reload_interval=None)
    assert not await authorizer.can(["readonly"], "connections", "write")
    store.rows.append(PolicyRow("p", "readonly", "connections", "write"))
    assert not await authorizer.can(["readonly"], "connections", "write")  # cached policy
    assert await authorizer.reload()
    assert await authorizer.can(["readonly"], "connections", "write")


async def test_casbin_rule_table_store(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rbac.db'}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: casbin_rule.create(c))
            await conn.execute(insert(casbin_rule), SqlAlchemyPolicyStore.seed_rows())
        store = SqlAlchemyPolicyStore(engine)
        rows = await store.load()
        assert rows == default_policies()
        authorizer = CasbinAuthorizer(store)
        assert await authorizer.can(["admin"], "transactions", "read")
        assert not await authorizer.can(["readonly"], "imports", "write")
    finally:
        await engine.dispose()


async def test_unreachable_database_denies(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        authorizer = CasbinAuthorizer(SqlAlchemyPolicyStore(engine))
        assert not await authorizer.can(["admin"], "accounts", "read")
    finally:
        await engine.dispose()
