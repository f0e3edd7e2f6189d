"""Domain model: UUIDv7, Result, the connection state machine, cost basis."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from dashtam_core.domain.connection import (
    ALLOWED_TRANSITIONS,
    ConnectionStatus,
    ProviderConnection,
)
from dashtam_core.domain.holding import AssetType, CostBasis, CostBasisUnit, Holding
from dashtam_core.domain.ids import uuid7, uuid7_time_ms
from dashtam_core.errors import InvalidStateTransition
from dashtam_core.result import Err, Ok, Result, UnwrapError


def test_uuid7_version_variant_and_order() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    assert abs(uuid7_time_ms(ids[-1]) - now_ms) < 5000


def test_result_variants() -> None:
    def half(n: int) -> Result[int, str]:
        return Ok(n // 2) if n % 2 == 0 else Err("odd")

    assert half(4).unwrap() == 2
    assert half(3).unwrap_or(0) == 0
    assert half(3).map_err(str.upper) == Err("ODD")
    assert half(4).map(lambda v: v + 1) == Ok(3)
    with pytest.raises(UnwrapError):
        half(3).unwrap()
    with pytest.raises(UnwrapError):
        half(4).unwrap_err()


def _conn(status: ConnectionStatus) -> ProviderConnection:
    return ProviderConnection(uuid7(), uuid7(), "schwab", status, datetime.now(UTC))


@pytest.mark.parametrize("start", list(ConnectionStatus))
@pytest.mark.parametrize("target", list(ConnectionStatus))
def test_state_machine_allows_exactly_the_table(
    start: ConnectionStatus, target: ConnectionStatus
) -> None:
    conn = _conn(start)
    if target in ALLOWED_TRANSITIONS[start]:
        conn.transition(target, error="boom")
        assert conn.status is target
    else:
        with pytest.raises(InvalidStateTransition):
            conn.transition(target)
        assert conn.status is start


def test_disconnected_is_terminal_and_error_is_recorded() -> None:
    conn = _conn(ConnectionStatus.ACTIVE)
    conn.transition(ConnectionStatus.NEEDS_REAUTH, error="refresh token expired")
    assert conn.last_error == "refresh token expired"
    conn.transition(ConnectionStatus.ACTIVE)
    assert conn.last_error is None
    conn.transition(ConnectionStatus.DISCONNECTED)
    assert not ALLOWED_TRANSITIONS[ConnectionStatus.DISCONNECTED]


def test_cost_basis_units_and_unrealized_gain() -> None:
    cb = CostBasis.from_per_unit(Decimal("182.40"), Decimal("15"))
    assert cb.total == Decimal("2736.00")
    assert cb.reported is CostBasisUnit.PER_UNIT
    cb2 = CostBasis.from_total(Decimal("3648.00"), Decimal("20"))
    assert cb2.per_unit == Decimal("182.4")
    short = CostBasis.from_per_unit(Decimal("10"), Decimal("-5"))
    assert short.total == Decimal("-50")
    assert short.per_unit == Decimal("10")
    h = Holding(
        uuid7(),
        uuid7(),
        "X",
        "X",
        AssetType.EQUITY,
        Decimal("-5"),
        "USD",
        datetime.now(UTC),
        cost_basis_total=Decimal("-50"),
        market_value=Decimal("-40"),
    )
    assert h.unrealized_gain == Decimal("10")  # short gained: price fell from 10 to 8
