"""The one face of both history-store backends, and the choice between them.

:func:`open_backend` takes a location (:mod:`harness.store.location`): a
:class:`~pathlib.Path` opens the SQLite file (:class:`~harness.store.connection.SqliteStore`,
the embedded default), a ``postgresql://`` URL the server
(:class:`~harness.store.postgres.PostgresStore`). Both hand out the same
:class:`~harness.store.session.Session` inside a read or a write, so everything
above them is written once.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from harness.store.connection import SqliteStore
from harness.store.location import Location, is_server, parse_location
from harness.store.postgres import PostgresStore
from harness.store.session import Session

__all__ = ["Backend", "open_backend"]


class Backend(Protocol):
    """What a history store's backend offers (see each backend's guarantees)."""

    @property
    def location(self) -> Location:
        """The file, or the URL as given (never printed: see ``where``)."""
        ...

    @property
    def where(self) -> str:
        """The location as it may be printed (a URL without its password)."""
        ...

    def exists(self) -> bool:
        """Whether there is a store to read (a SQLite file; a server always)."""
        ...

    def reading(self) -> AbstractContextManager[tuple[Session, int | None]]:
        """A session that cannot write, and the schema version (None: no tables yet)."""
        ...

    def writing(self) -> AbstractContextManager[Session]:
        """One write transaction, schema created or migrated: all of it, or nothing."""
        ...

    def integrity_check(self) -> str:
        """``"ok"``, or the store's problems on one short line."""
        ...


def open_backend(location: Location) -> Backend:
    """The backend of ``location`` (nothing is opened until a read or a write).

    Raises :class:`~harness.store.schema.StoreError` for a URL of an unsupported scheme.
    """
    parsed = parse_location(location)
    if is_server(parsed):
        return PostgresStore(str(parsed))
    return SqliteStore(Path(parsed))
