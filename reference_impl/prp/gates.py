"""Quality gates and their dependency DAG, planned into one deterministic commit order.

Guarantees:

* :func:`plan_gates` accepts exactly the gate lists whose ids are unique, whose
  dependencies name declared gates and whose dependencies form a DAG; otherwise
  it raises :class:`GateGraphError` naming the gates at fault (for a cycle, the
  gates of one cycle in the order they depend on each other).
* The commit order is Kahn's topological order with ties broken by declaration
  order: a pure function of the gate list, so legacy and pooled runs at any
  concurrency commit in the same order.
* Human gates are numbered in commit order and grouped by the approval batch
  size: the *planned* approval batch of each human gate is a function of the
  gate list and the batch size only (it is what events and evidence record).
"""

from __future__ import annotations

import enum
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from reference_impl.errors import ConfigError

__all__ = [
    "GATES_SCHEMA_VERSION",
    "GateGraphError",
    "GateKind",
    "GatePlan",
    "GateSpec",
    "load_gates",
    "plan_gates",
]

# Schema of a gates file (``{"schema": 1, "gates": [...]}``).
# 1: id, kind, deps, duration_s, fails, wait_s, approved, timeout_s.
GATES_SCHEMA_VERSION = 1


class GateKind(enum.Enum):
    """Who approves a gate that passed: an automatic policy or a person."""

    AUTOMATED = "automated"
    HUMAN = "human"


class GateGraphError(ConfigError):
    """The gate list is not a DAG of unique, declared gates; ``gates`` are the ones at fault."""

    def __init__(self, message: str, gates: Sequence[str]) -> None:
        super().__init__("gates", message)
        self.gates = tuple(gates)


