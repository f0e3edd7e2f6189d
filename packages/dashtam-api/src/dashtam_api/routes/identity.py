"""Identity and sessions (api.md): registration, verification, login, refresh, sessions, MFA.

Request bodies are explicit input models that forbid unknown fields (no mass assignment of
``roles``, ``email_verified``, ...). Public routes apply their IP rate-limit rule through the
:data:`~dashtam_api.auth.RateLimited` dependency; login additionally limits per email and
refresh per session.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from uuid import UUID

from fastapi import BackgroundTasks, Request, Response

from dashtam_api.auth import (
    CurrentPrincipal,
    RateLimited,
    SecurityDep,
    client_ip,
    enforce_rate_limit,
    request_origin,
)
from dashtam_api.registry import RouteSpec
from dashtam_api.routes._identity_models import (
    AcceptedOut,
    LoginIn,
    MeOut,
    MfaCodeIn,
    MfaOut,
    MfaStartOut,
    PasswordChangeIn,
    RefreshIn,
    RegisterIn,
    ResetIn,
    ResetOut,
    ResetRequestIn,
    RevokedOut,
    SessionList,
    SessionOut,
    TokenIn,
    TokenPairOut,
    UserCreatedOut,
    VerifiedOut,
)
from dashtam_core.application import identity, mfa, sessions
from dashtam_core.application import login as login_service
from dashtam_core.application.security_kit import SecurityKit
from dashtam_core.registries.rate_limits import rate_limit_key

logger = logging.getLogger(__name__)

_AUTH_ERRORS = ("unauthorized", "invalid_token", "token_revoked", "forbidden")


async def _send(kit: SecurityKit, message: EmailMessage | None) -> None:
    if message is None:
        return
    sent = await kit.mailer.send(message)
    if sent.is_err():
        logger.warning("mail delivery failed (%s)", message["Subject"])


async def register(
    body: RegisterIn, request: Request, kit: SecurityDep, _: RateLimited
) -> UserCreatedOut:
    """Create an account; a verification mail is sent."""
    created = await identity.register(
        kit, body.email, body.password, origin=request_origin(request)
    )
    await _send(kit, created.mail)
    user = created.user
    return UserCreatedOut(id=user.id, email=user.email, email_verified=user.email_verified)


async def verify_email(
    body: TokenIn, request: Request, kit: SecurityDep, _: RateLimited
) -> VerifiedOut:
    """Confirm an email address with the mailed token."""
    await identity.verify_email(kit, body.token, origin=request_origin(request))
    return VerifiedOut(email_verified=True)


async def login(
    body: LoginIn, request: Request, response: Response, kit: SecurityDep, _: RateLimited
) -> TokenPairOut:
    """Sign in: email and password (and `totp_code` when TOTP is enabled)."""
    rule = kit.rules["login_email"]
    await enforce_rate_limit(kit, rule, response, key=rate_limit_key(rule, email=body.email))
    pair = await login_service.login(
        kit, body.email, body.password, origin=request_origin(request), totp_code=body.totp_code
    )
    return TokenPairOut(**pair.as_dict())


async def refresh(
    body: RefreshIn, request: Request, response: Response, kit: SecurityDep
) -> TokenPairOut:
    """Exchange a refresh token for a new pair (the old one is spent)."""
    rule = kit.rules["refresh_session"]
    session_id = await sessions.session_of_refresh_token(kit, body.refresh_token)
    key = (
        rate_limit_key(rule, session_id=session_id)
        if session_id is not None
        else f"{rule.name}:ip:{client_ip(request)}"
    )
    await enforce_rate_limit(kit, rule, response, key=key)
    pair = await sessions.refresh(kit, body.refresh_token, origin=request_origin(request))
    return TokenPairOut(**pair.as_dict())


async def list_sessions(principal: CurrentPrincipal, kit: SecurityDep) -> SessionList:
    """The caller's live sessions."""
    found = await sessions.list_sessions(kit, principal.user_id, principal.session_id)
    return SessionList(data=[SessionOut(**s) for s in found])


