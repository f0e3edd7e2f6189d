"""Financial data reads: accounts, balance history, transactions, holdings, net worth.

Everything is scoped to the caller: another user's account or transaction answers exactly like
a missing one (404 ``not_found``). Reads go straight to the engine (one short connection each).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query
from starlette.responses import Response

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.deps import EngineDep, ReadEngineDep
from dashtam_api.registry import RouteSpec
from dashtam_api.schemas.data import (
    AccountList,
    AccountOut,
    BalanceHistory,
    BalancePointOut,
    HoldingList,
    HoldingOut,
    NetWorthOut,
    NetWorthPointOut,
    TransactionList,
    TransactionOut,
    transaction_page_json,
)
from dashtam_core.application import queries
from dashtam_core.domain.account import AccountType
from dashtam_core.domain.transaction import TransactionStatus, TransactionType
from dashtam_core.errors import NotFound

Limit = Annotated[
    int,
    Query(ge=1, le=queries.MAX_LIMIT, description="Page size (default 50, max 500)."),
]
Cursor = Annotated[
    str | None,
    Query(max_length=512, description="The `next_cursor` of the previous page."),
]
#: Errors every authenticated route can answer.
AUTH_ERRORS = ("unauthorized", "invalid_token", "token_revoked", "forbidden")
_ACCOUNT_MISSING = "account not found"


def _today() -> date:
    return datetime.now(UTC).date()


async def list_accounts(
    principal: CurrentPrincipal,
    engine: EngineDep,
    type: AccountType | None = None,
    connection_id: UUID | None = None,
) -> AccountList:
    """The caller's accounts with balances (investment: total value / cash)."""
    async with engine.connect() as conn:
        found = await queries.list_accounts(
            conn, principal.user_id, type=type, connection_id=connection_id
        )
    return AccountList(data=[AccountOut.of(a) for a in found])


async def get_account(principal: CurrentPrincipal, engine: EngineDep, id: UUID) -> AccountOut:
    """One of the caller's accounts."""
    async with engine.connect() as conn:
        account = await queries.get_account(conn, principal.user_id, id)
    if account is None:
        raise NotFound(_ACCOUNT_MISSING)
    return AccountOut.of(account)


async def balance_history(
    principal: CurrentPrincipal,
    engine: EngineDep,
    id: UUID,
    start: date | None = None,
    end: date | None = None,
) -> BalanceHistory:
    """The account's daily balances in [start, end] (newest known balance carried forward)."""
    async with engine.connect() as conn:
        account = await queries.get_account(conn, principal.user_id, id)
        if account is None:
            raise NotFound(_ACCOUNT_MISSING)
        points = await queries.balance_series(
            conn, principal.user_id, id, start=start, end=end, today=_today()
        )
    return BalanceHistory(
        data=[BalancePointOut.of(p) for p in points or []], currency=account.currency
    )


async def list_transactions(
    principal: CurrentPrincipal,
    engine: ReadEngineDep,
    account_id: UUID | None = None,
    start: Annotated[date | None, Query(description="First posted date (inclusive).")] = None,
    end: Annotated[date | None, Query(description="Last posted date (inclusive).")] = None,
    type: TransactionType | None = None,
    status: TransactionStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Text search.")] = None,
    limit: Limit = queries.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The caller's transactions, newest first, keyset-paginated."""
    flt = queries.TransactionFilter(
        account_id=account_id, start=start, end=end, type=type, status=status, q=q
    )
    async with engine.connect() as conn:
        rows, next_cursor = await queries.transaction_rows(
            conn, principal.user_id, flt, limit=limit, cursor=cursor, api_only=True
        )
    # Serialized straight from the rows (same JSON as TransactionList; performance.md S1).
    return Response(transaction_page_json(rows, next_cursor), media_type="application/json")


async def get_transaction(
    principal: CurrentPrincipal, engine: EngineDep, id: UUID
) -> TransactionOut:
    """One of the caller's transactions."""
    async with engine.connect() as conn:
        tx = await queries.get_transaction(conn, principal.user_id, id)
    if tx is None:
        raise NotFound("transaction not found")
    return TransactionOut.of(tx)


async def list_holdings(
    principal: CurrentPrincipal, engine: EngineDep, account_id: UUID | None = None
) -> HoldingList:
    """The caller's open positions with cost basis (total and per unit) and unrealized gain."""
    async with engine.connect() as conn:
        found = await queries.list_holdings(conn, principal.user_id, account_id=account_id)
    return HoldingList(data=[HoldingOut.of(h) for h in found])


async def net_worth(
    principal: CurrentPrincipal,
    engine: EngineDep,
    start: date | None = None,
    end: date | None = None,
    currency: Annotated[str, Query(pattern="^[A-Za-z]{3}$")] = "USD",
) -> NetWorthOut:
    """Daily assets, liabilities and net worth over the caller's accounts in one currency."""
    async with engine.connect() as conn:
        points = await queries.net_worth_series(
            conn, principal.user_id, start=start, end=end, today=_today(), currency=currency
        )
    return NetWorthOut(data=[NetWorthPointOut.of(p) for p in points], currency=currency.upper())


def _read(
    name: str,
    path: str,
    handler: object,
    obj: str,
    model: object,
    errors: tuple[str, ...] = (),
) -> RouteSpec:
    return RouteSpec(
        name=name,
        method="GET",
        path=path,
        handler=handler,  # type: ignore[arg-type]
        auth="user",
        rate_limit="read_user",
        policy=(obj, "read"),
        response_model=model,
        errors=(*AUTH_ERRORS, *errors),
        tags=("financial data",),
    )


ROUTES = (
    _read("accounts.list", "/api/v1/accounts", list_accounts, "accounts", AccountList),
    _read(
        "accounts.get",
        "/api/v1/accounts/{id}",
        get_account,
        "accounts",
        AccountOut,
        ("not_found",),
    ),
    _read(
        "accounts.balance_history",
        "/api/v1/accounts/{id}/balance-history",
        balance_history,
        "accounts",
        BalanceHistory,
        ("not_found", "validation_error"),
    ),
    _read(
        "transactions.list",
        "/api/v1/transactions",
        list_transactions,
        "transactions",
        TransactionList,
        ("invalid_cursor",),
    ),
    _read(
        "transactions.get",
        "/api/v1/transactions/{id}",
        get_transaction,
        "transactions",
        TransactionOut,
        ("not_found",),
    ),
    _read("holdings.list", "/api/v1/holdings", list_holdings, "holdings", HoldingList),
    _read(
        "net_worth.get",
        "/api/v1/net-worth",
        net_worth,
        "net_worth",
        NetWorthOut,
        ("validation_error",),
    ),
)

__all__ = [
    "AUTH_ERRORS",
    "EngineDep",
    "ROUTES",
    "balance_history",
    "get_account",
    "get_transaction",
    "list_accounts",
    "list_holdings",
    "list_transactions",
    "net_worth",
]
