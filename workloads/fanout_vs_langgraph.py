"""fanout_vs_langgraph: one node fanning out N sleeping tool calls, ours against LangGraph's.

One graph run plans (a trivial node), then fans out ``N`` tool calls (``N`` in
``SIZES``), each awaiting ``asyncio.sleep(TOOL_SLEEP_S)`` and returning its
result, at most ``CONCURRENCY`` at once, and joins the results in input order:

* ``ours``: :class:`~reference_impl.kernel.graph.GraphRunner` in pooled mode,
  the tool calls being its build units, run through its
  :class:`~reference_impl.pool.OrderedPool` of ``max_concurrent=CONCURRENCY``,
  which commits them in input order (telemetry on: the in-memory exporter,
  the runner's source registered, collected once per round off the timed path);
* ``langgraph``: LangGraph's compiled ``StateGraph``, a conditional edge
  sending one ``Send("tool", ...)`` per call, ``max_concurrency=CONCURRENCY``
  in the run config, the results gathered by an ``operator.add`` reducer and
  ordered by index in a join node.

Per round and size, before anything is timed, both sides run once and must
return the same results in the same order (else
:class:`~workloads._peers.PeerMismatchError`). Then ``INVOCATIONS[N]`` timed
runs per side, alternating in a balanced (ABBA) order from run to run.

The ideal makespan is ``ceil(N / CONCURRENCY) * TOOL_SLEEP_S``: the sleeps
alone, perfectly packed. Samples, per run: ``makespan_over_ideal_<side>_n<N>``
(ratio, >= 1) and ``item_overhead_<side>_n<N>`` (``(makespan - ideal) / N``,
seconds per tool call: what the framework and the event loop's sleep
resolution add); per round: ``ratio_vs_langgraph_n<N>``, ours' total makespan
over LangGraph's. pyperf's value is ours' time for the round's runs.

Without LangGraph (the ``peers`` group), run as a module, it skips itself
(see :mod:`workloads._peers`).
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from typing import Annotated, Any, TypedDict

from reference_impl.kernel.graph import GraphNodes, GraphRunner, GraphSpec, PRPState
from reference_impl.mode import Mode
from reference_impl.telemetry import Exporter, Telemetry, TelemetryConfig, graph_source
from workloads._bench import Round, balanced, main, run_async
from workloads._peers import LANGGRAPH_MISSING, check_same_results, is_absent, skip

_LANGGRAPH_ABSENT = False
try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.types import Send
except ModuleNotFoundError as exc:  # the optional `peers` group; a broken install still fails
    if not is_absent(exc, "langgraph", "langchain_core"):
        raise
    _LANGGRAPH_ABSENT = True

NAME = "fanout_vs_langgraph"
SIDES = ("ours", "langgraph")
SIZES = (16, 256)
CONCURRENCY = 16
TOOL_SLEEP_S = 0.001
# Timed runs per side, per size and round: about half a second of sleeps for each size.
INVOCATIONS = {16: 24, 256: 4}


def ideal_makespan_s(items: int) -> float:
    """The sleeps alone, perfectly packed ``CONCURRENCY`` at a time."""
    return math.ceil(items / CONCURRENCY) * TOOL_SLEEP_S


async def tool_call(index: int) -> str:
    """One tool call: a short sleep, then its result."""
    await asyncio.sleep(TOOL_SLEEP_S)
    return f"result-{index:04d}"


# -- ours -------------------------------------------------------------------------------


async def _plan(state: PRPState) -> PRPState:
    return state


async def _call_tool(_planned: PRPState, unit: int) -> str:
    return await tool_call(unit)


async def _no_evaluation(_built: PRPState, _sample: int) -> float:
    return 0.0


def ours_runner(items: int) -> GraphRunner:
    """Our graph runner fanning out ``items`` tool calls through its ordered pool."""
    return GraphRunner(
        Mode.POOLED,
        GraphSpec(build_units=items, evaluation_samples=0),
        nodes=GraphNodes(_plan, _call_tool, _no_evaluation),
        max_concurrent=CONCURRENCY,
    )


async def run_ours(runner: GraphRunner, run_id: str) -> list[str]:
    """One run of our graph: the tool results in input order."""
    return list((await runner.run(run_id)).artifacts)


# -- LangGraph --------------------------------------------------------------------------


class FanoutState(TypedDict):
    """LangGraph's state: how many calls, their (index, result) pairs, the joined results."""

    items: int
    results: Annotated[list[tuple[int, str]], operator.add]
    joined: list[str]


