"""``AlpacaProvider.remap``: archived pages re-map to exactly what the fetch produced."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from dashtam_core.errors import ProviderProtocolError
from dashtam_core.ports.provider import Credentials, RawPayload, Remappable, Remapped
from dashtam_core.result import Err, Ok
from dashtam_provider_alpaca import AlpacaProvider, mapping
from dashtam_provider_alpaca.remap import activities_window, remap_pages

FULL = (date(2000, 1, 1), date(2030, 12, 31))
ACCOUNT = "6375b0a6-213b-459f-8e80-cfb4229e8c7a"
T0 = datetime(2025, 5, 1, 12, tzinfo=UTC)


def newest_first(pages: list[RawPayload]) -> list[RawPayload]:
    return sorted(pages, key=lambda p: p.fetched_at, reverse=True)


def page(
    kind: str, body: Any, request: str, *, minutes: int = 0, account: str | None = ACCOUNT
) -> RawPayload:
    return RawPayload(
        kind=kind,
        content=json.dumps(body).encode(),
        content_type="application/json",
        fetched_at=T0 + timedelta(minutes=minutes),
        request=request,
        account_id=account,
    )


ACTIVITIES_REQUEST = (
    "GET /v2/account/activities?after=2025-03-31T00%3A00%3A00Z"
    "&until=2025-05-03T00%3A00%3A00Z&direction=desc&page_size=100"
)


async def test_remap_reproduces_a_full_fetch(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider: AlpacaProvider = make_provider(sandbox_url, page_size=4)
    assert isinstance(provider, Remappable)  # the runtime-checkable port
    accounts = (await provider.fetch_accounts(credentials)).unwrap()
    holdings = (await provider.fetch_holdings(credentials, ACCOUNT)).unwrap()
    fetched = (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap()
    pages = newest_first(accounts.raw + holdings.raw + fetched.raw)
    assert accounts.raw[0].request == "GET /v2/account (environment=paper)"
    remapped = provider.remap(pages).unwrap()
    assert remapped.accounts == accounts.records
    assert remapped.holdings == holdings.records
    assert sorted(remapped.transactions, key=lambda t: t.dedupe_key) == sorted(
        fetched.records, key=lambda t: t.dedupe_key
    )
    # Twice the archive (two syncs): still one record per key.
    again = (await provider.fetch_transactions(credentials, ACCOUNT, *FULL)).unwrap()
    twice = provider.remap(newest_first(pages + again.raw)).unwrap()
    assert len(twice.transactions) == 11
    assert sum((t.amount for t in twice.transactions), Decimal(0)) == Decimal("2610.24")


async def test_remap_keeps_the_window_each_page_covered(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url)
    window = (date(2025, 4, 5), date(2025, 4, 13))
    fetched = (await provider.fetch_transactions(credentials, ACCOUNT, *window)).unwrap()
    assert fetched.records  # the request is one day wider each side; the records are not
    listed = json.loads(fetched.raw[0].content)
    assert len(listed) > len(fetched.records)
    remapped = provider.remap(fetched.raw).unwrap()
    assert {t.dedupe_key for t in remapped.transactions} == {t.dedupe_key for t in fetched.records}
    assert all(window[0] <= t.date <= window[1] for t in remapped.transactions)


async def test_live_environment_survives_the_archive(
    sandbox_url: str, make_provider: Any, credentials: Credentials
) -> None:
    provider = make_provider(sandbox_url)
    live = Credentials({**credentials, "environment": "live"})
    fetched = (await provider.fetch_accounts(live)).unwrap()
    (account,) = provider.remap(fetched.raw).unwrap().accounts
    assert account == fetched.records[0]
    assert account.name.startswith("Alpaca Live")


def test_account_page_archived_without_environment_uses_the_account_number(
    fixture_json: Any,
) -> None:
    body = fixture_json("account.json")
    paper = remap_pages([page("accounts", body, "GET /v2/account", account=None)]).unwrap()
    assert paper.accounts[0].name == "Alpaca Paper PA3SYNTH4X2Q"
    assert paper.accounts[0].balance_as_of == T0
    live_body = {**body, "account_number": "914227301"}
    live = remap_pages([page("accounts", live_body, "GET /v2/account", account=None)]).unwrap()
    assert live.accounts[0].name == "Alpaca Live 914227301"


def test_newest_page_wins_and_older_holdings_are_ignored(fixture_json: Any) -> None:
    activity = fixture_json("activities_page1.json")[0]
    newer = {**activity, "description": "Dividend (corrected)"}
    positions = fixture_json("positions.json")
    pages = [
        page("transactions", [newer], ACTIVITIES_REQUEST, minutes=10),
        page("holdings", positions[:1], "GET /v2/positions", minutes=9),
        page("transactions", [activity], ACTIVITIES_REQUEST, minutes=5),
        page("holdings", positions, "GET /v2/positions", minutes=4),
    ]
    remapped = remap_pages(pages).unwrap()
    (record,) = remapped.transactions
    assert record.description == "Dividend (corrected)"
    assert len(remapped.holdings) == 1
    assert remapped.holdings[0].as_of == T0 + timedelta(minutes=9)


def test_pages_are_mapped_by_the_module_mapping_functions(
    fixture_json: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    activities = fixture_json("activities_page1.json")
    pages = [page("transactions", activities, ACTIVITIES_REQUEST)]
    before = remap_pages(pages).unwrap().transactions
    original = mapping._map_non_trade

    def upper(*args: Any) -> Any:
        return dataclasses.replace(original(*args), description="FIXED")

    monkeypatch.setattr(mapping, "_map_non_trade", upper)
    after = remap_pages(pages).unwrap().transactions
    changed = [a for a, b in zip(after, before, strict=True) if a != b]
    assert 0 < len(changed) < len(after)  # the fills keep their own mapping
    assert all(t.description == "FIXED" for t in changed)
    assert all(t.type.value != "trade" for t in changed)


def test_unusable_pages_are_errors_and_others_are_skipped(fixture_json: Any) -> None:
    activities = fixture_json("activities_page1.json")
    no_account = page("transactions", activities, ACTIVITIES_REQUEST, account=None)
    no_window = page("transactions", activities, "GET /v2/account/activities?direction=desc")
    broken = dataclasses.replace(no_window, request=ACTIVITIES_REQUEST, content=b"{not json")
    for bad in (no_account, no_window, broken):
        result = remap_pages([bad])
        assert isinstance(result, Err)
        assert isinstance(result.error, ProviderProtocolError)
    other = page("statement", {}, "import x.ofx")
    assert remap_pages([other]) == Ok(Remapped())


def test_activities_window_inverts_the_request() -> None:
    query = {"after": ["2025-03-31T00:00:00Z"], "until": ["2025-05-03T00:00:00Z"]}
    assert activities_window(query) == (date(2025, 4, 1), date(2025, 5, 1))
    assert activities_window({"after": ["nope"], "until": ["x"]}) is None
    assert activities_window({}) is None
