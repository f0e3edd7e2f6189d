"""Schwab OAuth 2: authorization code with ``state`` and PKCE (S256), token exchange, refresh.

The app key and secret go only in the token request's ``Authorization: Basic`` header. The
access token lives 30 minutes; the refresh token dies 7 days after the browser login however
often it is used, so :meth:`SchwabOAuth.refresh` keeps the original ``refresh_expires_at``.
Tokens never appear in an error message, a repr or a log line.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from dashtam_core.adapters.http.errors import map_http_error, map_transport_error
from dashtam_core.errors import (
    AuthExpired,
    ConfigurationError,
    InvalidCredentials,
    ProviderError,
    ProviderProtocolError,
)
from dashtam_core.ports.provider import AuthorizationRequest, Credentials
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_schwab.mapping import decode_json
from dashtam_provider_schwab.settings import SchwabSettings

logger = logging.getLogger("dashtam_provider_schwab")

Clock = Callable[[], datetime]
_OAUTH_ERROR = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: PKCE verifier length (RFC 7636 allows 43..128 unreserved characters).
VERIFIER_LENGTH = 64


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _oauth_error_code(response: httpx.Response) -> str:
    """The short ``error`` code of an OAuth error body (never its description)."""
    decoded = decode_json(response.content)
    if decoded.is_ok():
        body = decoded.unwrap()
        if isinstance(body, dict):
            error = body.get("error")
            if isinstance(error, str) and _OAUTH_ERROR.match(error):
                return error
    return f"HTTP {response.status_code}"


class SchwabOAuth:
    """The OAuth half of the Schwab plugin (implements ``OAuth2Auth``).

    Args:
        settings: app key/secret, redirect URI and the OAuth base URL.
        http_client: the shared ``httpx.AsyncClient``.
        clock: returns the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        settings: SchwabSettings,
        http_client: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._http = http_client
        self._clock = clock or _utcnow
        self._timeout = httpx.Timeout(
            settings.read_timeout_seconds, connect=settings.connect_timeout_seconds
        )

    def __repr__(self) -> str:
        return f"SchwabOAuth(auth_base_url={self._settings.auth_base_url!r})"

    @property
    def _auth_base(self) -> str:
        return self._settings.auth_base_url.rstrip("/")

    def authorization_request(self, state: str) -> AuthorizationRequest:
        """Build the ``/authorize`` URL with ``state`` and a fresh PKCE S256 challenge.

        Raises:
            ConfigurationError: when ``DASHTAM_SCHWAB_CLIENT_ID`` is not set.
        """
        if not self._settings.client_id:
            raise ConfigurationError("DASHTAM_SCHWAB_CLIENT_ID is not configured")
        verifier = generate_token(VERIFIER_LENGTH)
        params = {
            "response_type": "code",
            "client_id": self._settings.client_id,
            "redirect_uri": self._settings.redirect_uri,
            "state": state,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        if self._settings.scope:
            params["scope"] = self._settings.scope
        url = f"{self._auth_base}/authorize?{urlencode(params)}"
        return AuthorizationRequest(url=url, state=state, code_verifier=verifier)

    def _basic_header(self) -> str | None:
        client_id = self._settings.client_id
        secret = self._settings.client_secret
        if not client_id or secret is None or not secret.get_secret_value():
            return None
        raw = f"{client_id}:{secret.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    async def _token_request(
        self, form: dict[str, str], refused: type[ProviderError]
    ) -> Result[dict[str, Any], ProviderError]:
        basic = self._basic_header()
        if basic is None:
            return Err(InvalidCredentials("Schwab app key/secret are not configured"))
        headers = {
            "Authorization": basic,
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        try:
            response = await self._http.post(
                f"{self._auth_base}/token", data=form, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            return Err(map_transport_error(exc))
        if response.status_code in (400, 401):
            code = _oauth_error_code(response)
            grant = form["grant_type"]
            return Err(refused(f"Schwab token endpoint refused the {grant} grant ({code})"))
        error = map_http_error(response, unauthorized=refused)
        if error is not None:
            return Err(error)
        decoded = decode_json(response.content)
        if decoded.is_err():
            return Err(decoded.unwrap_err())
        body = decoded.unwrap()
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            return Err(ProviderProtocolError("Schwab token response lacks access_token"))
        return Ok(body)

    def _expires_at(self, body: dict[str, Any], now: datetime) -> datetime:
        try:
            seconds = int(body.get("expires_in", 1800))
        except (TypeError, ValueError, ArithmeticError):
            seconds = 1800
        return now + timedelta(seconds=max(0, seconds))

    async def exchange_code(
        self, code: str, code_verifier: str
    ) -> Result[Credentials, ProviderError]:
        """Trade an authorization code for tokens.

        The code is URL-decoded first (Schwab's ends in ``%40``, an ``@``) so that the form
        body carries it encoded exactly once.

        Returns:
            Credentials with ``access_token`` and ``refresh_token``, ``expires_at`` =
            now + ``expires_in`` and ``refresh_expires_at`` = now + 7 days; or
            ``Err(InvalidCredentials)`` when Schwab refuses the code.
        """
        now = self._clock()
        form = {
            "grant_type": "authorization_code",
            "code": unquote(code.strip()),
            "redirect_uri": self._settings.redirect_uri,
            "code_verifier": code_verifier,
        }
        result = await self._token_request(form, InvalidCredentials)
        if result.is_err():
            return Err(result.unwrap_err())
        body = result.unwrap()
        refresh_token = body.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            return Err(ProviderProtocolError("Schwab token response lacks refresh_token"))
        lifetime = timedelta(days=self._settings.refresh_token_lifetime_days)
        logger.info("schwab authorization code exchanged")
        return Ok(
            Credentials(
                {"access_token": body["access_token"], "refresh_token": refresh_token},
                expires_at=self._expires_at(body, now),
                refresh_expires_at=now + lifetime,
            )
        )

    def refresh_token_expired(
        self, credentials: Credentials, *, now: datetime | None = None
    ) -> bool:
        """True once the refresh grant is dead (7 days after login): re-authorize."""
        dies = credentials.refresh_expires_at
        return dies is not None and (now or self._clock()) >= dies

    def needs_refresh(self, credentials: Credentials, *, now: datetime | None = None) -> bool:
        """True when the access token expires within ``refresh_margin_seconds``."""
        expires = credentials.expires_at
        if expires is None:
            return True
        margin = timedelta(seconds=self._settings.refresh_margin_seconds)
        return (now or self._clock()) + margin >= expires

    async def refresh(self, credentials: Credentials) -> Result[Credentials, ProviderError]:
        """Get a new access token with the refresh token.

        Returns:
            New credentials (a new ``refresh_token`` if Schwab sent one, the original
            ``refresh_expires_at``: refreshing does not extend the 7-day life), or
            ``Err(AuthExpired)`` when the grant is dead or refused (400/401).
        """
        now = self._clock()
        if self.refresh_token_expired(credentials, now=now):
            return Err(AuthExpired("Schwab refresh token expired (7 days after login)"))
        old_refresh = credentials.get("refresh_token")
        if not old_refresh:
            return Err(AuthExpired("no Schwab refresh token stored; re-authorize"))
        form = {"grant_type": "refresh_token", "refresh_token": old_refresh}
        result = await self._token_request(form, AuthExpired)
        if result.is_err():
            return Err(result.unwrap_err())
        body = result.unwrap()
        new_refresh = body.get("refresh_token")
        if not isinstance(new_refresh, str) or not new_refresh:
            new_refresh = old_refresh
        logger.info("schwab access token refreshed")
        return Ok(
            Credentials(
                {"access_token": body["access_token"], "refresh_token": new_refresh},
                expires_at=self._expires_at(body, now),
                refresh_expires_at=credentials.refresh_expires_at,
            )
        )


__all__ = ["VERIFIER_LENGTH", "Clock", "SchwabOAuth"]
