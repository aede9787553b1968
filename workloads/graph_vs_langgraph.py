"""graph_vs_langgraph: the strategy → build → evaluation graph, ours against LangGraph's.

The same three trivial async node functions (:func:`plan`, :func:`build_unit`,
:func:`score_sample`: no I/O, a few string operations, so what is timed is
each framework's own cost of running a graph) are run, one graph run per
invocation, by four sides:

* ``ours``: :class:`~reference_impl.kernel.graph.GraphRunner` in pooled mode
  (one build unit, one evaluation sample), bounded history with checkpoints
  (the defaults: 256 recent snapshots, 1,024 checkpoints, the running
  checkpoint digest), telemetry on (the in-memory exporter, the runner's
  source registered; collected once per round, off the timed path, as a
  periodic reader would);
* ``langgraph``: LangGraph's compiled ``StateGraph`` without a checkpointer;
* ``langgraph_checkpointer``: the same graph with its in-memory checkpointer
  (``InMemorySaver``), one ``thread_id`` per invocation: the fair pair for
  our checkpoints;
* ``plain``: the three node functions awaited one after another (the floor).

Per round, before anything is timed, every side runs the same run id once
and must compute the same final state (run id, strategy, artifacts, scores,
confidence); otherwise :class:`~workloads._peers.PeerMismatchError` fails the
workload. Then ``BATCHES`` batches of ``RUNS_PER_BATCH`` invocations per side,
the sides in a balanced (ABBA) order that also alternates from batch to batch.

Samples: ``overhead_<side>``, the wall seconds per invocation of each batch
(the nodes being trivial, that is the framework's per-run overhead; ``plain``
is the floor); per round, ``ratio_vs_langgraph`` and
``ratio_vs_langgraph_checkpointer``: ours over LangGraph's time for the same
number of runs. pyperf's value is ours' time for the round's runs.

Without LangGraph (the ``peers`` group), run as a module, it skips itself
(see :mod:`workloads._peers`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from reference_impl.kernel.graph import (
    GraphNodes,
    GraphRunner,
    GraphSpec,
    PRPState,
    default_confidence,
)
from reference_impl.mode import Mode
from reference_impl.telemetry import Exporter, Telemetry, TelemetryConfig, graph_source
from workloads._bench import Round, balanced, main, run_async
from workloads._peers import LANGGRAPH_MISSING, check_same_results, is_absent, skip

_LANGGRAPH_ABSENT = False
try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.state import CompiledStateGraph
except ModuleNotFoundError as exc:  # the optional `peers` group; a broken install still fails
    if not is_absent(exc, "langgraph", "langchain_core"):
        raise
    _LANGGRAPH_ABSENT = True

NAME = "graph_vs_langgraph"
SIDES = ("ours", "langgraph", "langgraph_checkpointer", "plain")
BATCHES = 4
RUNS_PER_BATCH = 50
# One build unit and one evaluation sample: each node function is called once per run.
SPEC = GraphSpec(build_units=1, evaluation_samples=1)


@dataclass(frozen=True, slots=True)
class GraphResult:
    """What a graph run computed: the content every side must agree on."""

    run_id: str
    strategy: str
    artifacts: tuple[str, ...]
    scores: tuple[float, ...]
    confidence: float


# -- the node functions every side calls ------------------------------------------------


async def plan(run_id: str) -> str:
    """The strategy node's work: a plan for ``run_id``."""
    return f"plan:{run_id}"


async def build_unit(strategy: str, unit: int) -> str:
    """The build node's work: the artifact of ``unit`` under ``strategy``."""
    return f"{strategy}/unit-{unit}"


async def score_sample(artifacts: Sequence[str], sample: int) -> float:
    """The evaluation node's work: the score of ``sample`` of the built artifacts."""
    return 1.0 / (len(artifacts) + sample + 1)


# -- ours -------------------------------------------------------------------------------


async def _strategy(state: PRPState) -> PRPState:
    return state.with_strategy(await plan(state.run_id))


async def _build(planned: PRPState, unit: int) -> str:
    return await build_unit(planned.strategy, unit)


async def _evaluate(built: PRPState, sample: int) -> float:
    return await score_sample(built.artifacts, sample)


def ours_runner() -> GraphRunner:
    """Our graph runner: pooled, bounded history with checkpoints, the shared node functions."""
    return GraphRunner(Mode.POOLED, SPEC, nodes=GraphNodes(_strategy, _build, _evaluate))


def result_of_state(state: PRPState) -> GraphResult:
    """The content of our final state."""
    return GraphResult(
        state.run_id, state.strategy, state.artifacts, state.scores, state.confidence
    )


async def run_ours(runner: GraphRunner, run_id: str) -> GraphResult:
    """One run of our graph."""
    return result_of_state(await runner.run(run_id))


# -- LangGraph --------------------------------------------------------------------------


class GraphState(TypedDict):
    """LangGraph's state for the same graph."""

    run_id: str
    strategy: str
    artifacts: list[str]
    scores: list[float]
    confidence: float


async def _lg_strategy(state: GraphState) -> dict[str, Any]:
    return {"strategy": await plan(state["run_id"])}


async def _lg_build(state: GraphState) -> dict[str, Any]:
    return {"artifacts": [*state["artifacts"], await build_unit(state["strategy"], 0)]}


async def _lg_evaluate(state: GraphState) -> dict[str, Any]:
    scores = [*state["scores"], await score_sample(state["artifacts"], 0)]
    return {"scores": scores, "confidence": default_confidence(tuple(scores))}


