"""How a SQLite history store is opened: readers that cannot write, writers that check first.

The embedded default backend (:class:`SqliteStore`); :mod:`harness.store.postgres`
is the server one, with the same face. Guarantees:

* Every connection is closed when the ``with`` block that opened it ends, however
  it ends (no connection is left to the garbage collector: Python 3.13 warns).
* A reader never writes and never creates the store. It is ``query_only``; when
  this process may write the store's directory and file it opens them as usual,
  so SQLite removes its ``-wal``/``-shm`` files again on close (a ``mode=ro``
  connection to a WAL database would leave them behind). When it may not (a
  read-only reports directory), it opens the file ``mode=ro``, or ``mode=ro``
  with ``immutable=1`` when there is no ``-wal`` file to honour (SQLite could not
  create the ``-shm`` file a WAL reader needs), so a read-only store still reads.
* A writer first refuses a file that is not a database, one with a corrupt page
  (``PRAGMA quick_check``) and a store of a newer schema, before anything is
  written (not even the journal mode): the file is byte-for-byte unchanged. Then
  it writes in one ``BEGIN IMMEDIATE`` transaction that migrates an older schema
  and commits everything, or rolls back everything.
* Every SQLite failure but a bug in what is stored (an integrity or programming
  error) becomes one :class:`~harness.store.schema.StoreError` naming the file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from urllib.parse import quote

from harness.store import schema
from harness.store.dialect import SQLITE
from harness.store.schema import StoreError
from harness.store.session import Session

__all__ = ["BUSY_TIMEOUT_S", "SqliteStore", "problems_line", "reading", "writing"]

BUSY_TIMEOUT_S = 60.0
_EXPECTED = "a history store written by `harness run`"
# The characters of a failed check's report quoted in the one error line.
_PROBLEMS_CHARS = 240


def _unusable(path: Path, exc: BaseException) -> StoreError:
    return StoreError(f"history store unusable: {exc}", where=str(path), expected=_EXPECTED)


@contextmanager
def _closing(path: Path, connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield connection
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
        raise  # a bug in what is stored, not an unusable store
    except sqlite3.DatabaseError as exc:
        raise _unusable(path, exc) from None
    finally:
        connection.close()


def _read_uris(path: Path) -> list[str]:
    """The URIs to try, in order, to read ``path`` without writing anything."""
    uri = "file:" + quote(str(path.absolute()))
    if os.access(path.parent, os.W_OK) and os.access(path, os.W_OK):
        return [f"{uri}?mode=rw"]
    fallback = [f"{uri}?mode=ro&immutable=1"]
    return [f"{uri}?mode=ro", *fallback] if Path(f"{path}-wal").exists() else fallback


def _open_for_reading(path: Path) -> sqlite3.Connection:
    failure: sqlite3.Error | None = None
    for uri in _read_uris(path):
        try:
            connection = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
        except sqlite3.Error as exc:
            failure = exc
            continue
        try:
            connection.execute("PRAGMA query_only = ON")
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:  # cannot open (-shm): try the next way
            connection.close()
            failure = exc
            continue
        except sqlite3.DatabaseError as exc:  # not a database, malformed: no other way helps
            connection.close()
            raise _unusable(path, exc) from None
        return connection
    raise _unusable(path, failure or sqlite3.OperationalError("cannot open"))


@contextmanager
def reading(path: Path) -> Iterator[tuple[Session, int | None]]:
    """A session that cannot write, and the store's schema version (None: no tables).

    Raises :class:`StoreError` when there is no store at ``path`` (nothing is
    created), when it is unusable, or of a newer schema.
    """
    if not path.is_file():
        raise StoreError("no history store", where=str(path), expected=_EXPECTED)
    connection = _open_for_reading(path)
    with _closing(path, connection):
        session = Session(connection, SQLITE)
        version = schema.store_version(session)
        schema.refuse_newer(version, str(path))
        yield session, version


def _journal_mode_wal(connection: sqlite3.Connection) -> None:
    """Switch to WAL, waiting (bounded) for a concurrent first writer.

    SQLite does not call its busy handler for a journal-mode change: two
    processes creating the store at once can see "database is locked" at once.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def problems_line(rows: list[tuple[object, ...]]) -> str:
    """SQLite's check results (``[("ok",)]`` when sound) as one short line."""
    text = " ".join("; ".join(str(row[0]) for row in rows).split())
    return text if len(text) <= _PROBLEMS_CHARS else text[: _PROBLEMS_CHARS - 3] + "..."


def _check_before_writing(path: Path, connection: sqlite3.Connection) -> None:
    schema.refuse_newer(schema.store_version(Session(connection, SQLITE)), str(path))
    problems = problems_line(connection.execute("PRAGMA quick_check").fetchall())
    if problems != "ok":
        raise StoreError(
            f"history store corrupt: {problems}",
            where=str(path),
            expected="a sound store (restore a copy, or move this one aside to start anew)",
        )


@contextmanager
def writing(path: Path) -> Iterator[Session]:
    """One write transaction on the checked store at ``path`` (created when missing).

    The schema is created or migrated inside the transaction; an exception rolls
    everything back.
    """
    try:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(
            f"cannot open the history store: {exc}", where=str(path), expected=_EXPECTED
        ) from None
    with _closing(path, connection):
        _check_before_writing(path, connection)
        _journal_mode_wal(connection)
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("BEGIN IMMEDIATE")
        session = Session(connection, SQLITE)
        try:
            schema.ensure_schema(session, str(path))
            yield session
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


class SqliteStore:
    """The history store in one SQLite file (the embedded default)."""

    def __init__(self, path: Path) -> None:
        self.location = path
        self.where = str(path)

    def exists(self) -> bool:
        """Whether the file is there (a read never creates it)."""
        return self.location.is_file()

    def reading(self) -> AbstractContextManager[tuple[Session, int | None]]:
        """See :func:`reading`."""
        return reading(self.location)

    def writing(self) -> AbstractContextManager[Session]:
        """See :func:`writing`."""
        return writing(self.location)

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"``, or its problems on one short line."""
        with reading(self.location) as (session, _):
            return problems_line(session.all("PRAGMA integrity_check"))
