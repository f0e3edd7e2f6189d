"""The ``dashtam`` command: ``serve``, ``db``, ``plugins``, ``new-provider``.

Command modules import their heavy dependencies (FastAPI, SQLAlchemy, uvicorn) inside the
command functions, so ``dashtam --help`` stays fast.
"""

from __future__ import annotations

import typer

from dashtam_api import __version__
from dashtam_api.cli import db, plugins, scaffold, serve
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
app.command("plugins")(plugins.plugins)
app.command("new-provider")(scaffold.new_provider)


def main() -> None:
    """Console-script entry point (``dashtam``)."""
    app(prog_name="dashtam")


if __name__ == "__main__":
    main()

__all__ = ["app", "main"]