def langgraph_app(*, checkpointer: bool) -> CompiledStateGraph[Any, Any, Any, Any]:
    """LangGraph's compiled graph, with a fresh ``InMemorySaver`` when ``checkpointer``."""
    graph = StateGraph(GraphState)
    graph.add_node("strategy", _lg_strategy)
    graph.add_node("build", _lg_build)
    graph.add_node("evaluation", _lg_evaluate)
    graph.add_edge(START, "strategy")
    graph.add_edge("strategy", "build")
    graph.add_edge("build", "evaluation")
    graph.add_edge("evaluation", END)
    return graph.compile(checkpointer=InMemorySaver() if checkpointer else None)


def langgraph_input(run_id: str) -> GraphState:
    """The initial state of a LangGraph run."""
    return GraphState(run_id=run_id, strategy="", artifacts=[], scores=[], confidence=0.0)


def thread_config(run_id: str) -> RunnableConfig:
    """The run config giving the checkpointer a thread of its own per run."""
    return RunnableConfig(configurable={"thread_id": run_id})


def result_of_dict(final: Any) -> GraphResult:
    """The content of LangGraph's final state."""
    return GraphResult(
        final["run_id"],
        final["strategy"],
        tuple(final["artifacts"]),
        tuple(final["scores"]),
        final["confidence"],
    )


async def run_langgraph(
    app: CompiledStateGraph[Any, Any, Any, Any], run_id: str, *, checkpointer: bool
) -> GraphResult:
    """One run of LangGraph's graph (a thread of its own when ``checkpointer``)."""
    config = thread_config(run_id) if checkpointer else None
    return result_of_dict(await app.ainvoke(langgraph_input(run_id), config))


# -- the floor --------------------------------------------------------------------------


async def run_plain(run_id: str) -> GraphResult:
    """The three node functions awaited one after another, no framework."""
    strategy = await plan(run_id)
    artifacts = (await build_unit(strategy, 0),)
    scores = (await score_sample(artifacts, 0),)
    return GraphResult(run_id, strategy, artifacts, scores, default_confidence(scores))


# -- one round --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sides:
    """Each side's graph, fresh for a round (LangGraph's saver grows with every thread)."""

    runner: GraphRunner
    langgraph: CompiledStateGraph[Any, Any, Any, Any]
    checkpointed: CompiledStateGraph[Any, Any, Any, Any]

    async def results(self, run_id: str) -> dict[str, GraphResult]:
        """Every side's result of one run of ``run_id``, ours first."""
        return {
            "ours": await run_ours(self.runner, run_id),
            "langgraph": await run_langgraph(self.langgraph, run_id, checkpointer=False),
            "langgraph_checkpointer": await run_langgraph(
                self.checkpointed, run_id, checkpointer=True
            ),
            "plain": await run_plain(run_id),
        }

    def batch(self, side: str, run_ids: Sequence[str]) -> Callable[[], Awaitable[None]]:
        """A tight loop of ``side``'s runs of ``run_ids`` (its inputs built beforehand)."""
        if side == "ours":
            run = self.runner.run

            async def ours() -> None:
                for run_id in run_ids:
                    await run(run_id)

            return ours
        if side == "plain":

            async def plain() -> None:
                for run_id in run_ids:
                    await run_plain(run_id)

            return plain
        inputs = [langgraph_input(run_id) for run_id in run_ids]
        if side == "langgraph":
            invoke = self.langgraph.ainvoke

            async def langgraph() -> None:
                for graph_input in inputs:
                    await invoke(graph_input)

            return langgraph
        configs = [thread_config(run_id) for run_id in run_ids]
        invoke_checkpointed = self.checkpointed.ainvoke

        async def checkpointed() -> None:
            for graph_input, config in zip(inputs, configs, strict=True):
                await invoke_checkpointed(graph_input, config)

        return checkpointed


async def one_round(round_: Round, number: int) -> float:
    """Check the sides agree, then time them; ours' time for the round's runs."""
    telemetry = Telemetry(TelemetryConfig(exporter=Exporter.MEMORY))
    try:
        sides = _Sides(
            ours_runner(), langgraph_app(checkpointer=False), langgraph_app(checkpointer=True)
        )
        telemetry.add_source(graph_source(sides.runner))
        check_same_results(NAME, await sides.results(f"check-{number}"))
        per_run: dict[str, list[float]] = {side: [] for side in SIDES}
        for batch in range(BATCHES):
            run_ids = [f"run-{number}-{batch}-{i}" for i in range(RUNS_PER_BATCH)]
            for side in balanced(number + batch, SIDES):
                loop = sides.batch(side, run_ids)
                start = time.perf_counter()
                await loop()
                per_run[side].append((time.perf_counter() - start) / RUNS_PER_BATCH)
        if not any(p.name == "runtime.history.length" for p in telemetry.collect()):
            raise RuntimeError(f"{NAME}: telemetry collected no history length of our runner")
    finally:
        telemetry.shutdown()
    for side, values in per_run.items():
        round_.record(f"overhead_{side}", values)
    ours = sum(per_run["ours"])
    round_.record("ratio_vs_langgraph", [ours / sum(per_run["langgraph"])], unit="ratio")
    round_.record(
        "ratio_vs_langgraph_checkpointer",
        [ours / sum(per_run["langgraph_checkpointer"])],
        unit="ratio",
    )
    return ours * RUNS_PER_BATCH


if __name__ == "__main__":
    if _LANGGRAPH_ABSENT:
        skip(NAME, LANGGRAPH_MISSING)
    main(
        NAME,
        lambda round_, number: run_async(one_round(round_, number)),
        "graph run overhead: ours vs LangGraph (with and without checkpointer) vs plain calls",
    )
