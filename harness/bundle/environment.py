"""The facts of the machine and the code a run measured: what a bundle's manifest records.

Guarantees:

* :func:`collect` never fails for want of git or pyperf's system report: outside
  a repository (or without ``git``) the git facts are ``None``; a
  ``pyperf system show`` that fails or outlasts its timeout gives an empty list
  of tuning warnings and a note saying why.
* The :class:`Fingerprint` holds exactly the facts that must match for two runs
  to be comparable (CPU model and count, OS, kernel, Python implementation and
  version, dependency versions); :attr:`Fingerprint.digest` is the first 16 hex
  digits of the sha256 of its canonical JSON, stable across processes.
* Records are frozen msgspec structs: encoded into ``manifest.json`` and decoded
  back, type-checked, by :mod:`harness.bundle.files`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import msgspec

from workloads import registry

__all__ = [
    "DEPENDENCIES",
    "Environment",
    "Fingerprint",
    "GitState",
    "collect",
    "dependency_versions",
    "git_state",
    "project_root",
    "system_tuning_warnings",
]

DEPENDENCIES = (
    "pyperf",
    "opentelemetry-sdk",
    "pandas",
    "numpy",
    "scipy",
    "msgspec",
    "httpx",
    "jinja2",
    "pyinstrument",
    # The peers of the peer workloads (the optional `peers` group): the report names
    # the version measured against, and a new version makes runs incomparable.
    "langgraph",
)
GIT_TIMEOUT_S = 10.0
SYSTEM_SHOW_TIMEOUT_S = 30.0
_CLOSING_LINES = ('Run "', "OK! ")
_KEPT_SECTIONS = {"Advices": "advice", "Warnings": "warning", "Errors": "error"}
# pyperf system show's exit statuses.
_SYSTEM_SHOW_STATUS = {0: "tuned", 1: "errors", 2: "not tuned for benchmarking"}


class GitState(msgspec.Struct, frozen=True, kw_only=True):
    """The code's revision; every field None outside a git work tree."""

    sha: str | None
    branch: str | None
    dirty: bool | None

    @property
    def short_sha(self) -> str:
        """The first 7 hex digits of the sha, or ``nogit``."""
        return self.sha[:7] if self.sha else "nogit"


class Fingerprint(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The facts that must match for two bundles to be comparable.

    ``event_loop`` is the loop the wall-clock workloads ran on (``harness run
    --loop``): ``asyncio``, or ``uvloop <version>``. The default is left out of
    the encoded fingerprint, so the digest of an asyncio run is what it was
    before the loop was a dimension (stored nights keep matching).
    """

    cpu_model: str
    cpu_count: int
    os: str
    kernel: str
    python_implementation: str
    python_version: str
    dependencies: dict[str, str]
    event_loop: str = "asyncio"

    @property
    def digest(self) -> str:
        """16 hex digits of the sha256 of the canonical (sorted, compact) JSON."""
        canonical = msgspec.json.encode(msgspec.to_builtins(self), order="sorted")
        return hashlib.sha256(canonical).hexdigest()[:16]


class Environment(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the manifest says about where and on what a run ran."""

    git: GitState
    machine: str
    hostname: str
    cpu_model: str
    cpu_count: int
    cpu_affinity: int
    os: str
    kernel: str
    python_implementation: str
    python_version: str
    python_executable: str
    dependencies: dict[str, str]
    system_tuning: list[str]
    system_tuning_note: str
    fingerprint: Fingerprint
    fingerprint_digest: str


def project_root() -> Path:
    """The directory holding the measured packages (the repository in a checkout)."""
    return Path(registry.__file__).resolve().parent.parent


def _git(root: Path, *args: str) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout if completed.returncode == 0 else None


def git_state(root: Path | None = None) -> GitState:
    """The sha, branch and dirty flag of the work tree at ``root`` (None outside git).

    ``branch`` is None on a detached HEAD; ``dirty`` counts untracked files too
    (git-ignored ones, such as ``reports/``, excepted).
    """
    root = project_root() if root is None else root
    sha = _git(root, "rev-parse", "--verify", "HEAD")
    if sha is None:
        return GitState(sha=None, branch=None, dirty=None)
    branch = _git(root, "symbolic-ref", "--short", "-q", "HEAD")
    status = _git(root, "status", "--porcelain")
    return GitState(
        sha=sha.strip(),
        branch=branch.strip() or None if branch is not None else None,
        dirty=None if status is None else bool(status.strip()),
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def dependency_versions(names: tuple[str, ...] = DEPENDENCIES) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def system_tuning_warnings(timeout_s: float = SYSTEM_SHOW_TIMEOUT_S) -> tuple[list[str], str]:
    """pyperf's advice and warnings on the system's tuning, and a note on how it went.

    Runs ``python -m pyperf system show`` and keeps the lines of its "Advices",
    "Warnings" and "Errors" sections (and any other line containing "WARNING"). Never
    raises: a failure gives an empty list and the reason as the note.
    """
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "pyperf", "system", "show"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [], f"pyperf system show outlasted {timeout_s:g} s"
    except OSError as exc:
        return [], f"pyperf system show could not start: {exc}"
    kept: list[str] = []
    section = ""
    lines = completed.stdout.splitlines()
    for index, line in enumerate(lines):
        text = line.strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if text and following and set(following) == {"="}:
            section = text
            continue
        if not text or set(text) == {"="} or text.startswith(_CLOSING_LINES):
            continue
        if section in _KEPT_SECTIONS:
            kept.append(f"{_KEPT_SECTIONS[section]}: {text}")
        elif "WARNING" in text:
            kept.append(text)
    note = _SYSTEM_SHOW_STATUS.get(completed.returncode, f"exit status {completed.returncode}")
    return kept, note


def collect(
    *, root: Path | None = None, system_show: bool = True, event_loop: str = "asyncio"
) -> Environment:
    """The environment of this process and machine (``system_show=False`` skips pyperf's).

    ``event_loop``: the loop the workloads run on, as :attr:`Fingerprint.event_loop`.
    """
    dependencies = dependency_versions()
    implementation = platform.python_implementation()
    version = platform.python_version()
    cpu_model = _cpu_model()
    cpu_count = os.cpu_count() or 0
    fingerprint = Fingerprint(
        cpu_model=cpu_model,
        cpu_count=cpu_count,
        os=platform.system(),
        kernel=platform.release(),
        python_implementation=implementation,
        python_version=version,
        dependencies=dependencies,
        event_loop=event_loop,
    )
    tuning, note = system_tuning_warnings() if system_show else ([], "not run")
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = cpu_count
    return Environment(
        git=git_state(root),
        machine=platform.machine(),
        hostname=platform.node(),
        cpu_model=cpu_model,
        cpu_count=cpu_count,
        cpu_affinity=affinity,
        os=platform.system(),
        kernel=platform.release(),
        python_implementation=implementation,
        python_version=version,
        python_executable=sys.executable,
        dependencies=dependencies,
        system_tuning=tuning,
        system_tuning_note=note,
        fingerprint=fingerprint,
        fingerprint_digest=fingerprint.digest,
    )
