"""Evidence chain and event log guarantees."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference_impl.errors import EvidenceError
from reference_impl.events import (
    EventLog,
    EvidenceChain,
    EvidenceRecord,
    canonical_json,
    stable_hash,
    verify,
)

KEY = b"test-key"


def chain_of(n: int) -> list[EvidenceRecord]:
    chain = EvidenceChain(KEY)
    for i in range(n):
        chain.append({"gate": f"g{i}", "ok": True, "score": i / 3})
    return list(chain.records)


def test_same_inputs_give_the_same_chain_byte_for_byte() -> None:
    a, b = chain_of(20), chain_of(20)
    assert [canonical_json(r.as_json()) for r in a] == [canonical_json(r.as_json()) for r in b]
    assert verify(a, KEY) == a[-1].digest


def test_the_key_changes_every_digest() -> None:
    other = EvidenceChain(b"another key")
    other.append({"gate": "g0", "ok": True, "score": 0.0})
    assert other.digest() != chain_of(1)[0].digest


def test_tampered_record_is_detected_at_its_index() -> None:
    records = chain_of(10)
    records[6] = dataclasses.replace(records[6], payload={"gate": "g6", "ok": False})
    with pytest.raises(EvidenceError) as info:
        verify(records, KEY)
    assert info.value.index == 6
    assert "tampered" in str(info.value)


def test_dropped_record_is_detected_at_its_index() -> None:
    records = chain_of(10)
    del records[4]
    with pytest.raises(EvidenceError) as info:
        verify(records, KEY)
    assert info.value.index == 4
    assert "missing record 4" in str(info.value)


def test_reordered_records_are_detected() -> None:
    records = chain_of(10)
    records[3], records[7] = records[7], records[3]
    with pytest.raises(EvidenceError) as info:
        verify(records, KEY)
    assert info.value.index == 3


def test_duplicated_record_is_detected() -> None:
    records = chain_of(10)
    records.insert(5, records[4])
    with pytest.raises(EvidenceError) as info:
        verify(records, KEY)
    assert info.value.index == 5
    assert "duplicate" in str(info.value)


def test_forged_signature_is_detected() -> None:
    records = chain_of(3)
    records[1] = dataclasses.replace(records[1], signature="0" * 64)
    with pytest.raises(EvidenceError) as info:
        verify(records, KEY)
    assert info.value.index == 1


def test_wrong_key_fails_at_the_first_record() -> None:
    with pytest.raises(EvidenceError) as info:
        verify(chain_of(3), b"wrong")
    assert info.value.index == 0


def test_records_round_trip_through_json() -> None:
    records = chain_of(5)
    again = [EvidenceRecord.from_json(r.as_json()) for r in records]
    assert verify(again, KEY) == verify(records, KEY)


def test_bounded_chain_keeps_the_full_digest() -> None:
    bounded = EvidenceChain(KEY, max_records=3)
    full = EvidenceChain(KEY)
    for i in range(100):
        bounded.append({"i": i})
        full.append({"i": i})
    assert len(bounded.records) == 3
    assert len(bounded) == 100
    assert bounded.digest() == full.digest()


def test_event_sequence_numbers_follow_commit_order() -> None:
    log = EventLog(max_events=2)
    kinds = ["task.committed", "task.committed", "task.failed", "run.finished"]
    for i, kind in enumerate(kinds):
        event = log.commit(kind, {"i": i}, batch=1 if i == 2 else None)
        assert event.seq == i
    assert len(log) == 4
    assert [e.seq for e in log] == [2, 3]
    assert log.events[0].as_json() == {
        "seq": 2,
        "kind": "task.failed",
        "payload": {"i": 2},
        "batch": 1,
    }


def test_event_digest_depends_on_order() -> None:
    a, b = EventLog(), EventLog()
    a.commit("x", {"n": 1})
    a.commit("x", {"n": 2})
    b.commit("x", {"n": 2})
    b.commit("x", {"n": 1})
    assert a.digest() != b.digest()


@given(st.text(max_size=20), st.integers(0, 2**32))
def test_stable_hash_is_stable_and_seeded(text: str, seed: int) -> None:
    assert stable_hash(text, seed=seed) == stable_hash(text, seed=seed)
    assert 0 <= stable_hash(text, seed=seed) < 2**64


def test_stable_hash_known_value() -> None:
    # Pinned: a change of algorithm would silently reorder every recorded trace.
    assert stable_hash("task-1", seed=7) == 0xCEFBBD2FCB17F117
    assert stable_hash("a", seed=0) == 0x291CD4D0F90EC05A
    assert stable_hash("task-1", seed=8) != stable_hash("task-1", seed=7)


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
