"""Everything a developer or CI can do with this project, one session each.

The quick start is two commands: ``nox -s bench`` (the main job: ``harness run
--profile fast`` on the embedded defaults, no server to start) and ``nox -s tests``.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

PYTHON = "3.11"


def _install(session: nox.Session, extras: str = "") -> None:
    session.install("-e", f".[{extras}]" if extras else ".")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pytest arguments after ``--``; slow real-server tests included)."""
    _install(session, "test")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and mypy (strict) on the packages."""
    _install(session, "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The main job: ``harness run --profile fast`` (extra harness arguments after ``--``)."""
    _install(session)
    session.run("harness", "run", "--profile", "fast", *session.posargs)


@nox.session(python=PYTHON)
def nightly(session: nox.Session) -> None:
    """The rigorous run with replay of every shipped trace (CI's nightly job)."""
    _install(session)
    session.run("harness", "run", "--profile", "rigorous", *session.posargs)


@nox.session(python=PYTHON)
def replay(session: nox.Session) -> None:
    """Replay every shipped trace in both modes at concurrency 1, 4 and 16, with jitter."""
    _install(session)
    traces = sorted(str(p) for p in Path("workloads/traces").glob("*.jsonl*"))
    session.run("harness", "replay", *traces, *session.posargs)
