"""Re-map archived Alpaca pages (``dashtam reprocess``) with the fetch methods' own mapping.

Pure: no I/O. Each archived :class:`~dashtam_core.ports.provider.RawPayload` is mapped exactly
as :class:`~dashtam_provider_alpaca.client.AlpacaProvider` mapped it when fetching:

* ``accounts`` (``GET /v2/account``): :func:`map_account`, ``as_of`` = the fetch time. The
  environment (paper or live) names the account; it is read from the ``(environment=...)``
  note the client appends to the archived request, or, for pages archived without it, from
  the account number (Alpaca paper account numbers start with ``PA``).
* ``holdings`` (``GET /v2/positions``): :func:`map_positions` of the newest page per account
  only (the current positions).
* ``transactions`` (``GET /v2/account/activities``): :func:`map_activities` for the page's
  account, keeping only records dated in the window the page was requested for (the
  ``after``/``until`` query is one day wider on each side, as the fetch builds it). Pages are
  given newest first and the first record of each key wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

from dashtam_core.errors import ProviderError, ProviderProtocolError
from dashtam_core.ports.provider import (
    ProviderAccount,
    ProviderHolding,
    ProviderTransaction,
    RawPayload,
    Remapped,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_alpaca.mapping import (
    WireFormatError,
    decode_json,
    map_account,
    map_activities,
    map_positions,
    parse_timestamp,
)

ACCOUNT_PATH = "/v2/account"
POSITIONS_PATH = "/v2/positions"
ACTIVITIES_PATH = "/v2/account/activities"
_ENVIRONMENT_NOTE = re.compile(r"\s\(environment=(paper|live)\)$")


def environment_note(environment: str) -> str:
    """The suffix the client appends to an archived ``GET /v2/account`` request."""
    return f" (environment={environment})"


def _split_request(request: str) -> tuple[str, str, dict[str, list[str]]]:
    """``"GET /path?q=1 (environment=paper)"`` -> (path, environment or "", query)."""
    note = _ENVIRONMENT_NOTE.search(request)
    environment = note.group(1) if note else ""
    text = request[: note.start()] if note else request
    _, _, target = text.partition(" ")
    parts = urlsplit(target.strip())
    return parts.path, environment, parse_qs(parts.query)


def activities_window(query: Mapping[str, list[str]]) -> tuple[date, date] | None:
    """The ``[start, end]`` dates an activities request covered (None when not recorded)."""
    try:
        after = parse_timestamp(query["after"][0])
        until = parse_timestamp(query["until"][0])
    except (KeyError, IndexError, WireFormatError):
        return None
    try:
        return after.date() + timedelta(days=1), until.date() - timedelta(days=2)
    except OverflowError:
        return None


def _page_error(payload: RawPayload, message: str) -> ProviderProtocolError:
    when = payload.fetched_at.isoformat()
    return ProviderProtocolError(f"archived Alpaca page {payload.kind} of {when}: {message}")


def _map_account_page(
    payload: RawPayload, body: object, environment: str, currency: str
) -> Result[ProviderAccount, ProviderError]:
    if not environment:
        number = body.get("account_number") if isinstance(body, dict) else None
        paper = isinstance(number, str) and number.upper().startswith("PA")
        environment = "paper" if paper else "live"
    mapped = map_account(
        body, environment=environment, as_of=payload.fetched_at, default_currency=currency
    )
    if isinstance(mapped, Err):
        return Err(mapped.error)
    return Ok(mapped.value)


def remap_pages(
    payloads: Sequence[RawPayload], *, currency: str = "USD"
) -> Result[Remapped, ProviderError]:
    """Re-derive accounts, current holdings and transactions from archived pages.

    Args:
        payloads: archived pages, newest first, as the client archived them.
        currency: the currency of amounts when a response names none (the settings' value).

    Returns:
        ``Ok(Remapped)``, or ``Err(ProviderProtocolError)`` naming the first unusable page.
    """
    accounts: list[ProviderAccount] = []
    holdings: list[ProviderHolding] = []
    holdings_seen: set[str] = set()
    transactions: list[ProviderTransaction] = []
    keys_seen: set[tuple[str, str]] = set()
    for payload in payloads:
        path, environment, query = _split_request(payload.request)
        kind = payload.kind
        wanted = (
            (kind == "accounts" and path == ACCOUNT_PATH)
            or (kind == "holdings" and path == POSITIONS_PATH)
            or (kind == "transactions" and path == ACTIVITIES_PATH)
        )
        if not wanted:
            continue
        if kind != "accounts" and not payload.account_id:
            return Err(_page_error(payload, "no account recorded"))
        if kind == "holdings" and payload.account_id in holdings_seen:
            continue  # an older snapshot of positions already superseded
        decoded = decode_json(payload.content)
        if isinstance(decoded, Err):
            return Err(_page_error(payload, decoded.error.message))
        body = decoded.value
        if kind == "accounts":
            account = _map_account_page(payload, body, environment, currency)
            if isinstance(account, Err):
                return Err(account.error)
            accounts.append(account.value)
            continue
        account_id = str(payload.account_id)
        if kind == "holdings":
            positions = map_positions(
                body, account_id=account_id, as_of=payload.fetched_at, currency=currency
            )
            if isinstance(positions, Err):
                return Err(positions.error)
            holdings_seen.add(account_id)
            holdings.extend(positions.value)
            continue
        window = activities_window(query)
        if window is None:
            return Err(_page_error(payload, "the request records no after/until window"))
        if not isinstance(body, list):
            return Err(_page_error(payload, "activities are not an array"))
        mapped = map_activities(body, account_id=account_id, currency=currency)
        if isinstance(mapped, Err):
            return Err(mapped.error)
        for record in mapped.value:
            key = (account_id, record.dedupe_key)
            if window[0] <= record.date <= window[1] and key not in keys_seen:
                keys_seen.add(key)
                transactions.append(record)
    return Ok(Remapped(accounts=accounts, transactions=transactions, holdings=holdings))


__all__ = ["activities_window", "environment_note", "remap_pages"]
