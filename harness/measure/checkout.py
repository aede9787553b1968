"""A git ref as something to measure: a worktree of its commit and a virtualenv holding it.

``harness interleave`` builds one per side of a comparison (:func:`installed_checkout`).
Each side must run *its own* code, installed the way a user installs it, under
the same interpreter as ours, and nothing may be left behind:

Guarantees:

* :func:`resolve_ref` turns a ref into a full commit sha, or raises
  :class:`~harness.errors.RefError` (one line: the ref, the repository, what a
  fresh clone lacks); it never lets a ref be read as a git option.
* :func:`worktree` removes its worktree when its block is left, however it is
  left (error, KeyboardInterrupt): ``git worktree remove --force``, the directory
  deleted in any case, then ``git worktree prune``.
* :func:`build_environment` installs the checkout non-editable (``uv pip install``
  when ``uv`` is found, else ``venv`` + ``pip``) with this interpreter; a failed
  step is an :class:`~harness.errors.EnvironmentRefused` carrying the installer's
  last line.
* :func:`checkout_environment` proves the side's interpreter imports
  ``workloads`` from its own virtualenv (not from our checkout, a ``PYTHONPATH``
  or the working directory) and records that side's commit, interpreter and
  installed dependency versions, hence its own machine fingerprint.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import msgspec

from harness.bundle import environment
from harness.bundle.environment import Environment, GitState
from harness.errors import EnvironmentRefused, RefError

__all__ = [
    "DROPPED_VARIABLES",
    "Checkout",
    "CheckoutRequest",
    "build_environment",
    "checkout_environment",
    "clean_environ",
    "installed_checkout",
    "repository_root",
    "resolve_ref",
    "worktree",
]

GIT_TIMEOUT_S = 60.0
INSTALL_TIMEOUT_S = 900.0
PROBE_TIMEOUT_S = 60.0
# Variables of ours that would make a side run other code than its own.
DROPPED_VARIABLES = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")


def clean_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without :data:`DROPPED_VARIABLES`."""
    return {k: v for k, v in environ.items() if k not in DROPPED_VARIABLES}


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """A commit to check out and install: ``label`` names it in paths and progress lines."""

    label: str
    ref: str
    sha: str
    repo: Path
    scratch: Path
    machine: Environment
    progress: TextIO


@dataclass(frozen=True, slots=True)
class Checkout:
    """A commit ready to run: its source tree, its interpreter, its facts, its workloads."""

    label: str
    ref: str
    sha: str
    path: Path
    python: Path
    environment: Environment
    workloads: frozenset[str]


# -- git ---------------------------------------------------------------------------


def _git(
    repo: Path, *args: str, timeout_s: float = GIT_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RefError(f"git could not run: {exc}", where=str(repo)) from None


def repository_root(directory: Path) -> Path:
    """The top of the git work tree holding ``directory`` (:class:`RefError` outside one)."""
    completed = _git(directory, "rev-parse", "--show-toplevel")
    if completed.returncode != 0:
        raise RefError(
            "not inside a git work tree",
            where=str(directory),
            expected="a git repository (--repo)",
        )
    return Path(completed.stdout.strip())


def resolve_ref(repo: Path, ref: str) -> str:
    """The full sha of the commit ``ref`` names in ``repo`` (:class:`RefError` when none)."""
    if not ref or ref.startswith("-"):
        raise RefError(
            f"{ref!r} is not a git ref", where="REF", expected="a branch, tag or commit id"
        )
    completed = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if completed.returncode != 0:
        raise RefError(
            f"git ref {ref!r} does not name a commit in {repo}",
            where=ref,
            expected="a branch, tag or commit id (a fresh clone has only the default branch: "
            "`git fetch origin BRANCH` first)",
        )
    return completed.stdout.strip()


@contextlib.contextmanager
def worktree(repo: Path, sha: str, path: Path) -> Iterator[Path]:
    """A detached worktree of ``sha`` at ``path`` for the duration of the block.

    Guarantee: on leaving the block, however it is left, the worktree is removed
    (``git worktree remove --force``; its directory deleted and ``git worktree
    prune`` run in any case, so the repository keeps no stale entry). A relative
    ``path`` is taken from our working directory, not the repository's.
    """
    path = path.absolute()
    try:
        completed = _git(repo, "worktree", "add", "--detach", str(path), sha)
        if completed.returncode != 0:
            tail = completed.stderr.strip().splitlines()
            raise EnvironmentRefused(
                f"git worktree add failed: {tail[-1] if tail else completed.returncode}",
                where=str(path),
                expected="a writable --out directory inside or beside the repository",
            )
        yield path
    finally:
        # Cleanup never hides the exception that ended the block.
        with contextlib.suppress(RefError):
            _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(RefError):
            _git(repo, "worktree", "prune")


# -- environments ------------------------------------------------------------------


def _uv() -> str | None:
    """The ``uv`` binary: on PATH, beside this interpreter, or from the ``uv`` package."""
    found = shutil.which("uv")
    if found:
        return found
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = directory / "uv"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    try:
        package = importlib.import_module("uv")  # optional: the uv wheel ships its binary
        return str(package.find_uv_bin())
    except (ImportError, AttributeError, FileNotFoundError):
        return None


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _install_steps(checkout: Path, venv: Path) -> tuple[str, list[list[str]]]:
    python = _venv_python(venv)
    uv = _uv()
    if uv is not None:
        return "uv", [
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(python), str(checkout)],
        ]
    return "venv + pip", [
        [sys.executable, "-m", "venv", str(venv)],
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(checkout),
        ],
    ]