class ToolInput(TypedDict):
    """What one ``Send`` carries to the tool node."""

    index: int


# LangGraph's node protocols name the parameter ``state``.
async def _lg_plan(state: FanoutState) -> dict[str, Any]:
    return {}


def _lg_fan_out(state: FanoutState) -> list[Send]:
    return [Send("tool", ToolInput(index=index)) for index in range(state["items"])]


async def _lg_tool(state: ToolInput) -> dict[str, Any]:
    return {"results": [(state["index"], await tool_call(state["index"]))]}


async def _lg_join(state: FanoutState) -> dict[str, Any]:
    return {"joined": [result for _index, result in sorted(state["results"])]}


def langgraph_app() -> CompiledStateGraph[Any, Any, Any, Any]:
    """LangGraph's compiled fan-out graph: plan, one ``Send`` per tool call, join."""
    graph = StateGraph(FanoutState)
    graph.add_node("plan", _lg_plan)
    graph.add_node("tool", _lg_tool)
    graph.add_node("join", _lg_join)
    graph.add_edge(START, "plan")
    graph.add_conditional_edges("plan", _lg_fan_out, ["tool"])
    graph.add_edge("tool", "join")
    graph.add_edge("join", END)
    return graph.compile()


def langgraph_input(items: int) -> FanoutState:
    """The initial state of a LangGraph run of ``items`` tool calls."""
    return FanoutState(items=items, results=[], joined=[])


def bounded_config() -> RunnableConfig:
    """The run config holding LangGraph to ``CONCURRENCY`` tool calls at once."""
    return RunnableConfig(max_concurrency=CONCURRENCY)


async def run_langgraph(app: CompiledStateGraph[Any, Any, Any, Any], items: int) -> list[str]:
    """One run of LangGraph's graph, at most ``CONCURRENCY`` tool calls at once."""
    final = await app.ainvoke(langgraph_input(items), bounded_config())
    return list(final["joined"])


# -- one round --------------------------------------------------------------------------


async def _one_size(
    round_: Round, number: int, items: int, telemetry: Telemetry
) -> tuple[float, float]:
    """Check, then time both sides on ``items`` calls; the total makespans (ours, LangGraph)."""
    runner = ours_runner(items)
    app = langgraph_app()
    telemetry.add_source(graph_source(runner))
    check_same_results(
        NAME,
        {
            "ours": await run_ours(runner, f"check-{number}-n{items}"),
            "langgraph": await run_langgraph(app, items),
        },
    )
    makespans: dict[str, list[float]] = {side: [] for side in SIDES}
    graph_input, config = langgraph_input(items), bounded_config()
    for invocation in range(INVOCATIONS[items]):
        run_id = f"run-{number}-n{items}-{invocation}"
        for side in balanced(number + invocation, SIDES):
            start = time.perf_counter()
            if side == "ours":
                await runner.run(run_id)
            else:
                await app.ainvoke(graph_input, config)
            makespans[side].append(time.perf_counter() - start)
    ideal = ideal_makespan_s(items)
    for side, values in makespans.items():
        round_.record(
            f"makespan_over_ideal_{side}_n{items}", [v / ideal for v in values], unit="ratio"
        )
        round_.record(f"item_overhead_{side}_n{items}", [(v - ideal) / items for v in values])
    ours, langgraph = sum(makespans["ours"]), sum(makespans["langgraph"])
    round_.record(f"ratio_vs_langgraph_n{items}", [ours / langgraph], unit="ratio")
    return ours, langgraph


async def one_round(round_: Round, number: int) -> float:
    """Both sizes, the smaller first on even rounds; ours' time for the round's runs."""
    telemetry = Telemetry(TelemetryConfig(exporter=Exporter.MEMORY))
    ours = 0.0
    try:
        for items in balanced(number, SIZES):
            ours += (await _one_size(round_, number, items, telemetry))[0]
        if not any(p.name == "runtime.history.length" for p in telemetry.collect()):
            raise RuntimeError(f"{NAME}: telemetry collected no history length of our runner")
    finally:
        telemetry.shutdown()
    return ours


if __name__ == "__main__":
    if _LANGGRAPH_ABSENT:
        skip(NAME, LANGGRAPH_MISSING)
    main(
        NAME,
        lambda round_, number: run_async(one_round(round_, number)),
        "fan-out of sleeping tool calls: our ordered pool vs LangGraph's Send, same bound",
    )
