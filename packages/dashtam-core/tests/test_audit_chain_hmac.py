"""Audit hash chain: sealing, canonical form, and detection of edits, deletions and reordering."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dashtam_core.adapters.security.audit_chain import (
    AuditChainer,
    canonical_bytes,
    chain,
    compute_mac,
    verify,
    verify_async,
)
from dashtam_core.domain.audit import AuditOutcome, AuditRecord
from dashtam_core.ports.audit import SequencedAuditRecord

KEY = b"k" * 32
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make(n: int) -> list[AuditRecord]:
    return [
        AuditRecord(
            id=uuid4(),
            occurred_at=T0 + timedelta(seconds=i, microseconds=i),
            actor_id=uuid4() if i % 2 else None,
            action="session.created" if i % 3 else "user.role_changed",
            outcome=AuditOutcome.SUCCESS if i % 4 else AuditOutcome.FAILURE,
            object_type="session",
            object_id=str(i),
            ip="203.0.113.7",
            user_agent="pytest",
            details={"n": str(i)},
        )
        for i in range(n)
    ]


def sequenced(records: list[AuditRecord], start: int = 1) -> list[SequencedAuditRecord]:
    return [SequencedAuditRecord(start + i, r) for i, r in enumerate(records)]


def test_seal_links_records() -> None:
    sealed = chain(make(5), KEY)
    assert sealed[0].prev_mac == ""
    for prev, cur in itertools.pairwise(sealed):
        assert cur.prev_mac == prev.mac
    expected = hmac.new(KEY, canonical_bytes(sealed[2]), hashlib.sha256).hexdigest()
    assert sealed[2].mac == expected == compute_mac(KEY, sealed[2])
    result = verify(sequenced(sealed), KEY)
    assert (result.valid, result.checked, result.first_bad_id) == (True, 5, None)
    assert result.as_dict() == {"valid": True, "checked": 5, "first_bad_id": None}


def test_canonical_form_is_stable() -> None:
    rec = make(1)[0]
    same_instant_other_zone = replace(
        rec, occurred_at=rec.occurred_at.astimezone(timezone(timedelta(hours=5)))
    )
    naive_utc = replace(rec, occurred_at=rec.occurred_at.replace(tzinfo=None))
    reordered_details = replace(rec, details=dict(reversed(list({"a": "1", "b": "2"}.items()))))
    base = replace(rec, details={"a": "1", "b": "2"})
    assert canonical_bytes(rec) == canonical_bytes(same_instant_other_zone)
    assert canonical_bytes(rec) == canonical_bytes(naive_utc)
    assert canonical_bytes(base) == canonical_bytes(reordered_details)
    assert b"2026-01-01T12:00:00.000000Z" in canonical_bytes(rec)
    assert b'"mac"' not in canonical_bytes(rec)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "user.deleted"),
        ("outcome", AuditOutcome.SUCCESS),
        ("actor_id", None),
        ("ip", "198.51.100.1"),
        ("user_agent", "evil"),
        ("object_id", "999"),
        ("details", {"n": "tampered"}),
        ("occurred_at", T0 + timedelta(days=1)),
        ("mac", "0" * 64),
    ],
)
def test_edit_detected(field: str, value: Any) -> None:
    sealed = chain(make(6), KEY)
    if getattr(sealed[3], field) == value:
        value = AuditOutcome.FAILURE
    sealed[3] = replace(sealed[3], **{field: value})
    result = verify(sequenced(sealed), KEY)
    assert not result.valid
    assert result.first_bad_id == sealed[3].id
    assert result.checked == 4


def test_edit_with_recomputed_mac_breaks_next_link() -> None:
    sealed = chain(make(6), KEY)
    forged = replace(sealed[2], action="forged")
    forged = replace(forged, mac=compute_mac(b"x" * 32, forged))  # attacker lacks the key
    sealed[2] = forged
    assert verify(sequenced(sealed), KEY).first_bad_id == forged.id
    # an insider with the key re-MACs the record, but the next record still links the old MAC
    sealed = chain(make(6), KEY)
    resealed = replace(sealed[2], action="forged")
    sealed[2] = replace(resealed, mac=compute_mac(KEY, resealed))
    assert verify(sequenced(sealed), KEY).first_bad_id == sealed[3].id


def test_deletion_detected_by_gap_and_by_link() -> None:
    sealed = chain(make(6), KEY)
    items = sequenced(sealed)
    del items[2]  # seq 3 missing
    result = verify(items, KEY)
    assert not result.valid
    assert result.first_bad_id == sealed[3].id
    # renumbered so that seq has no gap: the link still breaks
    renumbered = sequenced(sealed[:2] + sealed[3:])
    assert verify(renumbered, KEY).first_bad_id == sealed[3].id
    # deleting the first record
    assert verify(sequenced(sealed[1:], start=2), KEY).first_bad_id == sealed[1].id


def test_reordering_detected() -> None:
    sealed = chain(make(6), KEY)
    swapped = [*sealed[:2], sealed[3], sealed[2], *sealed[4:]]
    assert verify(sequenced(swapped), KEY).first_bad_id == sealed[3].id
    out_of_order = sequenced(sealed)
    out_of_order[2], out_of_order[3] = out_of_order[3], out_of_order[2]
    assert verify(out_of_order, KEY).first_bad_id == sealed[3].id


def test_wrong_key_and_resume_from_checkpoint() -> None:
    sealed = chain(make(4), KEY)
    assert not verify(sequenced(sealed), b"z" * 32).valid
    chainer = AuditChainer(KEY, sealed[-1].mac)
    more = [chainer.seal(r) for r in make(3)]
    full = sequenced(sealed + more)
    assert verify(full, KEY).valid
    tail = full[4:]
    assert verify(tail, KEY, prev_mac=sealed[-1].mac, first_seq=5).valid
    assert not verify(tail, KEY, first_seq=5).valid
    assert not verify(tail, KEY, prev_mac=sealed[-1].mac, first_seq=1).valid
    # non-contiguous mode tolerates sequence gaps but not broken links
    gappy = [SequencedAuditRecord(i * 10, item.record) for i, item in enumerate(full, 1)]
    assert verify(gappy, KEY, contiguous=False).valid
    assert not verify(gappy, KEY).valid
    with pytest.raises(ValueError):
        AuditChainer(b"short")


async def test_verify_async_stream() -> None:
    sealed = chain(make(50), KEY)

    async def stream(items: list[SequencedAuditRecord]) -> AsyncIterator[SequencedAuditRecord]:
        for item in items:
            yield item

    assert (await verify_async(stream(sequenced(sealed)), KEY)).checked == 50
    sealed[40] = replace(sealed[40], object_id="x")
    result = await verify_async(stream(sequenced(sealed)), KEY)
    assert (result.valid, result.checked, result.first_bad_id) == (False, 41, sealed[40].id)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=15), st.data())
def test_any_single_swap_or_drop_is_detected(n: int, data: st.DataObject) -> None:
    sealed = sequenced(chain(make(n + 1), KEY))
    i = data.draw(st.integers(min_value=0, max_value=n))
    if data.draw(st.booleans()) and n >= 1:
        j = data.draw(st.integers(min_value=0, max_value=n).filter(lambda x: x != i))
        records = [s.record for s in sealed]
        records[i], records[j] = records[j], records[i]
        assert not verify(sequenced(records), KEY).valid
    elif i < n:  # dropping the newest record is a truncation, caught by the stored head
        del sealed[i]
        assert not verify(sealed, KEY).valid


def test_verification_throughput() -> None:
    sealed = sequenced(chain(make(2000), KEY))
    start = time.perf_counter()
    assert verify(sealed, KEY).valid
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0
