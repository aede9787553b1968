"""The orchestrator: dependency levels through the ordered pool, shared context, reuse."""

from __future__ import annotations

import pytest

from reference_impl import virtual_time
from reference_impl.errors import ConfigError
from reference_impl.mode import Mode
from reference_impl.prp import (
    ConcurrentExecutor,
    ExecutorPolicy,
    Orchestrator,
    PrpConfig,
    SubAgentError,
    SubAgentSpec,
    TaskFailedError,
)

AGENTS = [
    SubAgentSpec("plan", duration_s=10),
    SubAgentSpec("research-a", deps=("plan",), duration_s=30, task_key="research"),
    SubAgentSpec("research-b", deps=("plan",), duration_s=30, task_key="research"),
    SubAgentSpec("code", deps=("plan",), duration_s=40, transient_failures=1),
    SubAgentSpec("docs", deps=("plan",), duration_s=20),
    SubAgentSpec("review", deps=("code", "docs"), duration_s=15),
    SubAgentSpec("merge", deps=("review", "research-a"), duration_s=5),
]


def test_levels_follow_the_deepest_dependency_in_declaration_order() -> None:
    levels = Orchestrator.levels(AGENTS)
    assert [[a.id for a in level] for level in levels] == [
        ["plan"],
        ["research-a", "research-b", "code", "docs"],
        ["review"],
        ["merge"],
    ]


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        ([SubAgentSpec("a", deps=("b",)), SubAgentSpec("b", deps=("a",))], "cycle among 'a', 'b'"),
        ([SubAgentSpec("a", deps=("ghost",))], "'a' depends on unknown ghost"),
        ([SubAgentSpec("a"), SubAgentSpec("a")], "'a' is declared twice"),
    ],
)
def test_a_bad_graph_names_the_sub_agents(agents: list[SubAgentSpec], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Orchestrator.levels(agents)


def test_pooled_and_legacy_commit_the_same_outputs_in_the_same_order() -> None:
    legacy = Orchestrator(Mode.LEGACY, PrpConfig(), context_build_s=2.0)
    pooled = Orchestrator(Mode.POOLED, PrpConfig(spool_max_concurrency=6), context_build_s=2.0)
    legacy_result = virtual_time.run(legacy.run(AGENTS))
    pooled_result = virtual_time.run(pooled.run(AGENTS))
    assert (
        pooled_result.order
        == legacy_result.order
        == (
            "plan",
            "research-a",
            "research-b",
            "code",
            "docs",
            "review",
            "merge",
        )
    )
    assert pooled_result.outputs == legacy_result.outputs
    outputs = dict(pooled_result.outputs)
    assert outputs["research-a"] == outputs["research-b"]  # one task key, one result
    # Shared state: built once per run pooled, once per sub-agent legacy.
    assert pooled_result.context_builds == 1
    assert legacy_result.context_builds == 7
    assert pooled_result.concurrency == 6 and legacy_result.concurrency == 4
    assert pooled.executor.statistics().reused == 1
    assert legacy.executor.statistics().reused == 0
    assert pooled_result.makespan_s < legacy_result.makespan_s


def test_the_configured_concurrency_bounds_each_level() -> None:
    wide = [SubAgentSpec(f"w{i}", duration_s=10) for i in range(6)]
    for slots, expected_s in ((1, 60.0), (2, 30.0), (3, 20.0), (6, 10.0)):
        orchestrator = Orchestrator(
            Mode.POOLED, PrpConfig(spool_max_concurrency=slots), context_build_s=0.0
        )
        assert virtual_time.run(orchestrator.run(wide)).makespan_s == pytest.approx(expected_s)


def test_each_run_is_a_new_reuse_cycle() -> None:
    orchestrator = Orchestrator(Mode.POOLED, PrpConfig(), context_build_s=0.0)
    agents = [SubAgentSpec("a", duration_s=1)]

    async def twice() -> None:
        await orchestrator.run(agents)
        await orchestrator.run(agents)

    virtual_time.run(twice())
    stats = orchestrator.statistics()
    assert (stats.runs, stats.sub_agents, stats.executor.executed) == (2, 2, 2)


def test_a_failing_sub_agent_is_named() -> None:
    executor = ConcurrentExecutor(ExecutorPolicy(max_attempts=2))
    orchestrator = Orchestrator(Mode.POOLED, PrpConfig(), executor=executor, context_build_s=0.0)
    agents = [SubAgentSpec("ok"), SubAgentSpec("flaky", transient_failures=5)]
    with pytest.raises(SubAgentError, match="sub-agent 'flaky' failed") as caught:
        virtual_time.run(orchestrator.run(agents))
    assert isinstance(caught.value.__cause__, TaskFailedError)
    assert orchestrator.statistics().sub_agents == 1  # "ok" committed before the failure
