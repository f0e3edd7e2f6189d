"""Authentication, authorization and rate limiting for routes: the ``authenticated`` dependency.

Every route declared in the route registry names its auth policy, Casbin ``(object, action)``
and rate-limit rule (:class:`~dashtam_api.registry.RouteSpec`). The dependencies here read that
spec from the matched route, so the registry is the single source of truth::

    async def list_accounts(principal: CurrentPrincipal) -> ...      # auth "user"/"admin"/...
    async def login(body: LoginIn, _: RateLimited) -> ...            # auth "public"

:func:`authenticated` (for ``user``/``admin``/``auditor`` routes), per request:

1. takes the ``Authorization: Bearer`` access token and verifies it (pinned EdDSA, ``typ``,
   ``iss``, ``aud``, ``exp``/``nbf``/``iat``, known ``kid``) → 401 ``invalid_token``;
2. applies the route's rate-limit rule keyed by user / session / connection / provider (IETF
   ``RateLimit-Policy`` and ``RateLimit`` headers; 429 ``rate_limited`` with ``Retry-After``);
3. checks revocation in one query (session revoked or expired, user locked by an admin, token
   issued before the user's ``tokens_valid_after``) → 401 ``token_revoked``; a passed check is
   trusted for ``SecurityKit.revocation_cache_seconds`` (1 s) unless this process revokes
   something meanwhile (every revocation clears the cache);
4. authorizes ``roles`` against the route's Casbin policy, deny by default → 403 ``forbidden``
   (audited); if the policy store cannot be loaded every request is refused (fail closed,
   503 ``not_ready``).

:func:`rate_limited` applies the route's rule to public routes, keyed by client IP.
The :class:`~dashtam_core.application.security_kit.SecurityKit` is built on first use from the
app's settings and engine and kept on ``app.state.security``; tests and embedders may set
``app.state.security_options`` (keyword arguments of ``build_security_kit``) before startup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request, Response

from dashtam_api.problems import ServiceNotReady
from dashtam_api.registry import RouteSpec
from dashtam_core.application.access import TokenRevoked, check_session_access
from dashtam_core.application.audit import Origin, audit_failure
from dashtam_core.application.security_kit import SecurityKit, build_security_kit
from dashtam_core.errors import AuthenticationError, PermissionDenied, RateLimitExceeded
from dashtam_core.ports.rate_limit import RateLimitRule, RateLimitScope
from dashtam_core.registries.rate_limits import rate_limit_headers, rate_limit_key
from dashtam_core.result import Err


class InvalidAccessToken(AuthenticationError):
    """The access token is malformed, forged, expired or otherwise not acceptable."""

    code = "invalid_token"


class MissingToken(AuthenticationError):
    """No ``Authorization: Bearer`` access token was sent."""

    code = "unauthorized"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request.

    Attributes:
        user_id: the user (token ``sub``).
        roles: the roles in the token (checked against Casbin).
        session_id: the login session (token ``sid``).
        ip: client IP address.
        user_agent: client ``User-Agent``.
        issued_at: the token's ``iat`` (seconds since the epoch).
    """

    user_id: UUID
    roles: tuple[str, ...]
    session_id: UUID
    ip: str | None = None
    user_agent: str | None = None
    issued_at: int = 0

    @property
    def origin(self) -> Origin:
        """Actor, IP and user agent for audit records."""
        return Origin(self.user_id, self.ip, self.user_agent)


def get_security(request: Request) -> SecurityKit:
    """The application's :class:`SecurityKit` (built on first use, then cached on the app)."""
    state = request.app.state
    kit: SecurityKit | None = getattr(state, "security", None)
    if kit is None or kit.engine is not state.engine:
        options: dict[str, Any] = dict(getattr(state, "security_options", None) or {})
        kit = build_security_kit(state.settings, state.engine, **options)
        state.security = kit
    return kit


async def security_dependency(request: Request) -> SecurityKit:
    """:func:`get_security` as an async dependency (no worker-thread hop)."""
    return get_security(request)


SecurityDep = Annotated[SecurityKit, Depends(security_dependency)]


def client_ip(request: Request) -> str:
    """The peer address of the request (proxies are not trusted)."""
    return request.client.host if request.client is not None else "unknown"


def request_origin(request: Request, actor_id: UUID | None = None) -> Origin:
    """Audit origin of an anonymous (or just identified) request."""
    agent = request.headers.get("user-agent")
    return Origin(actor_id, client_ip(request), agent[:512] if agent else None)


