"""Re-map archived Schwab pages (``dashtam reprocess``) with the fetch methods' own mapping.

Pure: no I/O. Each archived :class:`~dashtam_core.ports.provider.RawPayload` is mapped exactly
as :class:`~dashtam_provider_schwab.client.SchwabProvider` mapped it when fetching:

* ``accounts``: a ``GET …/accounts?fields=positions`` page is mapped by :func:`map_accounts`
  with the ``accountNumbers`` hashes fetched just before it (the newest
  ``…/accounts/accountNumbers`` page not newer than it; any other archived one fills gaps),
  ``as_of`` = the fetch time.
* ``holdings`` (``GET …/accounts/{hash}?fields=positions``): :func:`map_positions` of the
  newest page per account only (the current positions).
* ``transactions`` (``GET …/accounts/{hash}/transactions``): :func:`map_transactions` for the
  page's account, keeping only records dated in the window the page was requested for
  (``startDate``/``endDate``). Pages are given newest first and the first record of each key
  wins, as the newest answer does in a fetch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
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
from dashtam_provider_schwab.mapping import (
    decode_json,
    map_account_numbers,
    map_accounts,
    map_positions,
)
from dashtam_provider_schwab.transactions import map_transactions


def _split_request(request: str) -> tuple[str, dict[str, list[str]]]:
    """``"GET /trader/v1/accounts?fields=positions"`` -> (path, query)."""
    _, _, target = request.partition(" ")
    parts = urlsplit(target.strip())
    return parts.path.rstrip("/"), parse_qs(parts.query)


def transactions_window(query: dict[str, list[str]]) -> tuple[date, date] | None:
    """The ``[first, last]`` dates a transactions request covered (None when not recorded)."""
    try:
        first = date.fromisoformat(query["startDate"][0][:10])
        last = date.fromisoformat(query["endDate"][0][:10])
    except (KeyError, IndexError, ValueError):
        return None
    return first, last


def _page_error(payload: RawPayload, message: str) -> ProviderProtocolError:
    when = payload.fetched_at.isoformat()
    return ProviderProtocolError(f"archived Schwab page {payload.kind} of {when}: {message}")


def _decode(payload: RawPayload) -> Result[Any, ProviderError]:
    decoded = decode_json(payload.content)
    if isinstance(decoded, Err):
        return Err(_page_error(payload, decoded.error.message))
    return Ok(decoded.value)


def _hashes_for(
    numbers: list[tuple[datetime, dict[str, str]]], fetched_at: datetime
) -> dict[str, str]:
    """Every archived hash (newer pages win), then those of the page fetched with ``fetched_at``."""
    merged: dict[str, str] = {}
    for _, hashes in sorted(numbers, key=lambda item: item[0]):
        merged.update(hashes)
    earlier = [item for item in numbers if item[0] <= fetched_at]
    if earlier:
        merged.update(max(earlier, key=lambda item: item[0])[1])
    return merged


def _account_numbers(
    payloads: Sequence[RawPayload],
) -> Result[list[tuple[datetime, dict[str, str]]], ProviderError]:
    found: list[tuple[datetime, dict[str, str]]] = []
    for payload in payloads:
        path, _ = _split_request(payload.request)
        if payload.kind != "accounts" or not path.endswith("/accounts/accountNumbers"):
            continue
        body = _decode(payload)
        if isinstance(body, Err):
            return Err(body.error)
        hashes = map_account_numbers(body.value)
        if isinstance(hashes, Err):
            return Err(hashes.error)
        found.append((payload.fetched_at, hashes.value))
    return Ok(found)


def remap_pages(
    payloads: Sequence[RawPayload], *, currency: str = "USD"
) -> Result[Remapped, ProviderError]:
    """Re-derive accounts, current holdings and transactions from archived pages.

    Args:
        payloads: archived pages, newest first, as the client archived them.
        currency: the settings' currency.

    Returns:
        ``Ok(Remapped)``, or ``Err(ProviderProtocolError)`` naming the first unusable page.
    """
    numbers = _account_numbers(payloads)
    if isinstance(numbers, Err):
        return Err(numbers.error)
    accounts: list[ProviderAccount] = []
    holdings: list[ProviderHolding] = []
    holdings_seen: set[str] = set()
    transactions: list[ProviderTransaction] = []
    keys_seen: set[tuple[str, str]] = set()
    for payload in payloads:
        path, query = _split_request(payload.request)
        segments = path.split("/")
        if payload.kind == "accounts" and path.endswith("/accounts"):
            body = _decode(payload)
            if isinstance(body, Err):
                return Err(body.error)
            hashes = _hashes_for(numbers.value, payload.fetched_at)
            mapped_accounts = map_accounts(
                body.value, hashes, as_of=payload.fetched_at, currency=currency
            )
            if isinstance(mapped_accounts, Err):
                return Err(mapped_accounts.error)
            accounts.extend(mapped_accounts.value)
            continue
        if payload.kind not in ("holdings", "transactions"):
            continue
        account_id = payload.account_id
        if not account_id:
            return Err(_page_error(payload, "no account recorded"))
        if payload.kind == "holdings" and len(segments) > 1 and segments[-2] == "accounts":
            if account_id in holdings_seen:
                continue  # an older snapshot of positions already superseded
            body = _decode(payload)
            if isinstance(body, Err):
                return Err(body.error)
            positions = map_positions(
                body.value, account_id, as_of=payload.fetched_at, currency=currency
            )
            if isinstance(positions, Err):
                return Err(positions.error)
            holdings_seen.add(account_id)
            holdings.extend(positions.value)
        elif payload.kind == "transactions" and path.endswith("/transactions"):
            window = transactions_window(query)
            if window is None:
                return Err(_page_error(payload, "the request records no startDate/endDate"))
            body = _decode(payload)
            if isinstance(body, Err):
                return Err(body.error)
            mapped = map_transactions(body.value, account_id, currency=currency)
            if isinstance(mapped, Err):
                return Err(mapped.error)
            for record in mapped.value:
                key = (account_id, record.dedupe_key)
                if window[0] <= record.date <= window[1] and key not in keys_seen:
                    keys_seen.add(key)
                    transactions.append(record)
    return Ok(Remapped(accounts=accounts, transactions=transactions, holdings=holdings))


__all__ = ["remap_pages", "transactions_window"]
