"""Fixtures shared by the test packages: a real PostgreSQL cluster, started once a session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._postgres import Cluster, fresh_database, start_cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this session on 127.0.0.1 (see tests/_postgres.py).

    Fails when ``CI`` is set and the server binaries or psycopg are missing; skips
    otherwise. Stopped, and its directory removed, at the end of the session.
    """
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> Iterator[str]:
    """The URL (password included) of a new, empty database, dropped after the test."""
    with fresh_database(postgres_cluster) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A history store location not yet written: a SQLite file path, then a PostgreSQL
    URL of a new database (the real-server case is ``slow``: `nox -s tests` runs it)."""
    if request.param == "sqlite":
        yield tmp_path / "history.sqlite"
        return
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    with fresh_database(cluster) as url:
        yield url
