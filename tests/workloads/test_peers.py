"""The workloads against LangGraph: both sides compute the same results (nothing timed).

These need LangGraph (the ``peers`` group; ``nox -s tests`` installs it). Without
it they skip on a developer's machine, and fail in CI (``CI`` set), where a
missing peer would otherwise hide every one of them. The skip path of the
workload modules themselves is tested with LangGraph hidden in a subprocess.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from reference_impl.kernel.graph import default_confidence
from workloads import fanout_vs_langgraph as fanout
from workloads import graph_vs_langgraph as graph
from workloads import registry
from workloads._peers import LANGGRAPH_MISSING, PeerMismatchError, check_same_results
from workloads.samples import ClockName

ROOT = Path(__file__).resolve().parents[2]
PEER_WORKLOADS = ("graph_vs_langgraph", "fanout_vs_langgraph")
HAVE_LANGGRAPH = importlib.util.find_spec("langgraph") is not None


@pytest.fixture
def langgraph() -> None:
    """Skip without LangGraph, except in CI, where its absence is a failure."""
    if HAVE_LANGGRAPH:
        return
    if os.environ.get("CI"):
        pytest.fail(
            "LangGraph is not installed in CI: the peers group must be installed "
            "(nox -s tests installs .[test,peers])",
            pytrace=False,
        )
    pytest.skip(LANGGRAPH_MISSING)


class RecordedRound:
    """A stand-in for :class:`workloads._bench.Round` that keeps what is recorded."""

    recording = True
    id = "r0"

    def __init__(self) -> None:
        self.metrics: dict[str, tuple[str, list[float]]] = {}

    def record(
        self, metric: str, values: Sequence[float], *, unit: str = "s", clock: ClockName = "wall"
    ) -> None:
        assert clock == "wall"
        assert metric not in self.metrics, f"{metric} recorded twice in a round"
        self.metrics[metric] = (unit, list(values))


# -- graph_vs_langgraph -------------------------------------------------------------------


@pytest.mark.usefixtures("langgraph")
def test_every_graph_side_computes_the_same_final_state() -> None:
    async def main() -> list[dict[str, graph.GraphResult]]:
        runner = graph.ours_runner()
        plain_app = graph.langgraph_app(checkpointer=False)
        checkpointed = graph.langgraph_app(checkpointer=True)
        results = []
        for run_id in ("a", "run-7", "ünï-∂"):
            results.append(
                {
                    "ours": await graph.run_ours(runner, run_id),
                    "langgraph": await graph.run_langgraph(plain_app, run_id, checkpointer=False),
                    "langgraph_checkpointer": await graph.run_langgraph(
                        checkpointed, run_id, checkpointer=True
                    ),
                    "plain": await graph.run_plain(run_id),
                }
            )
        return results

    for by_side in asyncio.run(main()):
        ours = by_side["ours"]
        assert set(by_side.values()) == {ours}
        check_same_results(graph.NAME, by_side)
        assert ours.strategy == f"plan:{ours.run_id}"
        assert ours.artifacts == (f"plan:{ours.run_id}/unit-0",)
        assert ours.scores == (0.5,)
        assert ours.confidence == default_confidence((0.5,))


@pytest.mark.usefixtures("langgraph")
def test_the_checkpointer_keeps_one_thread_per_run() -> None:
    async def main() -> int:
        app = graph.langgraph_app(checkpointer=True)
        for run_id in ("a", "b", "c"):
            await graph.run_langgraph(app, run_id, checkpointer=True)
        threads = set()
        assert app.checkpointer is not None
        async for saved in app.checkpointer.alist(None):
            threads.add(saved.config["configurable"]["thread_id"])
        return len(threads)

    assert asyncio.run(main()) == 3


@pytest.mark.usefixtures("langgraph")
def test_a_graph_round_records_every_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph, "BATCHES", 2)
    monkeypatch.setattr(graph, "RUNS_PER_BATCH", 3)
    round_ = RecordedRound()
    ours_s = asyncio.run(graph.one_round(round_, 1))  # type: ignore[arg-type]

    assert set(round_.metrics) == set(registry.WORKLOADS[graph.NAME].metric_names)
    for metric, (unit, values) in round_.metrics.items():
        assert unit == ("ratio" if metric.startswith("ratio_") else "s"), metric
        assert values and all(v > 0 for v in values), metric
        assert len(values) == (1 if unit == "ratio" else 2), metric
    assert ours_s == pytest.approx(sum(round_.metrics["overhead_ours"][1]) * 3)


@pytest.mark.usefixtures("langgraph")
def test_a_side_that_computes_another_result_fails_the_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = graph.run_plain

    async def plain_with_another_score(run_id: str) -> graph.GraphResult:
        return dataclasses.replace(await real(run_id), scores=(0.25,))

    monkeypatch.setattr(graph, "run_plain", plain_with_another_score)
    with pytest.raises(PeerMismatchError, match="plain computed another result than ours"):
        asyncio.run(graph.one_round(RecordedRound(), 0))  # type: ignore[arg-type]


# -- fanout_vs_langgraph ------------------------------------------------------------------


@pytest.fixture
def instant_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tool calls that sleep 0 s: the results, not the timing, are under test."""
    monkeypatch.setattr(fanout, "TOOL_SLEEP_S", 0.0)


