"""``dashtam plugins``: the installed provider plugins."""

from __future__ import annotations

from typing import Annotated

import typer


def plugins(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the GET /api/v1/providers body.")
    ] = False,
) -> None:
    """List installed provider plugins (slug, distribution, version, auth, capabilities, hooks)."""
    from dashtam_api.schemas.providers import provider_listing
    from dashtam_api.settings import ApiSettings
    from dashtam_core.plugins.manager import build_plugin_manager

    settings = ApiSettings()
    only = settings.load_plugins.split(",") if settings.load_plugins else None
    loaded = build_plugin_manager(load_only=only)
    listing = provider_listing(loaded.providers)
    if as_json:
        typer.echo(listing.model_dump_json())
        return
    if not listing.data:
        typer.echo("no provider plugins installed", err=True)
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Provider plugins")
    for column in ("slug", "distribution", "version", "auth type", "capabilities", "hooks"):
        table.add_column(column)
    for provider in loaded.providers:
        row = next(p for p in listing.data if p.slug == provider.spec.slug)
        plugin_name = provider.entry_point.split(":")[0]
        hooks = _hooks_of(loaded.hooks, provider.spec.slug, plugin_name)
        table.add_row(
            row.slug,
            row.distribution,
            row.version,
            str(row.auth_type),
            ", ".join(row.capabilities),
            ", ".join(hooks),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def _hooks_of(hooks: dict[str, list[str]], slug: str, module: str) -> list[str]:
    if slug in hooks:
        return hooks[slug]
    return hooks.get(module, [])


__all__ = ["plugins"]
