"""The checks ``harness run`` makes before it measures anything, and the event loop it uses.

The output directory, the planted-regression switches, the ``--otlp-endpoint`` URL,
``$AGENTBENCH_LOOP`` and the history store: a bad one is refused with
:class:`~harness.errors.EnvironmentRefused` before a workload runs, not at the end.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from harness.bundle.paths import file_kind
from harness.errors import EnvironmentRefused
from harness.store.db import SCHEMA_VERSION as HISTORY_SCHEMA_VERSION
from harness.store.db import HistoryStore
from harness.store.location import Location, is_server
from reference_impl.errors import ConfigError
from reference_impl.pool import INJECT_CPU_ENV, injected_cpu
from workloads import loops
from workloads.drivers import INJECT_SLOWDOWN_ENV, injected_slowdown

__all__ = [
    "check_history_store",
    "check_switches",
    "check_writable",
    "chosen_loop",
    "loop_label",
]


def _check_endpoint(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EnvironmentRefused(
            f"{url!r} is not an OTLP endpoint",
            where="--otlp-endpoint",
            expected="an http:// or https:// URL with a host, e.g. http://127.0.0.1:4318",
        )


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and prove a file can be made there (else exit 2)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=out_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot write to the output directory ({exc.strerror or exc})",
            where=str(out_dir),
            expected="a writable directory (--out)",
        ) from None


def check_switches() -> None:
    """The planted-regression switches, checked before anything is measured.

    ``AGENTBENCH_INJECT_SLOWDOWN`` and ``AGENTBENCH_INJECT_CPU`` are read deep
    inside the workloads and the replay; a bad value found there would cost a
    whole run first. :class:`~harness.errors.EnvironmentRefused` naming the variable.
    """
    for variable, read in (
        (INJECT_SLOWDOWN_ENV, injected_slowdown),
        (INJECT_CPU_ENV, injected_cpu),
    ):
        try:
            read()
        except (ValueError, ConfigError):
            raise EnvironmentRefused(
                repr(os.environ.get(variable, "")),
                where=variable,
                expected="unset, or a fraction in [0, 10) (0.1 = 10 %)",
            ) from None


def chosen_loop(asked: str | None) -> loops.EventLoop:
    """The event loop of this run: ``--loop``, else ``$AGENTBENCH_LOOP``, else asyncio.

    A bad ``$AGENTBENCH_LOOP`` is refused before anything is measured
    (:class:`~harness.errors.EnvironmentRefused` naming the variable).
    """
    if asked is not None:
        return loops.EventLoop(asked)
    try:
        return loops.chosen()
    except loops.SettingError as exc:
        raise EnvironmentRefused(
            str(exc), where=loops.LOOP_ENV, expected="unset, asyncio or uvloop"
        ) from None


def loop_label(loop: loops.EventLoop) -> str:
    """The loop as the fingerprint records it: ``asyncio``, or ``uvloop <version>``."""
    if loop is loops.EventLoop.ASYNCIO or loops.missing(loop):
        return loop.value  # a missing uvloop: every wall workload is SKIPPED, saying why
    from importlib.metadata import version

    return f"{loop.value} {version('uvloop')}"


def check_history_store(location: Location) -> None:
    """The history store can take this run's row: absent (made on append) or a writable store.

    Checked before anything is measured: a store that is not one (another file, a
    directory), one this user cannot write, or one of a newer schema would refuse
    the run only at its very end; so would a server that cannot be reached or
    refuses the credentials. Read through :class:`HistoryStore` only.
    """
    if is_server(location):
        HistoryStore(location).stored_version()  # connects; refuses a newer schema
        return
    path = Path(location)
    expected = "a history.sqlite of `harness run` that this user can write (or --no-history)"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # created on append, in the output directory already proven writable
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot inspect the history store ({exc.strerror or exc})",
            where=str(path),
            expected=expected,
        ) from None
    if not stat.S_ISREG(mode):
        raise EnvironmentRefused(
            f"{file_kind(mode)}, not a history store", where=str(path), expected=expected
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise EnvironmentRefused(
            "the history store is not writable", where=str(path), expected=expected
        )
    version = HistoryStore(path).schema_version()
    if version is not None and version > HISTORY_SCHEMA_VERSION:
        raise EnvironmentRefused(
            f"history store of schema version {version}",
            where=str(path),
            expected=f"schema version {HISTORY_SCHEMA_VERSION} or older (a newer harness wrote it)",
        )
