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
    _install(session, "test,peers,postgres,uvloop")
    session.run("pytest", *session.posargs)


@nox.session(python=["3.11", "3.12", "3.13"])
def versions(session: nox.Session) -> None:
    """The suite but its slow real-server tests, on each Python the project supports.

    ``nox -s versions`` runs every interpreter found; `.ci/run` runs the ones present
    (``nox -s versions-3.13``). The machine fingerprint records the version, so a
    comparison never mixes them.
    """
    _install(session, "test,peers,postgres,uvloop")
    session.run("pytest", "-m", "not slow", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy (strict) and import-linter's contracts."""
    _install(session, "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The main job: ``harness run --profile fast`` (extra harness arguments after ``--``)."""
    _install(session, "peers")
    session.run("harness", "run", "--profile", "fast", *session.posargs)


@nox.session(python=PYTHON)
def nightly(session: nox.Session) -> None:
    """``harness nightly``: rigorous run + replay, compare with the last good night, report.

    Every step runs; the session fails when any of them does.
    """
    _install(session, "peers")
    session.run("harness", "nightly", *session.posargs)


@nox.session(python=PYTHON)
def replay(session: nox.Session) -> None:
    """Replay every shipped trace in both modes at concurrency 1, 4 and 16, with jitter."""
    _install(session)
    traces = sorted(str(p) for p in Path("workloads/traces").glob("*.jsonl*"))
    session.run("harness", "replay", *traces, *session.posargs)


@nox.session(python=PYTHON)
def calibrate(session: nox.Session) -> None:
    """``harness calibrate``: this machine's noise, for ``nox -s compare`` to use.

    Installed like a side of ``nox -s compare`` (the project, no optional group),
    so the calibration's fingerprint is the sides' and ``harness compare`` finds it.
    """
    _install(session)
    session.run("harness", "calibrate", *session.posargs)


@nox.session(python=PYTHON)
def compare(session: nox.Session) -> None:
    """Branch comparison: ``nox -s compare -- BASE_REF CANDIDATE_REF [opts] [-- compare opts]``.

    ``harness interleave`` measures the two refs alternately in a balanced order (each
    in its own worktree and virtualenv; its options before a second ``--``), then
    ``harness compare`` judges the two bundles (its options after it) and writes
    compare.md and compare.json beside them. The session fails when ``harness compare``
    does: nox exits 1 for any failure, its log line gives compare's own exit status.
    """
    args = list(session.posargs)
    cut = args.index("--") if "--" in args else len(args)
    interleave_args, compare_args = args[:cut], args[cut + 1 :]
    if len(interleave_args) < 2:
        session.error("usage: nox -s compare -- BASE_REF CANDIDATE_REF [options] [-- options]")
    _install(session)
    session.install("uv")  # builds each side's virtualenv in seconds
    # stdout (the two bundle paths) is captured; the progress on stderr stays live.
    printed = session.run("harness", "interleave", *interleave_args, silent=True, stderr=None)
    bundles = dict(line.split(": ", 1) for line in str(printed).splitlines() if ": " in line)
    base, candidate = Path(bundles["base"]), Path(bundles["candidate"])
    session.log(f"base bundle: {base}; candidate bundle: {candidate}")
    out = base.parent
    session.run(
        "harness",
        *("compare", str(base), str(candidate), *compare_args),
        *("--markdown", str(out / "compare.md"), "--json", str(out / "compare.json")),
    )
