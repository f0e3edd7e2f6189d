"""``AlpacaProvider``: the Alpaca Trading API v2 client behind the ``alpaca`` plugin.

One provider instance serves every connection: the API keys travel with each call in a
:class:`~dashtam_core.ports.provider.Credentials` (``api_key_id``, ``secret_key`` and an
optional ``environment``, ``paper`` by default, choosing the host). Keys are sent only in the
``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers; they never appear in errors, reprs,
logs or the archived :class:`~dashtam_core.ports.provider.RawPayload` pages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from dashtam_core.adapters.http.errors import map_http_error, map_transport_error
from dashtam_core.errors import (
    AuthExpired,
    InvalidCredentials,
    ProviderError,
    ProviderProtocolError,
)
from dashtam_core.ports.provider import (
    Credentials,
    Fetched,
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
    RawPayload,
    Remapped,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_alpaca.mapping import (
    decode_json,
    map_account,
    map_activities,
    map_positions,
)
from dashtam_provider_alpaca.remap import environment_note, remap_pages
from dashtam_provider_alpaca.settings import AlpacaSettings

logger = logging.getLogger("dashtam_provider_alpaca")

KEY_ID_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"
ENVIRONMENTS = ("paper", "live")


@dataclass(frozen=True, slots=True)
class _Keys:
    """The key pair and host of one call; ``repr`` hides the keys."""

    key_id: str = field(repr=False)
    secret: str = field(repr=False)
    environment: str
    base_url: str

    def headers(self) -> dict[str, str]:
        return {KEY_ID_HEADER: self.key_id, SECRET_HEADER: self.secret}


def _shift(day: date, days: int) -> date:
    """``day`` moved by ``days``, clamped to the representable range."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.min if days < 0 else date.max


def _usable_header_value(value: str) -> bool:
    return bool(value) and value.isascii() and value.isprintable() and value.strip() == value


