"""A Schwab simulator (Starlette ASGI app) faithful to the Trader API wire format.

Routes (mount it anywhere; point ``auth_base_url`` at ``<root>/v1/oauth`` and
``api_base_url`` at ``<root>/trader/v1``, see :meth:`SchwabSettings.for_sandbox`):

- ``GET /v1/oauth/authorize``: auto-approves and redirects to ``redirect_uri`` with
  ``?code=…%40&session=…&state=…`` (302; an HTML page that forwards when the client accepts
  ``text/html``).
- ``POST /v1/oauth/token``: HTTP Basic client auth; ``authorization_code`` (single-use code,
  exact ``redirect_uri``, PKCE verifier checked against the challenge) and ``refresh_token``
  grants. Access tokens expire (``access_token_ttl``); the refresh grant dies
  ``refresh_token_ttl`` after the login, however often it is used.
- ``GET /trader/v1/accounts/accountNumbers``, ``/accounts[?fields=positions]``,
  ``/accounts/{hash}[?fields=positions]``, ``/accounts/{hash}/transactions`` (requires
  ``startDate``, ``endDate``, ``types``; range ≤ 1 year; at most 3000 rows). A missing,
  unknown or expired Bearer token gets a 401 in the ``ServiceError`` shape.
- Control: ``POST /_sandbox/faults`` ``{"status": 429, "retry_after": 1, "count": 1,
  "path": "/trader/v1/accounts", "method": "GET", "malformed": false, "shape": "service"}``
  queues faults (``shape`` ``jsonapi`` or ``text`` picks the other error bodies;
  ``malformed`` answers 200 with broken JSON); ``DELETE /_sandbox/faults`` clears them;
  ``POST /_sandbox/expire`` ``{"access": true, "refresh": false}`` forces token expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from dashtam_provider_schwab.mapping import parse_timestamp
from dashtam_provider_schwab.sandbox_data import SandboxData, load_sandbox_data
from dashtam_provider_schwab.sandbox_faults import Fault, fault_response, service_error
from dashtam_provider_schwab.settings import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from dashtam_provider_schwab.transactions import TRANSACTION_TYPES

Handler = Callable[[Request], Awaitable[Response]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SandboxConfig:
    """How the simulator behaves; every field has a sensible default."""

    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = SANDBOX_CLIENT_SECRET
    access_token_ttl: int = 1800
    refresh_token_ttl: timedelta = timedelta(days=7)
    code_ttl: timedelta = timedelta(seconds=60)
    redirect_uris: tuple[str, ...] = ()  # empty: accept any redirect_uri
    extra_transactions: int = 0
    history_days: int = 730
    max_transactions: int = 3000
    max_range: timedelta = timedelta(days=365)
    clock: Callable[[], datetime] = _utcnow


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    method: str
    expires_at: datetime


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _route_path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@dataclass
class SchwabSandbox:
    """The simulator's state: data, codes, tokens and queued faults."""

    config: SandboxConfig = field(default_factory=SandboxConfig)
    data: SandboxData = field(init=False)
    codes: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, datetime] = field(default_factory=dict)
    refresh_tokens: dict[str, datetime] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data = load_sandbox_data(self.config.extra_transactions, self.config.history_days)

    # --- controls -----------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Queue a fault."""
        self.faults.append(fault)

    def expire_tokens(self, *, access: bool = True, refresh: bool = False) -> tuple[int, int]:
        """Expire every access (and optionally refresh) token now; returns the counts."""
        past = self.config.clock() - timedelta(seconds=1)
        if access:
            self.access_tokens = dict.fromkeys(self.access_tokens, past)
        if refresh:
            self.refresh_tokens = dict.fromkeys(self.refresh_tokens, past)
        return (
            len(self.access_tokens) if access else 0,
            len(self.refresh_tokens) if refresh else 0,
        )

    def _take_fault(self, request: Request) -> Fault | None:
        path = _route_path(request)
        for fault in self.faults:
            if path.startswith(fault.path) and fault.method in (None, request.method):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def faultable(self, handler: Handler) -> Handler:
        """Wrap ``handler`` so queued faults answer first."""

        async def wrapped(request: Request) -> Response:
            fault = self._take_fault(request)
            return fault_response(fault) if fault else await handler(request)

        return wrapped

    # --- OAuth --------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """``GET /v1/oauth/authorize``: auto-approve and send the browser back with a code."""
        q = request.query_params
        client_id, redirect_uri = q.get("client_id"), q.get("redirect_uri")
        if client_id != self.config.client_id or not redirect_uri:
            return _oauth_error(400, "invalid_request", "unknown client_id or no redirect_uri")
        if self.config.redirect_uris and redirect_uri not in self.config.redirect_uris:
            return _oauth_error(400, "invalid_request", "redirect_uri is not registered")
        if q.get("response_type", "code") != "code":
            return _oauth_error(400, "unsupported_response_type", "only code is supported")
        method = q.get("code_challenge_method", "plain")
        if method not in ("S256", "plain"):
            return _oauth_error(400, "invalid_request", "unsupported code_challenge_method")
        code = f"C0.{secrets.token_urlsafe(24)}@"
        self.codes[code] = _Grant(
            client_id=client_id,
            redirect_uri=redirect_uri,
            challenge=q.get("code_challenge"),
            method=method,
            expires_at=self.config.clock() + self.config.code_ttl,
        )
        params = {"code": code, "session": str(uuid.uuid4())}
        if q.get("state") is not None:
            params["state"] = q["state"]
        location = f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(params)}"
        if "text/html" in request.headers.get("accept", ""):
            target = escape(location, quote=True)
            page = (
                "<!doctype html><html><head><meta charset='utf-8'>"
                f"<meta http-equiv='refresh' content='0;url={target}'>"
                "<title>Schwab sandbox</title></head><body>"
                "<p>Schwab sandbox: access approved automatically.</p>"
                f"<p><a href='{target}'>Continue</a></p></body></html>"
            )
            return HTMLResponse(page)
        return RedirectResponse(location, status_code=302)

    def _client_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        client_id, _, secret = decoded.partition(":")
        return secrets.compare_digest(client_id, self.config.client_id) and secrets.compare_digest(
            secret, self.config.client_secret
        )

    def _issue(self, refresh_token: str | None) -> JSONResponse:
        now = self.config.clock()
        access = f"I0.SBX-{secrets.token_urlsafe(32)}@"
        self.access_tokens[access] = now + timedelta(seconds=self.config.access_token_ttl)
        if refresh_token is None:
            refresh_token = f"SBX-rT-{secrets.token_urlsafe(32)}@"
            self.refresh_tokens[refresh_token] = now + self.config.refresh_token_ttl
        body = {
            "expires_in": self.config.access_token_ttl,
            "token_type": "Bearer",
            "scope": "api",
            "refresh_token": refresh_token,
            "access_token": access,
            "id_token": "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJzdWIiOiJzYW5kYm94In0.",
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def token(self, request: Request) -> Response:
        """``POST /v1/oauth/token``: the authorization-code and refresh-token grants."""
        if not self._client_ok(request):
            return _oauth_error(401, "invalid_client", "Unauthorized")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        grant_type = form.get("grant_type")
        now = self.config.clock()
        if grant_type == "authorization_code":
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant.expires_at <= now:
                return _oauth_error(400, "invalid_grant", "authorization code invalid or expired")
            if form.get("redirect_uri") != grant.redirect_uri:
                return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
            if grant.challenge is not None:
                verifier = form.get("code_verifier", "")
                computed = verifier
                if grant.method == "S256":
                    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
                    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
                if not verifier or not secrets.compare_digest(computed, grant.challenge):
                    return _oauth_error(400, "invalid_grant", "PKCE verification failed")
            return self._issue(None)
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            dies = self.refresh_tokens.get(token)
            if dies is None or dies <= now:
                inner = json.dumps(
                    {
                        "error_description": "Exception while authenticating refresh token",
                        "error": "refresh_token_authentication_error",
                    }
                )
                return _oauth_error(400, "unsupported_token_type", f'400 Bad Request: "{inner}"')
            return self._issue(token)
        return _oauth_error(400, "unsupported_grant_type", "grant_type not supported")

    # --- Trader API ---------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        expires = self.access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= self.config.clock():
            return service_error(
                401,
                "Unauthorized: the access token is missing, invalid or expired",
                "Client not authorized or token expired; re-authorize the application",
            )
        return None

    @staticmethod
    def _shape(entry: dict[str, Any], positions: bool) -> dict[str, Any]:
        if positions:
            return entry
        account = {k: v for k, v in entry["securitiesAccount"].items() if k != "positions"}
        return {**entry, "securitiesAccount": account}

    async def account_numbers(self, request: Request) -> Response:
        """``GET /trader/v1/accounts/accountNumbers``."""
        return self._authorized(request) or JSONResponse(self.data.account_numbers)

    async def accounts(self, request: Request) -> Response:
        """``GET /trader/v1/accounts[?fields=positions]``."""
        if denied := self._authorized(request):
            return denied
        positions = "positions" in request.query_params.get("fields", "")
        return JSONResponse([self._shape(e, positions) for e in self.data.accounts])

    def _account_for(self, request: Request) -> tuple[str | None, Response | None]:
        if denied := self._authorized(request):
            return None, denied
        number = self.data.hash_to_number(request.path_params["hash"])
        if number is None:
            return None, service_error(400, "Invalid account number", "use the hashValue")
        return number, None

    async def account(self, request: Request) -> Response:
        """``GET /trader/v1/accounts/{hash}[?fields=positions]``."""
        number, denied = self._account_for(request)
        if denied or number is None:
            return denied or service_error(400, "Invalid account number")
        entry = self.data.account(number)
        if entry is None:
            return service_error(404, "Account not found")
        positions = "positions" in request.query_params.get("fields", "")
        return JSONResponse(self._shape(entry, positions))

    async def transactions(self, request: Request) -> Response:
        """``GET /trader/v1/accounts/{hash}/transactions`` (dates and types required)."""
        number, denied = self._account_for(request)
        if denied or number is None:
            return denied or service_error(400, "Invalid account number")
        q = request.query_params
        start, end = parse_timestamp(q.get("startDate")), parse_timestamp(q.get("endDate"))
        if start is None or end is None:
            return service_error(400, "Bad Request", "startDate and endDate are required")
        types = [t.strip() for t in q.get("types", "").split(",") if t.strip()]
        if not types:
            return service_error(400, "Bad Request", "types is required")
        unknown = sorted(set(types) - set(TRANSACTION_TYPES))
        if unknown:
            return service_error(400, "Bad Request", f"invalid types: {','.join(unknown)}")
        if end < start:
            return service_error(400, "Bad Request", "endDate is before startDate")
        if end - start > self.config.max_range:
            return service_error(400, "Bad Request", "Maximum date range is 1 year")
        wanted, symbol = set(types), q.get("symbol")
        items = [t for t in self.data.between(number, start, end) if t["type"] in wanted]
        if symbol:
            items = [t for t in items if _mentions(t, symbol)]
        return JSONResponse(items[: self.config.max_transactions])

    # --- control endpoints ----------------------------------------------------------------

    async def post_fault(self, request: Request) -> Response:
        """``POST /_sandbox/faults``: queue a fault."""
        try:
            body = json.loads(await request.body() or b"{}")
            fault = Fault(**{k: v for k, v in body.items() if k in Fault.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError):
            return JSONResponse({"error": "invalid fault"}, status_code=400)
        if not isinstance(fault.status, int) or not 100 <= fault.status <= 599:
            return JSONResponse({"error": "status must be an HTTP status code"}, status_code=400)
        self.add_fault(fault)
        return JSONResponse({"faults": len(self.faults)}, status_code=201)

    async def delete_faults(self, request: Request) -> Response:
        """``DELETE /_sandbox/faults``: clear every queued fault."""
        self.faults.clear()
        return Response(status_code=204)

    async def expire(self, request: Request) -> Response:
        """``POST /_sandbox/expire``: force access (and refresh) tokens to expire."""
        try:
            body = json.loads(await request.body() or b"{}")
            access, refresh = bool(body.get("access", True)), bool(body.get("refresh", False))
        except (ValueError, AttributeError):
            return JSONResponse({"error": "invalid body"}, status_code=400)
        expired = self.expire_tokens(access=access, refresh=refresh)
        return JSONResponse({"expired_access": expired[0], "expired_refresh": expired[1]})


def _mentions(item: dict[str, Any], symbol: str) -> bool:
    for leg in item.get("transferItems") or []:
        if (leg.get("instrument") or {}).get("symbol") == symbol:
            return True
    return False


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    """Build the simulator; its state is reachable as ``app.state.sandbox``.

    Args:
        config: behaviour (token lifetimes, extra history, limits); defaults if omitted.
    """
    sandbox = SchwabSandbox(config or SandboxConfig())
    f = sandbox.faultable
    routes = [
        Route("/v1/oauth/authorize", f(sandbox.authorize), methods=["GET"]),
        Route("/v1/oauth/token", f(sandbox.token), methods=["POST"]),
        Route("/trader/v1/accounts/accountNumbers", f(sandbox.account_numbers), methods=["GET"]),
        Route("/trader/v1/accounts", f(sandbox.accounts), methods=["GET"]),
        Route("/trader/v1/accounts/{hash}", f(sandbox.account), methods=["GET"]),
        Route("/trader/v1/accounts/{hash}/transactions", f(sandbox.transactions), methods=["GET"]),
        Route("/_sandbox/faults", sandbox.post_fault, methods=["POST"]),
        Route("/_sandbox/faults", sandbox.delete_faults, methods=["DELETE"]),
        Route("/_sandbox/expire", sandbox.expire, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.sandbox = sandbox
    return app


__all__ = ["Fault", "SandboxConfig", "SchwabSandbox", "create_sandbox_app"]
