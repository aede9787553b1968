"""Where the history store is: a SQLite file, or a PostgreSQL server named by a URL.

A location is a :class:`~pathlib.Path` (a SQLite file, the embedded default) or a
``str``: a standard libpq URL, ``postgresql://[user[:password]@]host[:port]/dbname[?...]``
(``postgres://`` too). A URL is kept as the text it was given: a ``Path`` would
collapse its ``//``. ``AGENTBENCH_DB`` names the store every command uses when no
``--db`` says otherwise.

Guarantees:

* A password never reaches an error line, a log line or ``--help``:
  :func:`redacted` is the only form of a URL that is printed (its password, in the
  user part or as a ``password=`` parameter, removed).
* Any other ``scheme://`` text is refused (:class:`StoreError`), not taken for a
  file whose name happens to hold a colon.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from harness.store.schema import StoreError

__all__ = [
    "DB_VARIABLE",
    "SERVER_SCHEMES",
    "Location",
    "history_location",
    "is_server",
    "parse_location",
    "password_of",
    "redacted",
]

Location: TypeAlias = Path | str

DB_VARIABLE = "AGENTBENCH_DB"
SERVER_SCHEMES = ("postgresql", "postgres")


def is_server(location: Location) -> bool:
    """Whether ``location`` names a PostgreSQL server (a URL), not a SQLite file."""
    return isinstance(location, str) and location.split("://", 1)[0].lower() in SERVER_SCHEMES


def parse_location(text: Location) -> Location:
    """``text`` as a location: the URL itself for a server, a :class:`Path` otherwise.

    Raises :class:`StoreError` for a URL of another scheme.
    """
    if isinstance(text, Path):
        return text
    if is_server(text):
        return text
    scheme, found, _ = text.partition("://")
    if found and scheme and all(c.isalnum() or c in "+-." for c in scheme):
        raise StoreError(
            f"unsupported store URL scheme {scheme!r}",
            where=redacted(text),
            expected="a SQLite file path or a postgresql:// URL",
        )
    return Path(text)


def history_location(default: Path) -> Location:
    """``$AGENTBENCH_DB`` when set (and not empty), else ``default``."""
    value = os.environ.get(DB_VARIABLE, "")
    return parse_location(value) if value else default


def password_of(url: str) -> str:
    """The password ``url`` carries (in its user part or a parameter); "" when none."""
    parts = urlsplit(url)
    userinfo, at, _ = parts.netloc.rpartition("@")
    in_user = userinfo.partition(":")[2] if at else ""
    in_query = [value for key, value in parse_qsl(parts.query) if key == "password"]
    return in_user or (in_query[0] if in_query else "")


def redacted(location: Location) -> str:
    """``location`` as it may be printed: a URL without its password, a path as is."""
    if isinstance(location, Path):
        return str(location)
    parts = urlsplit(location)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}@{hosts}" if at else hosts
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
