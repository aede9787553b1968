"""`harness calibrate`: this machine's noise, an A/A run of the checkout."""

from __future__ import annotations

import argparse

from harness.cli.options import ExitCode, Subparsers, add_db_option, add_workload_option, fraction

__all__ = ["add_parser"]


def add_parser(subparsers: Subparsers) -> None:
    from harness.measure.calibrate import DEFAULT_PROFILE, DEFAULT_ROUNDS, PROFILES

    calibrate = subparsers.add_parser(
        "calibrate",
        help="measure this machine's noise: an A/A run of the checkout against itself",
        description="Run every workload (or --workload ones) twice per round, back to back,\n"
        "the same code on both sides, in a balanced order (AB, BA, AB, ...), one\n"
        "process each; compare the sides as `harness compare` does and print, per\n"
        "workload, metric and statistic, the round-to-round noise, the minimum\n"
        "detectable effect for that many rounds and the rounds needed to detect the\n"
        "threshold. Stored in the history store with the machine fingerprint:\n"
        "`harness compare` then uses it for bundles of this machine and profile\n"
        "when it has at least as many rounds (`nox -s calibrate` calibrates in an\n"
        "environment like the sides of `nox -s compare`, so their fingerprints match).",
        epilog="exit status: 0 calibrated (and stored), 2 bad input or a workload that\n"
        "fails (the calibration is then not stored)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    calibrate.add_argument(
        "--rounds",
        metavar="N",
        type=int,
        default=DEFAULT_ROUNDS,
        help="rounds (each runs every workload once per side); default: %(default)s",
    )
    calibrate.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=DEFAULT_PROFILE,
        help="pyperf values and warmups per process (one process a side); default: "
        "%(default)s, an interleaved comparison's own round (1 value, 1 warmup): "
        "`harness compare` uses a calibration only of its bundles' profile",
    )
    add_workload_option(calibrate, "calibrate only these workloads (repeatable); default: all")
    add_db_option(calibrate, "the history store to keep the calibration in")
    calibrate.add_argument(
        "--threshold",
        metavar="FRACTION",
        type=float,
        default=0.05,
        help="the change whose needed rounds are shown; default: %(default)s",
    )
    calibrate.add_argument(
        "--fdr",
        metavar="Q",
        type=float,
        default=0.05,
        help="false-discovery rate the MDE is computed at (per test: Q/tests); "
        "default: %(default)s",
    )
    calibrate.add_argument(
        "--no-store", action="store_true", help="print the calibration, do not store it"
    )
    calibrate.set_defaults(handler=_calibrate_command)


def _calibrate_command(args: argparse.Namespace) -> int:
    from harness.judge.targets import load_thresholds
    from harness.measure.calibrate import CalibrateOptions, calibrate, format_calibration

    result = calibrate(
        CalibrateOptions(
            rounds=args.rounds,
            profile=args.profile,
            workloads=tuple(args.workloads),
            db=args.db,
            fdr_q=fraction(args.fdr, "--fdr"),
            threshold=fraction(args.threshold, "--threshold"),
            thresholds=load_thresholds(),
            store=not args.no_store,
        )
    )
    print(format_calibration(result))
    return ExitCode.OK
