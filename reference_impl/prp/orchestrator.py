"""The orchestrator: sub-agents in dependency levels, each level through the ordered pool.

Guarantees:

* :meth:`Orchestrator.levels` puts a sub-agent one level after its deepest
  dependency (level 0: no dependencies), in declaration order within a level;
  an unknown dependency or a cycle raises :class:`~reference_impl.errors.ConfigError`
  naming the sub-agents.
* A level starts when the previous one has committed; within a level results
  are committed in declaration order (the pool's guarantee), so the shared
  context, and the run's ``order``, are the same at every concurrency.
* Pooled mode runs each level with ``PRP_SPOOL_MAX_CONCURRENCY`` slots, builds
  the shared context once per run, and reuses results by task key within the
  run (the executor's cycle). Legacy mode is today's: a fixed 4 slots, the
  shared context rebuilt for every sub-agent, no reuse.
* A sub-agent that fails for good raises :class:`SubAgentError` naming it, after
  the sub-agents before it in its level have committed.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from reference_impl.errors import ConfigError, ReferenceImplError
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool, PoolItemError
from reference_impl.prp.config import PrpConfig
from reference_impl.prp.executor import ConcurrentExecutor, ExecutorStatistics, TransientError

__all__ = [
    "Orchestrator",
    "OrchestratorResult",
    "OrchestratorStatistics",
    "SubAgentError",
    "SubAgentSpec",
]

LEGACY_SLOTS = 4  # today's orchestrator: hard-coded


@dataclass(frozen=True, slots=True)
class SubAgentSpec:
    """One sub-agent from a trace: its dependencies, work time and task identity.

    Sub-agents with the same ``task_key`` (default: the id) ask for the same
    result; ``transient_failures`` is how many first attempts fail transiently.
    """

    id: str
    deps: tuple[str, ...] = ()
    duration_s: float = 0.0
    task_class: str = "agent"
    task_key: str | None = None
    transient_failures: int = 0

    def __post_init__(self) -> None:
        if not self.id:
            raise ConfigError("sub-agents", "a sub-agent id must not be empty")
        if not math.isfinite(self.duration_s) or self.duration_s < 0:
            raise ConfigError(
                f"sub-agent {self.id!r}", f"duration_s must be >= 0, got {self.duration_s!r}"
            )
        if self.transient_failures < 0:
            raise ConfigError(f"sub-agent {self.id!r}", "transient_failures must be >= 0")

    @property
    def key(self) -> str:
        """The task key results are reused by."""
        return self.id if self.task_key is None else self.task_key


class SubAgentError(ReferenceImplError):
    """Sub-agent ``agent`` failed for good; ``__cause__`` says why."""

    def __init__(self, agent: str, cause: BaseException) -> None:
        super().__init__(f"sub-agent {agent!r} failed: {cause}")
        self.agent = agent
        self.cause = cause


@dataclass(frozen=True, slots=True)
class OrchestratorResult:
    """One run: the levels, the commit order, each sub-agent's output, and the times."""

    levels: tuple[tuple[str, ...], ...]
    order: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]
    makespan_s: float
    context_builds: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class OrchestratorStatistics:
    """Totals over an orchestrator's runs, and its executor's snapshot."""

    runs: int
    sub_agents: int
    context_builds: int
    concurrency: int
    executor: ExecutorStatistics


class _SharedContext:
    """What sub-agents share within a run: the outputs committed so far."""

    __slots__ = ("outputs",)

    def __init__(self, outputs: dict[str, str]) -> None:
        self.outputs = outputs


