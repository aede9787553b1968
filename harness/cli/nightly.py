"""The nightly pipeline: tonight's run, a comparison on tonight's machine, the report.

A nightly needs only the history store between nights (``reports/history.sqlite``):
no bundle directory, no earlier runner. Its steps, each run whatever the previous
one concluded (the exit status is the worst of them, 2 over 1 over 0):

1. ``harness run`` (rigorous by default, with its determinism replay), appended to
   the store.
2. The baseline, one of three paths, said in the first lines of the output:

   * **stored**: the last good night ran on this machine's fingerprint and its
     numbers are readable (its bundle directory, or the store's own copy of its
     per-round values): ``harness compare --last-good``;
   * **re-measured**: the last good night ran on another machine (a hosted runner
     is another machine every night) or its numbers are gone: its commit is
     measured again beside tonight's commit, interleaved on tonight's machine
     (``harness interleave``), and that pair is judged (``harness compare``);
   * **none**: no good night is stored yet (the first night), or git cannot check
     out its commit: no comparison, saying why.

3. Change points over the stored nights of this branch, machine and profile
   (:mod:`harness.judge.nights`): a step tonight opens beyond the threshold in the bad
   direction is a regression (status 1) even when the pairwise comparison was
   inconclusive; a single outlier night never is; too few nights yet is one line.
4. ``harness report`` with the comparison.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.bundle.files import Manifest, load_bundle
from harness.cli.options import EPILOG, Subparsers, add_workload_option
from harness.errors import HarnessError
from harness.store.db import HISTORY_FILE, HistoryStore
from harness.store.location import Location, history_location

__all__ = ["Baseline", "add_parser", "choose_baseline", "latest_bundle", "nightly"]

Main = Callable[[Sequence[str]], int]
BASELINE_DIR = "baseline"


def latest_bundle(reports: Path) -> Path | None:
    """The newest bundle directory in ``reports`` (run ids sort by start time)."""
    bundles = sorted(p.parent for p in reports.glob("2*/manifest.json"))
    return bundles[-1] if bundles else None


@dataclass(frozen=True, slots=True)
class Baseline:
    """How tonight is compared: ``path`` is stored, remeasure or none; ``why`` says why."""

    path: str
    why: str
    run_id: str = ""
    sha: str = ""


def choose_baseline(history: Location, manifest: Manifest) -> Baseline:
    """The baseline path for tonight's run, of ``manifest`` (see the module's steps)."""
    # Imported here, as every command imports its stage: importing the CLI must not
    # import scipy (numpy.f2py, which it imports, reads $SOURCE_DATE_EPOCH).
    from harness.judge.compare import last_good_bundle

    fingerprint = manifest.environment.fingerprint_digest
    store = HistoryStore(history)
    if not store.exists():
        return Baseline("none", f"no history store at {store.where} (the first night)")
    good = store.last_good_run(exclude=manifest.run_id)
    if good is None:
        return Baseline("none", "no stored night passed every target yet (the first night)")
    label = f"last good night {good.run_id} (commit {good.git_sha[:12] or 'unknown'})"
    if good.fingerprint == fingerprint:
        try:
            last_good_bundle(history, exclude=manifest.run_id, fingerprint=fingerprint)
        except HarnessError as exc:
            why = f"{label} ran on this machine, but its numbers are gone ({exc})"
        else:
            return Baseline("stored", f"{label} ran on this machine", good.run_id, good.git_sha)
    else:
        why = (
            f"{label} ran on another machine (fingerprint {good.fingerprint[:12]}, "
            f"tonight {fingerprint[:12]})"
        )
    if not good.git_sha:
        return Baseline("none", f"{why}, and its commit is not recorded: cannot re-measure it")
    return Baseline("remeasure", why, good.run_id, good.git_sha)


def nightly(
    main: Main,
    *,
    profile: str = "rigorous",
    reports: Path = Path("reports"),
    workloads: Sequence[str] = (),
    rounds: int | None = None,
    log: TextIO | None = None,
) -> int:
    """Run the steps through the CLI's ``main``; the worst exit status."""
    log = sys.stderr if log is None else log
    selected = [arg for name in workloads for arg in ("--workload", name)]
    statuses = [main(["run", "--profile", profile, "--out", str(reports), *selected])]
    candidate = latest_bundle(reports)
    if candidate is None:
        print("nightly: no bundle was written; nothing to compare or report", file=log)
        return max(statuses)
    # <reports>/history.sqlite, or the store $AGENTBENCH_DB names (a team's server):
    # the run appended tonight there; the baseline, change points and trends read it.
    history = history_location(reports / HISTORY_FILE)
    tonight = load_bundle(candidate).manifest
    baseline = choose_baseline(history, tonight)
    comparison = reports / "compare.json"
    comparison.unlink(missing_ok=True)
    outputs = ["--markdown", str(reports / "compare.md"), "--json", str(comparison)]
    if baseline.path == "stored":
        print(f"nightly: baseline: the stored night: {baseline.why}", file=log)
        statuses.append(
            main(["compare", "--last-good", str(candidate), "--db", str(history), *outputs])
        )
    elif baseline.path == "remeasure":
        print(
            f"nightly: baseline: re-measured on this machine: {baseline.why}; measuring "
            f"commit {baseline.sha[:12]} beside tonight's, interleaved",
            file=log,
        )
        statuses.append(_remeasure(main, baseline, tonight, reports, selected, rounds, outputs))
    else:
        print(f"nightly: no comparison tonight: {baseline.why}", file=log)
    statuses.append(_change_points(history, tonight, log))
    base = ["--base", str(comparison)] if comparison.exists() else []
    statuses.append(main(["report", str(candidate), "--history", str(history), *base]))
    return max(statuses)


