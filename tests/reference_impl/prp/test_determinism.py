"""Property: pooled runs commit exactly what legacy commits, whatever the concurrency or jitter."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference_impl.mode import Mode
from reference_impl.prp import GateKind, GateSpec, PrpConfig, PrpRunResult, verify_evidence_file

from .support import expected_outcomes, run_prp

JITTER_MAX_S = 5.0


@st.composite
def gate_lists(draw: st.DrawFn) -> list[GateSpec]:
    """DAGs of up to 60 gates: random deps, durations, failures, timeouts, human reviewers."""
    n = draw(st.integers(1, 60))
    gates = []
    for i in range(n):
        deps = draw(st.lists(st.integers(0, i - 1), max_size=3, unique=True)) if i else []
        human = draw(st.integers(0, 3)) == 0
        duration = float(draw(st.integers(0, 600)))
        timeout = None
        if duration >= 20 and draw(st.integers(0, 9)) == 0:
            # Far enough below the duration that no jitter can save it.
            timeout = duration - 2 * JITTER_MAX_S
        gates.append(
            GateSpec(
                f"g{i:02d}",
                GateKind.HUMAN if human else GateKind.AUTOMATED,
                tuple(f"g{d:02d}" for d in deps),
                duration,
                fails=draw(st.integers(0, 9)) == 0,
                wait_s=float(draw(st.integers(0, 120))) if human else 0.0,
                approved=draw(st.integers(0, 5)) != 0 if human else True,
                timeout_s=timeout,
            )
        )
    # Declaration order is free (ties of the commit order are broken by it).
    return draw(st.permutations(gates))


def check_dependencies_and_bound(result: PrpRunResult, gates: list[GateSpec], bound: int) -> None:
    timing = {t.gate: t for t in result.timings}
    commits = [t.committed_at_s for t in result.timings]
    assert commits == sorted(commits)
    intervals = []
    for gate in gates:
        started = timing[gate.id].started_at_s
        if started is None:
            continue
        for dep in gate.deps:
            assert started >= timing[dep].committed_at_s, (gate.id, dep)
        done = timing[gate.id].work_done_at_s
        assert done is not None
        intervals.append((started, done))
    # At most `bound` gates work at once (an end at t frees its slot for a start at t).
    points = sorted([(s, 1) for s, _ in intervals] + [(d, -1) for _, d in intervals])
    level = 0
    for _, step in points:
        level += step
        assert level <= bound


@settings(
    max_examples=35,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    gates=gate_lists(),
    base=st.integers(1, 8),
    extra=st.integers(0, 7),
    batch=st.integers(1, 4),
    jitter_s=st.floats(0.0, JITTER_MAX_S),
    seed=st.integers(0, 2**32),
    linger_s=st.sampled_from([0.0, 5.0, 60.0, 1e6]),
)
def test_pooled_commits_what_legacy_commits(
    gates: list[GateSpec],
    base: int,
    extra: int,
    batch: int,
    jitter_s: float,
    seed: int,
    linger_s: float,
) -> None:
    maximum = min(8, base + extra)
    config = PrpConfig(base, maximum, batch)
    with tempfile.TemporaryDirectory(prefix="prp-prop-") as scratch:
        directory = Path(scratch)
        legacy = run_prp(Mode.LEGACY, gates, directory, config)
        pooled = run_prp(
            Mode.POOLED,
            gates,
            directory,
            config,
            timing_jitter_s=jitter_s,
            seed=seed,
            approval_linger_s=linger_s,
        )
        assert pooled.order == legacy.order
        assert pooled.committed == legacy.committed
        assert pooled.skipped == legacy.skipped
        assert pooled.failed == legacy.failed
        assert pooled.outcomes == legacy.outcomes
        assert [e.as_json() for e in pooled.events] == [e.as_json() for e in legacy.events]
        assert pooled.event_digest == legacy.event_digest
        assert pooled.evidence_digest == legacy.evidence_digest
        assert verify_evidence_file(pooled.evidence_path) == len(gates)
        assert pooled.review_path.read_bytes() == legacy.review_path.read_bytes()
    # Outcomes follow from the specs alone (gates ending in 3 are advisory in the profile).
    advisory = {g.id for g in gates if g.id.endswith("3")}
    expected = expected_outcomes(gates, advisory)
    assert {o.gate: o.outcome.value for o in legacy.outcomes} == expected
    check_dependencies_and_bound(legacy, gates, 1)
    check_dependencies_and_bound(pooled, gates, maximum)
    assert pooled.concurrency_peak <= maximum
