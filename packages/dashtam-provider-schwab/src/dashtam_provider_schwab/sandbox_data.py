"""Deterministic synthetic data served by the Schwab sandbox.

The base data set is the synthetic fixture set shipped in ``data/`` (two accounts, six
positions, fourteen transactions in April 2025 whose netAmounts sum to +172.01). On demand,
``extra_transactions`` more are generated for the MARGIN account, spread evenly over the
``history_days`` before the fixture window, so benchmarks can scale the history.

The simulator speaks Schwab's wire format, in which money is a JSON *double*: the data is
kept as decoded JSON (Python floats) and every generated amount is built from integer cents,
so its shortest representation (what ``json.dumps`` writes) is exact.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

#: Where the fixture window begins; generated history ends just before it.
FIXTURE_WINDOW_START = datetime(2025, 4, 1, tzinfo=UTC)
_GENERATED_ID_BASE = 90_000_000_000
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"


def _load(name: str) -> Any:
    text = resources.files("dashtam_provider_schwab").joinpath("data", name).read_text("utf-8")
    return json.loads(text)


def _currency_leg(
    amount_cents: int, cost_cents: int, fee_type: str | None = None
) -> dict[str, Any]:
    leg: dict[str, Any] = {
        "instrument": {
            "assetType": "CURRENCY",
            "status": "ACTIVE",
            "symbol": "CURRENCY_USD",
            "description": "USD currency",
            "instrumentId": 1,
            "closingPrice": 0.0,
        },
        "amount": amount_cents / 100,
        "cost": cost_cents / 100,
    }
    if fee_type:
        leg["feeType"] = fee_type
    return leg


def _trade(
    index: int, symbol: str, asset: str, sub: str, quantity: int, price_cents: int
) -> tuple[list[dict[str, Any]], int]:
    gross = quantity * price_cents
    fee = 0 if quantity > 0 else max(1, gross // 2_000_000)  # SEC fee on sales only
    legs = [
        _currency_leg(0, 0, "COMMISSION"),
        _currency_leg(0, -fee, "SEC_FEE"),
        {
            "instrument": {
                "assetType": asset,
                "status": "ACTIVE",
                "symbol": symbol,
                "instrumentId": 1_000_000 + index % 7,
                "closingPrice": price_cents / 100,
                "type": sub,
            },
            "amount": float(quantity),
            "cost": -gross / 100,
            "price": price_cents / 100,
            "positionEffect": "OPENING" if quantity > 0 else "CLOSING",
        },
    ]
    return legs, -gross - fee


def generated_transaction(index: int, when: datetime, account_number: str) -> dict[str, Any]:
    """The ``index``-th generated transaction (deterministic: same index, same JSON)."""
    pattern = index % 6
    cents = 1_000 + (index * 7_919) % 50_000
    description: str | None
    if pattern == 0:
        kind, description = "ACH_RECEIPT", "CLIENT REQUESTED ELECTRONIC FUNDING RECEIPT"
        legs, net = [_currency_leg(cents, cents)], cents
    elif pattern == 1:
        kind, description = "DIVIDEND_OR_INTEREST", "JOHNSON & JOHNSON"
        net = cents // 40
        legs = [_currency_leg(net, 0)]
    elif pattern == 2:
        kind, description = "TRADE", None
        legs, net = _trade(
            index, "JNJ", "EQUITY", "COMMON_STOCK", 1 + index % 5, 15_000 + cents % 900
        )
    elif pattern == 3:
        kind, description = "ACH_DISBURSEMENT", "CLIENT REQUESTED ELECTRONIC FUNDING DISBURSEMENT"
        legs, net = [_currency_leg(-cents // 2, -cents // 2)], -cents // 2
    elif pattern == 4:
        kind, description = "TRADE", None
        legs, net = _trade(
            index,
            "SCHD",
            "COLLECTIVE_INVESTMENT",
            "EXCHANGE_TRADED_FUND",
            -(1 + index % 9),
            2_600 + cents % 150,
        )
    else:
        kind, description = "JOURNAL", "JOURNAL TO ...0417"
        legs, net = [_currency_leg(-cents // 4, -cents // 4)], -cents // 4
    stamp = when.strftime(_TIME_FORMAT)
    item: dict[str, Any] = {
        "activityId": _GENERATED_ID_BASE + index,
        "time": stamp,
        "accountNumber": account_number,
        "type": kind,
        "status": "VALID",
        "subAccount": "CASH",
        "tradeDate": stamp,
        "netAmount": net / 100,
        "transferItems": legs,
    }
    if description:
        item["description"] = description
    return item


@dataclass
class SandboxData:
    """Accounts, hashes and per-account transactions (sorted by ``time``)."""

    account_numbers: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _times: dict[str, list[float]] = field(default_factory=dict, repr=False)

    def index(self) -> None:
        """Sort each account's transactions by time and build the bisect index."""
        for number, items in self.transactions.items():
            items.sort(key=lambda t: _epoch(t["time"]))
            self._times[number] = [_epoch(t["time"]) for t in items]

    def hash_to_number(self, hash_value: str) -> str | None:
        """The plain account number for a ``hashValue``."""
        for entry in self.account_numbers:
            if entry["hashValue"] == hash_value:
                return str(entry["accountNumber"])
        return None

    def account(self, number: str) -> dict[str, Any] | None:
        """The ``/accounts`` element of ``number``."""
        for entry in self.accounts:
            if entry["securitiesAccount"]["accountNumber"] == number:
                return entry
        return None

    def between(self, number: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Transactions of ``number`` with ``start <= time <= end``, oldest first."""
        times = self._times.get(number, [])
        lo = bisect.bisect_left(times, start.timestamp())
        hi = bisect.bisect_right(times, end.timestamp())
        return self.transactions.get(number, [])[lo:hi]


def _epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()


def load_sandbox_data(extra_transactions: int = 0, history_days: int = 730) -> SandboxData:
    """The fixture data set plus ``extra_transactions`` generated ones (MARGIN account).

    Args:
        extra_transactions: how many generated transactions to add before April 2025.
        history_days: how far back the generated ones reach.
    """
    data = SandboxData(
        account_numbers=_load("account_numbers.json"),
        accounts=_load("accounts_with_positions.json"),
    )
    for item in _load("transactions.json"):
        data.transactions.setdefault(str(item["accountNumber"]), []).append(item)
    margin = str(data.accounts[0]["securitiesAccount"]["accountNumber"])
    if extra_transactions > 0:
        step = timedelta(days=history_days) / extra_transactions
        items = data.transactions.setdefault(margin, [])
        for index in range(extra_transactions):
            when = FIXTURE_WINDOW_START - step * (index + 1)
            when = when.replace(microsecond=0)
            items.append(generated_transaction(index, when, margin))
    data.index()
    return data


__all__ = [
    "FIXTURE_WINDOW_START",
    "SandboxData",
    "generated_transaction",
    "load_sandbox_data",
]
