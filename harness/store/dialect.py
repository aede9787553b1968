"""One description of the store's SQL, spoken to SQLite as written and to PostgreSQL translated.

Every statement of the store (its tables and migrations in
:mod:`harness.store.schema`, every insert and query) is written once, in the
SQLite form: ``?`` placeholders, SQLite's type names. :data:`POSTGRES` translates
it on its way to the server, so the two backends cannot drift apart:

* placeholders: ``?`` becomes ``%s`` (and a literal ``%`` becomes ``%%``); the
  store's SQL has no ``?`` inside a string literal;
* ``x IS ?`` (SQLite's null-safe equality) becomes ``x IS NOT DISTINCT FROM %s``;
* types, in table definitions: ``BLOB`` becomes ``BYTEA``, ``REAL`` (a float64 in
  SQLite, a float32 in PostgreSQL) ``DOUBLE PRECISION`` and ``INTEGER`` (64 bits in
  SQLite) ``BIGINT``. TEXT, keys, ``REFERENCES``, ``DEFAULT`` and the
  ``IF NOT EXISTS`` forms mean the same on both.

Both dialects also say how to ask whether a table exists (SQLite's
``sqlite_master``, PostgreSQL's catalog in the current schema).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["POSTGRES", "SQLITE", "Dialect"]

_TYPES = {"BLOB": "BYTEA", "REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}
_TYPE_WORDS = re.compile(r"\b(" + "|".join(_TYPES) + r")\b")
_NULL_SAFE_EQUALS = re.compile(r"\bIS\s+\?")


@lru_cache(maxsize=256)
def _postgres_statement(sql: str) -> str:
    sql = _NULL_SAFE_EQUALS.sub("IS NOT DISTINCT FROM ?", sql)
    return sql.replace("%", "%%").replace("?", "%s")


@lru_cache(maxsize=64)
def _postgres_definition(sql: str) -> str:
    return _postgres_statement(_TYPE_WORDS.sub(lambda m: _TYPES[m.group(1)], sql))


def _as_written(sql: str) -> str:
    return sql


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend is spoken to: ``statement`` for queries and inserts,
    ``definition`` for the tables' definitions (types translated too)."""

    name: str
    statement: Callable[[str], str]
    definition: Callable[[str], str]
    table_exists: str  # one ``?``: the table's name; a row when it exists


SQLITE = Dialect(
    name="sqlite",
    statement=_as_written,
    definition=_as_written,
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
)

POSTGRES = Dialect(
    name="postgresql",
    statement=_postgres_statement,
    definition=_postgres_definition,
    table_exists=(
        "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?"
    ),
)
