"""The PRP driver: run a prp trace's gates through the PRP runner.

``setting.concurrency`` is the spool's base concurrency (its maximum is at least
4, the runtime's default); legacy mode runs one gate at a time whatever it is.
The runner's evidence and review files go to a temporary directory, with the
bundled enforcement profile ``reference_impl/prp/examples/initial.md``.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterable
from pathlib import Path

from reference_impl.prp.config import PrpConfig
from reference_impl.prp.gates import GateKind, GateSpec
from reference_impl.prp.runner import PrpRunner
from reference_impl.telemetry import Telemetry, prp_source
from workloads.driving import PoolFactory, Recorder, Setting, TraceOutcome
from workloads.errors import TraceKindError
from workloads.trace import GateRecord, InputRecord

__all__ = ["PROFILE", "gate_specs", "run_prp"]

PROFILE = (
    Path(__file__).resolve().parent.parent / "reference_impl" / "prp" / "examples" / "initial.md"
)


def gate_specs(records: Iterable[InputRecord], scale: float = 1.0) -> list[GateSpec]:
    """The gates of a prp trace as runner specs (durations times ``scale``)."""
    gates: list[GateSpec] = []
    for record in records:
        if not isinstance(record, GateRecord):
            raise TraceKindError(f"a prp trace holds gate records, not {type(record).__name__}")
        human = record.kind == "human"
        gates.append(
            GateSpec(
                record.id,
                GateKind.HUMAN if human else GateKind.AUTOMATED,
                tuple(record.deps),
                record.duration_s * scale,
                record.fails,
                record.approval_wait_s * scale if human else 0.0,
            )
        )
    return gates


async def run_prp(
    records: Iterable[InputRecord],
    setting: Setting,
    *,
    capture_index: int | None = None,
    pool_factory: PoolFactory | None = None,
    telemetry: Telemetry | None = None,
) -> TraceOutcome:
    """Run the gates once; events are the runner's lifecycle events, in sequence order."""
    del pool_factory  # the PRP runner owns its spool
    gates = gate_specs(records, setting.time_scale)
    config = PrpConfig(
        spool_concurrency=setting.concurrency,
        spool_max_concurrency=max(4, setting.concurrency),
    )
    recorder = Recorder(capture_index)
    with tempfile.TemporaryDirectory(prefix="agentbench-prp-") as tmp:
        runner = PrpRunner(
            setting.mode,
            config,
            profile_path=PROFILE,
            evidence_dir=Path(tmp),
            timing_jitter_s=setting.jitter * 60.0,
            seed=setting.seed,
        )
        source = prp_source(runner)
        if telemetry is not None:
            telemetry.add_source(source)
        try:
            result = await runner.run(gates)
        finally:
            if telemetry is not None:
                telemetry.collect()
                telemetry.remove_source(source)
    for event in result.events:
        recorder.commit(event.as_json())
    if telemetry is not None:
        attrs = {"mode": setting.mode.value}
        telemetry.record_samples(
            "prp.gate.duration", [d for _, d in result.gate_durations_s], attrs
        )
        telemetry.record_samples(
            "prp.approval.wait", [w.wait_s for w in result.approval_waits], attrs
        )
        telemetry.record_samples("prp.run.duration", [result.makespan_s], attrs)
    counts = {
        "gates": len(result.order),
        "committed": len(result.committed),
        "failed": len(result.failed),
        "skipped": len(result.skipped),
    }
    return recorder.outcome(
        result.event_digest,
        result.evidence_digest,
        counts,
        result.makespan_s,
        array("d", [w.wait_s for w in result.approval_waits]),
        {"gates_per_hour": result.gates_per_hour},
    )
