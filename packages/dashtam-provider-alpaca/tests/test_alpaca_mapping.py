"""Mapping of the Alpaca fixtures reproduces the fixture README's arithmetic to the cent."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.holding import AssetType, CostBasisUnit
from dashtam_core.domain.transaction import TransactionStatus as St
from dashtam_core.domain.transaction import TransactionSubtype as Sub
from dashtam_core.domain.transaction import TransactionType as Typ
from dashtam_core.errors import ProviderProtocolError
from dashtam_core.ports.provider import ProviderTransaction
from dashtam_core.result import Err, Ok
from dashtam_provider_alpaca.activity_types import ACTIVITY_KINDS, UNKNOWN_KIND
from dashtam_provider_alpaca.mapping import (
    decode_json,
    map_account,
    map_activities,
    map_activity,
    map_positions,
    parse_timestamp,
)

AS_OF = datetime(2025, 4, 30, 20, 0, tzinfo=UTC)
ACCOUNT = "6375b0a6-213b-459f-8e80-cfb4229e8c7a"


@pytest.fixture
def activities(fixture_json: Any) -> list[ProviderTransaction]:
    items = fixture_json("activities_page1.json") + fixture_json("activities_page2.json")
    return map_activities(items, account_id=ACCOUNT).unwrap()


def by_id(records: list[ProviderTransaction], prefix: str) -> ProviderTransaction:
    (found,) = [r for r in records if r.provider_transaction_id.startswith(prefix)]
    return found


def test_cash_identity_holds_to_the_cent(
    activities: list[ProviderTransaction], fixture_json: Any
) -> None:
    assert len(activities) == 11
    total = sum((t.amount for t in activities), Decimal(0))
    assert total == Decimal("2610.24")
    assert total == Decimal(fixture_json("account.json")["cash"])
    assert all(t.currency == "USD" and isinstance(t.amount, Decimal) for t in activities)
    assert len({t.dedupe_key for t in activities}) == 11
    assert all(t.dedupe_key == t.provider_transaction_id for t in activities)


def test_fill_amounts_and_security_legs(activities: list[ProviderTransaction]) -> None:
    expected = {
        "20250402094510412": ("-2049.60", Sub.BUY, "4"),  # SPY partial_fill 4 @ 512.40
        "20250402094511027": ("-2049.40", Sub.BUY, "4"),  # SPY fill 4 @ 512.35
        "20250403100233918": ("-3648.00", Sub.BUY, "20"),  # AAPL 20 @ 182.40
        "20250406221745301": ("-3360.49", Sub.BUY, "0.04"),  # BTC/USD 0.04 @ 84012.25
        "20250410132005664": ("950.50", Sub.SELL, "-5"),  # AAPL sell 5 @ 190.10
    }
    for prefix, (amount, subtype, qty) in expected.items():
        record = by_id(activities, prefix)
        assert record.type is Typ.TRADE
        assert record.subtype is subtype
        assert record.amount == Decimal(amount)
        assert record.security is not None
        assert record.security.quantity == Decimal(qty)
    spy_partial = by_id(activities, "20250402094510412")
    spy_fill = by_id(activities, "20250402094511027")
    assert "partial fill" in spy_partial.description
    assert spy_partial.dedupe_key != spy_fill.dedupe_key
    assert spy_partial.amount + spy_fill.amount == Decimal("-4099.00")
    btc = by_id(activities, "20250406221745301")
    assert btc.security is not None
    assert btc.security.asset_type == "crypto"
    assert btc.security.price == Decimal("84012.25")


def test_fill_is_dated_on_the_new_york_day_of_its_id(
    activities: list[ProviderTransaction],
) -> None:
    btc = by_id(activities, "20250406221745301")
    assert btc.date == date(2025, 4, 6)  # 2025-04-07T02:17Z is 22:17 on the 6th in New York
    assert btc.posted_at == datetime(2025, 4, 7, 2, 17, 45, 301000, tzinfo=UTC)
    for record in activities:
        assert record.date.strftime("%Y%m%d") == record.provider_transaction_id[:8]


def test_non_trade_activities(activities: list[ProviderTransaction]) -> None:
    div = by_id(activities, "20250430000000000")
    assert (div.type, div.subtype, div.amount) == (Typ.INCOME, Sub.DIVIDEND, Decimal("13.52"))
    assert div.security is not None
    assert (div.security.symbol, div.security.quantity) == ("SPY", Decimal(8))
    assert div.security.price == Decimal("1.69")
    assert div.date == date(2025, 4, 30)
    assert div.posted_at is None
    csw = by_id(activities, "20250422000000000")
    assert (csw.type, csw.subtype, csw.amount) == (Typ.TRANSFER, Sub.WITHDRAWAL, Decimal(-250))
    assert csw.description == "Cash withdrawal"
    fee = by_id(activities, "20250411000000000")
    assert (fee.type, fee.subtype, fee.amount) == (Typ.FEE, Sub.FEE, Decimal("-0.04"))
    deposits = [t for t in activities if t.subtype is Sub.DEPOSIT]
    assert sorted(t.amount for t in deposits) == [Decimal(3000), Decimal(10000)]


def test_account_balances(fixture_json: Any) -> None:
    account = map_account(fixture_json("account.json"), environment="paper", as_of=AS_OF).unwrap()
    assert account.provider_account_id == ACCOUNT
    assert account.type is AccountType.BROKERAGE
    assert account.currency == "USD"
    assert account.balance_current == Decimal("13272.09")
    assert account.balance_available == Decimal("2610.24")
    assert account.mask == "4X2Q"
    assert account.subtype == "margin"
    assert account.name == "Alpaca Paper PA3SYNTH4X2Q"


def test_positions_reproduce_long_market_value_and_equity(fixture_json: Any) -> None:
    holdings = map_positions(fixture_json("positions.json"), account_id=ACCOUNT, as_of=AS_OF)
    records = holdings.unwrap()
    assert [h.symbol for h in records] == ["AAPL", "SPY", "BTCUSD"]
    long_market_value = sum((h.market_value or Decimal(0) for h in records), Decimal(0))
    assert long_market_value == Decimal("10661.85")
    assert Decimal("2610.24") + long_market_value == Decimal("13272.09")
    aapl, spy, btc = records
    assert aapl.instrument_id == "ac0b47b8-d321-43ae-a50b-dfdb4db7edb7"
    assert (aapl.quantity, aapl.price, aapl.asset_type) == (
        Decimal(15),
        Decimal("196.25"),
        AssetType.EQUITY,
    )
    assert spy.cost_basis is not None
    assert spy.cost_basis.reported is CostBasisUnit.TOTAL
    assert (spy.cost_basis.total, spy.cost_basis.per_unit) == (Decimal(4099), Decimal("512.375"))
    assert (btc.asset_type, btc.quantity) == (AssetType.CRYPTO, Decimal("0.04"))
    assert btc.cost_basis is not None
    assert btc.cost_basis.per_unit == Decimal("84012.25")
    for h in records:
        assert h.market_value == h.quantity * (h.price or 0)


def _position(**fields: str) -> dict[str, Any]:
    base = {
        "asset_id": "0a1b2c3d-0000-4000-8000-000000000001",
        "exchange": "NASDAQ",
        "asset_marginable": True,
    }
    return {**base, **fields}


def test_short_and_option_positions() -> None:
    wire = [
        _position(
            symbol="TSLA",
            asset_class="us_equity",
            qty="-10",
            side="short",
            market_value="-2500",
            cost_basis="-2400",
            current_price="250",
            avg_entry_price="240",
        ),
        # Lenient: a short reported with a positive qty still comes out negative.
        _position(symbol="F", asset_class="us_equity", qty="3", side="short", cost_basis="30"),
        _position(
            symbol="AAPL250620C00200000",
            asset_class="us_option",
            qty="2",
            side="long",
            market_value="630",
            cost_basis="500",
            current_price="3.15",
        ),
    ]
    short, lenient, option = map_positions(wire, account_id=ACCOUNT, as_of=AS_OF).unwrap()
    assert short.quantity == Decimal(-10)
    assert short.market_value == Decimal(-2500)
    assert short.cost_basis is not None
    assert short.cost_basis.total == Decimal(-2400)
    assert short.cost_basis.per_unit == Decimal(240)
    assert lenient.quantity == Decimal(-3)
    assert lenient.cost_basis is not None
    assert lenient.cost_basis.total == Decimal(-30)
    assert option.asset_type is AssetType.OPTION
    assert option.quantity == Decimal(2)


def _fill(**fields: str) -> dict[str, Any]:
    base = {
        "activity_type": "FILL",
        "id": "20250602101500000::11111111-2222-4333-8444-555555555555",
        "transaction_time": "2025-06-02T14:15:00.123456789Z",
        "type": "fill",
        "order_id": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
    }
    return {**base, **fields}


def test_option_fill_uses_the_contract_multiplier_and_short_sells_are_positive() -> None:
    option = map_activity(
        _fill(price="3.15", qty="2", side="buy", symbol="AAPL250620C00200000"), account_id=ACCOUNT
    ).unwrap()
    assert option is not None
    assert option.amount == Decimal("-630.00")
    assert option.security is not None
    assert option.security.asset_type == "option"
    assert option.posted_at == datetime(2025, 6, 2, 14, 15, 0, 123456, tzinfo=UTC)
    short = map_activity(
        _fill(price="10.005", qty="3", side="sell_short", symbol="F"), account_id=ACCOUNT
    ).unwrap()
    assert short is not None
    assert (short.subtype, short.amount) == (Sub.SHORT, Decimal("30.02"))  # 30.015 half up
    assert short.security is not None
    assert short.security.quantity == Decimal(-3)


@pytest.mark.parametrize("activity_type", [*sorted(set(ACTIVITY_KINDS) - {"FILL"}), "ZZNEW"])
def test_every_non_trade_type_maps_and_keeps_its_signed_amount(activity_type: str) -> None:
    raw = {
        "activity_type": activity_type,
        "id": "20250505000000000::99999999-2222-4333-8444-555555555555",
        "date": "2025-05-05",
        "net_amount": "-12.34",
        "description": "",
        "status": "executed",
    }
    record = map_activity(raw, account_id=ACCOUNT).unwrap()
    assert record is not None
    kind = ACTIVITY_KINDS.get(activity_type, UNKNOWN_KIND)
    assert (record.type, record.subtype) == (kind.type, kind.subtype)
    assert record.amount == Decimal("-12.34")
    assert record.description == kind.label
    assert record.date == date(2025, 5, 5)


def test_status_canceled_is_skipped_and_pending_is_pending() -> None:
    base = {"activity_type": "CSD", "date": "2025-05-06", "net_amount": "5"}
    items = [
        {**base, "id": "20250506000000000::a", "status": "canceled"},
        {**base, "id": "20250506000000000::b", "status": "pending"},
        {**base, "id": "20250506000000000::c"},
    ]
    records = map_activities(items, account_id=ACCOUNT).unwrap()
    assert [(r.provider_transaction_id[-1], r.status) for r in records] == [
        ("b", St.PENDING),
        ("c", St.POSTED),
    ]


def test_date_falls_back_to_the_id_timestamp() -> None:
    raw = {"activity_type": "JNLC", "id": "20250507000000000::x", "net_amount": "-1"}
    record = map_activity(raw, account_id=ACCOUNT).unwrap()
    assert record is not None
    assert record.date == date(2025, 5, 7)
    assert record.type is Typ.TRANSFER
    assert record.subtype is Sub.JOURNAL


@pytest.mark.parametrize(
    "raw",
    [
        _fill(qty="2", side="buy", symbol="F"),  # no price
        _fill(price="abc", qty="2", side="buy", symbol="F"),
        _fill(price="1", qty="2", side="sideways", symbol="F"),
        _fill(price="1", qty="2", side="buy", symbol="F", transaction_time="yesterday"),
        {"activity_type": "DIV", "net_amount": "1"},  # no id
        {"activity_type": "DIV", "id": "nodate::x", "net_amount": "1"},
        "not an object",
    ],
)
def test_malformed_activities_are_protocol_errors(raw: Any) -> None:
    result = map_activity(raw, account_id=ACCOUNT)
    assert isinstance(result, Err)
    assert isinstance(result.error, ProviderProtocolError)


def test_malformed_positions_and_account_are_protocol_errors() -> None:
    assert isinstance(map_positions({"a": 1}, account_id=ACCOUNT, as_of=AS_OF), Err)
    assert isinstance(map_positions([{"symbol": "X"}], account_id=ACCOUNT, as_of=AS_OF), Err)
    assert isinstance(map_account([], environment="paper", as_of=AS_OF), Err)
    assert isinstance(map_account({"cash": "1"}, environment="live", as_of=AS_OF), Err)


def test_json_numbers_decode_exactly() -> None:
    body = decode_json(b'{"qty": 0.1, "n": 3, "price": "0.30"}')
    assert body == Ok({"qty": Decimal("0.1"), "n": 3, "price": "0.30"})
    assert isinstance(decode_json(b"[{"), Err)
    assert isinstance(decode_json(b"\xff\xfe"), Err)


def test_timestamps_with_offsets_and_nanoseconds() -> None:
    assert parse_timestamp("2025-04-07T02:17:45.301Z") == datetime(
        2025, 4, 7, 2, 17, 45, 301000, tzinfo=UTC
    )
    assert parse_timestamp("2025-04-06T22:17:45.301234567-04:00") == datetime(
        2025, 4, 7, 2, 17, 45, 301234, tzinfo=UTC
    )
