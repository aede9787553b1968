"""Scenarios: seeded, realistic inputs for traces, and ``record`` that writes a trace.

Every scenario draws from explicit distributions with ``random.Random(seed)``:
tool latencies lognormal in milliseconds, gate durations lognormal in minutes
with dependencies on earlier gates, approvals mostly automatic with some human
waits of seconds, a few failures. Durations are rounded to the microsecond so
that a trace's text is the same on every machine. The same scenario and seed
give the same file, byte for byte (``created`` comes from ``SOURCE_DATE_EPOCH``,
the reproducible-builds convention, defaulting to the epoch).
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import random
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from reference_impl import virtual_time
from workloads.drivers import CANONICAL, run_trace_records
from workloads.errors import WorkloadsError
from workloads.trace import (
    FORMAT_NAME,
    SCHEMA_VERSION,
    Footer,
    GateRecord,
    Header,
    HookConfigRecord,
    HookRecord,
    InputRecord,
    TaskRecord,
    ToolCallRecord,
    TraceWriter,
)

__all__ = [
    "SCENARIOS",
    "SOURCE_DATE_EPOCH_ENV",
    "Scenario",
    "record",
    "render",
    "source_date_epoch",
    "write_trace",
]

PRODUCER = "agentbench harness record 0.1.0"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named input generator of one trace kind."""

    name: str
    kind: str
    description: str
    generate: Callable[[random.Random], Iterator[InputRecord]]


def _lognormal_s(rng: random.Random, median_s: float, sigma: float) -> float:
    return round(rng.lognormvariate(_ln(median_s), sigma), 6)


def _ln(x: float) -> float:
    import math

    return math.log(x)


def _kernel(count: int) -> Callable[[random.Random], Iterator[InputRecord]]:
    def generate(rng: random.Random) -> Iterator[InputRecord]:
        for i in range(count):
            # Priorities: most tasks normal (2), some urgent (0-1), some background (3-4).
            priority = rng.choices((0, 1, 2, 3, 4), weights=(5, 15, 60, 15, 5))[0]
            yield TaskRecord(
                id=f"task-{i:06d}",
                priority=priority,
                # Tool-like work: lognormal, median 40 ms, a long right tail.
                duration_s=_lognormal_s(rng, 0.040, 0.6),
                payload=f"step:{rng.randrange(1_000_000):06d}",
            )

    return generate


_TOOLS = ("read_file", "search_code", "run_tests", "http_get", "write_patch")


def _mcp(runs: int, calls_per_run: int) -> Callable[[random.Random], Iterator[InputRecord]]:
    def generate(rng: random.Random) -> Iterator[InputRecord]:
        yield HookConfigRecord(
            hooks=[
                HookRecord("authz", "pre", build_cost=400, duration_s=0.002, independent=True),
                HookRecord(
                    "secret-scan",
                    "pre",
                    build_cost=800,
                    duration_s=0.004,
                    independent=True,
                    deny_if=r"(?i)secret|password|\.env",
                ),
                HookRecord("rate-limit", "pre", build_cost=200, duration_s=0.001, independent=True),
                HookRecord(
                    "write-guard",
                    "pre",
                    build_cost=300,
                    duration_s=0.002,
                    deny_if=r"^write_patch .*\"path\":\"/",
                ),
                HookRecord("audit-log", "post", build_cost=300, duration_s=0.003, independent=True),
                HookRecord(
                    "redact",
                    "post",
                    build_cost=500,
                    duration_s=0.002,
                    independent=True,
                    deny_if=r"-> \"0000",
                ),
            ],
            tools=list(_TOOLS),
        )
        paths = ("src/app.py", "src/db.py", "tests/test_app.py", "README.md", "config/.env")
        for run in range(runs):
            for _ in range(calls_per_run):
                roll = rng.random()
                tool = rng.choice(_TOOLS) if roll > 0.02 else "shell_exec"  # unknown: denied
                path = rng.choice(paths)
                if tool == "write_patch" and rng.random() < 0.1:
                    path = "/etc/passwd"  # an absolute path: the write guard denies it
                yield ToolCallRecord(
                    run_id=f"run-{run:04d}",
                    tool=tool,
                    args={"path": path, "query": f"q{rng.randrange(1000)}"},
                    duration_s=_lognormal_s(rng, 0.030, 0.7),
                    fails=rng.random() < 0.02,
                )

    return generate


_GATE_FAMILIES = (
    ("lint", "automated", 1.5),
    ("typecheck", "automated", 3.0),
    ("unit", "automated", 4.0),
    ("integration", "automated", 8.0),
    ("security", "automated", 5.0),
    ("docs", "automated", 1.0),
    ("review", "human", 2.0),
    ("perf", "automated", 6.0),
)


