"""``dashtam audit verify``: check the audit trail's HMAC hash chain.

The check is itself audited (``audit.verify``, like the API's verification endpoint), with the
CLI origin of :mod:`dashtam_api.cli.auditing`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from dashtam_api.cli.errors import USER_ERROR

if TYPE_CHECKING:
    from dashtam_core.application.security_kit import SecurityKit

app = typer.Typer(help="Audit trail tools.", no_args_is_help=True)


@app.command("verify")
def verify(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Verify the hash chain; exit 1 and name the first bad record if it is broken."""
    from dashtam_api.cli.auditing import CliAuditor
    from dashtam_api.cli.users import run_with_kit
    from dashtam_core.application.audit import verify_audit_trail
    from dashtam_core.ports.audit import VerificationResult

    async def work(kit: SecurityKit) -> VerificationResult:
        result = await verify_audit_trail(kit.engine, kit.audit_key)
        await CliAuditor(kit.engine, kit.audit_key).record(
            "audit.verify",
            actor=None,
            object_type="audit_events",
            details={"valid": result.valid, "checked": result.checked},
        )
        return result

    result = run_with_kit(work)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    elif result.valid:
        typer.echo(f"audit trail intact: {result.checked} records verified")
    else:
        typer.echo(
            f"audit trail BROKEN at record {result.first_bad_id} "
            f"({result.checked} records checked)",
            err=True,
        )
    if not result.valid:
        raise typer.Exit(USER_ERROR)


__all__ = ["app", "verify"]
