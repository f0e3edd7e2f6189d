"""The fast row serializer produces byte-for-byte the JSON of the pydantic response models."""

from __future__ import annotations

from collections import namedtuple
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dashtam_api.routes.exports import CSV_COLUMNS, csv_row
from dashtam_api.schemas.data import (
    ORJSON_OPTIONS,
    TransactionList,
    TransactionOut,
    transaction_json,
    transaction_page_json,
)
from dashtam_core.application.queries import API_COLUMNS
from dashtam_core.application.transaction_pages import api_row
from dashtam_core.domain.ids import uuid7
from dashtam_core.sync.rows import transaction_from_row


def _row(**overrides: Any) -> dict[str, Any]:
    now = datetime(2025, 4, 28, 12, 0, 0, 123456, tzinfo=UTC)
    row: dict[str, Any] = {
        "id": uuid7(),
        "account_id": uuid7(),
        "provider_transaction_id": "20250428::abc",
        "dedupe_key": "20250428::abc",
        "date": date(2025, 4, 28),
        "posted_at": now,
        "amount": Decimal("-0.00000100"),
        "currency": "USD",
        "description": 'ACME "ROAD" \u00e9 \\ 04/28',
        "merchant": None,
        "type": "trade",
        "subtype": "buy",
        "status": "posted",
        "pending_link": None,
        "pending_transaction_id": uuid7(),
        "security_symbol": "BTC/USD",
        "security_quantity": Decimal("0.04"),
        "security_price": Decimal("84012.25"),
        "security_asset_type": "crypto",
        "fees": None,
        "content_hash": "0" * 64,
        "created_at": now,
        "updated_at": now,
        "removed_at": None,
        "removed_reason": None,
    }
    row.update(overrides)
    return row


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"security_symbol": None, "posted_at": None, "pending_transaction_id": None},
        {
            "amount": Decimal("1E+2"),
            "merchant": "Shop",
            "posted_at": datetime(2025, 1, 1, tzinfo=UTC),
        },
        {"security_quantity": None, "security_price": Decimal("0E-8"), "status": "pending"},
    ],
)
def test_fast_json_equals_the_pydantic_model(overrides: dict[str, Any]) -> None:
    row = _row(**overrides)
    model = TransactionOut.of(transaction_from_row(row))
    assert (
        orjson.dumps(transaction_json(row), option=ORJSON_OPTIONS)
        == model.model_dump_json().encode()
    )
    page = TransactionList(data=[model, model], next_cursor="abc")
    wire = api_row([row[name] for name in API_COLUMNS])
    assert transaction_page_json([wire, wire], "abc") == page.model_dump_json().encode()


ApiRow = namedtuple("ApiRow", API_COLUMNS)  # type: ignore[misc]  # like a Row of API_COLUMNS


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"security_symbol": None, "posted_at": None, "pending_transaction_id": None},
        {"security_quantity": None, "security_price": Decimal("0E-8"), "status": "pending"},
    ],
)
def test_positional_rows_serialize_like_mappings(overrides: dict[str, Any]) -> None:
    row = _row(**overrides)
    positional = ApiRow(
        *(str(row[n]) if n in ("id", "account_id") else row[n] for n in API_COLUMNS)
    )
    model = TransactionOut.of(transaction_from_row(row))
    assert (
        orjson.dumps(transaction_json(positional), option=ORJSON_OPTIONS)
        == model.model_dump_json().encode()
    )
    cells = dict(zip(CSV_COLUMNS, csv_row(positional), strict=True))
    assert csv_row(positional) == csv_row(row)
    body = model.model_dump(mode="json")
    for name in ("id", "account_id", "amount", "date"):
        assert cells[name] == body[name]
    assert cells["posted_at"] == (body["posted_at"] or "")
    assert cells["pending_transaction_id"] == (body["pending_transaction_id"] or "")
    leg = body["security"] or {}
    assert cells["security_symbol"] == (leg.get("symbol") or "")
    assert cells["security_quantity"] == (leg.get("quantity") or "")
    assert cells["security_price"] == (leg.get("price") or "")