def route_spec(request: Request) -> RouteSpec | None:
    """The registry spec of the matched route, if any."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    registry = getattr(request.app, "route_registry", None)
    if name is None or registry is None:
        return None
    try:
        spec: RouteSpec = registry.get(name)
    except KeyError:
        return None
    return spec


def _path_value(request: Request, *names: str) -> str | None:
    for name in names:
        value = request.path_params.get(name)
        if value:
            return str(value)
    return None


async def enforce_rate_limit(
    kit: SecurityKit,
    rule: RateLimitRule,
    response: Response | None,
    *,
    key: str,
) -> None:
    """Count one hit of ``key`` under ``rule``; set the RateLimit headers or raise 429.

    Raises:
        RateLimitExceeded: the quota is used up (``retry_after`` set).
    """
    if rule.unlimited:
        return
    decision = await kit.rate_limiter.hit(key, rule)
    headers = rate_limit_headers(rule, decision)
    if not decision.allowed:
        raise RateLimitExceeded(
            f"rate limit {rule.name} exceeded; retry later",
            retry_after=float(headers.get("Retry-After", "1")),
            headers={k: v for k, v in headers.items() if k in ("RateLimit-Policy", "RateLimit")},
        )
    if response is not None:
        for name in ("RateLimit-Policy", "RateLimit"):  # several rules: a list per header
            earlier = response.headers.get(name)
            value = headers.get(name)
            if value is not None:
                response.headers[name] = f"{earlier}, {value}" if earlier else value


def _rule_key(
    rule: RateLimitRule, request: Request, principal: Principal | None, route: str
) -> str:
    scope = rule.scope
    ip = client_ip(request)
    user_id = principal.user_id if principal else None
    if scope is RateLimitScope.USER and user_id is not None:
        return rate_limit_key(rule, user_id=user_id)
    if scope is RateLimitScope.SESSION and principal is not None:
        return rate_limit_key(rule, session_id=principal.session_id)
    if scope is RateLimitScope.USER_PROVIDER and user_id is not None:
        provider = _path_value(request, "provider", "slug")
        if provider:
            return rate_limit_key(rule, user_id=user_id, provider=provider)
        return f"{rule.name}:{user_id}"
    if scope is RateLimitScope.CONNECTION:
        connection = _path_value(request, "id", "connection_id")
        if connection:
            return rate_limit_key(rule, connection_id=connection)
    if user_id is not None:
        return f"{rule.name}:{user_id}"
    return f"{rule.name}:{route}:ip:{ip}"  # anonymous: each route has its own IP budget


async def apply_route_rate_limit(
    request: Request, response: Response | None, principal: Principal | None = None
) -> None:
    """Apply the matched route's registry rule (see :func:`rate_limited`)."""
    spec = route_spec(request)
    if spec is None or spec.rate_limit == "none":
        return
    kit = get_security(request)
    rule = kit.rules[spec.rate_limit]
    await enforce_rate_limit(
        kit, rule, response, key=_rule_key(rule, request, principal, spec.name)
    )


async def rate_limited(request: Request, response: Response) -> None:
    """Dependency for public routes: the route's rate-limit rule, keyed by client IP."""
    await apply_route_rate_limit(request, response)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _authenticate(request: Request, response: Response, kit: SecurityKit) -> Principal:
    token = _bearer(request)
    if token is None:
        raise MissingToken("an access token is required (Authorization: Bearer)")
    kit.reload_keyring_if_changed()
    verified = kit.verifier.verify(token)
    if isinstance(verified, Err):
        await audit_failure(
            kit.engine,
            kit.audit_key,
            request_origin(request),
            "auth.token_rejected",
            details={"path": request.url.path},
        )
        raise InvalidAccessToken("the access token is not valid") from None
    claims = verified.value
    try:
        principal = Principal(
            user_id=UUID(claims.sub),
            roles=claims.roles,
            session_id=UUID(claims.sid),
            ip=client_ip(request),
            user_agent=(request.headers.get("user-agent") or "")[:512] or None,
            issued_at=claims.iat,
        )
    except ValueError:
        raise InvalidAccessToken("the access token is not valid") from None
    await apply_route_rate_limit(request, response, principal)
    if not kit.access_recently_checked(claims.sid, claims.sub, claims.iat):
        reason = await check_session_access(kit.engine, claims)
        if reason is not None:
            raise TokenRevoked("the access token has been revoked; sign in again")
        kit.remember_access_check(claims.sid, claims.sub, claims.iat)
    return principal


async def _authorize(
    request: Request, kit: SecurityKit, principal: Principal, policy: tuple[str, str] | None
) -> None:
    if policy is None:
        spec = route_spec(request)
        policy = spec.policy if spec is not None else None
    allowed = policy is not None and await kit.authorizer.can(principal.roles, *policy)
    if allowed:
        return
    if not kit.authorizer.loaded:
        raise ServiceNotReady("authorization is unavailable; try again shortly")
    obj, act = policy or ("?", "?")
    await audit_failure(
        kit.engine,
        kit.audit_key,
        principal.origin,
        "authz.denied",
        object_type="route",
        object_id=f"{request.method} {request.url.path}",
        details={"policy": f"{obj}:{act}", "roles": ",".join(principal.roles)},
    )
    raise PermissionDenied("you are not allowed to do this")


def authenticated(
    policy: tuple[str, str] | None = None,
) -> Callable[[Request, Response], Awaitable[Principal]]:
    """A FastAPI dependency returning the authenticated, authorized :class:`Principal`.

    Args:
        policy: Casbin ``(object, action)`` to check; default: the route's registry policy
            (a route without one is refused: deny by default).

    Returns:
        The dependency callable (use with ``Depends``).
    """

    async def dependency(request: Request, response: Response) -> Principal:
        kit = get_security(request)
        principal = await _authenticate(request, response, kit)
        await _authorize(request, kit, principal, policy)
        request.state.principal = principal
        return principal

    dependency.__name__ = "authenticated"
    return dependency


#: ``principal: CurrentPrincipal`` in a handler signature authenticates and authorizes the call.
CurrentPrincipal = Annotated[Principal, Depends(authenticated())]
#: ``_: RateLimited`` in a public handler applies the route's rate-limit rule.
RateLimited = Annotated[None, Depends(rate_limited)]

__all__ = [
    "CurrentPrincipal",
    "InvalidAccessToken",
    "MissingToken",
    "Principal",
    "RateLimited",
    "SecurityDep",
    "apply_route_rate_limit",
    "authenticated",
    "client_ip",
    "enforce_rate_limit",
    "get_security",
    "rate_limited",
    "request_origin",
    "route_spec",
]
