"""``dashtam new-provider``: scaffold a third-party provider package."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class AuthChoice(StrEnum):
    """How the new provider authenticates."""

    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    FILE_IMPORT = "file_import"


def new_provider(
    name: Annotated[str, typer.Argument(help="Provider slug, e.g. 'acmebank'.")],
    auth: Annotated[AuthChoice, typer.Option(help="Authentication style.")] = AuthChoice.API_KEY,
    dest: Annotated[
        Path, typer.Option(help="Directory in which the package directory is created.")
    ] = Path("."),
) -> None:
    """Scaffold a provider package that passes the conformance kit out of the box."""
    from dashtam_core.domain.connection import AuthType
    from dashtam_core.scaffold import scaffold_provider

    created = scaffold_provider(name, AuthType(auth.value), dest)
    typer.echo(f"created {created}")
    typer.echo(f"next: cd {created} && pip install -e . && pytest")


__all__ = ["AuthChoice", "new_provider"]
