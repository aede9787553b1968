"""`harness run`: measure the workloads, check the targets, write a bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.options import EPILOG, Subparsers, add_workload_option

__all__ = ["add_parser"]


def add_parser(subparsers: Subparsers) -> None:
    from harness.measure.profiles import HotPath

    run = subparsers.add_parser(
        "run",
        help="run the workloads, check the targets, write a run bundle",
        description="Run the workloads under pyperf, replay the shipped traces for the\n"
        "determinism verdict, evaluate workloads/targets.toml, write a run bundle\n"
        "<out>/<run-id>/ atomically and append it to <out>/history.sqlite (or to the\n"
        "store $AGENTBENCH_DB names: a file or a postgresql:// URL).\n"
        "Progress goes to stderr; the target table and the bundle's path to stdout.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--profile",
        choices=("fast", "default", "rigorous"),
        default="default",
        help="how hard pyperf works (processes, values, warmups); default: %(default)s",
    )
    add_workload_option(run, "run only these workloads (repeatable); default: all")
    run.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("reports"),
        help="where the bundle and history.sqlite go; default: %(default)s",
    )
    run.add_argument(
        "--targets",
        metavar="FILE",
        type=Path,
        default=None,
        help="the targets file; default: workloads/targets.toml",
    )
    run.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=None,
        help="OTLP/HTTP endpoint for the run's OpenTelemetry metrics (recorded in the "
        "manifest and handed to the replay step's metrics collection)",
    )
    run.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default=None,
        help="the event loop of the wall-clock workloads, recorded in the manifest and "
        "the machine fingerprint (runs on different loops are not compared as the same "
        "machine); uvloop needs `pip install 'agentbench[uvloop]'`, its workloads are "
        "SKIPPED with that line without it; default: $AGENTBENCH_LOOP, else asyncio",
    )
    run.add_argument(
        "--no-replay", action="store_true", help="skip the determinism replay of the traces"
    )
    run.add_argument(
        "--no-history", action="store_true", help="do not append the run to the history store"
    )
    run.add_argument(
        "--profile-paths",
        metavar="NAME",
        nargs="+",
        choices=[path.value for path in HotPath],
        default=[path.value for path in HotPath],
        help="the hot paths to profile with pyinstrument into the bundle (%(choices)s); "
        "default: all",
    )
    run.add_argument(
        "--no-profile", action="store_true", help="capture no profiles of the hot paths"
    )
    run.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace) -> int:
    from harness.judge.targets import DEFAULT_TARGETS_PATH
    from harness.measure.run import (
        RunOptions,
        format_figures,
        format_table,
        run,
    )

    result = run(
        RunOptions(
            profile=args.profile,
            workloads=tuple(args.workloads),
            out_dir=args.out,
            targets_path=args.targets or DEFAULT_TARGETS_PATH,
            otlp_endpoint=args.otlp_endpoint,
            replay=not args.no_replay,
            history=not args.no_history,
            profile_paths=() if args.no_profile else tuple(args.profile_paths),
            loop=args.loop,
        )
    )
    print(format_table(result.manifest.verdicts, result.manifest.determinism))
    print()
    print(format_figures(result.samples))
    print(f"bundle: {result.bundle_path}")
    return result.exit_status
