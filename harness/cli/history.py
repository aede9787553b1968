"""`harness history`: the stored runs, one target over time."""

from __future__ import annotations

import argparse

from harness.cli.options import ExitCode, Subparsers, add_db_option
from harness.store.db import HistoryStore

__all__ = ["add_parser"]


def add_parser(subparsers: Subparsers) -> None:
    history = subparsers.add_parser(
        "history",
        help="list the stored runs, or one target's values over time",
        description="Read reports/history.sqlite (written by `harness run`): every run, "
        "oldest first, or with --target the values of one target over time; --check "
        "checks the store's integrity. Reading never writes the store (a read-only "
        "directory is fine).",
    )
    add_db_option(history, "the history store")
    history.add_argument("--target", metavar="NAME", help="show this target's values over time")
    history.add_argument("--limit", metavar="N", type=int, help="only the N most recent runs")
    history.add_argument(
        "--check",
        action="store_true",
        help="check the store's integrity (SQLite integrity_check): print ok, or the "
        "problem and exit 2",
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

    store = HistoryStore(args.db)
    if args.check:
        problems = store.integrity_check()
        if problems != "ok":
            raise StoreError(
                f"history store fails its integrity check: {problems}",
                where=str(args.db),
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
