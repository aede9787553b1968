"""`harness history`: the stored runs, one target over time; `harness history import`."""

from __future__ import annotations

import argparse

from harness.cli.options import ExitCode, Subparsers, add_db_option
from harness.errors import HarnessError
from harness.store.db import HistoryStore

__all__ = ["add_parser"]

IMPORT = "import"


def add_parser(subparsers: Subparsers) -> None:
    history = subparsers.add_parser(
        "history",
        help="list the stored runs, or one target's values over time; import a store",
        description="Read the history store (reports/history.sqlite, written by `harness "
        "run`, or the PostgreSQL server of --db/$AGENTBENCH_DB): every run, oldest first, "
        "or with --target the values of one target over time; --check checks the store's "
        "integrity. Reading never writes the store (a read-only directory is fine). "
        "`harness history import --from SOURCE` copies every run and calibration of "
        "SOURCE (a file or a URL) that --db lacks, each run whole in its own "
        "transaction; running it again changes nothing.",
    )
    history.add_argument(
        "action",
        nargs="?",
        choices=(IMPORT,),
        help="import: copy the runs of --from into --db (a team's files into its server)",
    )
    history.add_argument(
        "--from",
        dest="source",
        metavar="FILE|URL",
        help="with import: the store to copy from (only read; never created or migrated)",
    )
    add_db_option(history, "the history store (with import: the one copied into)")
    history.add_argument("--target", metavar="NAME", help="show this target's values over time")
    history.add_argument("--limit", metavar="N", type=int, help="only the N most recent runs")
    history.add_argument(
        "--check",
        action="store_true",
        help="check the store's integrity (SQLite integrity_check; on PostgreSQL, one "
        "schema version and every run's manifest): print ok, or the problem and exit 2",
    )
    history.add_argument(
        "--changes",
        action="store_true",
        help="the change points over the nights of the newest run's branch, machine and "
        "profile: per target (or only --target) and metric, the step, its interval, the "
        "commit range and whether it is beyond the threshold; exit 0 (a report, not a verdict)",
    )
    history.set_defaults(handler=_history_command)


def _history_command(args: argparse.Namespace) -> int:
    from harness.store import queries as history
    from harness.store.db import StoreError

    if args.action == IMPORT:
        return _import(args)
    if args.source is not None:
        raise HarnessError(
            "--from without import", where="--from", expected="harness history import --from X"
        )
    store = HistoryStore(args.db)
    if args.check:
        problems = store.integrity_check()
        if problems != "ok":
            raise StoreError(
                f"history store fails its integrity check: {problems}",
                where=store.where,
                expected="a sound store (restore a copy, or move this one aside)",
            )
        print("ok")
        return ExitCode.OK
    if args.changes:
        return _changes(store, args.target)
    if args.target:
        frame = history.target_history(store, args.target, limit=args.limit)
    else:
        frame = history.runs(store, limit=args.limit)
    print(history.render(frame))
    return ExitCode.OK


def _import(args: argparse.Namespace) -> int:
    """Copy the runs and calibrations of ``--from`` into ``--db``; one line says how many."""
    from harness.store.transfer import copy_history

    given = [f for f, name in _READ_FLAGS.items() if getattr(args, name) not in (None, False)]
    if given:
        raise HarnessError(
            f"{', '.join(given)} with import",
            where="harness history import",
            expected="only --from and --db",
        )
    if args.source is None:
        raise HarnessError(
            "import without --from", where="harness history import", expected="--from FILE|URL"
        )
    source, destination = HistoryStore(args.source), HistoryStore(args.db)
    result = copy_history(source, destination)
    print(f"{source.where} -> {destination.where}: {result.describe()}")
    return ExitCode.OK


_READ_FLAGS = {"--target": "target", "--limit": "limit", "--check": "check", "--changes": "changes"}


def _changes(store: HistoryStore, target: str | None) -> int:
    from harness.judge.nights import night_changes
    from harness.judge.targets import load_thresholds
    from harness.store.queries import latest_identity

    identity = latest_identity(store)
    if identity is None:
        print("no runs stored yet: no change points")
        return ExitCode.OK
    branch, fingerprint, profile = identity
    found = night_changes(
        store,
        branch=branch,
        fingerprint=fingerprint,
        profile=profile,
        thresholds=load_thresholds(),
        target=target,
    )
    print(
        f"change points over {found.nights} night(s) of branch {branch or '?'}, machine "
        f"{fingerprint[:12]}, profile {profile}: {len(found.changes)} found"
    )
    for change in found.changes:
        print(f"  {change.describe()}")
    for note in found.notes:
        print(f"  note: {note}")
    return ExitCode.OK