@dataclass(frozen=True, slots=True)
class GateSpec:
    """One gate as recorded in a trace.

    ``duration_s`` is the gate's work; ``fails`` says the work fails at its end;
    ``timeout_s`` (or the profile's ``gate_timeout_s``) bounds the work. A human
    gate that passed waits ``wait_s`` for its reviewer, whose recorded decision
    is ``approved``. Construction validates the numbers (``ConfigError``).
    """

    id: str
    kind: GateKind = GateKind.AUTOMATED
    deps: tuple[str, ...] = ()
    duration_s: float = 0.0
    fails: bool = False
    wait_s: float = 0.0
    approved: bool = True
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        where = f"gate {self.id!r}"
        if not self.id:
            raise ConfigError("gates", "a gate id must not be empty")
        for name, value in (("duration_s", self.duration_s), ("wait_s", self.wait_s)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(where, f"{name} must be a finite number >= 0, got {value!r}")
        if self.timeout_s is not None and not (
            math.isfinite(self.timeout_s) and self.timeout_s > 0
        ):
            raise ConfigError(where, f"timeout_s must be a positive number, got {self.timeout_s!r}")
        if self.kind is GateKind.AUTOMATED and (self.wait_s != 0 or not self.approved):
            raise ConfigError(where, "wait_s and approved apply to human gates only")


@dataclass(frozen=True, slots=True)
class GatePlan:
    """A validated gate DAG in commit order.

    ``gates[p]`` is the gate committed at position ``p``; ``deps[p]`` holds the
    positions of its dependencies (all smaller than ``p``), ``dependents[p]`` the
    positions depending on it; ``batch[p]`` is the planned approval batch of a
    human gate (``None`` for automated ones).
    """

    gates: tuple[GateSpec, ...]
    deps: tuple[tuple[int, ...], ...]
    dependents: tuple[tuple[int, ...], ...]
    batch: tuple[int | None, ...]
    batch_members: tuple[tuple[int, ...], ...]

    @property
    def order(self) -> tuple[str, ...]:
        """The gate ids in commit order."""
        return tuple(g.id for g in self.gates)

    def __len__(self) -> int:
        return len(self.gates)


def _find_cycle(remaining: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One cycle among ``remaining`` (every one of them lies on or leads to a cycle)."""
    start = next(iter(remaining))
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in remaining[node] if d in remaining)
    return path[seen[node] :]


def plan_gates(gates: Iterable[GateSpec], *, approval_batch_size: int = 2) -> GatePlan:
    """Validate ``gates`` and order them for commit (see the module's guarantees)."""
    if approval_batch_size < 1:
        raise ValueError(f"approval_batch_size must be positive, got {approval_batch_size}")
    declared = list(gates)
    index: dict[str, int] = {}
    for i, gate in enumerate(declared):
        if gate.id in index:
            raise GateGraphError(f"gate {gate.id!r} is declared twice", [gate.id])
        index[gate.id] = i
    for gate in declared:
        unknown = [d for d in gate.deps if d not in index]
        if unknown:
            names = ", ".join(repr(d) for d in unknown)
            raise GateGraphError(
                f"gate {gate.id!r} depends on unknown gate(s) {names}", [gate.id, *unknown]
            )
    # Kahn's algorithm; the heap breaks ties by declaration index.
    missing = [len(set(g.deps)) for g in declared]
    users: list[list[int]] = [[] for _ in declared]
    for i, gate in enumerate(declared):
        for dep in set(gate.deps):
            users[index[dep]].append(i)
    ready = [i for i, count in enumerate(missing) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users[i]:
            missing[user] -= 1
            if missing[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(declared):
        placed = set(order)
        remaining = {g.id: g.deps for i, g in enumerate(declared) if i not in placed}
        cycle = _find_cycle(remaining)
        chain = " -> ".join(repr(g) for g in [*cycle, cycle[0]])
        raise GateGraphError(f"dependency cycle: {chain}", cycle)
    position = {declared[i].id: p for p, i in enumerate(order)}
    ordered = tuple(declared[i] for i in order)
    deps = tuple(tuple(sorted({position[d] for d in g.deps})) for g in ordered)
    dependents: list[list[int]] = [[] for _ in ordered]
    for p, dep_positions in enumerate(deps):
        for d in dep_positions:
            dependents[d].append(p)
    batch: list[int | None] = []
    members: list[list[int]] = []
    humans = 0
    for p, gate in enumerate(ordered):
        if gate.kind is GateKind.HUMAN:
            label = humans // approval_batch_size
            if label == len(members):
                members.append([])
            members[label].append(p)
            batch.append(label)
            humans += 1
        else:
            batch.append(None)
    return GatePlan(
        ordered,
        deps,
        tuple(tuple(d) for d in dependents),
        tuple(batch),
        tuple(tuple(m) for m in members),
    )


class _GateRecord(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    kind: GateKind = GateKind.AUTOMATED
    deps: list[str] = msgspec.field(default_factory=list)
    duration_s: float = 0.0
    fails: bool = False
    wait_s: float = 0.0
    approved: bool = True
    timeout_s: float | None = None


class _GatesFile(msgspec.Struct, forbid_unknown_fields=True):
    schema: int
    gates: list[_GateRecord]


def load_gates(path: Path) -> tuple[GateSpec, ...]:
    """Read a gates file (JSON, schema :data:`GATES_SCHEMA_VERSION`), in declaration order.

    Raises :class:`ConfigError` naming the file and the offending field or gate.
    The DAG itself is checked by :func:`plan_gates`.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the gates file: {exc.strerror}") from exc
    try:
        parsed = msgspec.json.decode(data, type=_GatesFile)
    except msgspec.ValidationError as exc:
        raise ConfigError(str(path), str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(str(path), f"not valid JSON: {exc}") from exc
    if parsed.schema != GATES_SCHEMA_VERSION:
        raise ConfigError(
            str(path), f"schema {parsed.schema} is not supported (expected {GATES_SCHEMA_VERSION})"
        )
    specs: list[GateSpec] = []
    for i, record in enumerate(parsed.gates):
        try:
            specs.append(
                GateSpec(
                    record.id,
                    record.kind,
                    tuple(record.deps),
                    record.duration_s,
                    record.fails,
                    record.wait_s,
                    record.approved,
                    record.timeout_s,
                )
            )
        except ConfigError as exc:
            raise ConfigError(f"{path}: $.gates[{i}]", exc.message) from exc
    return tuple(specs)
