"""Queries of the history store: the runs so far, and one target's values over time.

Read-only: nothing here writes the store (see :mod:`harness.store.db`). Results are
pandas DataFrames, oldest run first; :func:`render` turns one into the text
``harness history`` prints. Each query is written once and answers alike on a
SQLite file and on a PostgreSQL server (:mod:`harness.store.dialect`).
"""

from __future__ import annotations

import pandas as pd

from harness.errors import TargetsError
from harness.store.db import HistoryStore
from harness.store.schema import VALUES_SINCE

__all__ = [
    "latest_identity",
    "night_series",
    "render",
    "runs",
    "target_directions",
    "target_history",
    "trend_series",
]

_RUN_COLUMNS = (
    "run_id", "started_utc", "profile", "sha", "branch", "dirty", "determinism", "passed",
    "targets", "values",
)  # fmt: skip


def _limit(limit: int | None) -> tuple[str, tuple[int, ...]]:
    """The ``LIMIT`` clause of ``limit`` runs (none: every run; a negative one too)."""
    return ("", ()) if limit is None or limit < 0 else (" LIMIT ?", (limit,))


def runs(store: HistoryStore, *, limit: int | None = None) -> pd.DataFrame:
    """One row a run (the ``limit`` most recent ones), oldest first.

    Column ``values`` says whether the store keeps the run's per-round values
    (runs stored before schema 3 do not: they need their bundle directory).
    """
    clause, bound = _limit(limit)
    frame = store.query("SELECT * FROM runs ORDER BY started_utc DESC, run_id DESC" + clause, bound)
    frame = frame.iloc[::-1].reset_index(drop=True)
    frame["sha"] = [str(sha or "")[:7] for sha in frame["git_sha"]]
    frame["targets"] = [
        f"{passed}/{total}"
        for passed, total in zip(frame["targets_passed"], frame["targets_total"], strict=True)
    ]
    frame["passed"] = frame["passed"].astype(bool)
    frame["dirty"] = frame["dirty"].map({1: True, 0: False})
    stored = frame["stored_schema"] if "stored_schema" in frame else pd.Series(0, index=frame.index)
    frame["values"] = stored >= VALUES_SINCE
    return frame[list(_RUN_COLUMNS)]


def target_history(store: HistoryStore, target: str, *, limit: int | None = None) -> pd.DataFrame:
    """The values of ``target`` in every run that evaluated it, oldest first.

    Raises :class:`~harness.errors.TargetsError` when no stored run has the
    target (the message names the targets that do appear).
    """
    clause, bound = _limit(limit)
    frame = store.query(
        """
        SELECT r.run_id, r.started_utc, substr(coalesce(r.git_sha, ''), 1, 7) AS sha,
               r.profile, v.value, v.spread_low, v.spread_high, v.bound, v.direction,
               v.margin, v.outcome, v.unit, v.clock, v.n
        FROM verdicts v JOIN runs r ON r.run_id = v.run_id
        WHERE v.target = ?
        ORDER BY r.started_utc DESC, r.run_id DESC"""
        + clause,
        (target, *bound),
    )
    if frame.empty:
        known = store.query("SELECT DISTINCT target FROM verdicts ORDER BY target")
        names = ", ".join(str(name) for name in known["target"]) or "none yet"
        raise TargetsError(
            f"no stored run evaluated target {target!r}",
            where=store.where,
            expected=f"one of: {names}",
        )
    return frame.iloc[::-1].reset_index(drop=True)


def latest_identity(store: HistoryStore) -> tuple[str, str, str] | None:
    """The branch, machine fingerprint and profile of the newest stored run (None: no run)."""
    frame = store.query(
        "SELECT coalesce(branch, '') AS branch, fingerprint, profile FROM runs "
        "ORDER BY started_utc DESC, run_id DESC LIMIT 1"
    )
    if frame.empty:
        return None
    row = frame.iloc[0]
    return str(row["branch"]), str(row["fingerprint"]), str(row["profile"])


def night_series(
    store: HistoryStore, *, branch: str, fingerprint: str, profile: str
) -> pd.DataFrame:
    """Every night of one branch, machine and profile, oldest first: one row a series value.

    Columns: run_id, started_utc, git_sha, kind (``metric``: a metric's median that
    night; ``target``: a target's value), name (the metric or the target), workload,
    metric, clock, value. The change points are looked for in these series.
    """
    return store.query(
        """
        SELECT r.run_id, r.started_utc, coalesce(r.git_sha, '') AS git_sha,
               'metric' AS kind, s.metric AS name, s.workload, s.metric, s.clock,
               s.median AS value
        FROM workload_stats s JOIN runs r ON r.run_id = s.run_id
        WHERE coalesce(r.branch, '') = ? AND r.fingerprint = ? AND r.profile = ?
        UNION ALL
        SELECT r.run_id, r.started_utc, coalesce(r.git_sha, ''), 'target', v.target,
               v.workload, v.metric, v.clock, v.value
        FROM verdicts v JOIN runs r ON r.run_id = v.run_id
        WHERE coalesce(r.branch, '') = ? AND r.fingerprint = ? AND r.profile = ?
          AND v.value IS NOT NULL
        ORDER BY 2, 1
        """,
        (branch, fingerprint, profile) * 2,
    )


def trend_series(
    store: HistoryStore, *, branch: str | None, started_utc: str, run_id: str, limit: int
) -> pd.DataFrame:
    """Every target's value in the last ``limit`` runs of ``branch`` up to ``run_id``."""
    return store.query(
        """
        SELECT r.run_id, r.started_utc, substr(coalesce(r.git_sha, ''), 1, 7) AS sha,
               v.target, v.value, v.spread_low, v.spread_high
        FROM verdicts v JOIN runs r ON r.run_id = v.run_id
        WHERE r.run_id IN (
            SELECT run_id FROM runs
            WHERE branch IS ? AND (started_utc < ? OR (started_utc = ? AND run_id <= ?))
            ORDER BY started_utc DESC, run_id DESC LIMIT ?
        )
        ORDER BY r.started_utc, r.run_id
        """,
        (branch, started_utc, started_utc, run_id, limit),
    )


def target_directions(store: HistoryStore) -> dict[str, str]:
    """Each stored target's direction (``max``: lower is better; ``min``: higher)."""
    frame = store.query("SELECT DISTINCT target, direction FROM verdicts")
    return {str(t): str(d) for t, d in zip(frame["target"], frame["direction"], strict=True)}


def render(frame: pd.DataFrame) -> str:
    """``frame`` as a plain-text table (every row and column, no index)."""
    if frame.empty:
        return "(no runs)"
    with pd.option_context("display.max_rows", None, "display.max_columns", None):
        text: str = frame.to_string(index=False, float_format=lambda x: f"{x:.6g}")
    return text
