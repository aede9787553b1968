"""Store: the history of runs, the only place that speaks SQL.

``db`` (:class:`~harness.store.db.HistoryStore`: append a run, load it back whole,
calibrations, the last good run), ``schema`` (tables, migrations, what a store of
another version gets), ``rounds`` (a run's per-round values packed, and a bundle
rebuilt from them), ``connection`` (how the file is opened: for a write, or read-only
when the directory cannot be written) and ``queries`` (trend series read from it).
The store is self-contained: every run's manifest and per-round values are in it,
so a runner that kept only the file can still compare, draw trends and find change
points.
"""
