"""The allowlisted tools of the kernel: shell, filesystem and HTTP.

Each tool is a small class with a frozen config beside it. Whatever a tool
refuses, it refuses with :class:`~reference_impl.errors.DeniedError`, whose
``rule`` is a stable dotted name a caller can match on:

* shell: ``shell.argv`` (a shell string, an empty argv, a non-string or NUL
  argument), ``shell.executable`` (not allowlisted, or a path that is not
  exactly the allowlisted binary), ``shell.trampoline`` (a program that runs
  other programs, allowlisted by name instead of by exact argv),
  ``shell.timeout``, ``shell.output_cap``;
* filesystem: ``fs.nul``, ``fs.absolute``, ``fs.traversal`` (any ``..``
  component), ``fs.symlink_escape`` (a symlink that leads out of the root),
  ``fs.special_file`` (a FIFO, socket or device), ``fs.size`` (a file over
  the read cap), ``fs.directory`` (a write whose target is a directory);
* HTTP: ``http.url`` (unparsable), ``http.scheme``, ``http.host``,
  ``http.redirect_scheme``, ``http.redirect_host``, ``http.redirect_limit``,
  ``http.timeout`` (the whole call, redirects included, over its deadline).

Every check of the request runs *before* the side effect it guards: no process
is started, no file opened, no client created and no connection made for a
call denied by its argv, path or URL. The limits seen only on the way (a
timeout, an output cap, a file's real size or type) stop the call as soon as
they are crossed.
Failures that are not denials (a missing file, a refused connection) propagate
as the usual ``OSError`` or ``httpx.HTTPError``.

Each tool offers ``statistics()``: a frozen snapshot of its plain counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import re
import shutil
import signal
import stat
import tempfile
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from reference_impl.errors import ConfigError, DeniedError

__all__ = [
    "DEFAULT_MAX_READ_BYTES",
    "DEFAULT_SHELL_PATH",
    "FileSystemConfig",
    "FileSystemTool",
    "HttpConfig",
    "HttpResponse",
    "HttpStatistics",
    "HttpTool",
    "ShellConfig",
    "ShellResult",
    "ShellTool",
    "ToolStatistics",
    "is_trampoline",
    "minimal_environment",
]

T = TypeVar("T")
TimeSource = Callable[[], float]

DEFAULT_SHELL_PATH = "/usr/local/bin:/usr/bin:/bin"
_READ_CHUNK_BYTES = 65_536
# After a kill the child's pipes reach end-of-file at once; the bound only
# matters when a descendant left the process group and holds a pipe open.
_DRAIN_TIMEOUT_S = 1.0
_NEW_FILE_MODE = 0o644
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class ToolStatistics:
    """Counters of a shell or filesystem tool: calls made, and how many were denied."""

    calls: int
    denials: int


class _Counters:
    """Plain counters on the hot path; snapshots are taken by ``statistics()``."""

    __slots__ = ("calls", "denials")

    def __init__(self) -> None:
        self.calls = 0
        self.denials = 0


def _counted(tool: _Counters, action: Callable[[], T]) -> T:
    tool.calls += 1
    try:
        return action()
    except DeniedError:
        tool.denials += 1
        raise


# --------------------------------------------------------------------------- shell


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


# ---------------------------------------------------------------------- filesystem


DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileSystemConfig:
    """The directory :class:`FileSystemTool` is confined to, its text encoding and read cap.

    ``max_read_bytes`` is the largest file a read returns (16 MiB by default);
    a larger one is denied (``fs.size``) without being read into memory.
    """

    root: str | os.PathLike[str]
    encoding: str = "utf-8"
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES

    def __post_init__(self) -> None:
        if self.max_read_bytes < 0:
            raise ConfigError(
                "FileSystemConfig.max_read_bytes", f"must be >= 0, got {self.max_read_bytes}"
            )


class FileSystemTool:
    """Reads, writes and lists files under one root directory, and nowhere else.

    A path is relative to the root. Guarantees, checked before any file is
    opened: no NUL byte (``fs.nul``), not absolute (``fs.absolute``), no ``..``
    component at all (``fs.traversal``), and the real path of the whole target,
    every symlink resolved, lies inside the real root (``fs.symlink_escape``).
    Symlinks that stay inside the root are followed. The checked real path is
    then opened with ``O_NOFOLLOW``, so a final component swapped for a symlink
    after the check is refused, not followed; a swap of an intermediate
    directory in that window is not detected (it would need ``openat2``).

    A read returns only a regular file (else ``fs.special_file``, before any
    read that could block) of at most ``max_read_bytes`` (else ``fs.size``;
    at most one byte over the cap is ever read, even from a file that grows
    or lies about its size). A write never targets a directory, the root
    included (``fs.directory``), and its temporary file is created in the
    target's own directory, which is inside the root.

    Operations are synchronous: small local files. An async caller that needs
    to may run them in :func:`asyncio.to_thread`.
    """

    def __init__(self, config: FileSystemConfig) -> None:
        root = os.fspath(config.root)
        if not os.path.isdir(root):
            raise ConfigError("FileSystemConfig.root", f"{root!r} is not a directory")
        self._config = config
        self._root = os.path.realpath(root)
        self._counters = _Counters()

    @property
    def root(self) -> str:
        """The real path of the root directory."""
        return self._root

    def statistics(self) -> ToolStatistics:
        """A snapshot of the calls made and the calls denied so far."""
        return ToolStatistics(calls=self._counters.calls, denials=self._counters.denials)

    def read_bytes(self, rel: str | os.PathLike[str]) -> bytes:
        """The whole content of the regular file ``rel``, at most ``max_read_bytes``.

        A FIFO, socket or device is denied (``fs.special_file``): reading one
        could block forever. A larger file is denied (``fs.size``) after
        reading at most ``max_read_bytes + 1`` of it. A directory raises
        :class:`IsADirectoryError`.
        """
        return _counted(self._counters, lambda: self._read(rel))

    def read_text(self, rel: str | os.PathLike[str]) -> str:
        """The content of ``rel`` decoded with the configured encoding; see :meth:`read_bytes`."""
        return _counted(self._counters, lambda: self._read(rel)).decode(self._config.encoding)

    def write_text(self, rel: str | os.PathLike[str], text: str) -> None:
        """Replace the content of ``rel`` with ``text``, atomically.

        The text goes to a temporary file in the same directory, which then
        replaces the target with :func:`os.replace`: a reader sees the old
        content or the new, never a part. The parent directory must exist; a
        target that is a directory (``""``, ``"."``, ``"sub/"``, a symlink to
        one) is denied (``fs.directory``) before anything is written. An
        existing file keeps its mode; a new one gets ``0o644``. A symlink inside
        the root keeps pointing at its target, whose content is replaced.
        Atomic, not durable: nothing is fsynced.
        """
        _counted(self._counters, lambda: self._write(rel, text))

    def list_dir(self, rel: str | os.PathLike[str] = "") -> tuple[str, ...]:
        """The names in directory ``rel`` (the root by default), sorted."""
        return _counted(self._counters, lambda: self._list(rel))

    def _confine(self, rel: str | os.PathLike[str]) -> tuple[str, str]:
        """``(shown, real)``: the path as given, and its checked real path."""
        path = os.fspath(rel)
        if "\x00" in path:
            raise DeniedError("fs.nul", path, "path contains a NUL byte")
        if os.path.isabs(path) or os.path.splitdrive(path)[0]:
            raise DeniedError("fs.absolute", path, "path must be relative to the root")
        parts = path.replace(os.altsep or os.sep, os.sep).split(os.sep)
        if ".." in parts:
            raise DeniedError("fs.traversal", path, "'..' is not allowed in a path")
        real = os.path.realpath(os.path.join(self._root, path))
        if os.path.commonpath([self._root, real]) != self._root:
            raise DeniedError("fs.symlink_escape", path, f"resolves to {real}, outside the root")
        return path, real

    def _open_nofollow(self, shown: str, real: str, flags: int) -> int:
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(real, flags)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise DeniedError(
                    "fs.symlink_escape", shown, "the final component is a symlink at open time"
                ) from None
            raise

    def _read(self, rel: str | os.PathLike[str]) -> bytes:
        shown, real = self._confine(rel)
        # A socket cannot even be opened (ENXIO): refuse it, and any other
        # special file, by its type first; fstat below re-checks what was opened.
        with contextlib.suppress(FileNotFoundError):
            _require_regular_or_directory(shown, os.stat(real).st_mode)
        # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        cap = self._config.max_read_bytes
        with os.fdopen(self._open_nofollow(shown, real, flags), "rb") as stream:
            status = os.fstat(stream.fileno())
            _require_regular_or_directory(shown, status.st_mode)
            if stat.S_ISDIR(status.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
            if status.st_size > cap:
                raise DeniedError("fs.size", shown, f"{status.st_size} bytes, over the {cap} cap")
            # st_size can lie (procfs says 0) or grow: one byte past the cap proves it.
            data = _read_at_most(stream, cap + 1, size_hint=status.st_size)
            if len(data) > cap:
                raise DeniedError("fs.size", shown, f"more than the {cap}-byte cap")
            return data

    def _write(self, rel: str | os.PathLike[str], text: str) -> None:
        shown, real = self._confine(rel)
        data = text.encode(self._config.encoding)
        # realpath drops a trailing "/" and maps "" and "." to the root, whose
        # os.path.split() would be the root's *parent*: refuse any directory.
        if real == self._root or os.path.isdir(real):
            raise DeniedError("fs.directory", shown, "the write target is a directory")
        try:
            mode = stat.S_IMODE(os.stat(real).st_mode)
        except FileNotFoundError:
            mode = _NEW_FILE_MODE
        # real lies strictly inside the root, so its directory is the root or below it.
        directory, name = os.path.split(real)
        fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                if hasattr(os, "fchmod"):
                    os.fchmod(stream.fileno(), mode)
            os.replace(temp_path, real)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_path)
            raise

    def _list(self, rel: str | os.PathLike[str]) -> tuple[str, ...]:
        shown, real = self._confine(rel)
        if os.listdir in os.supports_fd and hasattr(os, "O_DIRECTORY"):
            fd = self._open_nofollow(shown, real, os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
        else:  # pragma: no cover - not POSIX
            names = os.listdir(real)
        return tuple(sorted(names))


def _read_at_most(stream: io.BufferedReader, limit: int, *, size_hint: int) -> bytes:
    """Up to ``limit`` bytes until end-of-file, never asking for more than ``limit``.

    The first request is the announced size plus one (so an honest file takes
    one read and one end-of-file check), not ``limit``: a buffered read
    allocates what it is asked for, and the cap may be far above the file.
    """
    chunks: list[bytes] = []
    remaining = limit
    request = max(size_hint + 1, _READ_CHUNK_BYTES)
    while remaining > 0:
        chunk = stream.read(min(remaining, request))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
        request = _READ_CHUNK_BYTES
    return b"".join(chunks)


def _require_regular_or_directory(shown: str, mode: int) -> None:
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DeniedError("fs.special_file", shown, "not a regular file")


# ---------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where :class:`HttpTool` may connect, and within which limits.

    ``allowed_hosts`` holds exact host names or IP addresses, each optionally
    with a port (``"127.0.0.1"`` allows every port, ``"127.0.0.1:8080"`` only
    that one, ``"[::1]:8080"`` for IPv6). No wildcard, no DNS-based matching.
    ``timeout_s`` is the deadline of a whole :meth:`HttpTool.get`: connect,
    headers and body of every hop, redirects included.
    """

    allowed_hosts: frozenset[str]
    allowed_schemes: frozenset[str] = frozenset({"http", "https"})
    max_redirects: int = 5
    timeout_s: float = 10.0
    body_cap_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        unsupported = set(self.allowed_schemes) - set(_DEFAULT_PORTS)
        if unsupported:
            raise ConfigError("HttpConfig.allowed_schemes", f"unsupported {sorted(unsupported)}")
        for entry in self.allowed_hosts:
            _parse_host_entry(entry)
        if self.max_redirects < 0:
            raise ConfigError("HttpConfig.max_redirects", f"must be >= 0, got {self.max_redirects}")
        if not self.timeout_s > 0:
            raise ConfigError("HttpConfig.timeout_s", f"must be > 0, got {self.timeout_s}")
        if self.body_cap_bytes < 0:
            raise ConfigError(
                "HttpConfig.body_cap_bytes", f"must be >= 0, got {self.body_cap_bytes}"
            )
        object.__setattr__(self, "allowed_hosts", frozenset(self.allowed_hosts))
        object.__setattr__(self, "allowed_schemes", frozenset(self.allowed_schemes))