async def logout(principal: CurrentPrincipal, kit: SecurityDep) -> None:
    """Sign out: revoke the current session (its refresh and access tokens)."""
    await sessions.revoke_session(
        kit, principal.user_id, principal.session_id, origin=principal.origin, reason="logout"
    )


async def revoke_session(id: UUID, principal: CurrentPrincipal, kit: SecurityDep) -> None:
    """Revoke one of the caller's sessions."""
    await sessions.revoke_session(
        kit, principal.user_id, id, origin=principal.origin, reason="revoked"
    )


async def revoke_other_sessions(principal: CurrentPrincipal, kit: SecurityDep) -> RevokedOut:
    """Revoke every session of the caller except the current one."""
    count = await sessions.revoke_other_sessions(
        kit, principal.user_id, principal.session_id, origin=principal.origin
    )
    return RevokedOut(revoked=count)


async def request_reset(
    body: ResetRequestIn,
    request: Request,
    background: BackgroundTasks,
    kit: SecurityDep,
    _: RateLimited,
) -> AcceptedOut:
    """Ask for a password-reset mail (always 202; nothing tells whether the email exists)."""
    message = await identity.request_password_reset(kit, body.email, origin=request_origin(request))
    background.add_task(_send, kit, message)
    return AcceptedOut()


async def reset_password(
    body: ResetIn, request: Request, kit: SecurityDep, _: RateLimited
) -> ResetOut:
    """Set a new password with the mailed token; every session is revoked."""
    notice = await identity.reset_password(
        kit, body.token, body.new_password, origin=request_origin(request)
    )
    await _send(kit, notice)
    return ResetOut()


async def me(principal: CurrentPrincipal, kit: SecurityDep) -> MeOut:
    """The caller's profile."""
    user = await identity.get_user(kit, principal.user_id)
    return MeOut(**identity.user_view(user))


async def change_password(
    body: PasswordChangeIn, principal: CurrentPrincipal, kit: SecurityDep
) -> None:
    """Change the password; the caller's other sessions are revoked."""
    notice = await identity.change_password(
        kit,
        principal.user_id,
        body.current_password,
        body.new_password,
        session_id=principal.session_id,
        origin=principal.origin,
    )
    await _send(kit, notice)


async def start_mfa(principal: CurrentPrincipal, kit: SecurityDep) -> MfaStartOut:
    """Start TOTP enrolment."""
    started = await mfa.start_mfa(kit, principal.user_id, origin=principal.origin)
    return MfaStartOut(**started)


async def confirm_mfa(body: MfaCodeIn, principal: CurrentPrincipal, kit: SecurityDep) -> MfaOut:
    """Confirm TOTP enrolment with a current code."""
    await mfa.confirm_mfa(kit, principal.user_id, body.code, origin=principal.origin)
    return MfaOut(mfa_enabled=True)


