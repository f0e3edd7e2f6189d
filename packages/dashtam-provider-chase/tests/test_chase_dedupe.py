"""Dedupe keys: repeated FITIDs stay distinct, keys are stable across re-parses and overlaps."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashtam_core.ports.provider import ProviderTransaction
from dashtam_provider_chase import ChaseProvider
from dashtam_provider_chase.mapping import RepeatFinder, record_hash

FIXTURES = Path(__file__).parent / "fixtures"
Build = Callable[..., bytes]
Trn = Callable[..., list[tuple[str, str]]]


def records(data: bytes, name: str = "x.qfx") -> list[ProviderTransaction]:
    return ChaseProvider().parse_statement(data, name).unwrap().transactions


def test_purchase_and_foreign_fee_sharing_a_fitid_are_both_kept(ofx: Build, make_trn: Trn) -> None:
    fitid = "2025041524692166230407098760557"
    data = ofx(
        [
            make_trn(fitid, "-100.00", "HOTEL PARIS", posted="20250415"),
            make_trn(fitid, "-3.00", "FOREIGN TRANSACTION FEE", posted="20250415"),
            make_trn("OTHER1", "-5.00", "COFFEE", posted="20250415"),
        ],
        kind="creditcard",
    )
    txns = records(data)
    assert len(txns) == 3
    hotel, fee, coffee = txns
    assert hotel.provider_transaction_id == fee.provider_transaction_id == fitid
    assert hotel.dedupe_key == f"{fitid}#{record_hash(hotel)}"
    assert fee.dedupe_key == f"{fitid}#{record_hash(fee)}"
    assert hotel.dedupe_key != fee.dedupe_key
    assert coffee.dedupe_key == "OTHER1"  # a unique FITID is its own key
    assert fee.type.value == "fee"


def test_keys_do_not_depend_on_file_order(ofx: Build, make_trn: Trn) -> None:
    items = [
        make_trn("F1", "-100.00", "HOTEL"),
        make_trn("F1", "-3.00", "FOREIGN FEE"),
        make_trn("F2", "-1.00", "GUM"),
    ]
    forward = {(t.amount, t.dedupe_key) for t in records(ofx(items))}
    backward = {(t.amount, t.dedupe_key) for t in records(ofx(items[::-1]))}
    assert forward == backward


def test_exact_duplicates_get_occurrence_suffixes(ofx: Build, make_trn: Trn) -> None:
    twice = [make_trn("D1", "-2.50", "PARKING"), make_trn("D1", "-2.50", "PARKING")]
    keys = [t.dedupe_key for t in records(ofx(twice))]
    assert keys[0].startswith("D1#")
    assert keys[1] == keys[0] + "-2"


def test_reparse_gives_identical_keys() -> None:
    for name in ("checking.qfx", "credit_card.qfx", "checking.csv", "credit_card.csv"):
        data = (FIXTURES / name).read_bytes()
        first = [t.dedupe_key for t in records(data, name)]
        second = [t.dedupe_key for t in records(data, name)]
        assert first == second
        assert len(set(first)) == len(first)


def test_overlapping_statements_share_keys(ofx: Build, make_trn: Trn) -> None:
    march = [
        make_trn("P1", "-10.00", "A", posted="20250305"),
        make_trn("R1", "-50.00", "HOTEL", posted="20250320"),
        make_trn("R1", "-1.50", "FOREIGN FEE", posted="20250320"),
    ]
    april = [
        make_trn("R1", "-1.50", "FOREIGN FEE", posted="20250320"),
        make_trn("R1", "-50.00", "HOTEL", posted="20250320"),
        make_trn("Q1", "-7.00", "B", posted="20250402"),
    ]
    first = {t.dedupe_key: t for t in records(ofx(march))}
    second = {t.dedupe_key: t for t in records(ofx(april))}
    shared = set(first) & set(second)
    assert len(shared) == 2
    assert {first[k].amount for k in shared} == {Decimal("-50.00"), Decimal("-1.50")}


def test_overlapping_csv_exports_share_keys() -> None:
    lines = (FIXTURES / "credit_card.csv").read_bytes().split(b"\r\n")
    header, rows = lines[0], [row for row in lines[1:] if row]
    newer = b"\r\n".join([header, *rows[:12]]) + b"\r\n"
    older = b"\r\n".join([header, *rows[8:]]) + b"\r\n"
    a = {t.dedupe_key for t in records(newer, "Chase9876_Activity20250430.CSV")}
    b = {t.dedupe_key for t in records(older, "Chase9876_Activity20250331.CSV")}
    assert len(a & b) == 4


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["F1", "F2", "F3"]),
            st.sampled_from(["-1.00", "-2.00", "3.00"]),
            st.sampled_from(["A", "B"]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_keys_are_unique_and_order_independent(
    ofx: Build, make_trn: Trn, items: list[tuple[str, str, str]], rng: object
) -> None:
    built = [make_trn(fitid, amount, name) for fitid, amount, name in items]
    keys = [t.dedupe_key for t in records(ofx(built))]
    assert len(set(keys)) == len(keys)
    shuffled = list(built)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert sorted(keys) == sorted(t.dedupe_key for t in records(ofx(shuffled)))


def test_repeat_finder_is_exact_despite_bitmap_collisions() -> None:
    finder = RepeatFinder()
    fitids = [f"ID{n}" for n in range(20_000)] + ["ID7", "ID19999"]
    for fitid in fitids:
        finder.add(fitid)
    fake = [
        ProviderTransaction("a", f, f, None, Decimal(0), "USD", "", None, None)  # type: ignore[arg-type]
        for f in fitids
    ]
    assert finder.repeated(fake) == {"ID7", "ID19999"}
