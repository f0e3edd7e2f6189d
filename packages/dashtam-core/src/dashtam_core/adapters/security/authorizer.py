"""Casbin RBAC authorizer: roles ``admin`` ⊃ ``user`` ⊃ ``readonly``, plus ``auditor``.

Objects are resource paths (``accounts``, ``admin/users``, ...) and actions ``read`` / ``write``;
the route registry names one ``(obj, act)`` per route. Policies are data
(:func:`default_policies`, seeded into ``casbin_rule`` by a migration) loaded from a
:class:`PolicyStore`. The authorizer fails closed: if the store cannot be loaded every check
answers False (and :meth:`CasbinAuthorizer.require` raises ``PermissionDenied``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import casbin

from dashtam_core.errors import PermissionDenied

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

ROLES = ("admin", "user", "readonly", "auditor")
#: Objects every signed-in role reads or writes for itself.
_SELF = ("users/me", "sessions")
#: The caller's own financial data.
_DATA = (
    "providers",
    "connections",
    "syncs",
    "imports",
    "accounts",
    "transactions",
    "holdings",
    "net_worth",
    "exports",
    "events",
)
#: What ``user`` may change beyond ``readonly``.
_USER_WRITES = ("connections", "syncs", "imports")


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One ``casbin_rule`` row: ``ptype`` (``p`` or ``g``) and values ``v0..v5``."""

    ptype: str
    v0: str
    v1: str
    v2: str | None = None
    v3: str | None = None
    v4: str | None = None
    v5: str | None = None

    @property
    def values(self) -> list[str]:
        """The non-empty values, in order."""
        vals = (self.v0, self.v1, self.v2, self.v3, self.v4, self.v5)
        return [v for v in vals if v is not None and v != ""]


def default_policies() -> list[PolicyRow]:
    """The rows a migration seeds into ``casbin_rule``."""
    rows = [PolicyRow("g", "user", "readonly"), PolicyRow("g", "admin", "user")]
    for role in ("readonly", "auditor"):
        rows += [PolicyRow("p", role, obj, act) for obj in _SELF for act in ("read", "write")]
    rows += [PolicyRow("p", "readonly", obj, "read") for obj in _DATA]
    rows += [PolicyRow("p", "user", obj, "write") for obj in _USER_WRITES]
    rows.append(PolicyRow("p", "auditor", "admin/audit_events", "read"))
    rows.append(PolicyRow("p", "admin", "admin/*", "*"))
    return rows


def model_text() -> str:
    """The Casbin model (``rbac_model.conf`` shipped in this package)."""
    return files("dashtam_core.adapters.security").joinpath("rbac_model.conf").read_text()


@runtime_checkable
class PolicyStore(Protocol):
    """Where policy rows live."""

    async def load(self) -> Sequence[PolicyRow]:
        """Return every policy row; raise on failure (the authorizer then denies everything)."""
        ...


class InMemoryPolicyStore:
    """Policy rows held in memory (embedded default, tests)."""

    def __init__(self, rows: Iterable[PolicyRow] | None = None) -> None:
        self.rows = list(default_policies() if rows is None else rows)

    async def load(self) -> Sequence[PolicyRow]:
        """Return the rows."""
        return list(self.rows)


class SqlAlchemyPolicyStore:
    """Reads the ``casbin_rule`` table (SQLAlchemy Core, async).

    Args:
        engine: an async engine.
        table: the ``casbin_rule`` table (default: the one in ``adapters.sqlalchemy.tables``).
    """

    def __init__(self, engine: AsyncEngine, table: Table | None = None) -> None:
        if table is None:
            from dashtam_core.adapters.sqlalchemy.tables import casbin_rule

            table = casbin_rule
        self._engine = engine
        self._table = table

    async def load(self) -> Sequence[PolicyRow]:
        """Select every row of ``casbin_rule``."""
        from sqlalchemy import select

        c = self._table.c
        stmt = select(c.ptype, c.v0, c.v1, c.v2, c.v3, c.v4, c.v5).order_by(c.id)
        async with self._engine.connect() as conn:
            result = await conn.execute(stmt)
            return [PolicyRow(*row) for row in result.all() if row[0] and row[1] and row[2]]

    @staticmethod
    def seed_rows(rows: Iterable[PolicyRow] | None = None) -> list[dict[str, Any]]:
        """Insert parameters for ``rows`` (default policies) — for migrations and tests."""
        return [
            {
                "ptype": r.ptype,
                "v0": r.v0,
                "v1": r.v1,
                "v2": r.v2,
                "v3": r.v3,
                "v4": r.v4,
                "v5": r.v5,
            }
            for r in (default_policies() if rows is None else rows)
        ]


