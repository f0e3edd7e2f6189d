"""``dashtam accounts`` / ``transactions`` / ``holdings``, and the helpers every data command uses.

Each command builds one application :class:`~dashtam_core.application.container.Container` from
the same settings as the server (``DASHTAM_*``), with sandboxed providers reached in-process
(``DASHTAM_SANDBOX=true`` works without a running server), and closes it before exiting. On the
embedded SQLite default the database is created and migrated on first use.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from uuid import UUID

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from dashtam_core.application.container import Container, SandboxTransport

T = TypeVar("T")

UserOption = Annotated[str, typer.Option("--user", help="Email of the user.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


async def _server_answers(base_url: str) -> bool:
    """True when a Dashtam server with its sandboxes mounted answers at ``base_url``.

    Any other server on that address (a Dashtam without ``--sandbox``, something else) is
    ignored, and the CLI runs the simulators in-process instead.
    """
    import httpx

    try:
        async with httpx.AsyncClient(timeout=0.5) as client:
            response = await client.get(f"{base_url.rstrip('/')}/health")
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(body, dict) and body.get("status") == "ok" and body.get("sandbox") is True


def run_with_container(work: Callable[[Container], Awaitable[T]]) -> T:
    """Build the container, run ``work`` on it, close it; return ``work``'s result.

    In sandbox mode the providers talk to the simulators of a running ``dashtam serve`` at
    ``DASHTAM_PUBLIC_BASE_URL`` when one answers (so OAuth tokens issued there stay valid),
    else to in-process simulators.
    """

    async def main() -> T:
        from dashtam_api.settings import ApiSettings
        from dashtam_core.application.container import Container

        settings = ApiSettings()
        transport: SandboxTransport = "asgi"
        if settings.sandbox and await _server_answers(settings.public_base_url):
            transport = "http"
        container = await Container.create(settings, sandbox_transport=transport)
        try:
            return await work(container)
        finally:
            await container.aclose()

    return asyncio.run(main())


async def user_id_for(container: Container, email: str) -> UUID:
    """The id of the user with ``email`` (exit 1 with a hint when there is none)."""
    from dashtam_core.errors import NotFound

    normalized = email.strip().lower()
    async with container.uow_factory() as uow:
        user = await uow.users.get_by_email(normalized)
    if user is None:
        raise NotFound(f"no user {email} (create one with dashtam users create)")
    return user.id


def parse_uuid(value: str, what: str) -> UUID:
    """``value`` as a UUID, or a user error naming ``what``."""
    from dashtam_core.errors import ValidationError

    try:
        return UUID(value)
    except ValueError:
        raise ValidationError(f"{what} {value!r} is not a valid id") from None


def parse_date(value: str | None, what: str) -> date | None:
    """``YYYY-MM-DD`` to a date (``None`` stays ``None``)."""
    from dashtam_core.errors import ValidationError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{what} must be a date YYYY-MM-DD, got {value!r}") from None


def unwrap(result: Any) -> Any:
    """The value of an ``Ok``; raise the error of an ``Err`` (the CLI prints it, exit 1)."""
    from dashtam_core.result import Err

    if isinstance(result, Err):
        raise result.error
    return result.value


def echo_json(payload: Any) -> None:
    """Print ``payload`` as one JSON document on stdout."""
    import orjson

    typer.echo(orjson.dumps(payload).decode())


def stderr_console() -> Console:
    """A rich console on stderr (progress bars never mix with ``--json`` on stdout)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def show_progress() -> bool:
    """Progress bars only when stderr is a terminal."""
    return sys.stderr.isatty()


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        justify = (
            "right" if col in ("amount", "current", "available", "quantity", "value") else "left"
        )
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    Console(highlight=False, width=160).print(table)


def accounts(user: UserOption, as_json: JsonOption = False) -> None:
    """List the user's accounts with balances."""
    from dashtam_core.application.exports import account_to_dict

    async def work(c: Container) -> list[dict[str, Any]]:
        uid = await user_id_for(c, user)
        async with c.uow_factory() as uow:
            found = await uow.accounts.list_for_user(uid)
        return [account_to_dict(a) for a in found]

    data = run_with_container(work)
    if as_json:
        echo_json({"data": data})
        return
    rows = [
        [
            a["name"],
            a["provider"],
            a["type"],
            a["balance"]["current"] or "",
            a["balance"]["available"] or "",
            a["currency"],
            a["id"],
        ]
        for a in data
    ]
    _table("Accounts", ["name", "provider", "type", "current", "available", "cur", "id"], rows)


def transactions(
    user: UserOption,
    account: Annotated[str | None, typer.Option("--account", help="Account id.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="From date YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="To date YYYY-MM-DD.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N rows.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the user's transactions (oldest first)."""
    from dashtam_core.application.exports import list_transactions, transaction_to_dict

    account_id = parse_uuid(account, "account") if account else None
    first, last = parse_date(start, "--start"), parse_date(end, "--end")

    async def work(c: Container) -> list[dict[str, Any]]:
        uid = await user_id_for(c, user)
        found = await list_transactions(c, uid, account_id=account_id, start=first, end=last)
        return [transaction_to_dict(t) for t in found]

    data = run_with_container(work)
    if limit is not None:
        data = data[-limit:]
    if as_json:
        echo_json({"data": data})
        return
    rows = [
        [t["date"], t["description"][:48], t["amount"], t["currency"], t["type"], t["status"]]
        for t in data
    ]
    _table("Transactions", ["date", "description", "amount", "cur", "type", "status"], rows)


def holdings(
    user: UserOption,
    account: Annotated[str | None, typer.Option("--account", help="Account id.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List the user's open positions."""
    from dashtam_core.application.exports import holding_to_dict, list_user_holdings

    account_id = parse_uuid(account, "account") if account else None

    async def work(c: Container) -> list[dict[str, Any]]:
        uid = await user_id_for(c, user)
        return [holding_to_dict(h) for h in await list_user_holdings(c, uid, account_id=account_id)]

    data = run_with_container(work)
    if as_json:
        echo_json({"data": data})
        return
    rows = [
        [h["symbol"], h["asset_type"], h["quantity"], h["price"] or "", h["market_value"] or ""]
        for h in data
    ]
    _table("Holdings", ["symbol", "type", "quantity", "price", "value"], rows)


__all__ = [
    "accounts",
    "echo_json",
    "holdings",
    "parse_date",
    "parse_uuid",
    "run_with_container",
    "show_progress",
    "stderr_console",
    "transactions",
    "unwrap",
    "user_id_for",
]
