"""Run the bundled example PRP in both modes on the virtual clock and compare them.

``python -m reference_impl.prp.demo`` prints the gates, their commit order (the
same in both modes), both makespans in trace seconds and the speed-up. The
concurrency comes from ``PRP_SPOOL_CONCURRENCY`` / ``PRP_SPOOL_MAX_CONCURRENCY`` /
``PRP_APPROVAL_BATCH_SIZE`` (defaults 1 / 4 / 2). Exit status 0, or 2 with one
line on stderr for bad input.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

from reference_impl import virtual_time
from reference_impl.errors import ConfigError
from reference_impl.mode import Mode
from reference_impl.prp.config import PrpConfig
from reference_impl.prp.gates import GateSpec, load_gates
from reference_impl.prp.outcomes import FailureReason, OutcomeKind
from reference_impl.prp.profile import Severity
from reference_impl.prp.runner import PrpRunner, PrpRunResult

__all__ = ["EXAMPLE_GATES", "EXAMPLE_PROFILE", "main", "run_both"]

EXAMPLES = Path(__file__).resolve().with_name("examples")
EXAMPLE_GATES = EXAMPLES / "example_gates.json"
EXAMPLE_PROFILE = EXAMPLES / "initial.md"


def run_both(
    gates: Sequence[GateSpec], profile: Path, evidence_dir: Path, config: PrpConfig
) -> tuple[PrpRunResult, PrpRunResult]:
    """The legacy and the pooled result of one PRP, each on a fresh virtual clock."""
    results = []
    for mode in (Mode.LEGACY, Mode.POOLED):
        runner = PrpRunner(
            mode, config, profile_path=profile, evidence_dir=evidence_dir / mode.value
        )
        results.append(virtual_time.run(runner.run(gates, run_id="example")))
    return results[0], results[1]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{seconds:7.0f} s ({minutes}m{secs:02d}s)"


def _report(
    gates: Sequence[GateSpec], legacy: PrpRunResult, pooled: PrpRunResult, config: PrpConfig
) -> str:
    by_id = {g.id: g for g in gates}
    outcome = {o.gate: o for o in pooled.outcomes}
    width = max(len(g.id) for g in gates)
    lines = [
        f"PRP demo: {len(gates)} gates, profile {pooled.profile_name!r}, "
        "virtual clock (trace seconds)",
        "",
        f"  #  {'gate':<{width}}  {'kind':<9}  {'work':>6}  outcome",
    ]
    for position, gate_id in enumerate(pooled.order, start=1):
        gate, result = by_id[gate_id], outcome[gate_id]
        notes = []
        if result.reason is not None and result.reason is not FailureReason.FAILED:
            notes.append(result.reason.value)
        if result.outcome is OutcomeKind.FAILED and result.severity is Severity.ADVISORY:
            notes.append("advisory: blocks nothing")
        if result.approval is not None and result.batch is not None:
            notes.append(f"{result.approval.value}, approval batch {result.batch}")
        if result.blocked_by:
            notes.append("blocked by " + ", ".join(result.blocked_by))
        detail = result.outcome.value + (f" ({'; '.join(notes)})" if notes else "")
        lines.append(
            f"{position:>3}  {gate_id:<{width}}  {gate.kind.value:<9}  "
            f"{gate.duration_s:>4.0f} s  {detail}"
        )
    same = (
        legacy.order == pooled.order
        and legacy.event_digest == pooled.event_digest
        and legacy.evidence_digest == pooled.evidence_digest
    )
    speedup = legacy.makespan_s / pooled.makespan_s if pooled.makespan_s > 0 else float("inf")
    concurrency = f"{config.spool_concurrency}..{config.spool_max_concurrency}"
    lines += [
        "",
        textwrap.fill(
            "commit order: " + " -> ".join(pooled.order),
            width=100,
            subsequent_indent="    ",
            break_on_hyphens=False,
        ),
        "",
        f"legacy  makespan {_clock(legacy.makespan_s)}  concurrency 1, approvals one at a time",
        f"pooled  makespan {_clock(pooled.makespan_s)}  concurrency {concurrency} "
        f"(peak {pooled.concurrency_peak}), approval batches of {config.approval_batch_size}",
        f"speed-up {speedup:.2f}x; same order, events and evidence digest: "
        f"{'yes' if same else 'NO'}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; print its report; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reference_impl.prp.demo", description=__doc__)
    parser.add_argument("--gates", type=Path, default=EXAMPLE_GATES, help="a gates JSON file")
    parser.add_argument(
        "--profile", type=Path, default=EXAMPLE_PROFILE, help="an enforcement profile"
    )
    parser.add_argument("--evidence-dir", type=Path, help="keep evidence and reviews here")
    args = parser.parse_args(argv)
    try:
        config = PrpConfig.from_env()
        gates = load_gates(args.gates)
        if args.evidence_dir is not None:
            legacy, pooled = run_both(gates, args.profile, args.evidence_dir, config)
        else:
            with tempfile.TemporaryDirectory(prefix="prp-demo-") as scratch:
                legacy, pooled = run_both(gates, args.profile, Path(scratch), config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_report(gates, legacy, pooled, config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
