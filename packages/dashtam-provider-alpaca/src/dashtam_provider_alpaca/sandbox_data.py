"""Deterministic data served by the Alpaca sandbox.

The base data set is the synthetic fixture set (``data/*.json``): the paper account
``PA3SYNTH4X2Q``, 3 long positions (AAPL, SPY, BTCUSD) and 11 activities whose cash adds up
to the account's ``cash`` (2610.24). ``extra_activities`` adds older, seeded synthetic
activities in cash-neutral groups (deposit/withdrawal, buy/sell of the same quantity at the
same price, interest/fee), so every identity of the base set still holds at any scale.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from decimal import Decimal
from importlib import resources
from typing import Any

from dashtam_provider_alpaca.mapping import NEW_YORK, parse_timestamp

#: The oldest base activity is on this day; synthetic ones are strictly older.
FIRST_BASE_DAY = date(2025, 4, 1)
#: Synthetic activity groups per calendar day.
GROUPS_PER_DAY = 10
_SYMBOLS = ("SYNA", "SYNB", "SYNC", "SYND")


def _load(name: str) -> Any:
    text = resources.files("dashtam_provider_alpaca").joinpath("data", name).read_text("utf-8")
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class Activity:
    """One activity as served, with the keys the sandbox filters and sorts on."""

    id: str
    activity_type: str
    instant: datetime  # transaction_time, or New York midnight of ``date``
    ny_date: date
    body: bytes  # the wire JSON object, serialized once


def _activity(raw: dict[str, Any]) -> Activity:
    if "transaction_time" in raw:
        instant = parse_timestamp(raw["transaction_time"])
        ny_date = instant.astimezone(NEW_YORK).date()
    else:
        ny_date = date.fromisoformat(raw["date"])
        instant = datetime.combine(ny_date, dtime(), NEW_YORK).astimezone(UTC)
    body = json.dumps(raw, separators=(",", ":")).encode()
    return Activity(raw["id"], raw["activity_type"], instant, ny_date, body)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _money(rng: random.Random, low: int, high: int) -> str:
    return str(Decimal(rng.randint(low * 100, high * 100)) / 100)


def _nta(
    rng: random.Random, day: date, kind: str, amount: str, description: str = ""
) -> dict[str, Any]:
    return {
        "activity_type": kind,
        "id": f"{day:%Y%m%d}000000000::{_uuid(rng)}",
        "date": day.isoformat(),
        "net_amount": amount,
        "description": description,
        "status": "executed",
    }


def _fill(
    rng: random.Random, day: date, at: dtime, side: str, symbol: str, qty: int, price: str
) -> dict[str, Any]:
    local = datetime.combine(day, at, NEW_YORK)
    utc = local.astimezone(UTC)
    millis = local.microsecond // 1000
    return {
        "activity_type": "FILL",
        "id": f"{local:%Y%m%d%H%M%S}{millis:03d}::{_uuid(rng)}",
        "transaction_time": utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z",
        "type": "fill",
        "price": price,
        "qty": str(qty),
        "side": side,
        "symbol": symbol,
        "leaves_qty": "0",
        "order_id": _uuid(rng),
        "cum_qty": str(qty),
        "order_status": "filled",
    }


def _group(rng: random.Random, day: date, slot: int, size: int) -> list[dict[str, Any]]:
    """``size`` (1, 2 or 3) activities on ``day`` whose cash nets to zero."""
    if size == 1:
        return [_nta(rng, day, "JNLC", "0", "Zero-amount journal")]
    if size == 3:
        cash = Decimal(rng.randint(2000, 400000)) / 100
        half = str(cash)
        return [
            _nta(rng, day, "CSD", str(cash * 2)),
            _nta(rng, day, "CSW", f"-{half}"),
            _nta(rng, day, "CSW", f"-{half}"),
        ]
    pick = rng.randrange(3)
    if pick == 0:
        amount = _money(rng, 10, 5000)
        return [_nta(rng, day, "CSD", amount), _nta(rng, day, "CSW", f"-{amount}")]
    if pick == 1:
        amount = _money(rng, 1, 40)
        return [
            _nta(rng, day, "INT", amount, "Interest"),
            _nta(rng, day, "FEE", f"-{amount}", "Account fee"),
        ]
    symbol = rng.choice(_SYMBOLS)
    qty = rng.randint(1, 50)
    price = _money(rng, 5, 900)
    minute = 9 * 60 + 30 + (slot * 37) % 360
    buy_at = dtime(minute // 60, minute % 60, rng.randrange(60), rng.randrange(1000) * 1000)
    sell_minute = minute + 5
    sell_at = dtime(sell_minute // 60, sell_minute % 60, rng.randrange(60), 0)
    return [
        _fill(rng, day, buy_at, "buy", symbol, qty, price),
        _fill(rng, day, sell_at, "sell", symbol, qty, price),
    ]


def synthetic_activities(count: int, *, seed: int = 20250430) -> list[dict[str, Any]]:
    """``count`` seeded activities dated before :data:`FIRST_BASE_DAY`, cash-neutral in total."""
    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    day = FIRST_BASE_DAY
    slot = 0
    while len(items) < count:
        if slot % GROUPS_PER_DAY == 0:
            day -= timedelta(days=1)
        remaining = count - len(items)
        size = remaining if remaining <= 3 and remaining != 2 else 2
        items.extend(_group(rng, day, slot, size))
        slot += 1
    return items


@dataclass(frozen=True, slots=True)
class SandboxData:
    """Everything the sandbox serves: the account, positions and activities (ascending ids)."""

    account: bytes
    positions: list[dict[str, Any]]
    activities: list[Activity]


def build_sandbox_data(extra_activities: int = 0, *, seed: int = 20250430) -> SandboxData:
    """Load the fixture data set and add ``extra_activities`` synthetic activities."""
    account = json.dumps(_load("account.json")).encode()
    positions: list[dict[str, Any]] = _load("positions.json")
    raw_activities: list[dict[str, Any]] = _load("activities.json")
    if extra_activities > 0:
        raw_activities = raw_activities + synthetic_activities(extra_activities, seed=seed)
    activities = sorted((_activity(a) for a in raw_activities), key=lambda a: a.id)
    return SandboxData(account=account, positions=positions, activities=activities)


__all__ = [
    "FIRST_BASE_DAY",
    "Activity",
    "SandboxData",
    "build_sandbox_data",
    "synthetic_activities",
]
