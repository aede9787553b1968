"""A real PostgreSQL cluster for the tests: Debian's ``postgresql`` server binaries.

:func:`start_cluster` runs ``initdb`` in a fresh temporary directory and ``pg_ctl start``
on a free port of 127.0.0.1 (no other address, its Unix socket in that directory), as
a non-root user: initdb refuses root, so as root the cluster belongs to the
``postgres`` system user the Debian package creates. Password authentication
(scram-sha-256) over TCP, so wrong credentials are refused as on a real server.
:meth:`Cluster.stop` stops it (``pg_ctl stop -m fast``, bounded) and removes the
directory. Every wait is bounded.

Without the binaries (or psycopg) the tests that need the cluster fail when ``CI``
is set and skip otherwise, with one line saying how to install them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

SUPERUSER = "bench"
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
TIMEOUT_S = 60


def in_ci() -> bool:
    """Whether ``CI`` is set (as `.ci/run` sets it): missing binaries fail there."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(message: str) -> None:
    """Fail in CI, skip elsewhere, with ``message``."""
    if in_ci():
        pytest.fail(f"CI is set and {message}")
    pytest.skip(message)


def server_bindir() -> Path | None:
    """The directory of initdb, pg_ctl and postgres (`pg_config --bindir`, else the
    newest /usr/lib/postgresql/*/bin); None when there is none."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            printed = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            printed = ""
        if printed and (Path(printed) / "initdb").is_file():
            return Path(printed)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(part) if part.isdigit() else 0 for part in Path(p).parts[-3].split(".")],
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound then released: refused at once)."""
    return free_port()


@dataclass
class Cluster:
    """A running cluster: connect as :data:`SUPERUSER` with :attr:`password`."""

    bindir: Path
    directory: Path
    port: int
    password: str
    owner: pwd.struct_passwd | None  # the user the server runs as (None: this user)
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A libpq URL of ``database`` (with this cluster's password unless told otherwise)."""
        secret = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> Any:
        """An autocommit psycopg connection to the ``postgres`` database."""
        import psycopg

        return psycopg.connect(self.url(), autocommit=True, connect_timeout=10)

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"history_{len(self.databases)}_{secrets.token_hex(4)}"
        with self.admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop the database of ``url`` (its connections ended first)."""
        name = url.rsplit("/", 1)[-1]
        with self.admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 30) -> str:
        log = self.directory / "server.log"
        if not log.is_file():
            return "(no server log)"
        return "\n".join(log.read_text("utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (fast shutdown, bounded) and remove its directory."""
        if (self.data / "postmaster.pid").is_file():
            _run(
                self.owner,
                [
                    *(str(self.bindir / "pg_ctl"), "-D", str(self.data)),
                    *("-m", "fast", "-w", "-t", str(TIMEOUT_S), "stop"),
                ],
                check=False,
            )
        shutil.rmtree(self.directory, ignore_errors=True)


def _run(
    owner: pwd.struct_passwd | None, argv: Sequence[str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``argv`` as ``owner`` (when given: this process is root), bounded."""
    user: dict[str, Any] = {}
    if owner is not None:
        user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if owner is not None:
        environment["HOME"] = owner.pw_dir
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=check,
        env=environment,
        cwd="/",
        **user,
    )


def _owner() -> pwd.struct_passwd | None:
    """The user to run the server as: this one, or ``postgres`` when this one is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        unavailable(
            "this process is root (initdb refuses it) and there is no `postgres` user "
            "to run the test cluster as (Debian's postgresql package creates it)"
        )
        raise  # unreachable: unavailable() fails or skips


def start_cluster() -> Cluster:
    """A fresh cluster on 127.0.0.1 (see the module's docstring); fails or skips without one."""
    install = (
        "apt-get install --no-install-recommends postgresql; .ci/run does it in CI, "
        "and pip install 'agentbench[postgres]' for psycopg"
    )
    bindir = server_bindir()
    if bindir is None:
        unavailable(f"no PostgreSQL server binaries (initdb, pg_ctl): {install}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable(f"psycopg is not installed: {install}")
    assert bindir is not None
    owner = _owner()
    directory = Path(tempfile.mkdtemp(prefix="agentbench-pg-"))
    if owner is not None:
        os.chown(directory, owner.pw_uid, owner.pw_gid)
    password = secrets.token_urlsafe(18)
    password_file = directory / "password"
    password_file.write_text(password + "\n", encoding="utf-8")
    if owner is not None:
        os.chown(password_file, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(bindir, directory, 0, password, owner)
    try:
        _run(
            owner,
            [
                str(bindir / "initdb"),
                *("-D", str(cluster.data), "-U", SUPERUSER, "--pwfile", str(password_file)),
                *("--auth-host=scram-sha-256", "--auth-local=scram-sha-256"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ],
        )
        password_file.unlink()
        for _ in range(START_ATTEMPTS):
            cluster.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
                f"-c unix_socket_directories={directory}"
            )
            started = _run(
                owner,
                [
                    *(str(bindir / "pg_ctl"), "-D", str(cluster.data)),
                    *("-l", str(directory / "server.log"), "-o", options),
                    *("-w", "-t", str(TIMEOUT_S), "start"),
                ],
                check=False,
            )
            if started.returncode == 0:
                return cluster
        pytest.fail(
            f"pg_ctl start failed {START_ATTEMPTS} times: {started.stderr.strip()}\n"
            f"{cluster.log_tail()}"
        )
    except subprocess.CalledProcessError as exc:
        cluster.stop()
        pytest.fail(f"{exc.cmd[0]} failed ({exc.returncode}): {exc.stderr.strip()}")
    except BaseException:
        cluster.stop()
        raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def fresh_database(cluster: Cluster) -> Iterator[str]:
    """A new database of ``cluster`` for one test, dropped after it."""
    url = cluster.create_database()
    try:
        yield url
    finally:
        cluster.drop_database(url)
