"""The history store on a PostgreSQL server: one history for a team of runners.

Chosen by ``--db postgresql://...`` (or ``postgres://``) or ``$AGENTBENCH_DB``: a
standard libpq URL. Credentials come from the URL, ``PGPASSWORD`` or
``~/.pgpass`` (libpq's own rules). The same tables and migrations as a SQLite
store (:mod:`harness.store.schema`, translated by :mod:`harness.store.dialect`).

Guarantees:

* psycopg is imported only here, and only when a server store is used: the SQLite
  default needs none of it. Without it, one :class:`StoreError` says
  ``pip install 'agentbench[postgres]'``.
* A password is never printed: ``where`` is the URL without it
  (:func:`~harness.store.location.redacted`), and a server or libpq message that
  would echo it has it masked.
* A write is ONE transaction. It first takes a transaction-scoped advisory lock
  (``pg_advisory_xact_lock``), so writers on every machine take turns as SQLite's
  ``BEGIN IMMEDIATE`` makes them: the check that a run is not stored yet and its
  insertion cannot interleave with another writer's, and two first writers
  creating the schema race safely (the second finds it made). The lock wait is
  bounded (:data:`~harness.store.connection.BUSY_TIMEOUT_S`, ``lock_timeout``).
  An exception rolls everything back; a writer that dies mid-transaction (even
  SIGKILL) leaves nothing: the server rolls back when its connection closes.
* A read is one read-only, repeatable-read transaction: a run being written is
  invisible until committed, and the several queries of one read see one snapshot.
* A server that cannot be reached, refused credentials, a missing database, a lock
  still held after the timeout, missing privileges, a store of a newer schema:
  each is one :class:`StoreError` naming the URL (without its password), and
  nothing is written. A bug in what is stored (an integrity violation, a client-side
  programming error) is raised as psycopg raised it.
* Every connection is closed when its read or write ends, however it ends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import ModuleType
from typing import Any
from urllib.parse import unquote

from harness.store import schema
from harness.store.connection import BUSY_TIMEOUT_S
from harness.store.dialect import POSTGRES
from harness.store.location import password_of, redacted
from harness.store.schema import VALUES_SINCE, StoreError
from harness.store.session import Session

__all__ = ["CONNECT_TIMEOUT_S", "LOCK_KEY", "PostgresStore"]

CONNECT_TIMEOUT_S = 10
# The advisory lock every writer of a history store takes (a stable 64-bit key: the
# first 8 bytes of a SHA-256, never Python's salted hash()).
LOCK_KEY = int.from_bytes(hashlib.sha256(b"agentbench history store").digest()[:8], signed=True)
_EXPECTED = "a reachable PostgreSQL server and database this user may write (a libpq URL)"
_INSTALL = "pip install 'agentbench[postgres]'"
# A password shorter than this is not masked in messages (masking "a" would garble
# every word of them; such a password protects nothing anyway).
_MASKED_FROM = 3


def _psycopg(where: str) -> ModuleType:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            f"a PostgreSQL history store needs psycopg: {_INSTALL}",
            where=where,
            expected="psycopg 3 installed (the optional group `postgres`)",
        ) from None
    return psycopg


class PostgresStore:
    """The history store in the PostgreSQL database that ``url`` names."""

    def __init__(self, url: str) -> None:
        self.location = url
        self.where = redacted(url)
        password = password_of(url)
        self._secrets = tuple({s for s in (password, unquote(password)) if len(s) >= _MASKED_FROM})

    def exists(self) -> bool:
        """Always: a server store's tables may not exist yet (a read finds no schema
        version then), and an unreachable server is an error, not an absent store."""
        return True

    def _one_line(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _connect(self, psycopg: ModuleType) -> Any:
        from psycopg.conninfo import conninfo_to_dict

        try:
            given = conninfo_to_dict(self.location)
            defaults = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "agentbench"}
            extra = {key: value for key, value in defaults.items() if key not in given}
            return psycopg.connect(self.location, **extra)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the history store: {self._one_line(exc)}",
                where=self.where,
                expected=_EXPECTED,
            ) from None

    @contextmanager
    def _session(self) -> Iterator[tuple[ModuleType, Any]]:
        """A connection, closed at the end; psycopg's errors as :class:`StoreError`."""
        psycopg = _psycopg(self.where)
        connection = self._connect(psycopg)
        try:
            yield psycopg, connection
        except psycopg.IntegrityError:
            raise  # a bug in what is stored, not an unusable store
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.ProgrammingError) and exc.sqlstate is None:
                raise  # raised by psycopg itself: a bug in a statement, not the server
            raise StoreError(
                f"history store unusable: {self._one_line(exc)}",
                where=self.where,
                expected=_EXPECTED,
            ) from None
        finally:
            connection.close()

    @contextmanager
    def reading(self) -> Iterator[tuple[Session, int | None]]:
        """A read-only session on one snapshot, and the schema version (None: no tables).

        Raises :class:`StoreError` when the server cannot be used or the store is
        of a newer schema. Nothing is created.
        """
        with self._session() as (psycopg, connection):
            connection.read_only = True
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            session = Session(connection, POSTGRES)
            version = schema.store_version(session)
            schema.refuse_newer(version, self.where)
            yield session, version
            connection.rollback()  # a read commits nothing: end its transaction

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction, the writers' lock held, the schema created or migrated.

        An exception rolls everything back.
        """
        with self._session() as (psycopg, connection):
            session = Session(connection, POSTGRES)
            try:
                session.run(f"SET LOCAL lock_timeout = '{round(BUSY_TIMEOUT_S * 1000)}ms'")
                session.run("SELECT pg_advisory_xact_lock(?)", (LOCK_KEY,))
                schema.ensure_schema(session, self.where)
                yield session
            except BaseException:
                with suppress(psycopg.Error):  # a lost connection has nothing to roll back
                    connection.rollback()
                raise
            connection.commit()

    def integrity_check(self) -> str:
        """``"ok"``, or what is wrong on one line.

        PostgreSQL keeps its own pages sound; what is checked is the store's own
        promise: one schema version row, and every run stored with its values
        (schema 3 on) has its manifest.
        """
        with self.reading() as (session, version):
            if version is None:
                return "ok"  # no tables yet: an empty store is a sound one
            problems = []
            (rows,) = session.one("SELECT count(*) FROM schema_version") or (0,)
            if rows != 1:
                problems.append(f"{rows} schema_version rows, expected 1")
            if version >= VALUES_SINCE:
                missing = [
                    str(row[0])
                    for row in session.all(
                        "SELECT r.run_id FROM runs r LEFT JOIN run_manifests m "
                        "ON m.run_id = r.run_id WHERE r.stored_schema >= ? "
                        "AND m.run_id IS NULL ORDER BY r.run_id",
                        (VALUES_SINCE,),
                    )
                ]
                if missing:
                    problems.append(
                        f"{len(missing)} run(s) stored with values have no manifest: "
                        + ", ".join(missing[:5])
                        + (" ..." if len(missing) > 5 else "")
                    )
            return "; ".join(problems) or "ok"
