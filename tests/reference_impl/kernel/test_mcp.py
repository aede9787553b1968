"""Each guarantee of the MCP adapter's docstring as a test: counters and order, never wall time."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.errors import ConfigError, DeniedError
from reference_impl.events import stable_hash
from reference_impl.kernel.mcp import (
    CallOutcome,
    HookConfig,
    HookDecision,
    HookPhase,
    HookSpec,
    McpAdapter,
    ToolCallResult,
    ToolFn,
    build_hook,
)
from reference_impl.mode import Mode

PRE = HookPhase.PRE
POST = HookPhase.POST
T = TypeVar("T")

# A guard against a deadlock (a hook waiting for an event that never comes), not a timing
# assertion: every test below passes in a few milliseconds or hangs.
DEADLOCK_GUARD_S = 10.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(coro, DEADLOCK_GUARD_S)

    return asyncio.run(guarded())


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def echo(args: Mapping[str, Any]) -> Any:
    return dict(args)


async def guarded(args: Mapping[str, Any]) -> Any:
    path = str(args.get("path", ""))
    if ".." in path:
        raise DeniedError("fs.traversal", path, "parent directory")
    return {"read": path, "size": len(path) * 7}


async def broken(args: Mapping[str, Any]) -> Any:
    raise RuntimeError(f"broken on {args.get('n')}")


TOOLS: dict[str, ToolFn] = {"echo": echo, "guarded": guarded, "broken": broken}


def adapter(mode: Mode, config: HookConfig, **kwargs: Any) -> McpAdapter:
    return McpAdapter(mode, tools=TOOLS, hook_config=config, **kwargs)


def calls(mcp: McpAdapter, sequence: list[tuple[str, str, dict[str, Any]]]) -> list[ToolCallResult]:
    async def main() -> list[ToolCallResult]:
        return [await mcp.call_tool(run_id, tool, args) for run_id, tool, args in sequence]

    return run(main())


# -- configuration --------------------------------------------------------------------


def test_config_hash_is_stable_and_follows_content() -> None:
    a = HookConfig.of([HookSpec("audit", PRE, build_cost=3), HookSpec("scan", POST)])
    same = HookConfig.of([HookSpec("audit", PRE, build_cost=3), HookSpec("scan", POST)])
    other = HookConfig.of([HookSpec("audit", PRE, build_cost=4), HookSpec("scan", POST)])
    assert a == same
    assert hash(a) == hash(same)
    assert a.content_hash == same.content_hash
    assert a.content_hash != other.content_hash
    assert len(a.content_hash) == 64


def test_config_rejects_duplicate_names_and_bad_rules() -> None:
    with pytest.raises(ConfigError, match="unique"):
        HookConfig.of([HookSpec("audit", PRE), HookSpec("audit", POST)])
    with pytest.raises(ConfigError, match="regex"):
        HookSpec("audit", PRE, deny_if="(unclosed")
    with pytest.raises(ConfigError, match="build_cost"):
        HookSpec("audit", PRE, build_cost=-1)
    with pytest.raises(ConfigError, match="duration_s"):
        HookSpec("audit", PRE, duration_s=float("nan"))


def test_building_a_hook_does_its_rounds_deterministically() -> None:
    spec = HookSpec("audit", PRE, build_cost=50)
    assert build_hook(spec).fingerprint == build_hook(spec).fingerprint
    assert build_hook(spec).fingerprint != build_hook(HookSpec("audit", PRE, 49)).fingerprint


# -- hook construction ----------------------------------------------------------------

CONFIG = HookConfig.of(
    [
        HookSpec("policy", PRE, build_cost=20, independent=True, deny_if=r"^broken"),
        HookSpec("secrets", PRE, build_cost=20, independent=True, deny_if=r"secret"),
        HookSpec("redact", POST, build_cost=20, deny_if=r"-> .*password"),
    ]
)


def test_pooled_builds_hooks_once_per_config() -> None:
    mcp = adapter(Mode.POOLED, CONFIG)
    calls(mcp, [("r1", "echo", {"n": i}) for i in range(5)])
    stats = mcp.statistics()
    assert stats.calls == 5
    assert stats.hooks_built == 3
    assert (stats.hook_cache_misses, stats.hook_cache_hits) == (1, 4)

    # An equal config (another object, same content) reuses the built hooks.
    mcp.reconfigure(HookConfig.of(CONFIG.hooks))
    calls(mcp, [("r1", "echo", {"n": 9})])
    assert mcp.statistics().hooks_built == 3
    # A changed config is built once, then reused.
    mcp.reconfigure(HookConfig.of([HookSpec("only", PRE, build_cost=5)]))
    calls(mcp, [("r1", "echo", {"n": i}) for i in range(3)])
    stats = mcp.statistics()
    assert stats.hooks_built == 4
    assert (stats.hook_cache_misses, stats.hook_cache_hits) == (2, 7)


def test_legacy_builds_hooks_on_every_call() -> None:
    mcp = adapter(Mode.LEGACY, CONFIG)
    calls(mcp, [("r1", "echo", {"n": i}) for i in range(5)])
    stats = mcp.statistics()
    assert stats.hooks_built == 15
    assert (stats.hook_cache_misses, stats.hook_cache_hits) == (0, 0)


# -- hook ordering --------------------------------------------------------------------


def test_first_deny_in_declared_order_decides_not_first_to_finish() -> None:
    config = HookConfig.of(
        [
            HookSpec("first", PRE, independent=True, deny_if="echo"),
            HookSpec("second", PRE, independent=True, deny_if="echo"),
            HookSpec("after", PRE, deny_if="echo"),
        ]
    )
    finished: list[str] = []

    async def main() -> ToolCallResult:
        second_done = asyncio.Event()

        async def wait(spec: HookSpec) -> None:
            if spec.name == "first":
                await second_done.wait()  # "first" finishes only after "second" denied
            finished.append(spec.name)
            if spec.name == "second":
                second_done.set()

        mcp = adapter(Mode.POOLED, config, hook_wait=wait)
        return await mcp.call_tool("r1", "echo", {"n": 1})

    result = run(main())
    assert finished == ["second", "first"]  # "after" never ran: the phase was decided
    assert result.outcome is CallOutcome.DENIED
    assert result.denied_by == "hook:first"

    legacy = calls(adapter(Mode.LEGACY, config), [("r1", "echo", {"n": 1})])
    assert legacy == [result]


def test_independent_pre_hooks_overlap_in_pooled_mode() -> None:
    config = HookConfig.of(
        [HookSpec("a", PRE, independent=True), HookSpec("b", PRE, independent=True)]
    )

    async def main() -> ToolCallResult:
        b_started = asyncio.Event()

        async def wait(spec: HookSpec) -> None:
            if spec.name == "a":
                await b_started.wait()  # deadlocks unless "b" runs while "a" waits
            else:
                b_started.set()

        mcp = adapter(Mode.POOLED, config, hook_wait=wait)
        return await mcp.call_tool("r1", "echo", {"n": 1})

    assert run(main()).outcome is CallOutcome.OK


def test_dependent_hook_is_a_barrier_between_independent_groups() -> None:
    config = HookConfig.of(
        [
            HookSpec("a", PRE, independent=True),
            HookSpec("b", PRE, independent=True),
            HookSpec("gate", PRE),
            HookSpec("c", PRE, independent=True),
            HookSpec("d", PRE, independent=True),
        ]
    )
    log: list[tuple[str, str]] = []

    async def wait(spec: HookSpec) -> None:
        log.append(("start", spec.name))
        for _ in range(stable_hash(spec.name) % 5):
            await asyncio.sleep(0)
        log.append(("end", spec.name))

    calls(adapter(Mode.POOLED, config, hook_wait=wait), [("r1", "echo", {})])
    position = {event: index for index, event in enumerate(log)}
    # a and b overlap; the gate starts after both ended; c and d start after it ended.
    assert position[("start", "b")] < position[("end", "a")]
    assert position[("start", "gate")] > max(position[("end", "a")], position[("end", "b")])
    assert position[("start", "c")] > position[("end", "gate")]
    assert position[("start", "d")] < position[("end", "c")]


def test_post_hooks_see_the_tool_value() -> None:
    config = HookConfig.of([HookSpec("redact", POST, deny_if=r"-> .*\"password\"")])
    for mode in Mode:
        ok, denied = calls(
            adapter(mode, config),
            [("r1", "echo", {"user": "x"}), ("r1", "echo", {"password": "x"})],
        )
        assert ok.outcome is CallOutcome.OK
        assert ok.value == {"user": "x"}
        assert denied.outcome is CallOutcome.DENIED
        assert denied.denied_by == "hook:redact"


def test_hook_outcome_names_hook_and_reason() -> None:
    hook = build_hook(HookSpec("policy", PRE, deny_if=r"rm -rf"))
    outcome = asyncio.run(hook.run('shell {"cmd":"rm -rf /"}'))
    assert outcome.decision is HookDecision.DENY
    assert outcome.hook == "policy"
    assert "rm -rf" in outcome.reason


# -- tool outcomes --------------------------------------------------------------------


def test_tool_denied_error_is_reported_as_denied_with_its_rule() -> None:
    for mode in Mode:
        mcp = adapter(mode, CONFIG)
        (result,) = calls(mcp, [("r1", "guarded", {"path": "../etc/passwd"})])
        assert result.outcome is CallOutcome.DENIED
        assert result.denied_by == "fs.traversal"
        assert result.value_digest is None
        assert mcp.statistics().denials == (("fs.traversal", 1),)


def test_failures_and_unknown_tools_are_results_not_exceptions() -> None:
    config = HookConfig.of([HookSpec("audit", PRE)])
    mcp = adapter(Mode.POOLED, config)
    failed, unknown = calls(mcp, [("r1", "broken", {"n": 3}), ("r1", "nope", {})])
    assert failed.outcome is CallOutcome.FAILED
    assert failed.detail == "RuntimeError: broken on 3"
    assert unknown.outcome is CallOutcome.DENIED
    assert unknown.denied_by == "mcp.unknown_tool"
    stats = mcp.statistics()
    assert (stats.calls, stats.failures) == (2, 1)
    assert stats.denials == (("mcp.unknown_tool", 1),)


def test_statistics_sort_denials_by_rule() -> None:
    mcp = adapter(Mode.POOLED, CONFIG)
    calls(
        mcp,
        [
            ("r1", "echo", {"k": "secret"}),
            ("r1", "guarded", {"path": ".."}),
            ("r1", "broken", {}),
            ("r1", "echo", {"k": "secret"}),
        ],
    )
    assert mcp.statistics().denials == (
        ("fs.traversal", 1),
        ("hook:policy", 1),
        ("hook:secrets", 2),
    )


# -- determinism across modes ---------------------------------------------------------

PATTERNS = [None, r"secret", r"^guarded", r"\"n\":1[0-9]", r"-> .*size\":2", r"\.\./"]
hook_specs = st.lists(
    st.tuples(st.sampled_from(list(HookPhase)), st.booleans(), st.sampled_from(PATTERNS)),
    max_size=6,
)
call_sequences = st.lists(
    st.tuples(
        st.sampled_from(["r0", "r1", "r2"]),
        st.sampled_from(["echo", "guarded", "broken", "missing"]),
        st.fixed_dictionaries(
            {"n": st.integers(0, 20), "path": st.sampled_from(["a", "secret/b", "../c", "dd"])}
        ),
    ),
    max_size=12,
)


async def jitter(spec: HookSpec) -> None:
    """Scramble finishing order without wall time: each hook yields a different count."""
    for _ in range(stable_hash(spec.name) % 4):
        await asyncio.sleep(0)


@settings(max_examples=60, deadline=None)
@given(hook_specs, call_sequences)
def test_legacy_and_pooled_give_identical_results(
    specs: list[tuple[HookPhase, bool, str | None]],
    sequence: list[tuple[str, str, dict[str, Any]]],
) -> None:
    config = HookConfig.of(
        HookSpec(f"h{i}", phase, build_cost=1, independent=independent, deny_if=pattern)
        for i, (phase, independent, pattern) in enumerate(specs)
    )
    legacy = adapter(Mode.LEGACY, config, hook_wait=jitter)
    pooled = adapter(Mode.POOLED, config, hook_wait=jitter, context_max=1)
    assert calls(legacy, sequence) == calls(pooled, sequence)
    before, after = legacy.statistics(), pooled.statistics()
    assert (before.calls, before.denials, before.failures) == (
        after.calls,
        after.denials,
        after.failures,
    )


# -- contexts -------------------------------------------------------------------------


def test_pooled_contexts_are_bounded_least_recently_used_out() -> None:
    mcp = adapter(Mode.POOLED, CONFIG, context_max=2)
    a = mcp.open_context("a")
    b = mcp.open_context("b")
    assert mcp.open_context("a") is a  # idempotent, and "a" is now the most recent
    mcp.open_context("c")
    assert mcp.statistics().live_contexts == 2
    assert mcp.open_context("a") is a
    assert mcp.open_context("b") is not b  # "b" was evicted: a fresh context


def test_pooled_contexts_expire_by_ttl_on_the_injected_clock() -> None:
    clock = FakeClock()
    mcp = adapter(Mode.POOLED, CONFIG, context_ttl_s=10.0, clock=clock)
    old = mcp.open_context("old")
    clock.advance(5.0)
    mcp.open_context("young")
    clock.advance(5.0)
    assert mcp.purge_expired_contexts() == 1
    assert mcp.statistics().live_contexts == 1
    # A call on an expired run opens a fresh context.
    calls(mcp, [("old", "echo", {})])
    fresh = mcp.open_context("old")
    assert fresh is not old
    assert fresh.calls == 1
    assert mcp.statistics().contexts_opened == 3


def test_legacy_keeps_contexts_until_cleanup() -> None:
    clock = FakeClock()
    mcp = adapter(Mode.LEGACY, CONFIG, context_max=2, context_ttl_s=1.0, clock=clock)
    for i in range(1000):
        mcp.open_context(f"run-{i}")
    clock.advance(3600.0)
    assert mcp.purge_expired_contexts() == 0
    assert mcp.statistics().live_contexts == 1000
    assert mcp.cleanup_context("run-7")
    assert not mcp.cleanup_context("run-7")
    assert mcp.statistics().live_contexts == 999


def test_pooled_contexts_never_exceed_bound_over_100k_runs() -> None:
    clock = FakeClock()
    mcp = adapter(Mode.POOLED, CONFIG, context_max=64, clock=clock)

    async def main() -> None:
        for i in range(100_000):
            run_id = f"run-{i}"
            mcp.open_context(run_id)
            if i % 1000 == 0:
                await mcp.call_tool(run_id, "echo", {"n": i})
            clock.advance(0.01)
            assert mcp.statistics().live_contexts <= 64

    run(main())
    stats = mcp.statistics()
    assert stats.contexts_opened == 100_000
    assert stats.live_contexts == 64
    assert stats.calls == 100


# -- samples --------------------------------------------------------------------------


def test_hook_latency_samples_are_bounded_oldest_first() -> None:
    clock = FakeClock()

    async def advance(spec: HookSpec) -> None:
        clock.advance(spec.duration_s)

    mcp = adapter(Mode.POOLED, CONFIG, timer=clock, hook_wait=advance, hook_samples_max=4)

    async def main() -> None:
        for i in range(10):
            # Each call's hooks take i seconds (pre 0.5 i + post 0.5 i) of fake time.
            mcp.reconfigure(
                HookConfig.of(
                    [
                        HookSpec("pre", PRE, duration_s=i / 2),
                        HookSpec("post", POST, duration_s=i / 2),
                    ]
                )
            )
            await mcp.call_tool("r1", "echo", {})

    run(main())
    assert list(mcp.hook_latency_samples()) == [6.0, 7.0, 8.0, 9.0]
    stats = mcp.statistics()
    assert stats.hook_samples == 4
    assert stats.hook_seconds_total == sum(range(10))
