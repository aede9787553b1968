"""The strategy → build → evaluation graph runner over a :class:`PRPState`.

One run takes a fresh state through three nodes: the *strategy* node turns it
into a plan; the *build* node is called once per build unit, each unit seeing
the plan; the *evaluate* node is called once per evaluation sample, each
sample seeing the built state. Units and samples are independent by contract:
a unit returns its artifact and a sample its score, and the runner folds them
into the state in input order. That is why both modes reach the same state:

* ``Mode.LEGACY`` (today's runtime): strictly sequential, strategy, then each
  unit one after another, then each sample one after another; every
  intermediate state is appended to an unbounded history list; no early exit.
* ``Mode.POOLED``: units, then samples, run through an
  :class:`~reference_impl.pool.OrderedPool` of ``max_concurrent``; results are
  folded as the pool commits them, in input order. A phase the pool would run
  as a plain loop in the caller's task (one job, or ``max_concurrent=1``) runs
  as that loop, without a pool.

Guarantees (each one is a test in ``tests/reference_impl/kernel/test_graph.py``):

* **Same final state.** With early exit off, legacy and pooled return equal
  final states, and record the same sequence of snapshots (pooled keeps a
  bounded subset of it).
* **Deterministic early exit** (pooled only, ``GraphSpec.early_exit_confidence``):
  after each sample is folded, in committed order, the runner checks
  ``state.confidence >= early_exit_confidence``; the first sample that reaches
  it is the last one counted. No sample is started after that decision; samples
  started before it (running, or done and waiting behind the head of the line)
  are awaited and discarded (counted in ``samples_discarded``; how many depends
  on timing, which samples *count* does not). So the same samples count in
  every run, whatever the timing.
* **Snapshots and checkpoints.** Each node application produces one snapshot,
  ``step`` 0, 1, 2, ...: the initial state, the plan (a checkpoint), one per unit
  (the last unit's is a checkpoint: the built state), one per sample, and the
  final state (a checkpoint, ``phase`` ``DONE``).
* **Memory bound (pooled).** :class:`ExecutionHistory` holds at most
  ``1 + history_limit + checkpoint_limit`` snapshots, whatever the number of
  runs or steps: the first snapshot ever recorded (pinned), the last
  ``history_limit`` (so always the last one), and the last ``checkpoint_limit``
  checkpoints. Checkpoints are 3 per run, so across runs they are unbounded
  too: beyond ``checkpoint_limit`` the oldest is evicted, but never silently:
  it is counted, passed to ``on_checkpoint_evicted`` (to persist it) and
  covered by the running ``checkpoint_digest`` of every checkpoint ever
  recorded. ``checkpoint_limit=None`` keeps every checkpoint (memory then grows
  by 3 snapshots per run). Each snapshot's tuples grow with the units and
  samples of its run, so a run of *n* units costs O(n²) in both modes: keep
  graphs small and runs many.
* **Failure.** A node that raises stops the run with :class:`GraphError`
  (phase, index, cause), in both modes the first failure in input order; the
  snapshots committed before it stay in the history.
* **No leaked task**: nothing the runner starts outlives :meth:`GraphRunner.run`.

Why one module: the runner, the states it makes and the history it keeps are one
mechanism. The history's digest is a digest of the runner's states, written by a
line encoder that knows their fields (``_checkpoint_line``), and the runner makes
its states and records them through private fast paths (``_next_state``,
``ExecutionHistory._append``) that each test proves against the definition; apart,
each half would import the other's private helpers.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import enum
import functools
import hashlib
import itertools
import math
import operator
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, TypeVar

from reference_impl.errors import ReferenceImplError
from reference_impl.events import canonical_json, stable_hash
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool, PoolItemError, PoolStatistics

__all__ = [
    "POOLED_CHECKPOINT_LIMIT",
    "POOLED_HISTORY_LIMIT",
    "ExecutionHistory",
    "GraphError",
    "GraphNodes",
    "GraphPhase",
    "GraphRunner",
    "GraphSpec",
    "GraphStatistics",
    "PRPState",
    "Snapshot",
    "default_confidence",
    "default_nodes",
]

POOLED_HISTORY_LIMIT = 256
POOLED_CHECKPOINT_LIMIT = 1024

T = TypeVar("T")
_Job = Callable[[], Awaitable[T]]


class GraphPhase(enum.Enum):
    """The node that produced a state."""

    START = "start"
    STRATEGY = "strategy"
    BUILD = "build"
    EVALUATION = "evaluation"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class PRPState:
    """The state a run carries through the graph (immutable: each node makes a new one)."""

    run_id: str
    step: int = 0
    phase: GraphPhase = GraphPhase.START
    strategy: str = ""
    artifacts: tuple[str, ...] = ()
    scores: tuple[float, ...] = ()
    confidence: float = 0.0
    checkpoint: bool = False

    def with_strategy(self, strategy: str) -> PRPState:
        """This state with ``strategy`` set: what a strategy node returns.

        ``dataclasses.replace(state, strategy=...)`` gives the same state at about
        four times the cost (it goes through ``__init__`` and a frozen class's
        ``object.__setattr__``); a subclass still goes through it, keeping its fields.
        """
        if type(self) is not PRPState:
            return dataclasses.replace(self, strategy=strategy)
        state = _next_state(
            self,
            self.run_id,
            self.step,
            self.phase,
            self.artifacts,
            self.scores,
            self.confidence,
            self.checkpoint,
        )
        _set_strategy(state, strategy)
        return state

    def as_json(self) -> dict[str, Any]:
        """The state as plain JSON data (what the checkpoint digest covers)."""
        return {
            "run_id": self.run_id,
            "step": self.step,
            "phase": self.phase.value,
            "strategy": self.strategy,
            "artifacts": list(self.artifacts),
            "scores": list(self.scores),
            "confidence": self.confidence,
            "checkpoint": self.checkpoint,
        }


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """The shape of a run: durations of the default nodes, units, samples, early exit.

    ``ValueError`` for negative counts or durations, or a non-finite threshold.
    """

    strategy_duration_s: float = 0.0
    build_duration_s: float = 0.0
    evaluation_duration_s: float = 0.0
    build_units: int = 4
    evaluation_samples: int = 8
    early_exit_confidence: float | None = None

    def __post_init__(self) -> None:
        for name in ("strategy_duration_s", "build_duration_s", "evaluation_duration_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if self.build_units < 0 or self.evaluation_samples < 0:
            raise ValueError("build_units and evaluation_samples must be >= 0")
        if self.early_exit_confidence is not None and not math.isfinite(self.early_exit_confidence):
            raise ValueError(
                f"early_exit_confidence must be finite, got {self.early_exit_confidence}"
            )


StrategyNode = Callable[[PRPState], Awaitable[PRPState]]
BuildNode = Callable[[PRPState, int], Awaitable[str]]
EvaluationNode = Callable[[PRPState, int], Awaitable[float]]
ConfidenceFn = Callable[[tuple[float, ...]], float]


def default_confidence(scores: tuple[float, ...]) -> float:
    """``1 - 1 / (1 + sum(scores))``: grows with every non-negative score, below 1."""
    return 1.0 - 1.0 / (1.0 + math.fsum(scores))


@dataclass(frozen=True, slots=True)
class GraphNodes:
    """The caller's nodes.

    ``strategy(state) -> state`` (the runner then sets ``step``, ``phase`` and
    ``checkpoint``); ``build(plan, unit) -> artifact``; ``evaluate(built, sample)
    -> score``; ``confidence(scores) -> confidence``, a pure function. Units and
    samples must not depend on each other: each sees the plan (resp. the built
    state), never another unit's (sample's) result.
    """

    strategy: StrategyNode
    build: BuildNode
    evaluate: EvaluationNode
    confidence: ConfidenceFn = default_confidence


def default_nodes(spec: GraphSpec) -> GraphNodes:
    """Nodes whose work is ``asyncio.sleep`` of the spec's durations; results are stable hashes."""

    async def strategy(state: PRPState) -> PRPState:
        await asyncio.sleep(spec.strategy_duration_s)
        return state.with_strategy(f"strategy-{stable_hash(state.run_id) % 997}")

    async def build(plan: PRPState, unit: int) -> str:
        await asyncio.sleep(spec.build_duration_s)
        digest = hashlib.sha256(canonical_json([plan.run_id, plan.strategy, unit]))
        return digest.hexdigest()[:16]

    async def evaluate(built: PRPState, sample: int) -> float:
        await asyncio.sleep(spec.evaluation_duration_s)
        return stable_hash(built.run_id, built.strategy, len(built.artifacts), sample) / 2.0**64

    return GraphNodes(strategy, build, evaluate)


