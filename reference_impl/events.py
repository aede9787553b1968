"""Deterministic event sequencing and the tamper-evident evidence chain.

Guarantees:

* :class:`EventLog` gives an event its sequence number when it is *committed*
  (appended), never when the work it describes started; sequence numbers are
  0, 1, 2, ... without gaps or duplicates.
* :class:`EvidenceChain`: record *i*'s digest is
  ``sha256(digest[i-1] || canonical_json(record_i))`` (``digest[-1]`` is the
  genesis digest of the chain's key), and its signature is
  ``HMAC-SHA256(key, digest_i)``. The same records and key give the same chain,
  byte for byte, on every machine.
* :func:`verify` names the first record that was changed, dropped, reordered,
  duplicated or badly signed.

Canonical JSON: keys sorted, no whitespace, UTF-8, no NaN; floats by ``repr``
(shortest round-trip form), so a value hashes the same wherever it is computed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reference_impl.errors import EvidenceError

__all__ = [
    "EVIDENCE_SCHEMA_VERSION",
    "EventLog",
    "EvidenceChain",
    "EvidenceRecord",
    "LoggedEvent",
    "canonical_json",
    "stable_hash",
    "verify",
]

# Schema of an evidence record (what is hashed, how records are laid out).
# 1: digest = sha256(prev_digest_hex + canonical_json(payload)); HMAC-SHA256 over the digest.
EVIDENCE_SCHEMA_VERSION = 1

DEFAULT_KEY = b"agentbench-reference-evidence-key"


def canonical_json(value: Any) -> bytes:
    """The canonical JSON encoding of ``value``: sorted keys, compact, UTF-8, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def stable_hash(*parts: str | int, seed: int = 0) -> int:
    """A 64-bit hash that is the same in every process (unlike the salted ``hash()``)."""
    text = "\x1f".join(str(p) for p in (seed, *parts)).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One committed event: its sequence number, kind and payload (plain JSON data)."""

    seq: int
    kind: str
    payload: Mapping[str, Any]
    batch: int | None = None

    def as_json(self) -> dict[str, Any]:
        """The event as plain JSON data (what replays compare)."""
        data: dict[str, Any] = {"seq": self.seq, "kind": self.kind, "payload": dict(self.payload)}
        if self.batch is not None:
            data["batch"] = self.batch
        return data


class EventLog:
    """An append-only log; sequence numbers are assigned at commit, in commit order.

    ``max_events`` bounds the events kept in memory (the oldest are dropped; the
    running digest still covers every event ever committed).
    """

    def __init__(self, max_events: int | None = None) -> None:
        self._events: deque[LoggedEvent] = deque(maxlen=max_events)
        self._next_seq = 0
        self._digest = hashlib.sha256()

    def commit(
        self, kind: str, payload: Mapping[str, Any], *, batch: int | None = None
    ) -> LoggedEvent:
        """Append an event and give it the next sequence number."""
        event = LoggedEvent(self._next_seq, kind, payload, batch)
        self._next_seq += 1
        self._digest.update(canonical_json(event.as_json()))
        self._digest.update(b"\n")
        self._events.append(event)
        return event

    def __len__(self) -> int:
        return self._next_seq

    def __iter__(self) -> Iterator[LoggedEvent]:
        return iter(self._events)

    @property
    def events(self) -> tuple[LoggedEvent, ...]:
        """The events kept in memory, oldest first."""
        return tuple(self._events)

    def digest(self) -> str:
        """sha256 over every committed event's canonical JSON, in sequence order."""
        return self._digest.copy().hexdigest()


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One link of the chain: the record, the digest that covers it and its signature."""

    index: int
    payload: Mapping[str, Any]
    prev_digest: str
    digest: str
    signature: str

    def as_json(self) -> dict[str, Any]:
        """The link as plain JSON data (one line of an evidence file)."""
        return {
            "index": self.index,
            "payload": dict(self.payload),
            "prev_digest": self.prev_digest,
            "digest": self.digest,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvidenceRecord:
        """Read a link written by :meth:`as_json` (``KeyError``/``TypeError`` if malformed)."""
        return cls(
            int(data["index"]),
            dict(data["payload"]),
            str(data["prev_digest"]),
            str(data["digest"]),
            str(data["signature"]),
        )


def _genesis(key: bytes) -> str:
    return hmac.new(key, b"agentbench-evidence-genesis-v1", hashlib.sha256).hexdigest()


def _link_digest(prev_digest: str, payload: Mapping[str, Any]) -> str:
    h = hashlib.sha256(prev_digest.encode("ascii"))
    h.update(canonical_json(payload))
    return h.hexdigest()


def _sign(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


class EvidenceChain:
    """A hash chain of evidence records, each signed with HMAC-SHA256.

    ``max_records`` bounds the links kept in memory; the head digest always
    covers every record ever appended.
    """

    def __init__(self, key: bytes = DEFAULT_KEY, *, max_records: int | None = None) -> None:
        if not key:
            raise ValueError("the evidence key must not be empty")
        self._key = key
        self._head = _genesis(key)
        self._count = 0
        self._records: deque[EvidenceRecord] = deque(maxlen=max_records)

    def append(self, payload: Mapping[str, Any]) -> EvidenceRecord:
        """Link ``payload`` (plain JSON data) to the chain and sign it."""
        digest = _link_digest(self._head, payload)
        record = EvidenceRecord(self._count, payload, self._head, digest, _sign(self._key, digest))
        self._head = digest
        self._count += 1
        self._records.append(record)
        return record

    def __len__(self) -> int:
        return self._count

    @property
    def records(self) -> tuple[EvidenceRecord, ...]:
        """The links kept in memory, oldest first."""
        return tuple(self._records)

    def digest(self) -> str:
        """The head digest: it covers every record appended so far."""
        return self._head


def verify(records: Iterable[EvidenceRecord], key: bytes = DEFAULT_KEY) -> str:
    """Check a whole chain from its start; return its head digest.

    Raises :class:`EvidenceError` naming the first bad index: a record whose
    payload was changed (digest mismatch), one dropped or reordered (its
    ``index`` or ``prev_digest`` does not follow), one duplicated (an index
    seen again), or a bad signature.
    """
    head = _genesis(key)
    for expected, record in enumerate(records):
        position = expected
        if record.index != expected:
            if record.index < expected:
                raise EvidenceError(
                    position, f"duplicate or reordered record (index {record.index})"
                )
            raise EvidenceError(position, f"missing record {expected} (found {record.index})")
        if record.prev_digest != head:
            raise EvidenceError(position, "does not link to the previous record (reordered?)")
        digest = _link_digest(head, record.payload)
        if digest != record.digest:
            raise EvidenceError(position, "payload does not match its digest (tampered)")
        if not hmac.compare_digest(_sign(key, digest), record.signature):
            raise EvidenceError(position, "bad signature")
        head = digest
    return head
