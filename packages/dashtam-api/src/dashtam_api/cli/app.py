"""The ``dashtam`` command: ``serve``, ``db``, ``plugins``, ``new-provider``.

Command modules import their heavy dependencies (FastAPI, SQLAlchemy, uvicorn) inside the
command functions, so ``dashtam --help`` stays fast.
"""

from __future__ import annotations

import typer

from dashtam_api import __version__
from dashtam_api.cli import audit as audit_cmd
from dashtam_api.cli import (
    connect,
    data,
    db,
    export,
    importing,
    jobs,
    keys,
    plugins,
    reprocess,
    scaffold,
    serve,
    users,
)
from dashtam_api.cli import sync as sync_cmd
from dashtam_api.cli.errors import DashtamGroup


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dashtam {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="dashtam",
    cls=DashtamGroup,
    help="Dashtam: financial data aggregation. Settings come from DASHTAM_* variables or .env.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Dashtam: financial data aggregation. Settings come from DASHTAM_* variables or .env."""


app.command("serve")(serve.serve)
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(keys.app, name="keys")
app.command("plugins")(plugins.plugins)
app.command("new-provider")(scaffold.new_provider)
# Data commands (connections, sync, imports, listings, exports).
app.command("connect")(connect.connect)
app.command("connections")(connect.connections)
app.command("disconnect")(connect.disconnect)
app.command("sync")(sync_cmd.sync)
app.command("import")(importing.import_file)
app.command("accounts")(data.accounts)
app.command("transactions")(data.transactions)
app.command("holdings")(data.holdings)
app.add_typer(export.app, name="export")
app.command("reprocess")(reprocess.reprocess)
app.command("worker")(jobs.worker)
app.command("scheduler")(jobs.scheduler)


def main() -> None:
    """Console-script entry point (``dashtam``)."""
    app(prog_name="dashtam")


if __name__ == "__main__":
    main()

__all__ = ["app", "main"]