def _prp(count: int) -> Callable[[random.Random], Iterator[InputRecord]]:
    def generate(rng: random.Random) -> Iterator[InputRecord]:
        ids: list[str] = []
        failing = rng.randrange(count // 2, count - 4)  # one failing gate, late in the run
        for i in range(count):
            family, kind, median_min = _GATE_FAMILIES[i % len(_GATE_FAMILIES)]
            gate_id = f"g{i:03d}-{family}"
            deps: list[str] = []
            if ids:
                # Depend on 0-2 of the last dozen gates: a DAG with real parallelism.
                window = ids[-12:]
                deps = sorted(rng.sample(window, k=min(len(window), rng.choice((0, 1, 1, 2)))))
            fails = i == failing
            yield GateRecord(
                id=gate_id,
                kind=kind,  # type: ignore[arg-type]  # one of the two literals above
                deps=deps,
                # Gate work: lognormal around the family's median (seconds to a minute).
                duration_s=_lognormal_s(rng, median_min * 5.0, 0.5),
                approval_wait_s=_lognormal_s(rng, 8.0, 0.6) if kind == "human" else 0.0,
                fails=fails,
            )
            ids.append(gate_id)

    return generate


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("kernel-small", "kernel", "200 kernel tasks, lognormal 40 ms", _kernel(200)),
        Scenario("kernel-large", "kernel", "20,000 kernel tasks, lognormal 40 ms", _kernel(20_000)),
        Scenario("mcp-tools", "mcp", "40 runs x 12 tool calls with 6 hooks, denials", _mcp(40, 12)),
        Scenario("prp-nightly", "prp", "48 gates with dependencies and approvals", _prp(48)),
    )
}


SOURCE_DATE_EPOCH_ENV = "SOURCE_DATE_EPOCH"
# The last second of year 9999: beyond it no date can be written as YYYY-mm-dd.
_MAX_EPOCH = 253_402_300_799


def source_date_epoch() -> int:
    """``$SOURCE_DATE_EPOCH`` (0 when unset or empty), checked.

    :class:`~workloads.errors.WorkloadsError` naming the variable for anything but
    a whole number of seconds since 1970-01-01 UTC up to year 9999 (the
    reproducible-builds convention: decimal digits only).
    """
    text = os.environ.get(SOURCE_DATE_EPOCH_ENV, "").strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_EPOCH:
        raise WorkloadsError(
            f"{SOURCE_DATE_EPOCH_ENV}={text[:40]!r}: expected a whole number of seconds "
            "since 1970-01-01 UTC (e.g. `git log -1 --format=%ct`)"
        )
    return int(text)


def _created() -> str:
    epoch = source_date_epoch()
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(scenario_name: str, seed: int, out: Path) -> Footer:
    """Generate ``scenario_name`` with ``seed``, run it canonically, write the trace atomically.

    ``out`` ending in ``.gz`` is gzip-compressed (with a fixed mtime, so the bytes
    are reproducible too). Raises ``KeyError`` for an unknown scenario.
    """
    data, footer = render(scenario_name, seed)
    write_trace(data, out)
    return footer


def render(scenario_name: str, seed: int) -> tuple[bytes, Footer]:
    """The trace of ``scenario_name`` with ``seed`` (uncompressed JSON lines), and its footer.

    Raises ``KeyError`` for an unknown scenario, :class:`~workloads.errors.WorkloadsError`
    for a bad ``$SOURCE_DATE_EPOCH``.
    """
    scenario = SCENARIOS[scenario_name]
    header = Header(
        format=FORMAT_NAME,
        schema=SCHEMA_VERSION,
        scenario=scenario.name,
        kind=scenario.kind,  # type: ignore[arg-type]  # scenarios use the three kinds
        seed=seed,
        time_unit="s",
        producer=PRODUCER,
        created=_created(),
        description=scenario.description,
    )
    buffer = io.BytesIO()
    writer = TraceWriter(buffer, header)
    writer.write(scenario.generate(random.Random(seed)))
    driver = run_trace_records(scenario.kind)
    outcome = virtual_time.run(driver(scenario.generate(random.Random(seed)), CANONICAL))
    footer = Footer(
        inputs_digest=writer.inputs_digest,
        committed_digest=outcome.committed_digest,
        events_digest=outcome.events_digest,
        evidence_digest=outcome.evidence_digest,
        counts=dict(outcome.counts),
    )
    writer.finish(footer)
    return buffer.getvalue(), footer


def write_trace(data: bytes, out: Path) -> None:
    """Write the trace ``data`` (from :func:`render`) to ``out`` atomically (gzip for ``.gz``).

    A temporary file in ``out``'s directory is renamed over ``out``: a reader sees
    the old file or the new one, never half of one. The rename replaces whatever is
    at ``out``: ``harness record`` refuses anything but a regular file first. The
    file gets the permissions of the one it replaces, or the umask's.
    """
    if out.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(out).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0o022)  # read by setting it: restored at once
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m workloads.scenarios SCENARIO SEED``: the trace's bytes on stdout.

    ``harness record`` runs this in a child process under another hash seed and
    compares the bytes with its own: a recording must not depend on the seed.
    Exit 0; 2 with one line on stderr for an unknown scenario or a bad seed or
    ``$SOURCE_DATE_EPOCH``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) != 2 or args[0] not in SCENARIOS:
            raise WorkloadsError(
                f"usage: python -m workloads.scenarios SCENARIO SEED (SCENARIO one of "
                f"{', '.join(SCENARIOS)}), not {' '.join(args)!r}"
            )
        try:
            seed = int(args[1])
        except ValueError:
            raise WorkloadsError(f"seed {args[1]!r}: expected an integer") from None
        data, _ = render(args[0], seed)
    except WorkloadsError as exc:
        print(f"workloads.scenarios: error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
