"""One open connection to the history store, whichever backend, spoken to in one SQL.

A :class:`Session` is what :mod:`harness.store.connection` (SQLite) and
:mod:`harness.store.postgres` hand out inside a read or a write; everything
above them (:mod:`~harness.store.schema`, :mod:`~harness.store.db`,
:mod:`~harness.store.queries`, :mod:`~harness.store.transfer`) writes its SQL once,
in the form :mod:`harness.store.dialect` describes, and never sees which backend
answers. A session does not commit: its backend's ``writing`` does, once, at the
end.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from contextlib import closing
from typing import Any, Protocol

import pandas as pd

from harness.store.dialect import Dialect

__all__ = ["Session"]


class _Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any], /) -> object: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def close(self) -> None: ...


class _Connection(Protocol):
    def cursor(self) -> _Cursor: ...


class Session:
    """Statements and queries on one connection (``sqlite3`` or ``psycopg``)."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection: _Connection = connection
        self.dialect = dialect

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of ``sql`` (None: no row)."""
        with closing(self._connection.cursor()) as cursor:
            cursor.execute(self.dialect.statement(sql), params)
            row = cursor.fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Every row of ``sql``."""
        with closing(self._connection.cursor()) as cursor:
            cursor.execute(self.dialect.statement(sql), params)
            return [tuple(row) for row in cursor.fetchall()]

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Execute one statement that returns no rows."""
        with closing(self._connection.cursor()) as cursor:
            cursor.execute(self.dialect.statement(sql), params)

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Execute ``sql`` once per row of parameters (nothing when there is none)."""
        if not rows:
            return
        with closing(self._connection.cursor()) as cursor:
            cursor.executemany(self.dialect.statement(sql), rows)

    def define(self, sql: str) -> None:
        """Execute one table or index definition (types translated for the backend)."""
        with closing(self._connection.cursor()) as cursor:
            cursor.execute(self.dialect.definition(sql), ())

    def table_exists(self, name: str) -> bool:
        """Whether the store has a table of this name."""
        return self.one(self.dialect.table_exists, (name,)) is not None

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """The rows of ``sql`` as a DataFrame, converted by pandas alike on both backends."""
        with warnings.catch_warnings():
            # pandas reads any DB-API connection, but warns for one that is neither
            # SQLAlchemy nor sqlite3 (psycopg): the same conversion of the same rows
            # is what we want, so that one warning is expected here.
            warnings.filterwarnings(
                "ignore", message="pandas only supports SQLAlchemy", category=UserWarning
            )
            connection: Any = self._connection
            try:
                return pd.read_sql_query(
                    self.dialect.statement(sql), connection, params=list(params)
                )
            except pd.errors.DatabaseError as exc:
                # pandas wraps the driver's error; the backend maps the driver's own
                # (an unusable store becomes StoreError, as for every other statement).
                if isinstance(exc.__cause__, Exception):
                    raise exc.__cause__ from None
                raise
