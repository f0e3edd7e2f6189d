"""Mapping of the Schwab fixtures reproduces the fixture README's arithmetic to the cent."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.holding import AssetType, CostBasisUnit
from dashtam_core.domain.transaction import TransactionStatus, TransactionSubtype, TransactionType
from dashtam_core.errors import ProviderProtocolError
from dashtam_core.result import Err
from dashtam_provider_schwab.mapping import (
    asset_type,
    decode_json,
    map_account,
    map_account_numbers,
    map_position,
    map_positions,
    parse_timestamp,
)
from dashtam_provider_schwab.transactions import map_transaction, map_transactions

FIXTURES = Path(__file__).parent / "fixtures"
AS_OF = datetime(2025, 4, 25, 21, 0, tzinfo=UTC)
MARGIN_HASH = "37BF42A99C87DFDAE1C632107707C5BE9DF121925ED90B1349D9F9AAA5C9AEEC"
CASH_HASH = "E2A293E58725F1D6B1958FAA975F59053C4C624A8073358C31E7E2023910EFF1"


def load(name: str) -> Any:
    return decode_json((FIXTURES / name).read_bytes()).unwrap()


def test_numbers_decode_as_exact_decimals() -> None:
    data = load("accounts_with_positions.json")
    cash = data[0]["securitiesAccount"]["currentBalances"]["cashBalance"]
    assert type(cash) is Decimal
    assert cash == Decimal("2487.15")
    assert isinstance(decode_json(b'{"a": NaN}'), Err)
    assert isinstance(decode_json(b"[1, 2"), Err)
    assert isinstance(decode_json(b"\xff\xfe"), Err)


def test_account_numbers_map_to_hashes() -> None:
    hashes = map_account_numbers(load("account_numbers.json")).unwrap()
    assert hashes == {"71234908": MARGIN_HASH, "65550417": CASH_HASH}
    assert isinstance(map_account_numbers({"accountNumber": "1"}), Err)
    assert isinstance(map_account_numbers([{"accountNumber": "1"}]), Err)


def test_accounts_balances_to_the_cent() -> None:
    margin, cash = load("accounts_with_positions.json")
    m = map_account(margin, MARGIN_HASH, as_of=AS_OF)
    c = map_account(cash, CASH_HASH, as_of=AS_OF)
    assert (m.provider_account_id, m.type, m.subtype, m.mask) == (
        MARGIN_HASH,
        AccountType.BROKERAGE,
        "margin",
        "4908",
    )
    assert (c.type, c.subtype, c.mask, c.currency) == (AccountType.BROKERAGE, "cash", "0417", "USD")
    assert m.balance_current == Decimal("18517.92")
    assert m.balance_available == Decimal("2487.15")
    assert c.balance_current == Decimal("12668.80")
    assert c.balance_available == Decimal("1310.42")
    assert m.balance_current + c.balance_current == Decimal("31186.72")  # aggregatedBalance
    assert "71234908" not in m.name  # only the mask is shown


def test_positions_reproduce_liquidation_value() -> None:
    margin, cash = load("accounts_with_positions.json")
    holdings = map_positions(margin, MARGIN_HASH, as_of=AS_OF).unwrap()
    by_symbol = {h.symbol: h for h in holdings}
    jnj, schd = by_symbol["JNJ"], by_symbol["SCHD"]
    option, mmf = by_symbol["AAPL  250620C00200000"], by_symbol["SWVXX"]
    assert (jnj.asset_type, schd.asset_type) == (AssetType.EQUITY, AssetType.ETF)
    assert (option.asset_type, mmf.asset_type) == (AssetType.OPTION, AssetType.MONEY_MARKET)
    assert jnj.instrument_id == "478160104"  # CUSIP
    assert option.instrument_id == "AAPL  250620C00200000"  # OCC symbol, root padded to 6
    assert option.quantity == 2  # contracts
    assert option.price == Decimal("7.10")  # per share: 2 x 100 x 7.10 = 1420.00
    assert option.market_value == Decimal("1420.00")
    assert option.cost_basis is not None
    assert option.cost_basis.per_unit == Decimal("635.00")  # per contract
    assert option.cost_basis.total == Decimal("1270.00")
    assert option.cost_basis.reported is CostBasisUnit.PER_UNIT
    assert jnj.market_value is not None
    assert schd.market_value is not None
    assert jnj.market_value + schd.market_value == Decimal("9598.40")  # longMarketValue
    invested = sum((h.market_value or Decimal(0) for h in holdings), Decimal(0))
    cash_balance = map_account(margin, MARGIN_HASH, as_of=AS_OF).balance_available
    assert cash_balance is not None
    assert invested + cash_balance == Decimal("18517.92")
    assert jnj.cost_basis is not None
    assert jnj.cost_basis.total == Decimal("6092.50")  # 40 x 152.3125
    cash_holdings = map_positions(cash, CASH_HASH, as_of=AS_OF).unwrap()
    assert {h.symbol: h.asset_type for h in cash_holdings} == {
        "PG": AssetType.EQUITY,
        "SWPPX": AssetType.MUTUAL_FUND,
    }
    assert sum((h.market_value or Decimal(0) for h in cash_holdings), Decimal(0)) + Decimal(
        "1310.42"
    ) == Decimal("12668.80")
    assert all(h.currency == "USD" and h.as_of == AS_OF for h in holdings + cash_holdings)


def test_short_position_is_negative_with_negative_value() -> None:
    position = {
        "shortQuantity": Decimal("5"),
        "longQuantity": Decimal("0"),
        "averagePrice": Decimal("20.5"),
        "averageShortPrice": Decimal("21.0"),
        "marketValue": Decimal("100.0"),
        "instrument": {"assetType": "EQUITY", "symbol": "XYZ"},
    }
    holding = map_position(position, "H", as_of=AS_OF)
    assert holding.quantity == Decimal("-5")
    assert holding.market_value == Decimal("-100.0")
    assert holding.instrument_id == "XYZ"  # no CUSIP: the symbol
    assert holding.cost_basis is not None
    assert holding.cost_basis.total == Decimal("-105.0")


@pytest.mark.parametrize(
    ("instrument", "expected"),
    [
        ({"assetType": "COLLECTIVE_INVESTMENT", "type": "EXCHANGE_TRADED_FUND"}, AssetType.ETF),
        ({"assetType": "COLLECTIVE_INVESTMENT", "type": "UNIT_INVESTMENT_TRUST"}, AssetType.OTHER),
        ({"assetType": "MUTUAL_FUND", "type": "MONEY_MARKET_FUND"}, AssetType.MONEY_MARKET),
        ({"assetType": "CASH_EQUIVALENT", "type": "SWEEP_VEHICLE"}, AssetType.CASH_EQUIVALENT),
        ({"assetType": "FIXED_INCOME"}, AssetType.FIXED_INCOME),
        ({"assetType": "INDEX"}, AssetType.OTHER),
        ({"assetType": "SOMETHING_NEW"}, AssetType.OTHER),
    ],
)
def test_asset_types(instrument: dict[str, str], expected: AssetType) -> None:
    assert asset_type(instrument) is expected


def test_timestamps_without_colon_and_with_z() -> None:
    assert parse_timestamp("2025-01-02T00:00:00+0000") == datetime(2025, 1, 2, tzinfo=UTC)
    eastern = parse_timestamp("2025-04-01T22:30:00-0400")
    assert eastern is not None
    assert eastern.date() == date(2025, 4, 1)  # the stated calendar date, no shift
    assert parse_timestamp("2024-03-28T21:10:42.000Z") == datetime(
        2024, 3, 28, 21, 10, 42, tzinfo=UTC
    )
    assert parse_timestamp("yesterday") is None


def test_fourteen_transactions_sum_and_cash_identity() -> None:
    records = map_transactions(load("transactions.json"), MARGIN_HASH).unwrap()
    assert len(records) == 14
    total = sum((r.amount for r in records), Decimal(0))
    assert total == Decimal("172.01")
    assert Decimal("2315.14") + total == Decimal("2487.15")
    assert len({r.dedupe_key for r in records}) == 14
    assert all(r.provider_account_id == MARGIN_HASH and r.currency == "USD" for r in records)
    assert all(r.status is TransactionStatus.POSTED for r in records)
    assert records[0].date == date(2025, 4, 1)
    assert records[-1].date == date(2025, 4, 24)


def test_every_fixture_transaction_type_is_classified() -> None:
    records = {r.dedupe_key: r for r in map_transactions(load("transactions.json"), "H").unwrap()}
    kinds = {key: (r.type, r.subtype) for key, r in records.items()}
    assert kinds == {
        "95512340001": (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT),  # ACH_RECEIPT
        "95512340138": (TransactionType.TRADE, TransactionSubtype.BUY),  # JNJ
        "95512340275": (TransactionType.TRADE, TransactionSubtype.SELL),  # SCHD
        "95512340412": (TransactionType.TRADE, TransactionSubtype.BUY),  # option buy-to-open
        "95512340549": (TransactionType.INCOME, TransactionSubtype.DIVIDEND),
        "95512340686": (TransactionType.TRADE, TransactionSubtype.BUY),  # MONEY_MARKET purchase
        "95512340823": (TransactionType.TRANSFER, TransactionSubtype.JOURNAL),
        "95512340960": (
            TransactionType.TRANSFER,
            TransactionSubtype.WITHDRAWAL,
        ),  # ACH_DISBURSEMENT
        "95512341097": (TransactionType.INCOME, TransactionSubtype.INTEREST),
        "95512341234": (TransactionType.TRANSFER, TransactionSubtype.WIRE),  # WIRE_IN
        "95512341371": (TransactionType.TRANSFER, TransactionSubtype.WITHDRAWAL),  # ELECTRONIC_FUND
        "95512341508": (
            TransactionType.INCOME,
            TransactionSubtype.DIVIDEND,
        ),  # money-market dividend
        "95512341645": (TransactionType.TRANSFER, TransactionSubtype.WIRE),  # WIRE_OUT
        "95512341782": (TransactionType.TRANSFER, TransactionSubtype.DEPOSIT),  # CASH_RECEIPT
    }


def test_trades_carry_fees_and_security_legs() -> None:
    records = {r.dedupe_key: r for r in map_transactions(load("transactions.json"), "H").unwrap()}
    jnj, schd, option = records["95512340138"], records["95512340275"], records["95512340412"]
    assert jnj.security is not None
    assert schd.security is not None
    assert option.security is not None
    assert (jnj.security.symbol, jnj.security.quantity, jnj.security.price) == (
        "JNJ",
        Decimal("10"),
        Decimal("155.10"),
    )
    assert jnj.amount == Decimal("-1551.00")
    assert jnj.fees == Decimal("0")
    assert schd.security.quantity == Decimal("-30")
    assert schd.security.asset_type == "etf"
    assert schd.fees == Decimal("0.04")
    assert schd.amount == Decimal("826.46")
    assert schd.amount == Decimal("826.50") - schd.fees
    assert option.security.symbol == "AAPL  250620C00200000"
    assert option.security.asset_type == "option"
    assert option.fees == Decimal("1.34")
    assert option.amount == Decimal("-1270.00") - option.fees
    assert jnj.posted_at == datetime(2025, 4, 2, 14, 31, 7, tzinfo=UTC)
    assert records["95512340686"].security is not None
    assert records["95512340549"].security is None  # dividend: issuer only in description


def _item(kind: str, amount: str, **extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "activityId": 1,
        "time": "2025-05-01T10:00:00+0000",
        "type": kind,
        "status": "VALID",
        "netAmount": Decimal(amount),
        "transferItems": [],
    }
    base.update(extra)
    return base


def test_other_types_and_statuses() -> None:
    margin_interest = map_transaction(
        _item("DIVIDEND_OR_INTEREST", "-3.10", description="MARGIN INTEREST"), "H"
    )
    assert margin_interest is not None
    assert (margin_interest.type, margin_interest.subtype) == (
        TransactionType.FEE,
        TransactionSubtype.INTEREST,
    )
    adr_fee = map_transaction(_item("JOURNAL", "-0.60", description="ADR FEE"), "H")
    assert adr_fee is not None
    assert (adr_fee.type, adr_fee.subtype) == (TransactionType.FEE, TransactionSubtype.FEE)
    assert map_transaction(_item("SMA_ADJUSTMENT", "0"), "H") is None
    assert map_transaction(_item("TRADE", "1", status="INVALID"), "H") is None
    pending = map_transaction(_item("CASH_DISBURSEMENT", "-20", status="PENDING"), "H")
    assert pending is not None
    assert (pending.status, pending.subtype) == (
        TransactionStatus.PENDING,
        TransactionSubtype.WITHDRAWAL,
    )
    odd = map_transaction(_item("BRAND_NEW_TYPE", "5"), "H")
    assert odd is not None
    assert (odd.type, odd.subtype) == (TransactionType.OTHER, TransactionSubtype.OTHER)
    short = map_transaction(
        _item(
            "TRADE",
            "500",
            transferItems=[
                {
                    "instrument": {"assetType": "EQUITY", "symbol": "XYZ"},
                    "amount": Decimal("-10"),
                    "price": Decimal("50"),
                    "positionEffect": "OPENING",
                }
            ],
        ),
        "H",
    )
    assert short is not None
    assert short.subtype is TransactionSubtype.SHORT
    assert short.description == "Sold short 10 XYZ @ 50"
    delivered = map_transaction(_item("RECEIVE_AND_DELIVER", "0"), "H")
    assert delivered is not None
    assert delivered.type is TransactionType.TRANSFER


def test_malformed_transactions_are_protocol_errors() -> None:
    for bad in (
        {"type": "TRADE", "netAmount": Decimal(1), "time": "2025-05-01T10:00:00+0000"},
        _item("TRADE", "1", netAmount=None),
        _item("TRADE", "1", time="garbage"),
        _item("TRADE", "1", netAmount=1.5),  # a float would be inexact: refused
    ):
        result = map_transactions([bad], "H")
        assert isinstance(result, Err)
        assert isinstance(result.error, ProviderProtocolError)
    assert isinstance(map_transactions({"not": "a list"}, "H"), Err)


def test_fixture_files_are_the_shared_samples() -> None:
    token = json.loads((FIXTURES / "token_response.json").read_text())
    assert token["expires_in"] == 1800
    assert token["scope"] == "api"
    error = json.loads((FIXTURES / "error_401.json").read_text())
    assert set(error) == {"message", "errors"}
