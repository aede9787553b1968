"""Shared helpers of the PRP tests: profiles, runners, an independent outcome model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reference_impl import virtual_time
from reference_impl.mode import Mode
from reference_impl.prp import GateKind, GateSpec, PrpConfig, PrpRunner, PrpRunResult

PROFILE = """\
# Enforcement profile: test

## Rules

- `adv-*`: advisory
- `*3`: advisory
- `*`: required

## Thresholds

- gate_timeout_s: 100000
"""


def write_profile(directory: Path, text: str = PROFILE) -> Path:
    """A profile file in ``directory``."""
    path = directory / "profile.md"
    path.write_text(text, encoding="utf-8")
    return path


def run_prp(
    mode: Mode,
    gates: Sequence[GateSpec],
    directory: Path,
    config: PrpConfig | None = None,
    **kwargs: object,
) -> PrpRunResult:
    """One run on the virtual clock, evidence in ``directory/<mode>``."""
    profile = directory / "profile.md"
    if not profile.exists():
        write_profile(directory)
    runner = PrpRunner(
        mode,
        PrpConfig() if config is None else config,
        profile_path=profile,
        evidence_dir=directory / mode.value,
        **kwargs,  # type: ignore[arg-type]  # keyword pass-through of a test helper
    )
    return virtual_time.run(runner.run(gates))


def expected_outcomes(gates: Sequence[GateSpec], advisory: set[str]) -> dict[str, str]:
    """What each gate's outcome must be, computed from the specs alone (no spool)."""
    by_id = {g.id: g for g in gates}
    outcome: dict[str, str] = {}

    def blocked(dep: str) -> bool:
        result = settle(dep)
        return result == "skipped" or (result == "failed" and dep not in advisory)

    def settle(gate_id: str) -> str:
        if gate_id not in outcome:
            gate = by_id[gate_id]
            timed_out = gate.timeout_s is not None and gate.timeout_s < gate.duration_s
            rejected = gate.kind is GateKind.HUMAN and not gate.approved
            if any(blocked(d) for d in gate.deps):
                outcome[gate_id] = "skipped"
            elif gate.fails or timed_out or rejected:
                outcome[gate_id] = "failed"
            else:
                outcome[gate_id] = "committed"
        return outcome[gate_id]

    for gate in gates:
        settle(gate.id)
    return outcome
