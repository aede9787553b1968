"""`harness interleave`: two git refs measured alternately into two bundles."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.options import ExitCode, Subparsers, add_workload_option, duration, fraction

__all__ = ["add_parser"]


def add_parser(subparsers: Subparsers) -> None:
    from harness.measure.interleave import DEFAULT_OUT, DEFAULT_ROUNDS

    interleave = subparsers.add_parser(
        "interleave",
        help="measure two git refs alternately (balanced ABBA order) into two bundles",
        description="Check out BASE_REF and CANDIDATE_REF as git worktrees, install each in\n"
        "its own virtualenv, then for each round and workload run the two sides one\n"
        "after the other in a balanced order: ABBA (round k even: base first, odd:\n"
        "candidate first) or a seeded random permutation with as many of each. One\n"
        "pyperf process per side, round and workload. Writes <out>/<run-id>-base and\n"
        "<out>/<run-id>-candidate atomically, the order used recorded in both manifests\n"
        "(round ids r<k>:<side>:... pair the sides), removes the worktrees whatever\n"
        "happens, and prints the two bundle paths. `harness compare` judges them;\n"
        "`nox -s compare -- BASE_REF CANDIDATE_REF` does both.",
        epilog="exit status: 0 both bundles written, 2 bad input (a ref that names no\n"
        "commit, an unknown workload, a malformed VAR=VALUE) or an environment that\n"
        "cannot run it (a side that does not install, a workload that fails)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name, metavar in (("base_ref", "BASE_REF"), ("candidate_ref", "CANDIDATE_REF")):
        interleave.add_argument(name, metavar=metavar, help="a branch, tag or commit id")
    interleave.add_argument(
        "--rounds",
        metavar="N",
        type=int,
        default=DEFAULT_ROUNDS,
        help="rounds (each runs every workload once per side); default: %(default)s",
    )
    add_workload_option(
        interleave,
        "run only these workloads (repeatable); default: every wall-clock workload "
        "(trace-clock ones are deterministic)",
    )
    interleave.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_OUT,
        help="where the two bundles go; default: %(default)s",
    )
    interleave.add_argument(
        "--order",
        choices=("abba", "random"),
        default="abba",
        help="ABBA across rounds, or a seeded random balanced order; default: %(default)s",
    )
    interleave.add_argument(
        "--seed", metavar="S", type=int, help="the random order's seed (default: drawn, recorded)"
    )
    interleave.add_argument(
        "--base-env",
        metavar="VAR=VALUE",
        action="append",
        default=[],
        help="set a variable for the base side only (repeatable)",
    )
    interleave.add_argument(
        "--candidate-env",
        metavar="VAR=VALUE",
        action="append",
        default=[],
        help="set a variable for the candidate side only (repeatable), e.g. "
        "AGENTBENCH_INJECT_SLOWDOWN=0.1 to plant a 10 %% slowdown",
    )
    interleave.add_argument(
        "--repo",
        metavar="DIR",
        type=Path,
        default=Path(),
        help="the git repository the refs belong to; default: the current directory",
    )
    interleave.add_argument(
        "--until-decided",
        action="store_true",
        help="after --rounds, keep adding round pairs (AB, BA) while any row's minimum "
        "detectable effect is above its threshold (`harness compare` would call it "
        "inconclusive, and its instruction twin, counted before the first round, does "
        "not decide it), up to --budget; the rule reads the noise, never the difference",
    )
    interleave.add_argument(
        "--budget",
        metavar="TIME",
        default="20m",
        help="wall-time budget of --until-decided: seconds, or with s, m or h; "
        "default: %(default)s",
    )
    interleave.add_argument(
        "--threshold",
        metavar="FRACTION",
        type=float,
        default=0.05,
        help="the change --until-decided must be able to detect ([thresholds] of the "
        "targets file per workload); default: %(default)s",
    )
    interleave.add_argument(
        "--no-instructions",
        action="store_true",
        help="skip the instruction clock (one cachegrind pass a side after the rounds)",
    )
    interleave.add_argument(
        "--no-profile",
        action="store_true",
        help="capture no hot-path profiles of the sides after the rounds",
    )
    interleave.set_defaults(handler=_interleave_command)


def _interleave_command(args: argparse.Namespace) -> int:
    from harness.measure.interleave import (
        InterleaveOptions,
        OrderMethod,
        interleave,
        parse_assignments,
    )
    from harness.measure.sides import no_profiles

    result = interleave(
        InterleaveOptions(
            base_ref=args.base_ref,
            candidate_ref=args.candidate_ref,
            rounds=args.rounds,
            workloads=tuple(args.workloads),
            out_dir=args.out,
            method=OrderMethod.RANDOM if args.order == "random" else OrderMethod.ABBA,
            seed=args.seed,
            base_env=parse_assignments(args.base_env, "--base-env"),
            candidate_env=parse_assignments(args.candidate_env, "--candidate-env"),
            repo=args.repo,
            until_decided=args.until_decided,
            budget_s=duration(args.budget, "--budget"),
            threshold=fraction(args.threshold, "--threshold"),
            instructions=not args.no_instructions,
        ),
        profiler=no_profiles if args.no_profile else None,
    )
    print(f"base: {result.base_bundle}")
    print(f"candidate: {result.candidate_bundle}")
    return ExitCode.OK
