"""``SchwabProvider.remap``: archived pages re-map to exactly what the fetch produced."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashtam_core.errors import ProviderProtocolError
from dashtam_core.ports.provider import Credentials, RawPayload, Remappable, Remapped
from dashtam_core.result import Err, Ok
from dashtam_provider_schwab import SchwabProvider, SchwabSettings, transactions
from dashtam_provider_schwab.remap import remap_pages, transactions_window

FIXTURES = Path(__file__).parent / "fixtures"
MARGIN_HASH = "37BF42A99C87DFDAE1C632107707C5BE9DF121925ED90B1349D9F9AAA5C9AEEC"
CASH_HASH = "E2A293E58725F1D6B1958FAA975F59053C4C624A8073358C31E7E2023910EFF1"
WINDOW = (date(2025, 4, 1), date(2025, 4, 24))
T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)
BASE = "/trader/v1"
TX_REQUEST = (
    f"GET {BASE}/accounts/{MARGIN_HASH}/transactions?startDate=2025-04-01T00%3A00%3A00.000Z"
    "&endDate=2025-04-24T23%3A59%3A59.999Z&types=TRADE"
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text("utf-8"))


def page(
    kind: str, body: Any, request: str, *, minutes: int = 0, account: str | None = None
) -> RawPayload:
    return RawPayload(
        kind=kind,
        content=json.dumps(body).encode(),
        content_type="application/json",
        fetched_at=T0 + timedelta(minutes=minutes),
        request=request,
        account_id=account,
    )


def newest_first(pages: list[RawPayload]) -> list[RawPayload]:
    return sorted(pages, key=lambda p: p.fetched_at, reverse=True)


def by_key(records: list[Any]) -> list[Any]:
    return sorted(records, key=lambda r: (r.provider_account_id, getattr(r, "dedupe_key", "")))


async def test_remap_reproduces_a_windowed_fetch(
    sandbox_server: Any,
    http_client: httpx.AsyncClient,
    make_settings: Callable[..., SchwabSettings],
    connect: Any,
) -> None:
    provider = SchwabProvider(
        make_settings(sandbox_server.url, transaction_window_days=5), http_client
    )
    assert isinstance(provider, Remappable)
    credentials: Credentials = await connect(provider, http_client)
    accounts = (await provider.fetch_accounts(credentials)).unwrap()
    pages = list(accounts.raw)
    holdings: list[Any] = []
    fetched: list[Any] = []
    for account in accounts.records:
        held = (await provider.fetch_holdings(credentials, account.provider_account_id)).unwrap()
        got = (
            await provider.fetch_transactions(credentials, account.provider_account_id, *WINDOW)
        ).unwrap()
        holdings += held.records
        fetched += got.records
        pages += held.raw + got.raw
    assert len([p for p in pages if p.kind == "transactions"]) >= 10  # 5-day windows
    remapped = provider.remap(newest_first(pages)).unwrap()
    assert by_key(remapped.accounts) == by_key(accounts.records)
    assert sorted(remapped.holdings, key=lambda h: (h.provider_account_id, h.instrument_id)) == (
        sorted(holdings, key=lambda h: (h.provider_account_id, h.instrument_id))
    )
    assert by_key(remapped.transactions) == by_key(fetched)
    assert sum((t.amount for t in remapped.transactions), Decimal(0)) == sum(
        (t.amount for t in fetched), Decimal(0)
    )
    # A later, narrower sync archived on top: still one record per key, same content.
    again = (
        await provider.fetch_transactions(credentials, MARGIN_HASH, date(2025, 4, 10), WINDOW[1])
    ).unwrap()
    twice = provider.remap(newest_first(pages + again.raw)).unwrap()
    assert by_key(twice.transactions) == by_key(fetched)


def test_accounts_use_the_hashes_fetched_with_them() -> None:
    numbers = load("account_numbers.json")
    older = [{**n, "hashValue": f"OLD{i}"} for i, n in enumerate(numbers)]
    accounts_body = load("accounts_with_positions.json")
    pages = [
        page("accounts", numbers, f"GET {BASE}/accounts/accountNumbers", minutes=20),
        page("accounts", accounts_body, f"GET {BASE}/accounts?fields=positions", minutes=11),
        page("accounts", older, f"GET {BASE}/accounts/accountNumbers", minutes=10),
    ]
    remapped = remap_pages(pages).unwrap()
    assert {a.provider_account_id for a in remapped.accounts} == {"OLD0", "OLD1"}
    assert all(a.balance_as_of == T0 + timedelta(minutes=11) for a in remapped.accounts)
    latest = remap_pages([pages[1], pages[0]]).unwrap()  # no earlier page: any archived one
    assert {a.provider_account_id for a in latest.accounts} == {MARGIN_HASH, CASH_HASH}
    missing = remap_pages([pages[1]])
    assert isinstance(missing, Err)
    assert "hashValue" in missing.error.message


def test_window_newest_page_and_newest_holdings_win() -> None:
    items = load("transactions.json")
    corrected = [{**items[0], "description": "CORRECTED"}]
    narrow = TX_REQUEST.replace("2025-04-24", "2025-04-03")
    positions = load("accounts_with_positions.json")[0]
    pages = [
        page("transactions", corrected, TX_REQUEST, minutes=30, account=MARGIN_HASH),
        page(
            "holdings",
            positions,
            f"GET {BASE}/accounts/{MARGIN_HASH}",
            minutes=25,
            account=MARGIN_HASH,
        ),
        page("transactions", items, narrow, minutes=20, account=MARGIN_HASH),
        page(
            "holdings",
            {"securitiesAccount": {}},
            f"GET {BASE}/accounts/{MARGIN_HASH}",
            minutes=1,
            account=MARGIN_HASH,
        ),
    ]
    remapped = remap_pages(pages).unwrap()
    assert remapped.transactions[0].description == "CORRECTED"
    assert all(t.date <= date(2025, 4, 3) for t in remapped.transactions)
    assert len(remapped.transactions) == 3  # 04-01 (corrected), 04-02, 04-03
    assert remapped.holdings
    assert all(h.as_of == T0 + timedelta(minutes=25) for h in remapped.holdings)


def test_pages_are_mapped_by_the_module_mapping_functions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pages = [page("transactions", load("transactions.json"), TX_REQUEST, account=MARGIN_HASH)]
    before = remap_pages(pages).unwrap().transactions
    monkeypatch.setattr(transactions, "_describe", lambda *args: "FIXED")
    after = remap_pages(pages).unwrap().transactions
    assert [t.description for t in after] == ["FIXED"] * len(before)
    assert [dataclasses.replace(t, description="FIXED") for t in before] == after


def test_unusable_pages_are_errors_and_others_are_skipped() -> None:
    items = load("transactions.json")
    no_account = page("transactions", items, TX_REQUEST)
    no_window = page(
        "transactions", items, f"GET {BASE}/accounts/{MARGIN_HASH}/transactions", account="H"
    )
    broken = dataclasses.replace(no_window, request=TX_REQUEST, content=b"[{")
    for bad in (no_account, no_window, broken):
        result = remap_pages([bad])
        assert isinstance(result, Err)
        assert isinstance(result.error, ProviderProtocolError)
    assert remap_pages([page("statement", {}, "import a.ofx")]) == Ok(Remapped())


def test_transactions_window_reads_the_request_dates() -> None:
    query = {"startDate": ["2025-04-01T00:00:00.000Z"], "endDate": ["2025-04-24T23:59:59.999Z"]}
    assert transactions_window(query) == WINDOW
    assert transactions_window({"startDate": ["soon"], "endDate": ["x"]}) is None
    assert transactions_window({}) is None