def _parse_host_entry(entry: str) -> tuple[str, int | None]:
    """``"host"``, ``"host:port"``, ``"[v6]"`` or ``"[v6]:port"`` to ``(host, port)``."""
    host, port_text = entry, ""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ConfigError("HttpConfig.allowed_hosts", f"bad entry {entry!r}")
        port_text = rest[1:]
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise ConfigError("HttpConfig.allowed_hosts", f"bad entry {entry!r}")
    return host.lower(), int(port_text) if port_text else None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The final response of a :meth:`HttpTool.get`, after any redirects."""

    status_code: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_truncated: bool
    url: str
    redirects_followed: int


@dataclass(frozen=True, slots=True)
class HttpStatistics:
    """Counters of an :class:`HttpTool`: calls, denials, and ``httpx`` clients created."""

    calls: int
    denials: int
    clients_created: int


class HttpTool:
    """GETs URLs on allowlisted hosts, following redirects itself.

    Guarantees:

    * The URL and every redirect target are checked (scheme, then host and
      port) before a request is sent to them; a denied target is never
      contacted. Redirects are followed up to ``max_redirects``, always as GET.
    * ``pooled=True``: one keep-alive ``httpx.AsyncClient`` per tool, created
      at the first allowed request and closed by :meth:`aclose` (or on leaving
      ``async with``). ``pooled=False`` (the legacy behaviour): a new client
      per call, closed before the call returns.
    * The body kept is at most ``body_cap_bytes``; reading stops there.
    * A call ends within ``timeout_s`` of starting, however slowly the server
      drips its headers or body: past it, the request is cancelled, its
      connection closed, and ``http.timeout`` raised. (httpx's own timeouts
      apply per read, so a byte every half second would never trip them.)
    * Proxy and other environment settings are ignored (``trust_env=False``):
      a request goes where its URL says, and nowhere else.

    Network failures propagate as ``httpx.HTTPError``. Use one event loop per tool.
    """

    def __init__(self, config: HttpConfig, *, pooled: bool = True) -> None:
        self._config = config
        self._pooled = pooled
        self._allowed: dict[str, set[int | None]] = {}
        for entry in config.allowed_hosts:
            host, port = _parse_host_entry(entry)
            self._allowed.setdefault(host, set()).add(port)
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._counters = _Counters()
        self._clients_created = 0

    @property
    def pooled(self) -> bool:
        """Whether this tool keeps one client across calls."""
        return self._pooled

    @property
    def connections_opened(self) -> int:
        """How many ``httpx`` clients (connection pools) this tool has created."""
        return self._clients_created

    def statistics(self) -> HttpStatistics:
        """A snapshot of calls, denials and clients created so far."""
        return HttpStatistics(
            calls=self._counters.calls,
            denials=self._counters.denials,
            clients_created=self._clients_created,
        )

    async def __aenter__(self) -> HttpTool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled client, if any. Idempotent; the tool cannot be used after."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def get(self, url: str) -> HttpResponse:
        """GET ``url``, following allowed redirects, and return the final response.

        Raises :class:`DeniedError` (``http.url``, ``http.scheme``,
        ``http.host``, ``http.redirect_scheme``, ``http.redirect_host``,
        ``http.redirect_limit``); a redirect is denied before its target is
        contacted. Raises ``http.timeout`` once ``timeout_s`` has passed since
        the call began, whatever stage it is in. Raises
        :class:`RuntimeError` after :meth:`aclose`.
        """
        if self._closed:
            raise RuntimeError("HttpTool is closed")
        self._counters.calls += 1
        try:
            target = self._check(url, url, "http.scheme", "http.host")
            return await self._get_within_deadline(target, url)
        except DeniedError:
            self._counters.denials += 1
            raise

    async def _get_within_deadline(self, target: httpx.URL, shown: str) -> HttpResponse:
        timeout_s = self._config.timeout_s
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                if self._pooled:
                    return await self._follow(self._pooled_client(), target)
                async with self._new_client() as client:
                    return await self._follow(client, target)
        except TimeoutError:
            if not deadline.expired():
                raise  # not ours: some inner timeout, left as it was
            raise DeniedError(
                "http.timeout", shown, f"no complete response within {timeout_s} s"
            ) from None

    def _new_client(self) -> httpx.AsyncClient:
        self._clients_created += 1
        return httpx.AsyncClient(
            follow_redirects=False, timeout=self._config.timeout_s, trust_env=False
        )

    def _pooled_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _check(
        self, raw: str | httpx.URL, shown: str, scheme_rule: str, host_rule: str
    ) -> httpx.URL:
        try:
            url = httpx.URL(raw)
        except httpx.InvalidURL as error:
            raise DeniedError("http.url", shown, str(error)) from None
        if url.scheme not in self._config.allowed_schemes:
            raise DeniedError(scheme_rule, shown, f"scheme {url.scheme!r} is not allowed")
        ports = self._allowed.get(url.host.lower())
        port = url.port if url.port is not None else _DEFAULT_PORTS[url.scheme]
        if ports is None or not (None in ports or port in ports):
            raise DeniedError(host_rule, shown, f"{url.host}:{port} is not an allowed host")
        return url

    async def _follow(self, client: httpx.AsyncClient, url: httpx.URL) -> HttpResponse:
        cap = self._config.body_cap_bytes
        redirects = 0
        while True:
            async with client.stream("GET", url) as response:
                # Read even a redirect's body (bounded): a fully read response
                # hands its connection back to the pool for the next hop.
                body, truncated = await _read_body(response, cap)
                if response.has_redirect_location:
                    location = response.headers["location"]
                else:
                    return HttpResponse(
                        status_code=response.status_code,
                        headers=tuple(response.headers.multi_items()),
                        body=body,
                        body_truncated=truncated,
                        url=str(url),
                        redirects_followed=redirects,
                    )
            if redirects >= self._config.max_redirects:
                raise DeniedError(
                    "http.redirect_limit", location, f"more than {self._config.max_redirects}"
                )
            try:
                next_url = url.join(location)
            except httpx.InvalidURL as error:
                raise DeniedError("http.url", location, str(error)) from None
            url = self._check(next_url, location, "http.redirect_scheme", "http.redirect_host")
            redirects += 1


async def _read_body(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the (decoded) body; stops reading past the cap."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        room = cap - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
