"""``SchwabProvider``: the Charles Schwab Trader API client behind the ``schwab`` plugin.

One provider instance serves every connection: the OAuth tokens travel with each call in a
:class:`~dashtam_core.ports.provider.Credentials` (``access_token``, ``refresh_token``).
Accounts are addressed by their ``hashValue`` (from ``/accounts/accountNumbers``), never by
the plain account number. Every response is kept as a
:class:`~dashtam_core.ports.provider.RawPayload` whose ``request`` holds the method, path and
query only (no header, no token). Refreshing is the caller's decision
(:meth:`SchwabProvider.needs_refresh`): the sync engine must store new tokens before use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from dashtam_core.adapters.http.errors import map_http_error, map_transport_error
from dashtam_core.errors import (
    AuthExpired,
    ProviderError,
    ProviderProtocolError,
    RateLimited,
)
from dashtam_core.ports.provider import (
    AuthorizationRequest,
    Credentials,
    Fetched,
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
    RawPayload,
    Remapped,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_schwab.mapping import (
    decode_json,
    map_account_numbers,
    map_accounts,
    map_positions,
    parse_timestamp,
)
from dashtam_provider_schwab.oauth import Clock, SchwabOAuth
from dashtam_provider_schwab.remap import remap_pages
from dashtam_provider_schwab.settings import SchwabSettings
from dashtam_provider_schwab.transactions import TRANSACTION_TYPES, map_transactions

logger = logging.getLogger("dashtam_provider_schwab")

_DETAIL_LIMIT = 160
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def transaction_windows(start: date, end: date, days: int = 365) -> list[tuple[date, date]]:
    """Split the inclusive range ``[start, end]`` into consecutive windows of ≤ ``days`` days.

    Example:
        >>> transaction_windows(date(2024, 1, 1), date(2024, 1, 10), 4)[-1]
        (datetime.date(2024, 1, 9), datetime.date(2024, 1, 10))
    """
    windows: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        stop = min(cursor + timedelta(days=days - 1), end)
        windows.append((cursor, stop))
        cursor = stop + timedelta(days=1)
    return windows


def _narrower_windows(data: list[Any], first: date, last: date) -> list[tuple[date, date]]:
    """Split a window whose answer hit the row cap into windows expected to fit under it.

    The density of the capped answer (rows per day over the days it covers) sizes the new
    windows at about 3/4 of the cap; without usable dates the window is halved. Each new
    window is checked against the cap again, so a wrong estimate costs requests, not rows.
    """
    days = (last - first).days + 1
    stamps = [
        parse_timestamp(item.get("tradeDate") or item.get("time"))
        for item in data
        if isinstance(item, dict)
    ]
    dates = [s.date() for s in stamps if s is not None]
    size = days // 2 or 1
    if dates:
        covered = max(1, (max(dates) - min(dates)).days + 1)
        size = max(1, min(days // 2 or 1, (covered * 3) // 4))
    return transaction_windows(first, last, size)


def _error_detail(response: httpx.Response) -> str:
    """A short, safe summary of either Schwab error shape (or a plain-text body)."""
    decoded = decode_json(response.content)
    body = decoded.unwrap() if isinstance(decoded, Ok) else None
    parts: list[str] = []
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str):
            parts.append(message)  # Trader API ServiceError {message, errors: [str]}
        for item in body.get("errors") or []:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict):  # JSON:API {errors: [{title, detail}]}
                parts.extend(str(item[k]) for k in ("title", "detail") if item.get(k))
        error = body.get("error")
        if isinstance(error, str):
            parts.append(error)
    elif body is None:
        text = response.content[:_DETAIL_LIMIT].decode("utf-8", "replace").strip()
        parts.append(text.splitlines()[0] if text else "")
    return "; ".join(p.strip() for p in parts if p and p.strip())


def _redact(text: str, credentials: Credentials) -> str:
    for secret in credentials.secret_values():
        text = text.replace(secret, "[redacted]")
    return text[:_DETAIL_LIMIT]


def _with_detail(error: ProviderError, detail: str) -> ProviderError:
    if not detail:
        return error
    message = f"{error.message}: {detail}"
    if isinstance(error, RateLimited):
        return RateLimited(message, retry_after=error.retry_after)
    return type(error)(message)


class SchwabProvider:
    """Accounts, balances, holdings and transactions from Schwab, authorized by OAuth 2.

    Implements :class:`~dashtam_core.ports.provider.AccountsProvider`,
    :class:`~dashtam_core.ports.provider.HoldingsProvider`,
    :class:`~dashtam_core.ports.provider.TransactionsProvider`,
    :class:`~dashtam_core.ports.provider.OAuth2Auth` and
    :class:`~dashtam_core.ports.provider.Remappable`.

    Args:
        settings: app credentials, base URLs, timeouts and window sizes.
        http_client: the shared ``httpx.AsyncClient`` (retries and budgets live there).
        clock: returns the current UTC time (injectable for tests).
    """

    def __init__(
        self,
        settings: SchwabSettings,
        http_client: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._http = http_client
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self.oauth = SchwabOAuth(settings, http_client, clock=self._clock)
        self._timeout = httpx.Timeout(
            settings.read_timeout_seconds, connect=settings.connect_timeout_seconds
        )

    def __repr__(self) -> str:
        return f"SchwabProvider(api_base_url={self.settings.api_base_url!r})"

    # --- OAuth2Auth ---------------------------------------------------------------------

    def authorization_request(self, state: str) -> AuthorizationRequest:
        """Build the browser URL (``state`` + PKCE S256); see :class:`SchwabOAuth`."""
        return self.oauth.authorization_request(state)

    async def exchange_code(
        self, code: str, code_verifier: str
    ) -> Result[Credentials, ProviderError]:
        """Trade the (``%40``-ending) authorization code for tokens."""
        return await self.oauth.exchange_code(code, code_verifier)

    async def refresh(self, credentials: Credentials) -> Result[Credentials, ProviderError]:
        """New access token; the refresh grant still dies 7 days after login."""
        return await self.oauth.refresh(credentials)

    def needs_refresh(self, credentials: Credentials, *, now: datetime | None = None) -> bool:
        """True when the access token expires within ``refresh_margin_seconds``."""
        return self.oauth.needs_refresh(credentials, now=now)

    def refresh_token_expired(
        self, credentials: Credentials, *, now: datetime | None = None
    ) -> bool:
        """True once the refresh grant is dead: the user must re-authorize."""
        return self.oauth.refresh_token_expired(credentials, now=now)

    # --- HTTP ---------------------------------------------------------------------------

    async def _get(
        self,
        credentials: Credentials,
        path: str,
        params: dict[str, str],
        *,
        kind: str,
        account_id: str | None = None,
    ) -> Result[tuple[Any, RawPayload], ProviderError]:
        token = credentials.get("access_token", "")
        if not token or not token.isascii() or not token.isprintable():
            return Err(AuthExpired("no usable Schwab access token stored; re-authorize"))
        url = f"{self.settings.api_base_url.rstrip('/')}{path}"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        try:
            response = await self._http.get(
                url, params=params, headers=headers, timeout=self._timeout
            )
        except httpx.HTTPError as exc:
            return Err(map_transport_error(exc))
        described = f"GET {response.request.url.path}"
        if params:
            described += f"?{urlencode(params)}"
        error = map_http_error(response, unauthorized=AuthExpired)
        if error is not None:
            detail = _redact(_error_detail(response), credentials)
            correl = response.headers.get("Schwab-Client-CorrelId", "-")
            logger.warning(
                "schwab %s answered %s (correl id %s)", described, response.status_code, correl
            )
            return Err(_with_detail(error, detail))
        decoded = decode_json(response.content)
        if isinstance(decoded, Err):
            return Err(decoded.error)
        raw = RawPayload(
            kind=kind,
            content=response.content,
            content_type=response.headers.get("Content-Type", "application/json"),
            fetched_at=self._clock(),
            request=described,
            account_id=account_id,
        )
        return Ok((decoded.value, raw))

    # --- AccountsProvider ---------------------------------------------------------------

    async def account_hashes(
        self, credentials: Credentials
    ) -> Result[tuple[dict[str, str], RawPayload], ProviderError]:
        """``{accountNumber: hashValue}`` from ``GET /accounts/accountNumbers``."""
        fetched = await self._get(credentials, "/accounts/accountNumbers", {}, kind="accounts")
        if isinstance(fetched, Err):
            return fetched
        data, raw = fetched.value
        hashes = map_account_numbers(data)
        if isinstance(hashes, Err):
            return Err(hashes.error)
        return Ok((hashes.value, raw))

    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        """Every account with balances (``liquidationValue``; cash is ``cashBalance``)."""
        numbers = await self.account_hashes(credentials)
        if isinstance(numbers, Err):
            return Err(numbers.error)
        hashes, numbers_raw = numbers.value
        fetched = await self._get(
            credentials, "/accounts", {"fields": "positions"}, kind="accounts"
        )
        if isinstance(fetched, Err):
            return Err(fetched.error)
        data, raw = fetched.value
        accounts = map_accounts(data, hashes, as_of=raw.fetched_at, currency=self.settings.currency)
        if isinstance(accounts, Err):
            return Err(accounts.error)
        return Ok(Fetched(records=accounts.value, raw=[numbers_raw, raw]))

    # --- HoldingsProvider ---------------------------------------------------------------

    async def fetch_holdings(
        self, credentials: Credentials, provider_account_id: str
    ) -> Result[Fetched[ProviderHolding], ProviderError]:
        """Positions of one account (``GET /accounts/{hash}?fields=positions``)."""
        fetched = await self._get(
            credentials,
            f"/accounts/{provider_account_id}",
            {"fields": "positions"},
            kind="holdings",
            account_id=provider_account_id,
        )
        if isinstance(fetched, Err):
            return Err(fetched.error)
        data, raw = fetched.value
        holdings = map_positions(
            data, provider_account_id, as_of=raw.fetched_at, currency=self.settings.currency
        )
        if isinstance(holdings, Err):
            return Err(holdings.error)
        return Ok(Fetched(records=holdings.value, raw=[raw]))

    # --- TransactionsProvider -----------------------------------------------------------

    async def _fetch_window(
        self, credentials: Credentials, account: str, first: date, last: date
    ) -> Result[tuple[list[Any], RawPayload], ProviderError]:
        params = {
            "startDate": f"{first.isoformat()}T00:00:00.000Z",
            "endDate": f"{last.isoformat()}T23:59:59.999Z",
            "types": ",".join(TRANSACTION_TYPES),
        }
        fetched = await self._get(
            credentials,
            f"/accounts/{account}/transactions",
            params,
            kind="transactions",
            account_id=account,
        )
        if isinstance(fetched, Err):
            return fetched
        data, raw = fetched.value
        if not isinstance(data, list):
            return Err(ProviderProtocolError("Schwab transactions: expected a JSON array"))
        return Ok((data, raw))

    async def fetch_transactions(
        self, credentials: Credentials, provider_account_id: str, start: date, end: date
    ) -> Result[Fetched[ProviderTransaction], ProviderError]:
        """Transactions dated in ``[start, end]``, fetched in windows of at most a year.

        All 15 transaction types are requested. A window whose answer reaches Schwab's cap
        (3000 rows) may be truncated, so it is split into narrower windows and fetched again.
        """
        cap = self.settings.max_transactions_per_response
        pending = list(
            reversed(transaction_windows(start, end, self.settings.transaction_window_days))
        )
        by_key: dict[str, ProviderTransaction] = {}
        raws: list[RawPayload] = []
        while pending:
            first, last = pending.pop()
            fetched = await self._fetch_window(credentials, provider_account_id, first, last)
            if isinstance(fetched, Err):
                return Err(fetched.error)
            data, raw = fetched.value
            if len(data) >= cap and last > first:
                pending.extend(reversed(_narrower_windows(data, first, last)))
                continue
            if len(data) >= cap:
                logger.warning("schwab returned %d rows for one day; may be truncated", len(data))
            mapped = map_transactions(data, provider_account_id, currency=self.settings.currency)
            if isinstance(mapped, Err):
                return Err(mapped.error)
            raws.append(raw)
            for record in mapped.value:
                if start <= record.date <= end:
                    by_key[record.dedupe_key] = record
        records = sorted(
            by_key.values(), key=lambda r: (r.date, r.posted_at or _EPOCH, r.dedupe_key)
        )
        return Ok(Fetched(records=records, raw=raws))

    # --- Remappable ---------------------------------------------------------------------

    def remap(self, payloads: Sequence[RawPayload]) -> Result[Remapped, ProviderError]:
        """Re-derive records from archived pages (newest first) without calling Schwab.

        Runs the fetch methods' mapping functions on each page; see
        :func:`dashtam_provider_schwab.remap.remap_pages`.
        """
        return remap_pages(payloads, currency=self.settings.currency)


__all__ = ["SchwabProvider", "transaction_windows"]