def build_environment(checkout: Path, venv: Path, label: str, sha: str) -> tuple[Path, str]:
    """A virtualenv at ``venv`` with ``checkout`` installed non-editable; its python, the tool.

    Raises :class:`~harness.errors.EnvironmentRefused` with the installer's last
    stderr line when a step fails.
    """
    checkout, venv = checkout.absolute(), venv.absolute()
    tool, steps = _install_steps(checkout, venv)
    env = clean_environ(os.environ)
    for argv in steps:
        try:
            completed = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                check=False,
                env=env,
                cwd=venv.parent,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentRefused(
                f"could not build the {label} environment ({sha[:7]}): {exc}", where=argv[0]
            ) from None
        if completed.returncode != 0:
            lines = completed.stderr.strip().splitlines() or [f"exit status {completed.returncode}"]
            raise EnvironmentRefused(
                f"could not install {label} ({sha[:7]}) with {tool}: {lines[-1]}",
                where=" ".join(argv),
                expected="an installable checkout (pyproject.toml) and its dependencies",
            )
    return _venv_python(venv), tool


_PROBE = """\
import importlib.metadata, json, platform, sys
import workloads
names = json.loads(sys.argv[1])
versions = {}
for name in names:
    try:
        versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        versions[name] = "not installed"
print(json.dumps({
    "implementation": platform.python_implementation(),
    "version": platform.python_version(),
    "executable": sys.executable,
    "workloads": workloads.__file__,
    "dependencies": versions,
}))
"""


class _Probe(msgspec.Struct, frozen=True):
    implementation: str
    version: str
    executable: str
    workloads: str
    dependencies: dict[str, str]


def checkout_environment(
    machine: Environment, python: Path, venv: Path, git: GitState
) -> Environment:
    """``machine``'s facts with the checkout's commit, interpreter and installed dependencies.

    Also checks that the checkout's interpreter imports ``workloads`` from its own
    virtualenv (not from our checkout), else :class:`~harness.errors.EnvironmentRefused`.
    """
    python, venv = python.absolute(), venv.absolute()
    env = clean_environ(os.environ)
    completed = subprocess.run(
        [str(python), "-c", _PROBE, json.dumps(list(environment.DEPENDENCIES))],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
        env=env,
        cwd=venv.parent,
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or [f"exit status {completed.returncode}"]
        raise EnvironmentRefused(
            f"the checkout's interpreter failed: {lines[-1]}", where=str(python)
        )
    probe = msgspec.json.decode(completed.stdout.strip().splitlines()[-1], type=_Probe)
    if not Path(probe.workloads).resolve().is_relative_to(venv.resolve()):
        raise EnvironmentRefused(
            f"the checkout's interpreter imports workloads from {probe.workloads}",
            where=str(python),
            expected=f"its own installed copy under {venv}",
        )
    fingerprint = msgspec.structs.replace(
        machine.fingerprint,
        python_implementation=probe.implementation,
        python_version=probe.version,
        dependencies=probe.dependencies,
    )
    return msgspec.structs.replace(
        machine,
        git=git,
        python_implementation=probe.implementation,
        python_version=probe.version,
        python_executable=probe.executable,
        dependencies=probe.dependencies,
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint.digest,
    )


def _available_workloads(checkout: Path) -> frozenset[str]:
    return frozenset(path.stem for path in (checkout / "workloads").glob("*.py"))


@contextlib.contextmanager
def installed_checkout(request: CheckoutRequest) -> Iterator[Checkout]:
    """A worktree of ``request.sha`` and a virtualenv holding it, for the block's duration.

    Guarantee: the worktree is removed when the block is left (see :func:`worktree`);
    the virtualenv lives in ``request.scratch``, which the caller deletes.
    """
    source = request.scratch / f"{request.label}-src"
    venv = request.scratch / f"{request.label}-venv"
    stream = request.progress
    started = time.monotonic()
    stream.write(f"{request.label}: {request.ref} = {request.sha[:12]}: worktree, virtualenv ...\n")
    stream.flush()
    with worktree(request.repo, request.sha, source):
        git = environment.git_state(source)
        python, tool = build_environment(source, venv, request.label, request.sha)
        facts = checkout_environment(request.machine, python, venv, git)
        stream.write(
            f"{request.label}: installed with {tool} in {time.monotonic() - started:.1f} s\n"
        )
        stream.flush()
        yield Checkout(
            label=request.label,
            ref=request.ref,
            sha=request.sha,
            path=source,
            python=python,
            environment=facts,
            workloads=_available_workloads(source),
        )
