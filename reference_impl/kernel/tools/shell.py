"""The shell tool: allowlisted executables run as real subprocesses, never through a shell.

Its denials are the ``shell.*`` rules listed in :mod:`reference_impl.kernel.tools`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from reference_impl.errors import ConfigError, DeniedError
from reference_impl.kernel.tools.common import _READ_CHUNK_BYTES, ToolStatistics, _Counters

TimeSource = Callable[[], float]

DEFAULT_SHELL_PATH = "/usr/local/bin:/usr/bin:/bin"
# After a kill the child's pipes reach end-of-file at once; the bound only
# matters when a descendant left the process group and holds a pipe open.
_DRAIN_TIMEOUT_S = 1.0


def minimal_environment() -> dict[str, str]:
    """The environment a child gets by default: a fixed ``PATH`` and the C locale.

    Nothing of the parent's environment (tokens, proxies, ``LD_PRELOAD``) leaks in.
    """
    return {"PATH": DEFAULT_SHELL_PATH, "LC_ALL": "C"}


# Programs that run another program chosen by their arguments: allowing one by
# name would allow everything (``env id``, ``sh -c``, ``python -c``, ``git -c
# alias.x=!id x``, ``tar --to-command``, ``sed 's/x/id/e'``). Matched against
# the basename of argv[0] and of the binary it really is. Not exhaustive
# (GTFOBins lists more): a program allowlisted by name is trusted with any
# arguments, so allowlist by name only what cannot start other programs.
_TRAMPOLINES = re.compile(
    r"""
      env | xargs | parallel | nice | nohup | timeout | setsid | stdbuf | unbuffer
    | chroot | unshare | nsenter | taskset | ionice | chrt | prlimit | setpriv | capsh
    | numactl | flock | watch | time | command | exec | eval | script | systemd-run
    | sudo | doas | su | runuser | pkexec | sg | newgrp | firejail | bwrap
    | strace | ltrace | valgrind | gdb | catchsegv
    | sh | ash | bash | rbash | dash | zsh | ksh | mksh | pdksh | csh | tcsh | fish
    | busybox | toybox | coreutils
    | python[0-9.]* | pypy[0-9.]* | perl[0-9.]* | ruby[0-9.]* | irb | php[0-9.]*
    | lua[0-9.]* | luajit | node | nodejs | deno | bun | tclsh[0-9.]* | wish[0-9.]*
    | expect | pwsh | Rscript | java | jshell
    | awk | gawk | mawk | nawk | sed | make | git | tar | zip | rsync | ssh | scp
    | (?:vi|vim|nvim|rvim|view|ex)(?:\.[a-z]+)? | emacs | less | more | man
    """,
    re.VERBOSE,
)
# Multi-call binaries pick their applet from argv[0], which is the allowlisted
# path we execute: their real name says nothing about what runs.
_MULTI_CALL_BINARIES = frozenset({"busybox", "toybox", "coreutils"})
# A program that is a trampoline only through some arguments: by name it runs,
# unless one of these is among its arguments (find's actions are exact tokens).
_TRAMPOLINE_ARGUMENTS = {"find": frozenset({"-exec", "-execdir", "-ok", "-okdir"})}


def is_trampoline(name: str) -> bool:
    """Whether the program ``name`` (a basename) runs other programs by its arguments.

    ``find`` is not one by name: only its ``-exec`` family of actions is.
    """
    return _TRAMPOLINES.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class ShellConfig:
    """What :class:`ShellTool` may run, and within which limits.

    The allowlist has two kinds of entry, each keyed by a bare program name
    looked up on the ``PATH`` of ``env``:

    * ``allowed_executables``: program names (``"echo"``), which run with any
      arguments. A *trampoline* (``env``, ``xargs``, shells, interpreters,
      ``sudo``, ``timeout``, ``git``, ``find -exec``... see
      :func:`is_trampoline`) named here is refused at call time
      (``shell.trampoline``): with free arguments it runs anything.
    * ``allowed_argvs``: exact argvs (``("env",)``, ``("setsid", "sleep",
      "1")``), which run only with exactly those arguments. This is the only
      way to run a trampoline.

    ``env`` is the child's whole environment (a read-only copy is kept).
    ``output_cap_bytes`` bounds stdout (over it, the call is denied) and
    stderr (over it, truncated). ``cwd`` of ``None`` inherits ours.
    """

    allowed_executables: frozenset[str]
    timeout_s: float = 10.0
    output_cap_bytes: int = 1_048_576
    env: Mapping[str, str] = field(default_factory=minimal_environment, hash=False)
    cwd: str | None = None
    allowed_argvs: frozenset[tuple[str, ...]] = frozenset()

    def __post_init__(self) -> None:
        for name in self.allowed_executables:
            if not name or os.path.basename(name) != name:
                raise ConfigError(
                    "ShellConfig.allowed_executables", f"{name!r} is not a bare executable name"
                )
        argvs: set[tuple[str, ...]] = set()
        for entry in self.allowed_argvs:
            argv = () if isinstance(entry, str | bytes) else tuple(entry)
            if (
                not argv
                or not all(isinstance(arg, str) and "\x00" not in arg for arg in argv)
                or not argv[0]
                or os.path.basename(argv[0]) != argv[0]
            ):
                raise ConfigError(
                    "ShellConfig.allowed_argvs",
                    f"{entry!r} is not an argv tuple of str starting with a bare executable name",
                )
            argvs.add(argv)
        if not self.timeout_s > 0:
            raise ConfigError("ShellConfig.timeout_s", f"must be > 0, got {self.timeout_s}")
        if self.output_cap_bytes < 0:
            raise ConfigError(
                "ShellConfig.output_cap_bytes", f"must be >= 0, got {self.output_cap_bytes}"
            )
        # Frozen means frozen: a caller mutating its dict later changes nothing here.
        object.__setattr__(self, "allowed_executables", frozenset(self.allowed_executables))
        object.__setattr__(self, "allowed_argvs", frozenset(argvs))
        object.__setattr__(self, "env", types.MappingProxyType(dict(self.env)))


@dataclass(frozen=True, slots=True)
class ShellResult:
    """How one command ended. ``stderr`` holds at most the output cap."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    stderr_truncated: bool
    duration_s: float


