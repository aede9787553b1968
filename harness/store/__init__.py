"""Store: the history of runs, the only place that speaks SQL.

``db`` (:class:`~harness.store.db.HistoryStore`: append a run, load it back whole,
calibrations, the last good run), ``schema`` (tables, migrations, what a store of
another version gets), ``rows`` (a run as the rows of every table: written, read
back), ``rounds`` (a run's per-round values packed, and a bundle rebuilt from them),
``queries`` (trend series read from it) and ``transfer`` (one store copied into
another: ``harness history import``).

Two backends behind one face (``backend``): a SQLite file, the embedded default
(``connection``: opened for a write, or read-only when the directory cannot be
written), and a PostgreSQL server for a team (``postgres``: ``--db postgresql://...``
or ``$AGENTBENCH_DB``, psycopg imported only then). ``location`` says which a
location names and prints it without its password; ``dialect`` translates the one
SQL of the store for each; ``session`` is the connection both hand out.

The store is self-contained: every run's manifest and per-round values are in it,
so a runner that kept only the file (or a team that kept only its server) can still
compare, draw trends and find change points.
"""