class GraphError(ReferenceImplError):
    """The ``phase`` node failed on unit/sample ``index`` (0 for strategy) of run ``run_id``."""

    def __init__(self, run_id: str, phase: GraphPhase, index: int, cause: BaseException) -> None:
        super().__init__(f"run {run_id!r}: {phase.value} node {index} failed: {cause!r}")
        self.run_id = run_id
        self.phase = phase
        self.index = index
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One recorded state; ``seq`` numbers every snapshot the history ever recorded."""

    seq: int
    state: PRPState


# The checkpoint digest's line of a state is ``canonical_json(state.as_json()) + b"\n"``.
# _checkpoint_line writes those bytes directly for the states the runner makes (str
# fields, float scores, an int step, ``checkpoint=True``), in the keys' sorted order:
# the generic encoder costs about four times as much. Anything else (another type, a
# non-finite float) takes the generic encoder, which gives the same bytes or raises.
_PHASE_JSON = {phase.value: encode_basestring(phase.value) for phase in GraphPhase}
_FLOAT_REPR = float.__repr__  # what json writes for a finite float (and a float subclass)


def _checkpoint_line(state: PRPState) -> bytes:
    """``canonical_json(state.as_json()) + b"\n"`` of a checkpoint, byte for byte."""
    step, phase = state.step, state.phase
    # (A GraphPhase is looked up by its value: an Enum's hash is a Python call.)
    if type(step) is int and state.checkpoint is True and type(phase) is GraphPhase:
        artifacts, scores = state.artifacts, state.scores
        try:
            # encode_basestring is json's own string encoder (ensure_ascii=False); it and
            # float.__repr__ raise TypeError for any other type.
            artifacts_json = ",".join(map(encode_basestring, artifacts)) if artifacts else ""
            scores_json = ",".join(map(_FLOAT_REPR, scores)) if scores else ""
            confidence = _FLOAT_REPR(state.confidence)
            run_id = encode_basestring(state.run_id)
            strategy = encode_basestring(state.strategy)
        except TypeError:
            pass
        else:
            # A finite float's repr has no "n"; "nan", "inf" and "-inf" have one.
            if "n" not in confidence and "n" not in scores_json:
                return (
                    f'{{"artifacts":[{artifacts_json}],"checkpoint":true,'
                    f'"confidence":{confidence},"phase":{_PHASE_JSON[phase._value_]},'
                    f'"run_id":{run_id},"scores":[{scores_json}],"step":{step},'
                    f'"strategy":{strategy}}}\n'
                ).encode()
    return canonical_json(state.as_json()) + b"\n"


class ExecutionHistory:
    """The snapshots of a runner's runs.

    Unbounded (``recent_limit=None``): every snapshot, in a list (today's
    runtime). Bounded: the first snapshot ever recorded, the last
    ``recent_limit`` snapshots and the last ``checkpoint_limit`` checkpoints
    (``None``: all checkpoints), so at most ``1 + recent_limit +
    checkpoint_limit`` snapshots. :attr:`checkpoint_digest` covers every
    checkpoint ever recorded, kept or evicted. A checkpoint that canonical JSON
    cannot hold (``ValueError`` for a non-finite float, ``TypeError`` for another
    type) is refused and not recorded.
    """

    def __init__(
        self,
        recent_limit: int | None,
        checkpoint_limit: int | None = None,
        *,
        on_checkpoint_evicted: Callable[[Snapshot], object] | None = None,
    ) -> None:
        if recent_limit is not None and recent_limit < 1:
            raise ValueError(f"recent_limit must be >= 1 or None, got {recent_limit}")
        if checkpoint_limit is not None and checkpoint_limit < 1:
            raise ValueError(f"checkpoint_limit must be >= 1 or None, got {checkpoint_limit}")
        self.recent_limit = recent_limit
        self.checkpoint_limit = checkpoint_limit
        self._on_evicted = on_checkpoint_evicted
        # States are held bare: a snapshot's seq is implied (the list's index, the
        # recent deque's place before ``recorded``) or kept beside it (checkpoints),
        # and its Snapshot is built when it is read.
        self._all: list[PRPState] | None = [] if recent_limit is None else None
        self._first: PRPState | None = None
        self._recent: deque[PRPState] = deque(maxlen=recent_limit or 1)
        self._checkpoints: deque[tuple[int, PRPState]] = deque()
        self._digest = hashlib.sha256()
        self.recorded = 0
        self.checkpoints_recorded = 0
        self.checkpoints_evicted = 0

    def record(self, state: PRPState) -> Snapshot:
        """Record ``state`` as the next snapshot; evict what the bounds require."""
        seq = self.recorded
        self._append(state)
        return Snapshot(seq, state)

    def _append(self, state: PRPState) -> None:
        # record() without building the Snapshot: the runner's path.
        seq = self.recorded
        if state.checkpoint:
            self._digest.update(_checkpoint_line(state))
            self.checkpoints_recorded += 1
        self.recorded = seq + 1
        if self._all is not None:
            self._all.append(state)
            return
        if self._first is None:
            self._first = state
        elif state.checkpoint:
            checkpoints = self._checkpoints
            checkpoints.append((seq, state))
            limit = self.checkpoint_limit
            if limit is not None and len(checkpoints) > limit:
                evicted_seq, evicted = checkpoints.popleft()
                self.checkpoints_evicted += 1
                if self._on_evicted is not None:
                    self._on_evicted(Snapshot(evicted_seq, evicted))
        self._recent.append(state)

    def snapshots(self) -> tuple[Snapshot, ...]:
        """The snapshots held, oldest first, each once."""
        if self._all is not None:
            return tuple(map(Snapshot, itertools.count(), self._all))
        held: dict[int, PRPState] = dict(self._checkpoints)
        if self._first is not None:
            held[0] = self._first
        held.update(zip(itertools.count(self._recent_start()), self._recent))
        return tuple(Snapshot(seq, held[seq]) for seq in sorted(held))

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        # The recent snapshots are seqs [start, recorded); the first is seq 0 and the
        # checkpoints are increasing seqs: count those older than the recent ones.
        start = self._recent_start()
        first = 1 if self._first is not None and start > 0 else 0
        older = bisect.bisect_left(self._checkpoints, start, key=operator.itemgetter(0))
        return first + older + len(self._recent)

    def _recent_start(self) -> int:
        return self.recorded - len(self._recent)

    @property
    def checkpoints_kept(self) -> int:
        """How many checkpoints are held now."""
        if self._all is not None:
            return self.checkpoints_recorded
        first = 1 if self._first is not None and self._first.checkpoint else 0
        return first + len(self._checkpoints)

    def checkpoint_digest(self) -> str:
        """sha256 over the canonical JSON of every checkpoint ever recorded, in order."""
        return self._digest.copy().hexdigest()


@dataclass(frozen=True, slots=True)
class GraphStatistics:
    """A snapshot of a runner's counters, accumulated over its runs.

    ``pool`` is the pools' own snapshot, with the jobs the runner ran in its own
    task (see :class:`GraphRunner`) counted as the pools count theirs (``None``
    in legacy mode).
    """

    mode: Mode
    runs: int
    snapshots_recorded: int
    history_length: int
    checkpoints_recorded: int
    checkpoints_kept: int
    checkpoints_evicted: int
    samples_evaluated: int
    samples_discarded: int
    early_exits: int
    pool: PoolStatistics | None


_START = PRPState("")  # a run's initial state is PRPState(run_id): this one's fields


class _InlineJobs:
    """The counters of the jobs run in the runner's own task, kept as an untimed pool keeps
    them (counts and levels; no clock is read)."""

    __slots__ = ("active", "committed", "failed", "started")

    def __init__(self) -> None:
        self.active = 0
        self.started = 0
        self.committed = 0
        self.failed = 0

    def add_to(self, pool: PoolStatistics) -> PoolStatistics:
        """``pool`` with these jobs counted in."""
        return dataclasses.replace(
            pool,
            active=pool.active + self.active,
            started=pool.started + self.started,
            committed=pool.committed + self.committed,
            failed=pool.failed + self.failed,
        )


class GraphRunner:
    """Run the strategy → build → evaluation graph, run after run, keeping a history.

    ``history_limit`` and ``checkpoint_limit`` bound the pooled history (defaults
    :data:`POOLED_HISTORY_LIMIT` and :data:`POOLED_CHECKPOINT_LIMIT`); legacy keeps
    every snapshot unless ``history_limit`` is given. One runner runs one graph
    at a time (``RuntimeError`` otherwise).

    A pooled phase of one job (or none), or any phase at ``max_concurrent=1``,
    runs as legacy does, in the runner's own task: that is what the pool does
    with it (no task, each job committed as soon as it returns, none started
    after an early exit, the first failure reported with its index), without
    setting a pool up for it.
    """

    def __init__(
        self,
        mode: Mode,
        spec: GraphSpec | None = None,
        *,
        nodes: GraphNodes | None = None,
        max_concurrent: int = 8,
        history_limit: int | None = None,
        checkpoint_limit: int | None = POOLED_CHECKPOINT_LIMIT,
        on_checkpoint_evicted: Callable[[Snapshot], object] | None = None,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a positive integer, got {max_concurrent}")
        self.mode = mode
        self.spec = spec if spec is not None else GraphSpec()
        self.nodes = nodes if nodes is not None else default_nodes(self.spec)
        self.max_concurrent = max_concurrent
        pooled = mode is Mode.POOLED
        if history_limit is None and pooled:
            history_limit = POOLED_HISTORY_LIMIT
        self.history = ExecutionHistory(
            history_limit,
            checkpoint_limit if history_limit is not None else None,
            on_checkpoint_evicted=on_checkpoint_evicted,
        )
        self._build_pool: OrderedPool[str] | None = None
        self._eval_pool: OrderedPool[float] | None = None
        if pooled:
            self._build_pool = OrderedPool(max_concurrent)
            self._eval_pool = OrderedPool(max_concurrent)
        self._inline = _InlineJobs()
        self._running = False
        self._runs = 0
        self._samples_evaluated = 0
        self._samples_discarded = 0
        self._early_exits = 0

    def statistics(self) -> GraphStatistics:
        """A frozen snapshot of the counters (see :class:`GraphStatistics`).

        ``pool`` merges the build and evaluation pools' counters (maxima: the max)
        and those of the jobs run in the runner's own task.
        """
        pool: PoolStatistics | None = None
        if self._build_pool is not None and self._eval_pool is not None:
            pool = self._inline.add_to(
                _merge(self._build_pool.statistics(), self._eval_pool.statistics())
            )
        history = self.history
        return GraphStatistics(
            mode=self.mode,
            runs=self._runs,
            snapshots_recorded=history.recorded,
            history_length=len(history),
            checkpoints_recorded=history.checkpoints_recorded,
            checkpoints_kept=history.checkpoints_kept,
            checkpoints_evicted=history.checkpoints_evicted,
            samples_evaluated=self._samples_evaluated,
            samples_discarded=self._samples_discarded,
            early_exits=self._early_exits,
            pool=pool,
        )

    async def run(self, run_id: str) -> PRPState:
        """Run the graph once for ``run_id``; the final state (``phase`` ``DONE``).

        Raises :class:`GraphError` when a node fails (see the module docstring).
        """
        if self._running:
            raise RuntimeError("this graph runner is already running a graph")
        self._running = True
        # The run's body is here, not in a coroutine of its own: one frame less a run.
        try:
            self._runs += 1
            record = self.history._append
            state = _next_state(_START, run_id, 0, GraphPhase.START, (), (), 0.0, False)
            record(state)
            try:
                planned = await self.nodes.strategy(state)
            except Exception as exc:  # a node's failure is reported with its place in the graph
                raise GraphError(run_id, GraphPhase.STRATEGY, 0, exc) from exc
            state = _next_state(
                planned,
                run_id,
                1,
                GraphPhase.STRATEGY,
                planned.artifacts,
                planned.scores,
                planned.confidence,
                True,
            )
            record(state)
            # A phase of at most one job, or any at max_concurrent=1, runs in this task
            # (see the class docstring); so does every phase in legacy mode.
            pooled = self._build_pool is not None and self.max_concurrent > 1
            spec = self.spec
            if pooled and spec.build_units > 1:
                state = await self._build_pooled(run_id, state)
            else:
                state = await self._build_in_task(run_id, state)
            if pooled and spec.evaluation_samples > 1:
                state = await self._evaluate_pooled(run_id, state)
            else:
                state = await self._evaluate_in_task(run_id, state)
            state = _next_state(
                state,
                run_id,
                state.step + 1,
                GraphPhase.DONE,
                state.artifacts,
                state.scores,
                state.confidence,
                True,
            )
            record(state)
            return state
        finally:
            self._running = False

    async def _build_in_task(self, run_id: str, plan: PRPState) -> PRPState:
        """Each unit in turn, its artifact folded into the state; the built state."""
        state, record, build, inline = plan, self.history._append, self.nodes.build, self._inline
        last_unit = self.spec.build_units - 1
        for unit in range(self.spec.build_units):
            inline.started += 1
            inline.active += 1
            try:
                artifact = await build(plan, unit)
            except Exception as exc:  # reported with its place in the graph
                inline.failed += 1  # (a cancellation is not a failure, as in the pool)
                raise GraphError(run_id, GraphPhase.BUILD, unit, exc) from exc
            finally:
                inline.active -= 1
            state = _with_artifact(state, run_id, artifact, checkpoint=unit == last_unit)
            record(state)
            inline.committed += 1
        return state

    async def _build_pooled(self, run_id: str, plan: PRPState) -> PRPState:
        """The units through the build pool, folded as it commits them; the built state."""
        assert self._build_pool is not None
        state, record, build = plan, self.history._append, self.nodes.build
        last_unit = self.spec.build_units - 1

        def fold_artifact(unit: int, artifact: str) -> None:
            nonlocal state
            state = _with_artifact(state, run_id, artifact, checkpoint=unit == last_unit)
            record(state)

        await _pooled_stage(
            GraphPhase.BUILD,
            run_id,
            self._build_pool,
            (functools.partial(build, plan, unit) for unit in range(self.spec.build_units)),
            fold_artifact,
        )
        return state

    async def _evaluate_in_task(self, run_id: str, built: PRPState) -> PRPState:
        """Each sample in turn, its score folded into the state, up to an early exit
        (pooled mode only); the evaluated state."""
        state, record, inline = built, self.history._append, self._inline
        evaluate, confidence_of = self.nodes.evaluate, self.nodes.confidence
        threshold = self.spec.early_exit_confidence if self._eval_pool is not None else None
        for sample in range(self.spec.evaluation_samples):
            inline.started += 1
            inline.active += 1
            try:
                score = await evaluate(built, sample)
            except Exception as exc:  # reported with its place in the graph
                inline.failed += 1  # (a cancellation is not a failure, as in the pool)
                raise GraphError(run_id, GraphPhase.EVALUATION, sample, exc) from exc
            finally:
                inline.active -= 1
            state = _with_score(state, run_id, score, confidence_of)
            self._samples_evaluated += 1
            record(state)
            inline.committed += 1
            if threshold is not None and state.confidence >= threshold:
                # The decision: no later sample is started.
                self._early_exits += 1
                break
        return state

    async def _evaluate_pooled(self, run_id: str, built: PRPState) -> PRPState:
        """The samples through the evaluation pool, folded as it commits them, up to an
        early exit; the evaluated state."""
        assert self._eval_pool is not None
        state, record = built, self.history._append
        evaluate, confidence_of = self.nodes.evaluate, self.nodes.confidence
        threshold = self.spec.early_exit_confidence
        stopped = False

        def fold_score(_sample: int, score: float) -> None:
            nonlocal state, stopped
            if stopped:
                self._samples_discarded += 1
                return
            state = _with_score(state, run_id, score, confidence_of)
            self._samples_evaluated += 1
            record(state)
            if threshold is not None and state.confidence >= threshold:
                stopped = True
                self._early_exits += 1

        def sample_jobs() -> Iterator[_Job[float]]:
            # The pool pulls jobs lazily: once the decision is taken, none is started.
            for sample in range(self.spec.evaluation_samples):
                if stopped:
                    return
                yield functools.partial(evaluate, built, sample)

        await _pooled_stage(
            GraphPhase.EVALUATION, run_id, self._eval_pool, sample_jobs(), fold_score
        )
        return state


# The runner makes five states a run. A frozen dataclass's __init__ sets each field
# through object.__setattr__; the slots' own descriptors set them at about half the
# cost. _next_state sets every field (a test checks it against dataclasses.replace).
_SET = {field.name: vars(PRPState)[field.name].__set__ for field in dataclasses.fields(PRPState)}
_set_run_id, _set_step, _set_phase, _set_strategy = (
    _SET["run_id"],
    _SET["step"],
    _SET["phase"],
    _SET["strategy"],
)
_set_artifacts, _set_scores, _set_confidence, _set_checkpoint = (
    _SET["artifacts"],
    _SET["scores"],
    _SET["confidence"],
    _SET["checkpoint"],
)
_new = object.__new__


def _with_artifact(state: PRPState, run_id: str, artifact: str, *, checkpoint: bool) -> PRPState:
    """The next build snapshot: ``artifact`` folded into ``state`` (in task or pooled)."""
    return _next_state(
        state,
        run_id,
        state.step + 1,
        GraphPhase.BUILD,
        (*state.artifacts, artifact),
        state.scores,
        state.confidence,
        checkpoint,
    )


def _with_score(
    state: PRPState, run_id: str, score: float, confidence_of: Callable[[tuple[float, ...]], float]
) -> PRPState:
    """The next evaluation snapshot: ``score`` folded into ``state`` (in task or pooled)."""
    scores = (*state.scores, score)
    return _next_state(
        state,
        run_id,
        state.step + 1,
        GraphPhase.EVALUATION,
        state.artifacts,
        scores,
        confidence_of(scores),
        False,
    )


def _next_state(
    base: PRPState,
    run_id: str,
    step: int,
    phase: GraphPhase,
    artifacts: tuple[str, ...],
    scores: tuple[float, ...],
    confidence: float,
    checkpoint: bool,
) -> PRPState:
    """``dataclasses.replace(base, ...)`` of every field but ``strategy``."""
    if type(base) is not PRPState:
        # A subclass (a node may return one) keeps its class and its own fields.
        return dataclasses.replace(
            base,
            run_id=run_id,
            step=step,
            phase=phase,
            artifacts=artifacts,
            scores=scores,
            confidence=confidence,
            checkpoint=checkpoint,
        )
    state: PRPState = _new(PRPState)
    _set_run_id(state, run_id)
    _set_step(state, step)
    _set_phase(state, phase)
    _set_strategy(state, base.strategy)
    _set_artifacts(state, artifacts)
    _set_scores(state, scores)
    _set_confidence(state, confidence)
    _set_checkpoint(state, checkpoint)
    return state


async def _pooled_stage(
    phase: GraphPhase,
    run_id: str,
    pool: OrderedPool[T],
    jobs: Iterator[_Job[T]],
    fold: Callable[[int, T], None],
) -> None:
    """Run one stage's jobs through ``pool``; fold each result in input order."""
    try:
        await pool.run(jobs, fold)
    except PoolItemError as exc:
        raise GraphError(run_id, phase, exc.index, exc.cause) from exc.cause


def _merge(a: PoolStatistics, b: PoolStatistics) -> PoolStatistics:
    return PoolStatistics(
        concurrency=a.concurrency,
        active=a.active + b.active,
        queued=a.queued + b.queued,
        started=a.started + b.started,
        committed=a.committed + b.committed,
        failed=a.failed + b.failed,
        cancelled=a.cancelled + b.cancelled,
        queue_wait_total_s=a.queue_wait_total_s + b.queue_wait_total_s,
        run_total_s=a.run_total_s + b.run_total_s,
        commit_wait_total_s=a.commit_wait_total_s + b.commit_wait_total_s,
        commit_wait_max_s=max(a.commit_wait_max_s, b.commit_wait_max_s),
    )