ROUTES = (
    RouteSpec(
        tags=("identity",),
        name="users.register",
        method="POST",
        path="/api/v1/users",
        handler=register,
        auth="public",
        rate_limit="register_ip",
        response_model=UserCreatedOut,
        status_code=201,
        errors=("email_taken", "weak_password", "invalid_email"),
    ),
    RouteSpec(
        tags=("identity",),
        name="users.verify_email",
        method="POST",
        path="/api/v1/email-verifications",
        handler=verify_email,
        auth="public",
        rate_limit="register_ip",
        response_model=VerifiedOut,
        errors=("invalid_or_expired_token",),
    ),
    RouteSpec(
        tags=("identity",),
        name="sessions.login",
        method="POST",
        path="/api/v1/sessions",
        handler=login,
        auth="public",
        rate_limit="login_ip",
        response_model=TokenPairOut,
        status_code=201,
        errors=("invalid_credentials", "email_not_verified", "account_locked", "mfa_required"),
    ),
    RouteSpec(
        tags=("identity",),
        name="tokens.refresh",
        method="POST",
        path="/api/v1/tokens",
        handler=refresh,
        auth="public",
        rate_limit="refresh_session",
        response_model=TokenPairOut,
        status_code=201,
        errors=("refresh_token_reused", "invalid_credentials"),
    ),
    RouteSpec(
        tags=("identity",),
        name="sessions.list",
        method="GET",
        path="/api/v1/sessions",
        handler=list_sessions,
        auth="user",
        policy=("sessions", "read"),
        rate_limit="read_user",
        response_model=SessionList,
        errors=_AUTH_ERRORS,
    ),
    RouteSpec(
        tags=("identity",),
        name="sessions.logout",
        method="DELETE",
        path="/api/v1/sessions/current",
        handler=logout,
        auth="user",
        policy=("sessions", "write"),
        rate_limit="write_user",
        status_code=204,
        errors=(*_AUTH_ERRORS, "not_found"),
    ),
    RouteSpec(
        tags=("identity",),
        name="sessions.revoke",
        method="DELETE",
        path="/api/v1/sessions/{id}",
        handler=revoke_session,
        auth="user",
        policy=("sessions", "write"),
        rate_limit="write_user",
        status_code=204,
        errors=(*_AUTH_ERRORS, "not_found"),
    ),
    RouteSpec(
        tags=("identity",),
        name="sessions.revoke_others",
        method="DELETE",
        path="/api/v1/sessions",
        handler=revoke_other_sessions,
        auth="user",
        policy=("sessions", "write"),
        rate_limit="write_user",
        response_model=RevokedOut,
        errors=_AUTH_ERRORS,
    ),
    RouteSpec(
        tags=("identity",),
        name="password_resets.request",
        method="POST",
        path="/api/v1/password-reset-tokens",
        handler=request_reset,
        auth="public",
        rate_limit="reset_ip",
        response_model=AcceptedOut,
        status_code=202,
    ),
    RouteSpec(
        tags=("identity",),
        name="password_resets.reset",
        method="POST",
        path="/api/v1/password-resets",
        handler=reset_password,
        auth="public",
        rate_limit="reset_ip",
        response_model=ResetOut,
        errors=("invalid_or_expired_token", "weak_password"),
    ),
    RouteSpec(
        tags=("identity",),
        name="users.me",
        method="GET",
        path="/api/v1/users/me",
        handler=me,
        auth="user",
        policy=("users/me", "read"),
        rate_limit="read_user",
        response_model=MeOut,
        errors=_AUTH_ERRORS,
    ),
    RouteSpec(
        tags=("identity",),
        name="users.change_password",
        method="PUT",
        path="/api/v1/users/me/password",
        handler=change_password,
        auth="user",
        policy=("users/me", "write"),
        rate_limit="write_user",
        status_code=204,
        errors=(*_AUTH_ERRORS, "invalid_current_password", "weak_password"),
    ),
    RouteSpec(
        tags=("identity",),
        name="users.mfa_start",
        method="POST",
        path="/api/v1/users/me/mfa",
        handler=start_mfa,
        auth="user",
        policy=("users/me", "write"),
        rate_limit="write_user",
        response_model=MfaStartOut,
        status_code=201,
        errors=(*_AUTH_ERRORS, "conflict"),
    ),
    RouteSpec(
        tags=("identity",),
        name="users.mfa_confirm",
        method="POST",
        path="/api/v1/users/me/mfa/confirmation",
        handler=confirm_mfa,
        auth="user",
        policy=("users/me", "write"),
        rate_limit="write_user",
        response_model=MfaOut,
        errors=(*_AUTH_ERRORS, "invalid_totp_code"),
    ),
)

__all__ = [
    "ROUTES",
    "LoginIn",
    "MeOut",
    "RegisterIn",
    "SessionList",
    "TokenPairOut",
]