@pytest.mark.usefixtures("langgraph", "instant_tools")
@pytest.mark.parametrize("items", [1, 5, 40])
def test_both_fanouts_return_every_result_in_input_order(items: int) -> None:
    async def main() -> dict[str, list[str]]:
        return {
            "ours": await fanout.run_ours(fanout.ours_runner(items), "check"),
            "langgraph": await fanout.run_langgraph(fanout.langgraph_app(), items),
        }

    results = asyncio.run(main())
    check_same_results(fanout.NAME, results)
    assert results["ours"] == [f"result-{index:04d}" for index in range(items)]


@pytest.mark.usefixtures("langgraph")
def test_both_fanouts_hold_the_same_concurrency_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    in_flight = [0]
    peaks: list[int] = []
    real = fanout.tool_call

    async def counted(index: int) -> str:
        in_flight[0] += 1
        peaks[-1] = max(peaks[-1], in_flight[0])
        try:
            return await real(index)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(fanout, "tool_call", counted)
    items = 3 * fanout.CONCURRENCY

    async def main() -> None:
        peaks.append(0)
        await fanout.run_ours(fanout.ours_runner(items), "bound")
        peaks.append(0)
        await fanout.run_langgraph(fanout.langgraph_app(), items)

    asyncio.run(main())
    assert peaks == [fanout.CONCURRENCY, fanout.CONCURRENCY]


@pytest.mark.usefixtures("langgraph")
def test_a_fanout_round_records_every_metric_of_its_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "TOOL_SLEEP_S", 0.0002)
    monkeypatch.setattr(fanout, "SIZES", (4, 20))
    monkeypatch.setattr(fanout, "INVOCATIONS", {4: 2, 20: 1})
    round_ = RecordedRound()
    asyncio.run(fanout.one_round(round_, 0))  # type: ignore[arg-type]

    expected = {
        f"{measure}_{side}_n{items}"
        for items in (4, 20)
        for measure in ("makespan_over_ideal", "item_overhead")
        for side in fanout.SIDES
    } | {"ratio_vs_langgraph_n4", "ratio_vs_langgraph_n20"}
    assert set(round_.metrics) == expected
    assert len(round_.metrics["makespan_over_ideal_ours_n4"][1]) == 2
    assert round_.metrics["item_overhead_langgraph_n20"][0] == "s"
    assert round_.metrics["ratio_vs_langgraph_n20"][0] == "ratio"


def test_the_registered_fanout_metrics_are_those_of_the_shipped_sizes() -> None:
    expected = {
        f"{measure}_{side}_n{items}"
        for items in fanout.SIZES
        for measure in ("makespan_over_ideal", "item_overhead")
        for side in fanout.SIDES
    } | {f"ratio_vs_langgraph_n{items}" for items in fanout.SIZES}
    assert set(registry.WORKLOADS[fanout.NAME].metric_names) == expected


# -- without LangGraph --------------------------------------------------------------------


def _run_module_hiding(workload: str, hidden: str) -> subprocess.CompletedProcess[str]:
    """Run ``workloads.<workload>`` as ``__main__`` with module ``hidden`` unimportable."""
    code = (
        "import runpy, sys\n"
        f"sys.modules[{hidden!r}] = None\n"
        f"runpy.run_module('workloads.{workload}', run_name='__main__', alter_sys=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("workload", PEER_WORKLOADS)
def test_without_langgraph_the_workload_skips_with_one_line(workload: str) -> None:
    completed = _run_module_hiding(workload, "langgraph")
    assert completed.returncode == registry.SKIP_EXIT_STATUS, completed.stderr
    assert completed.stderr.splitlines() == [registry.skip_line(workload, LANGGRAPH_MISSING)]
    assert "pip install 'agentbench[peers]'" in completed.stderr
    assert completed.stdout == ""


@pytest.mark.slow
@pytest.mark.usefixtures("langgraph")
@pytest.mark.parametrize("workload", PEER_WORKLOADS)
def test_a_broken_langgraph_install_fails_instead_of_skipping(workload: str) -> None:
    # LangGraph is there but one of its own dependencies is not: not a skip.
    completed = _run_module_hiding(workload, "pydantic")
    assert completed.returncode not in (0, registry.SKIP_EXIT_STATUS)
    assert completed.stderr.startswith("Traceback")
    assert ": skipped: " not in completed.stderr
