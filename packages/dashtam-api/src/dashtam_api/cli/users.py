"""``dashtam users create`` / ``dashtam users roles``: manage accounts from the command line.

The password comes from standard input (``--password-stdin``) or ``DASHTAM_PASSWORD``, never from
an argument (arguments are visible to other users of the machine). Both commands are audited
like their API counterparts (``user.register``, ``admin.user.roles``), with the CLI origin of
:mod:`dashtam_api.cli.auditing`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from dashtam_core.application.security_kit import SecurityKit

app = typer.Typer(help="Create users and set their roles.", no_args_is_help=True)
T = TypeVar("T")


@asynccontextmanager
async def open_kit() -> AsyncIterator[SecurityKit]:
    """The security kit on the configured database (migrated first on the SQLite default)."""
    from dashtam_api.settings import ApiSettings
    from dashtam_core.adapters.sqlalchemy.engine import create_engine
    from dashtam_core.application.security_kit import build_security_kit

    settings = ApiSettings()
    if settings.is_sqlite:
        from dashtam_core.adapters.sqlalchemy.migrate import ensure_schema

        await ensure_schema(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        yield build_security_kit(settings, engine)
    finally:
        await engine.dispose()


def run_with_kit(work: Callable[[SecurityKit], Awaitable[T]]) -> T:
    """Run ``work(kit)`` on a fresh kit and event loop."""

    async def main() -> T:
        async with open_kit() as kit:
            return await work(kit)

    return asyncio.run(main())


def _password(from_stdin: bool) -> str:
    from dashtam_core.errors import ValidationError

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = os.environ.get("DASHTAM_PASSWORD", "")
    if not password:
        raise ValidationError("no password: use --password-stdin or set DASHTAM_PASSWORD")
    return password


@app.command("create")
def create(
    email: Annotated[str, typer.Argument(help="Email address (the login).")],
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    verified: Annotated[
        bool, typer.Option("--verified", help="Mark the email verified (no mail).")
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a user (password from stdin or DASHTAM_PASSWORD; policy enforced)."""
    from dashtam_api.cli.auditing import cli_origin
    from dashtam_core.application import identity
    from dashtam_core.domain.user import Role

    password = _password(password_stdin)
    roles = [Role.ADMIN] if admin else [Role.USER]

    async def work(kit: SecurityKit) -> identity.Registered:
        created = await identity.register(
            kit, email, password, origin=cli_origin(), roles=roles, verified=verified
        )
        if not verified:
            await kit.mailer.send(created.mail)
        return created

    user = run_with_kit(work).user
    if as_json:
        view = identity.user_view(user)
        typer.echo(json.dumps(view, default=str))
        return
    typer.echo(f"created {user.email} ({user.id}) roles={','.join(map(str, user.roles))}")


@app.command("roles")
def roles(
    email: Annotated[str, typer.Argument(help="The user's email.")],
    set_: Annotated[str, typer.Option("--set", help="Comma-separated roles, e.g. admin,user.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Replace a user's roles (their sessions are revoked)."""
    from dashtam_api.cli.auditing import cli_origin
    from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
    from dashtam_core.application import admin
    from dashtam_core.application.sessions import normalize_email
    from dashtam_core.errors import NotFound

    wanted = [r.strip() for r in set_.split(",") if r.strip()]

    async def work(kit: SecurityKit) -> dict[str, Any]:
        async with SqlAlchemyUnitOfWork(kit.engine) as uow:
            user = await uow.users.get_by_email(normalize_email(email))
        if user is None:
            raise NotFound(f"no user {email!r}")
        return await admin.set_roles(kit, user.id, wanted, origin=cli_origin())

    view = run_with_kit(work)
    if as_json:
        typer.echo(json.dumps(view, default=str))
        return
    typer.echo(f"{view['email']}: roles={','.join(view['roles'])}")


__all__ = ["app", "create", "open_kit", "roles", "run_with_kit"]