def build_enforcer(rows: Iterable[PolicyRow]) -> casbin.Enforcer:
    """A Casbin enforcer with the Dashtam model and ``rows``.

    Raises:
        ValueError: a row has an unknown ``ptype`` or the wrong arity.
    """
    model = casbin.Model()
    model.load_model_from_text(model_text())
    enforcer = casbin.Enforcer(model)
    policies, groupings = [], []
    for row in rows:
        values = row.values
        if row.ptype == "p" and len(values) == 3:
            policies.append(values)
        elif row.ptype == "g" and len(values) == 2:
            groupings.append(values)
        else:
            raise ValueError(f"bad policy row {row!r}")
    if policies:
        enforcer.add_policies(policies)
    if groupings:
        enforcer.add_grouping_policies(groupings)
    return enforcer


class CasbinAuthorizer:
    """Async, caching, fail-closed RBAC checks.

    Args:
        store: the policy store.
        reload_interval: seconds between policy reloads (None: load once).
        retry_interval: seconds before retrying a failed load (checks deny meanwhile).
        clock: monotonic clock.
    """

    def __init__(
        self,
        store: PolicyStore,
        *,
        reload_interval: float | None = 60.0,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._reload_interval = reload_interval
        self._retry_interval = retry_interval
        self._clock = clock
        self._enforcer: casbin.Enforcer | None = None
        self._next_load = 0.0
        self._cache: dict[tuple[str, str, str], bool] = {}

    @property
    def loaded(self) -> bool:
        """True when a policy set is in force."""
        return self._enforcer is not None

    async def reload(self) -> bool:
        """Load the policies now; on failure drop them (fail closed) and return False."""
        now = self._clock()
        try:
            enforcer = build_enforcer(await self._store.load())
        except Exception:  # any failure of the store or its data closes the gate
            logger.exception("authorizer: policy store unavailable; denying all requests")
            self._enforcer = None
            self._cache = {}
            self._next_load = now + self._retry_interval
            return False
        self._enforcer = enforcer
        self._cache = {}
        self._next_load = (
            now + self._reload_interval if self._reload_interval is not None else float("inf")
        )
        return True

    async def can(self, roles: Sequence[str], obj: str, act: str) -> bool:
        """True when one of ``roles`` may perform ``act`` on ``obj``; False on any failure."""
        if self._clock() >= self._next_load:
            await self.reload()
        enforcer = self._enforcer
        if enforcer is None:
            return False
        cache = self._cache
        for role in roles:
            key = (role, obj, act)
            allowed = cache.get(key)
            if allowed is None:
                try:
                    allowed = bool(enforcer.enforce(role, obj, act))
                except Exception:  # a broken policy must deny, not crash open
                    logger.exception("authorizer: enforce failed")
                    return False
                cache[key] = allowed
            if allowed:
                return True
        return False

    async def require(self, roles: Sequence[str], obj: str, act: str) -> None:
        """Raise ``PermissionDenied`` unless :meth:`can` allows."""
        if not await self.can(roles, obj, act):
            raise PermissionDenied(f"not allowed to {act} {obj}")


__all__ = [
    "ROLES",
    "CasbinAuthorizer",
    "InMemoryPolicyStore",
    "PolicyRow",
    "PolicyStore",
    "SqlAlchemyPolicyStore",
    "build_enforcer",
    "default_policies",
    "model_text",
]
