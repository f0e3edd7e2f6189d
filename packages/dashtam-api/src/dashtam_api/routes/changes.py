"""``GET /api/v1/transactions/changes``: the change feed (added / modified / removed).

Mounted before ``/api/v1/transactions/{id}`` so ``changes`` is never taken for an id. The feed
reads the change log in commit order (see :mod:`dashtam_core.sync.changes`): a client that
stores ``next_cursor`` and passes it back never misses a change, even with concurrent writers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.registry import RouteSpec
from dashtam_api.routes.data import AUTH_ERRORS, EngineDep
from dashtam_api.schemas.data import ChangesOut, TransactionOut
from dashtam_core.application import queries


async def transaction_changes(
    principal: CurrentPrincipal,
    engine: EngineDep,
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="The previous `next_cursor`; empty = from the start."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 100,
) -> ChangesOut:
    """Every change to the caller's transactions since the cursor, in order, never skipping one."""
    async with engine.connect() as conn:
        page, next_cursor = await queries.change_feed(conn, principal.user_id, cursor, limit)
    return ChangesOut(
        added=[TransactionOut.of(t) for t in page.added],
        modified=[TransactionOut.of(t) for t in page.modified],
        removed=list(page.removed),
        next_cursor=next_cursor,
        has_more=page.has_more,
    )


ROUTES = (
    RouteSpec(
        name="transactions.changes",
        method="GET",
        path="/api/v1/transactions/changes",
        handler=transaction_changes,
        auth="user",
        rate_limit="read_user",
        policy=("transactions", "read"),
        response_model=ChangesOut,
        errors=(*AUTH_ERRORS, "invalid_cursor"),
        tags=("financial data",),
    ),
)

__all__ = ["ROUTES", "transaction_changes"]
