"""``dashtam keys generate`` / ``dashtam keys rotate``: key files in ``DASHTAM_SECRET_DIR``.

``keys rotate`` is audited (``admin.keys.rotate`` in the re-encryption transaction, and one
more for the new JWT signing key with ``--jwt``), with the CLI origin of
:mod:`dashtam_api.cli.auditing`. ``keys generate`` only creates missing key files, usually before
the database exists, never replaces a key and changes no stored data: it is not audited.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dashtam_core.application.admin import KeyRotation
    from dashtam_core.application.security_kit import SecurityKit

app = typer.Typer(help="Create and rotate keys.", no_args_is_help=True)


@app.command("generate")
def generate(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create every missing key file (JWT signing, vault, token and audit HMAC); never overwrite."""
    from dashtam_api.settings import ApiSettings
    from dashtam_core.adapters.security.keys import generate_all_keys

    settings = ApiSettings()
    report = generate_all_keys(settings.secret_dir)
    if as_json:
        typer.echo(json.dumps({"secret_dir": str(settings.secret_dir), "keys": report}))
        return
    for name, state in sorted(report.items()):
        typer.echo(f"{settings.secret_dir / name}: {state}")


@app.command("rotate")
def rotate(
    jwt: Annotated[bool, typer.Option("--jwt", help="Also publish a new JWT signing key.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Re-encrypt every stored credential under a new vault key (one transaction)."""
    from dashtam_api.cli.auditing import CliAuditor, cli_origin
    from dashtam_api.cli.users import run_with_kit
    from dashtam_core.adapters.security.keys import rotate_signing_key
    from dashtam_core.adapters.security.vault import CredentialVault
    from dashtam_core.application.admin import reencrypt_credentials
    from dashtam_core.errors import ConfigurationError

    async def work(kit: SecurityKit) -> tuple[KeyRotation, str | None]:
        secret_dir = kit.settings.secret_dir
        try:
            current = CredentialVault.load(secret_dir, environ={})
        except ConfigurationError:
            raise ConfigurationError(
                f"no vault key file in {secret_dir} (keys from DASHTAM_VAULT_KEYS are rotated "
                "by whoever provisions that variable)"
            ) from None
        rotated = current.rotated()
        rotated.save(secret_dir)  # old keys stay in the ring until every blob moved
        kit.vault = rotated
        result = await reencrypt_credentials(kit, rotated, origin=cli_origin())
        rotated.without_keys_except_primary().save(secret_dir)
        if not jwt:
            return result, None
        kid = rotate_signing_key(secret_dir)
        await CliAuditor(kit.engine, kit.audit_key).record(
            "admin.keys.rotate", actor=None, object_type="jwt_signing_key", object_id=kid
        )
        return result, kid

    result, kid = run_with_kit(work)
    payload = {
        "vault_key_id": result.new_key_id,
        "credentials_reencrypted": result.reencrypted,
        "mfa_secrets_reencrypted": result.mfa_secrets,
        "jwt_kid": kid,
    }
    if as_json:
        typer.echo(json.dumps(payload))
        return
    typer.echo(
        f"vault key {result.new_key_id}: {result.reencrypted} credentials and "
        f"{result.mfa_secrets} MFA secrets re-encrypted"
    )
    if kid:
        typer.echo(f"new JWT signing key {kid} published (signs in 5 minutes)")


__all__ = ["app", "generate", "rotate"]