class Orchestrator:
    """Runs sub-agents level by level (see the module's guarantees).

    ``context_build_s`` is what building the shared context costs (trace time).
    """

    def __init__(
        self,
        mode: Mode,
        config: PrpConfig | None = None,
        *,
        executor: ConcurrentExecutor | None = None,
        context_build_s: float = 2.0,
    ) -> None:
        self.mode = mode
        self.config = PrpConfig.from_env() if config is None else config
        pooled = mode is Mode.POOLED
        self.concurrency = self.config.spool_max_concurrency if pooled else LEGACY_SLOTS
        self.executor = ConcurrentExecutor(reuse_results=pooled) if executor is None else executor
        self.context_build_s = context_build_s
        self._runs = 0
        self._sub_agents = 0
        self._context_builds = 0

    @staticmethod
    def levels(agents: Sequence[SubAgentSpec]) -> tuple[tuple[SubAgentSpec, ...], ...]:
        """The dependency levels of ``agents`` (``ConfigError`` on a bad graph)."""
        by_id: dict[str, SubAgentSpec] = {}
        for agent in agents:
            if agent.id in by_id:
                raise ConfigError("sub-agents", f"sub-agent {agent.id!r} is declared twice")
            by_id[agent.id] = agent
        for agent in agents:
            unknown = [d for d in agent.deps if d not in by_id]
            if unknown:
                raise ConfigError(
                    "sub-agents", f"sub-agent {agent.id!r} depends on unknown {', '.join(unknown)}"
                )
        level: dict[str, int] = {}
        remaining = list(agents)
        while remaining:
            placed = [a for a in remaining if all(d in level for d in a.deps)]
            if not placed:
                names = ", ".join(repr(a.id) for a in remaining)
                raise ConfigError("sub-agents", f"dependency cycle among {names}")
            for agent in placed:
                level[agent.id] = 1 + max((level[d] for d in agent.deps), default=-1)
            remaining = [a for a in remaining if a.id not in level]
        depth = 1 + max(level.values(), default=-1)
        return tuple(tuple(a for a in agents if level[a.id] == n) for n in range(depth))

    async def _build_context(self, outputs: dict[str, str]) -> _SharedContext:
        self._context_builds += 1
        if self.context_build_s > 0:
            await asyncio.sleep(self.context_build_s)
        return _SharedContext(dict(outputs))

    async def run(self, agents: Sequence[SubAgentSpec]) -> OrchestratorResult:
        """Run every sub-agent; their outputs are deterministic digests of their task keys."""
        levels = self.levels(agents)
        loop = asyncio.get_running_loop()
        started = loop.time()
        builds_before = self._context_builds
        self._runs += 1
        self.executor.new_cycle()
        outputs: dict[str, str] = {}
        order: list[str] = []
        attempts: dict[str, int] = {}
        shared = await self._build_context(outputs) if self.mode is Mode.POOLED else None

        async def work(agent: SubAgentSpec) -> str:
            attempts[agent.id] = attempts.get(agent.id, 0) + 1
            if agent.duration_s > 0:
                await asyncio.sleep(agent.duration_s)
            if attempts[agent.id] <= agent.transient_failures:
                raise TransientError(f"sub-agent {agent.id!r}: attempt {attempts[agent.id]}")
            return hashlib.sha256(f"{agent.task_class}\x1f{agent.key}".encode()).hexdigest()[:16]

        async def run_agent(agent: SubAgentSpec) -> str:
            # Legacy resets the shared state for every sub-agent; pooled shares one.
            context = shared if shared is not None else await self._build_context(outputs)
            missing = [d for d in agent.deps if d not in context.outputs]
            assert not missing, f"dependencies {missing} not committed"  # levels guarantee it
            return await self.executor.run(agent.task_class, agent.key, lambda: work(agent))

        def commit(level: Sequence[SubAgentSpec], index: int, output: str) -> None:
            outputs[level[index].id] = output
            if shared is not None:
                shared.outputs[level[index].id] = output
            order.append(level[index].id)
            self._sub_agents += 1

        pool: OrderedPool[str] = OrderedPool(self.concurrency, clock=loop.time)
        for level in levels:
            try:
                await pool.run(
                    [functools.partial(run_agent, agent) for agent in level],
                    functools.partial(commit, level),
                )
            except PoolItemError as exc:
                raise SubAgentError(level[exc.index].id, exc.cause) from exc.cause
        return OrchestratorResult(
            levels=tuple(tuple(a.id for a in level) for level in levels),
            order=tuple(order),
            outputs=tuple((agent_id, outputs[agent_id]) for agent_id in order),
            makespan_s=loop.time() - started,
            context_builds=self._context_builds - builds_before,
            concurrency=self.concurrency,
        )

    def statistics(self) -> OrchestratorStatistics:
        """A frozen snapshot."""
        return OrchestratorStatistics(
            runs=self._runs,
            sub_agents=self._sub_agents,
            context_builds=self._context_builds,
            concurrency=self.concurrency,
            executor=self.executor.statistics(),
        )
