"""``dashtam export transactions --user EMAIL --format csv|json|ofx [-o FILE]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dashtam_api.cli.data import UserOption, parse_date, parse_uuid, run_with_container, user_id_for

if TYPE_CHECKING:
    from dashtam_core.application.container import Container

app = typer.Typer(help="Export data.", no_args_is_help=True)


@app.command("transactions")
def export_transactions(
    user: UserOption,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or ofx.")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write here.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Account id.")] = None,
    start: Annotated[str | None, typer.Option("--start", help="From YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="To YYYY-MM-DD.")] = None,
) -> None:
    """Export the user's transactions (stdout unless -o)."""
    from dashtam_core.application import exports

    if fmt not in exports.EXPORT_FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(exports.EXPORT_FORMATS)}")
    account_id = parse_uuid(account, "account") if account else None
    first, last = parse_date(start, "--start"), parse_date(end, "--end")

    async def work(c: Container) -> bytes:
        uid = await user_id_for(c, user)
        return await exports.export_transactions(
            c, uid, fmt, account_id=account_id, start=first, end=last
        )

    body = run_with_container(work)
    if output is None:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(body)
        typer.echo(f"wrote {len(body)} bytes to {output}", err=True)


__all__ = ["app", "export_transactions"]
