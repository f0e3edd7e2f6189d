"""``GET /.well-known/jwks.json``: the public keys that verify access tokens (RFC 7517)."""

from __future__ import annotations

from pydantic import BaseModel

from dashtam_api.auth import RateLimited, SecurityDep
from dashtam_api.registry import RouteSpec


class Jwk(BaseModel):
    """One Ed25519 public key (RFC 8037)."""

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class JwkSet(BaseModel):
    """The published key set: pending, active and recently retired keys."""

    keys: list[Jwk]


async def jwks(kit: SecurityDep, _: RateLimited) -> JwkSet:
    """Public keys that verify access tokens (published before they sign)."""
    kit.reload_keyring_if_changed()
    return JwkSet(keys=[Jwk(**key) for key in kit.keyring.jwks()["keys"]])


ROUTES = (
    RouteSpec(
        name="system.jwks",
        method="GET",
        path="/.well-known/jwks.json",
        handler=jwks,
        auth="public",
        rate_limit="read_user",
        response_model=JwkSet,
        tags=("system",),
    ),
)

__all__ = ["ROUTES", "Jwk", "JwkSet", "jwks"]