class AlpacaProvider:
    """Accounts, holdings and transactions from Alpaca, authenticated by API keys.

    Implements :class:`~dashtam_core.ports.provider.AccountsProvider`,
    :class:`~dashtam_core.ports.provider.HoldingsProvider`,
    :class:`~dashtam_core.ports.provider.TransactionsProvider`,
    :class:`~dashtam_core.ports.provider.ApiKeyAuth` and
    :class:`~dashtam_core.ports.provider.Remappable`.

    Args:
        settings: hosts, timeouts and page size.
        http_client: the shared ``httpx.AsyncClient`` (retries and budgets live there).
    """

    def __init__(self, settings: AlpacaSettings, http_client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http_client
        self._timeout = httpx.Timeout(
            settings.read_timeout_seconds, connect=settings.connect_timeout_seconds
        )

    def __repr__(self) -> str:
        return (
            f"AlpacaProvider(paper={self._settings.paper_base_url!r}, "
            f"live={self._settings.live_base_url!r})"
        )

    # ------------------------------------------------------------------ plumbing

    def _keys(self, credentials: Credentials) -> Result[_Keys, ProviderError]:
        key_id = credentials.get("api_key_id", "")
        secret = credentials.get("secret_key", "")
        missing = [n for n, v in (("api_key_id", key_id), ("secret_key", secret)) if not v]
        if missing:
            return Err(InvalidCredentials(f"missing Alpaca credential(s): {', '.join(missing)}"))
        if not (_usable_header_value(key_id) and _usable_header_value(secret)):
            return Err(InvalidCredentials("Alpaca keys must be printable ASCII without spaces"))
        environment = (credentials.get("environment") or "paper").strip().lower()
        if environment not in ENVIRONMENTS:
            return Err(InvalidCredentials("Alpaca environment must be 'paper' or 'live'"))
        return Ok(_Keys(key_id, secret, environment, self._settings.base_url(environment)))

    async def _get(
        self,
        keys: _Keys,
        path: str,
        *,
        kind: str,
        params: dict[str, str] | None = None,
        unauthorized: type[ProviderError] = AuthExpired,
        account_id: str | None = None,
    ) -> Result[tuple[Any, RawPayload], ProviderError]:
        """GET ``path``; return the decoded body and the archived page, or a typed error."""
        request = f"GET {path}" + (f"?{urlencode(params)}" if params else "")
        try:
            response = await self._http.get(
                keys.base_url + path, params=params, headers=keys.headers(), timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            logger.warning("alpaca %s failed: %s", request, type(exc).__name__)
            return Err(map_transport_error(exc))
        logger.debug("alpaca %s -> %s", request, response.status_code)
        error = map_http_error(response, unauthorized=unauthorized)
        if error is not None:
            return Err(error)
        match decode_json(response.content):
            case Err(decode_error):
                return Err(decode_error)
            case Ok(body):
                pass
        raw = RawPayload(
            kind=kind,
            content=response.content,
            content_type=response.headers.get("content-type", "application/json"),
            fetched_at=datetime.now(UTC),
            request=request,
            account_id=account_id,
        )
        return Ok((body, raw))

    # ------------------------------------------------------------------ ApiKeyAuth

    async def validate_credentials(self, credentials: Credentials) -> Result[None, ProviderError]:
        """Check the keys with one ``GET /v2/account``; refused keys give ``InvalidCredentials``."""
        match self._keys(credentials):
            case Err(error):
                return Err(error)
            case Ok(keys):
                pass
        match await self._get(
            keys, "/v2/account", kind="accounts", unauthorized=InvalidCredentials
        ):
            case Err(error):
                return Err(error)
            case Ok((body, _raw)):
                if not isinstance(body, dict) or not body.get("id"):
                    return Err(ProviderProtocolError("unexpected account from Alpaca"))
                return Ok(None)

    # ------------------------------------------------------------------ capabilities

    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        """The keys' single trading account, balance = equity, available = cash."""
        match self._keys(credentials):
            case Err(error):
                return Err(error)
            case Ok(keys):
                pass
        match await self._get(keys, "/v2/account", kind="accounts"):
            case Err(error):
                return Err(error)
            case Ok((body, raw)):
                pass
        mapped = map_account(
            body,
            environment=keys.environment,
            as_of=raw.fetched_at,
            default_currency=self._settings.currency,
        )
        if isinstance(mapped, Err):
            return Err(mapped.error)
        # The environment names the account; keep it with the page for ``remap``.
        raw = replace(raw, request=raw.request + environment_note(keys.environment))
        return Ok(Fetched(records=[mapped.value], raw=[raw]))

    async def fetch_holdings(
        self, credentials: Credentials, provider_account_id: str
    ) -> Result[Fetched[ProviderHolding], ProviderError]:
        """Every open position (long, short with negative quantity, crypto, options)."""
        match self._keys(credentials):
            case Err(error):
                return Err(error)
            case Ok(keys):
                pass
        match await self._get(
            keys, "/v2/positions", kind="holdings", account_id=provider_account_id
        ):
            case Err(error):
                return Err(error)
            case Ok((body, raw)):
                pass
        mapped = map_positions(
            body,
            account_id=provider_account_id,
            as_of=raw.fetched_at,
            currency=self._settings.currency,
        )
        if isinstance(mapped, Err):
            return Err(mapped.error)
        return Ok(Fetched(records=mapped.value, raw=[raw]))

    async def fetch_transactions(
        self, credentials: Credentials, provider_account_id: str, start: date, end: date
    ) -> Result[Fetched[ProviderTransaction], ProviderError]:
        """Account activities dated in ``[start, end]``, every page fetched.

        The request window is one day wider on each side (``after``/``until`` are instants
        while activity dates are New York calendar days); records are then filtered by date.
        Pages are newest first; the next ``page_token`` is the last item's id, and a short or
        empty page ends the walk.
        """
        match self._keys(credentials):
            case Err(error):
                return Err(error)
            case Ok(keys):
                pass
        page_size = self._settings.page_size
        after = datetime.combine(_shift(start, -1), time(), UTC)
        until = datetime.combine(_shift(end, 2), time(), UTC)
        base_params = {
            "after": after.isoformat().replace("+00:00", "Z"),
            "until": until.isoformat().replace("+00:00", "Z"),
            "direction": "desc",
            "page_size": str(page_size),
        }
        records: list[ProviderTransaction] = []
        pages: list[RawPayload] = []
        seen_ids: set[str] = set()
        tokens: set[str] = set()
        token: str | None = None
        while True:
            params = dict(base_params)
            if token is not None:
                params["page_token"] = token
            match await self._get(
                keys,
                "/v2/account/activities",
                kind="transactions",
                params=params,
                account_id=provider_account_id,
            ):
                case Err(error):
                    return Err(error)
                case Ok((body, raw)):
                    pass
            if not isinstance(body, list):
                return Err(ProviderProtocolError("unexpected activities from Alpaca: not an array"))
            pages.append(raw)
            mapped = map_activities(
                body, account_id=provider_account_id, currency=self._settings.currency
            )
            if isinstance(mapped, Err):
                return Err(mapped.error)
            for transaction in mapped.value:
                if start <= transaction.date <= end and transaction.dedupe_key not in seen_ids:
                    seen_ids.add(transaction.dedupe_key)
                    records.append(transaction)
            if len(body) < page_size:
                break
            last = body[-1].get("id") if isinstance(body[-1], dict) else None
            if not isinstance(last, str) or not last or last in tokens:
                return Err(ProviderProtocolError("Alpaca activities pagination did not advance"))
            tokens.add(last)
            token = last
        return Ok(Fetched(records=records, raw=pages))

    # ------------------------------------------------------------------ Remappable

    def remap(self, payloads: Sequence[RawPayload]) -> Result[Remapped, ProviderError]:
        """Re-derive records from archived pages (newest first) without calling Alpaca.

        Runs the fetch methods' mapping functions on each page; see
        :func:`dashtam_provider_alpaca.remap.remap_pages`.
        """
        return remap_pages(payloads, currency=self._settings.currency)


def create_provider(settings: Any, http_client: httpx.AsyncClient) -> AlpacaProvider:
    """The ``ProviderSpec.factory``: build an :class:`AlpacaProvider`.

    Args:
        settings: an :class:`AlpacaSettings` (another settings object is converted through its
            ``model_dump()``; ``None`` reads the environment).
        http_client: the injected ``httpx.AsyncClient``.
    """
    if not isinstance(settings, AlpacaSettings):
        if settings is None:
            settings = AlpacaSettings()
        else:
            dump = getattr(settings, "model_dump", None)
            data = dump() if callable(dump) else dict(settings)
            settings = AlpacaSettings.model_validate(data)
    return AlpacaProvider(settings, http_client)


__all__ = ["KEY_ID_HEADER", "SECRET_HEADER", "AlpacaProvider", "create_provider"]