class ShellTool:
    """Runs allowlisted executables as real subprocesses, never through a shell.

    Guarantees:

    * ``argv[0]`` runs only if its basename is allowlisted *and* it resolves to
      the very binary the allowlisted name resolves to on the configured
      ``PATH``: a bare name through :func:`shutil.which`, a name with a path
      separator through its real path (so ``./echo``, or a symlink named
      ``echo`` to another binary, is denied). The resolved absolute path is
      what is executed.
    * The allowlist is per *command line* where the program could run another
      one: an argv runs if ``(name, *argv[1:])`` is exactly one of
      ``allowed_argvs``, or if ``name`` is in ``allowed_executables`` and
      neither ``name`` nor the basename of the binary it really is (say
      ``python3.11``) is a trampoline. So with ``allowed_executables={"env",
      "id"}``, ``env id`` and ``/usr/bin/env id`` are denied
      (``shell.trampoline``), while ``id`` runs.
    * The child gets exactly ``config.env``, no stdin, and a session of its own.
    * On timeout, on stdout over the cap, or on cancellation of the caller, the
      child's whole process group is killed and reaped *before* the exception
      propagates: no process of that group outlives :meth:`run`. A descendant
      that starts a session of its own escapes the kill; its pipes are closed
      on our side, so the call still ends.

    Use one event loop per tool, as with any asyncio object.
    """

    def __init__(self, config: ShellConfig, *, clock: TimeSource = time.perf_counter) -> None:
        self._config = config
        self._clock = clock
        self._counters = _Counters()
        self._search_path = config.env.get("PATH", DEFAULT_SHELL_PATH)
        # Resolved once: the allowlist names binaries, not strings.
        self._allowed_paths: dict[str, str] = {}
        names = config.allowed_executables | {argv[0] for argv in config.allowed_argvs}
        for name in names:
            found = shutil.which(name, path=self._search_path)
            if found is not None:
                self._allowed_paths[name] = os.path.abspath(found)

    def statistics(self) -> ToolStatistics:
        """A snapshot of the calls made and the calls denied so far."""
        return ToolStatistics(calls=self._counters.calls, denials=self._counters.denials)

    async def run(self, argv: Sequence[str]) -> ShellResult:
        """Run ``argv`` and return its exit code and output.

        Raises :class:`DeniedError` (``shell.argv``, ``shell.executable``,
        ``shell.trampoline``) before anything starts, or (``shell.timeout``,
        ``shell.output_cap``) once the child has been killed and reaped. A
        non-zero exit code is a result, not an error.
        """
        self._counters.calls += 1
        try:
            return await self._run(argv)
        except DeniedError:
            self._counters.denials += 1
            raise

    async def _run(self, argv: Sequence[str]) -> ShellResult:
        program, args = self._authorize(argv)
        cap = self._config.output_cap_bytes
        started = self._clock()
        process = await asyncio.create_subprocess_exec(
            program,
            *args[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(self._config.env),
            cwd=self._config.cwd,
            start_new_session=True,
        )
        stdout_stream, stderr_stream = process.stdout, process.stderr
        if stdout_stream is None or stderr_stream is None:  # pragma: no cover - PIPE was asked
            raise RuntimeError("subprocess pipes were not created")
        stderr_task = asyncio.create_task(_read_truncated(stderr_stream, cap))
        try:
            async with asyncio.timeout(self._config.timeout_s):
                stdout = await _read_capped(stdout_stream, cap)
                if stdout is None:
                    raise DeniedError("shell.output_cap", args[0], f"stdout exceeded {cap} bytes")
                exit_code = await process.wait()
                stderr, stderr_truncated = await stderr_task
        except TimeoutError:
            raise DeniedError(
                "shell.timeout", args[0], f"still running after {self._config.timeout_s} s"
            ) from None
        finally:
            await _reap(process, stdout_stream, stderr_task)
        return ShellResult(
            argv=args,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            stderr_truncated=stderr_truncated,
            duration_s=self._clock() - started,
        )

    def _authorize(self, argv: Sequence[str]) -> tuple[str, tuple[str, ...]]:
        if isinstance(argv, str | bytes):
            raise DeniedError("shell.argv", str(argv), "argv must be a sequence, not a string")
        args = tuple(argv)
        if not args:
            raise DeniedError("shell.argv", "", "argv is empty")
        for arg in args:
            if not isinstance(arg, str):
                raise DeniedError("shell.argv", repr(arg), "every argument must be a str")
            if "\x00" in arg:
                raise DeniedError("shell.argv", arg, "argument contains a NUL byte")
        program = args[0]
        allowed_path = self._allowed_paths.get(os.path.basename(program))
        if allowed_path is None:
            raise DeniedError("shell.executable", program, "not an allowlisted executable")
        if os.sep in program or (os.altsep is not None and os.altsep in program):
            base = self._config.cwd or os.getcwd()
            candidate: str | None = os.path.join(base, program)
        else:
            candidate = shutil.which(program, path=self._search_path)
        real_path = os.path.realpath(allowed_path)
        if candidate is None or os.path.realpath(candidate) != real_path:
            raise DeniedError(
                "shell.executable", program, f"does not resolve to the allowed {allowed_path}"
            )
        self._authorize_arguments(program, args, real_path)
        return allowed_path, args

    def _authorize_arguments(self, program: str, args: tuple[str, ...], real_path: str) -> None:
        """Exact argvs first; a name alone never lets a trampoline run."""
        name = os.path.basename(program)
        if (name, *args[1:]) in self._config.allowed_argvs:
            return
        real_name = os.path.basename(real_path)
        if is_trampoline(name) or (
            real_name not in _MULTI_CALL_BINARIES and is_trampoline(real_name)
        ):
            shown = name if real_name == name else f"{name} ({real_path})"
            raise DeniedError(
                "shell.trampoline",
                program,
                f"{shown} runs other programs: allow its exact argv in allowed_argvs",
            )
        exec_arguments = _TRAMPOLINE_ARGUMENTS.get(name, frozenset()) | (
            _TRAMPOLINE_ARGUMENTS.get(real_name, frozenset())
        )
        starter = next((arg for arg in args[1:] if arg in exec_arguments), None)
        if starter is not None:
            raise DeniedError(
                "shell.trampoline",
                program,
                f"{name} {starter} runs other programs: allow its exact argv in allowed_argvs",
            )
        if name not in self._config.allowed_executables:
            raise DeniedError("shell.executable", program, "only exact argvs of it are allowlisted")


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> bytes | None:
    """Everything until end-of-file, or ``None`` as soon as it exceeds ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(_READ_CHUNK_BYTES):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_truncated(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    """The first ``cap`` bytes until end-of-file; the rest is read and dropped."""
    chunks: list[bytes] = []
    size = 0
    truncated = False
    while chunk := await stream.read(_READ_CHUNK_BYTES):
        room = cap - size
        if len(chunk) > room:
            truncated = True
            chunk = chunk[:room]
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), truncated


def _kill_process_group(process: asyncio.subprocess.Process) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            process.kill()
    except ProcessLookupError:
        pass


async def _reap(
    process: asyncio.subprocess.Process,
    stdout: asyncio.StreamReader,
    stderr_task: asyncio.Task[tuple[bytes, bool]],
) -> None:
    """Kill the child's process group if it still runs, settle both pipes, reap it.

    Order matters: before Python 3.12, ``Process.wait()`` returns only once both
    pipes are closed, and a pipe closes only when read to end-of-file; a reader
    that stopped at the output cap leaves the transport paused with a full
    buffer, so waiting before draining would hang. The drain is bounded: a
    descendant that left the process group may hold a pipe open forever, and
    then our ends of the pipes are closed instead.
    """
    if process.returncode is None:
        _kill_process_group(process)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            while await stdout.read(_READ_CHUNK_BYTES):
                pass
            await asyncio.wait({stderr_task})
    if not stderr_task.done():
        stderr_task.cancel()
        await asyncio.wait({stderr_task})
    if not stderr_task.cancelled():
        stderr_task.exception()  # retrieved, so asyncio does not log it as lost
    if not stdout.at_eof() or stderr_task.cancelled():
        # No public API closes the pipes of a Process; its transport's close()
        # does, and lets wait() return. Reached only in the escaped-descendant case.
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()
    await process.wait()