def _change_points(history: Location, manifest: Manifest, log: TextIO) -> int:
    """1 when tonight opens a change point beyond the threshold in the bad direction.

    Even where the pairwise comparison was inconclusive: a step over the nights is
    a regression, a single outlier night never is.
    """
    from harness.judge.nights import night_changes
    from harness.judge.targets import load_thresholds

    store = HistoryStore(history)
    if not store.exists():
        return 0
    environment = manifest.environment
    found = night_changes(
        store,
        branch=environment.git.branch or "",
        fingerprint=environment.fingerprint_digest,
        profile=manifest.profile.name,
        thresholds=load_thresholds(),
    )
    opened = found.tonight_regressions
    print(
        f"nightly: change points over {found.nights} night(s): {len(found.changes)} found, "
        f"{len(opened)} regression(s) opened tonight",
        file=log,
    )
    for change in opened:
        print(f"nightly: change point: {change.describe()}", file=log)
    for note in found.notes:
        print(f"nightly: change points: {note}", file=log)
    return 1 if opened else 0


def _remeasure(
    main: Main,
    baseline: Baseline,
    tonight: Manifest,
    reports: Path,
    selected: Sequence[str],
    rounds: int | None,
    outputs: Sequence[str],
) -> int:
    """Interleave the last good commit with tonight's, then judge that pair."""
    sha = tonight.environment.git.sha or "HEAD"
    out = reports / BASELINE_DIR / tonight.run_id
    argv = ["interleave", baseline.sha, sha, "--out", str(out), *selected]
    if rounds is not None:
        argv += ["--rounds", str(rounds)]
    status = main(argv)
    bundles = {
        path.parent.name.rsplit("-", 1)[-1]: path.parent for path in out.glob("2*/manifest.json")
    }
    if status != 0 or not {"base", "candidate"} <= set(bundles):
        return max(status, 2)
    pair = [str(bundles["base"]), str(bundles["candidate"])]
    history = history_location(reports / HISTORY_FILE)
    return main(["compare", *pair, "--db", str(history), *outputs])


def add_parser(subparsers: Subparsers) -> None:
    nightly = subparsers.add_parser(
        "nightly",
        help="tonight's run, compared on this machine with the last good night, and the report",
        description="The nightly pipeline. It needs only reports/history.sqlite between\n"
        "nights (or the server $AGENTBENCH_DB names, which every step then reads).\n"
        "1. `harness run --profile rigorous` (with its determinism replay).\n"
        "2. The baseline, said in the first lines: the last good night itself when it\n"
        "ran on this machine's fingerprint (`harness compare --last-good`); otherwise\n"
        "its commit re-measured beside tonight's, interleaved on this machine\n"
        "(`harness interleave`, then `harness compare`); none on the first night.\n"
        "3. `harness report` with the comparison. Every step runs; the exit status\n"
        "is the worst of them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nightly.add_argument(
        "--profile",
        choices=("fast", "default", "rigorous"),
        default="rigorous",
        help="the run's profile; default: %(default)s",
    )
    nightly.add_argument(
        "--reports",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="bundles, history.sqlite, compare.md/json and the report; default: %(default)s",
    )
    add_workload_option(nightly, "run (and re-measure) only these workloads; default: all")
    nightly.add_argument(
        "--rounds",
        metavar="N",
        type=int,
        default=None,
        help="rounds of a re-measured baseline; default: harness interleave's",
    )
    nightly.set_defaults(handler=_nightly_command)


def _nightly_command(args: argparse.Namespace) -> int:
    from harness.cli import main

    return nightly(
        main,
        profile=args.profile,
        reports=args.reports,
        workloads=args.workloads,
        rounds=args.rounds,
    )
