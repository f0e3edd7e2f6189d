"""``dashtam import FILE --user EMAIL``: import a statement file.

Audited as ``import.create`` by the user, in the import's transaction (a failure when the file
is refused), by the application service with the CLI origin; see
:mod:`dashtam_api.cli.auditing`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dashtam_api.cli.auditing import cli_origin
from dashtam_api.cli.data import (
    JsonOption,
    UserOption,
    echo_json,
    parse_uuid,
    run_with_container,
    show_progress,
    stderr_console,
    unwrap,
    user_id_for,
)

if TYPE_CHECKING:
    from dashtam_core.application.container import Container


def import_file(
    file: Annotated[Path, typer.Argument(help="Statement file (.qfx .ofx .qbo .csv).")],
    user: UserOption,
    provider: Annotated[str | None, typer.Option("--provider", help="Provider slug.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Account id.")] = None,
    connection: Annotated[
        str | None, typer.Option("--connection", help="Existing file connection id.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import a statement file; print the accounts and the counts added/skipped."""
    from dashtam_core.errors import ValidationError

    if not file.is_file():
        raise ValidationError(f"no such file: {file}")
    data = file.read_bytes()
    account_id = parse_uuid(account, "account") if account else None
    connection_id = parse_uuid(connection, "connection") if connection else None

    async def work(c: Container) -> dict[str, Any]:
        from rich.progress import Progress, SpinnerColumn, TextColumn

        from dashtam_core.application.imports import import_statement

        uid = await user_id_for(c, user)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            console=stderr_console(),
            transient=True,
            disable=not show_progress(),
        ) as bar:
            bar.add_task(f"importing {file.name}", total=None)
            result = await import_statement(
                c,
                uid,
                file.name,
                data,
                provider=provider,
                account_id=account_id,
                connection_id=connection_id,
                origin=cli_origin(uid),
            )
        return dict(unwrap(result).as_dict())

    out = run_with_container(work)
    if as_json:
        echo_json(out)
        return
    typer.echo(
        f"imported {file.name}: {out['transactions_added']} added, "
        f"{out['transactions_skipped']} skipped into {len(out['accounts'])} account(s) "
        f"(connection {out['connection_id']})"
    )
    for acc in out["accounts"]:
        typer.echo(f"  account {acc}")


__all__ = ["import_file"]
