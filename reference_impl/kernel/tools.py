"""The allowlisted tools of the kernel: shell, filesystem and HTTP.

Each tool is a small class with a frozen config beside it. Whatever a tool
refuses, it refuses with :class:`~reference_impl.errors.DeniedError`, whose
``rule`` is a stable dotted name a caller can match on:

* shell: ``shell.argv`` (a shell string, an empty argv, a non-string or NUL
  argument), ``shell.executable`` (not allowlisted, or a path that is not
  exactly the allowlisted binary), ``shell.timeout``, ``shell.output_cap``;
* filesystem: ``fs.nul``, ``fs.absolute``, ``fs.traversal`` (any ``..``
  component), ``fs.symlink_escape`` (a symlink that leads out of the root),
  ``fs.special_file`` (a FIFO, socket or device);
* HTTP: ``http.url`` (unparsable), ``http.scheme``, ``http.host``,
  ``http.redirect_scheme``, ``http.redirect_host``, ``http.redirect_limit``.

Every check runs *before* the side effect it guards: no process is started, no
file opened, no client created and no connection made for a denied call.
Failures that are not denials (a missing file, a refused connection) propagate
as the usual ``OSError`` or ``httpx.HTTPError``.

Each tool offers ``statistics()``: a frozen snapshot of its plain counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
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
    "minimal_environment",
]

T = TypeVar("T")
Clock = Callable[[], float]

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


@dataclass(frozen=True, slots=True)
class ShellConfig:
    """What :class:`ShellTool` may run, and within which limits.

    ``allowed_executables`` are bare names (``"echo"``), looked up on the
    ``PATH`` of ``env``. ``env`` is the child's whole environment (a read-only
    copy is kept). ``output_cap_bytes`` bounds stdout (over it, the call is
    denied) and stderr (over it, truncated). ``cwd`` of ``None`` inherits ours.
    """

    allowed_executables: frozenset[str]
    timeout_s: float = 10.0
    output_cap_bytes: int = 1_048_576
    env: Mapping[str, str] = field(default_factory=minimal_environment, hash=False)
    cwd: str | None = None

    def __post_init__(self) -> None:
        for name in self.allowed_executables:
            if not name or os.path.basename(name) != name:
                raise ConfigError(
                    "ShellConfig.allowed_executables", f"{name!r} is not a bare executable name"
                )
        if not self.timeout_s > 0:
            raise ConfigError("ShellConfig.timeout_s", f"must be > 0, got {self.timeout_s}")
        if self.output_cap_bytes < 0:
            raise ConfigError(
                "ShellConfig.output_cap_bytes", f"must be >= 0, got {self.output_cap_bytes}"
            )
        # Frozen means frozen: a caller mutating its dict later changes nothing here.
        object.__setattr__(self, "allowed_executables", frozenset(self.allowed_executables))
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
    * The child gets exactly ``config.env``, no stdin, and a session of its own.
    * On timeout, on stdout over the cap, or on cancellation of the caller, the
      child's whole process group is killed and reaped *before* the exception
      propagates: no process of that group outlives :meth:`run`. A descendant
      that starts a session of its own escapes the kill; its pipes are closed
      on our side, so the call still ends.

    Use one event loop per tool, as with any asyncio object.
    """

    def __init__(self, config: ShellConfig, *, clock: Clock = time.perf_counter) -> None:
        self._config = config
        self._clock = clock
        self._counters = _Counters()
        self._search_path = config.env.get("PATH", DEFAULT_SHELL_PATH)
        # Resolved once: the allowlist names binaries, not strings.
        self._allowed_paths: dict[str, str] = {}
        for name in config.allowed_executables:
            found = shutil.which(name, path=self._search_path)
            if found is not None:
                self._allowed_paths[name] = os.path.abspath(found)

    def statistics(self) -> ToolStatistics:
        """A snapshot of the calls made and the calls denied so far."""
        return ToolStatistics(calls=self._counters.calls, denials=self._counters.denials)

    async def run(self, argv: Sequence[str]) -> ShellResult:
        """Run ``argv`` and return its exit code and output.

        Raises :class:`DeniedError` (``shell.argv``, ``shell.executable``)
        before anything starts, or (``shell.timeout``, ``shell.output_cap``)
        once the child has been killed and reaped. A non-zero exit code is a
        result, not an error.
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
        if candidate is None or os.path.realpath(candidate) != os.path.realpath(allowed_path):
            raise DeniedError(
                "shell.executable", program, f"does not resolve to the allowed {allowed_path}"
            )
        return allowed_path, args


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


@dataclass(frozen=True, slots=True)
class FileSystemConfig:
    """The directory :class:`FileSystemTool` is confined to, and its text encoding."""

    root: str | os.PathLike[str]
    encoding: str = "utf-8"


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
        """The whole content of the regular file ``rel``.

        A FIFO, socket or device is denied (``fs.special_file``): reading one
        could block forever. A directory raises :class:`IsADirectoryError`.
        """
        return _counted(self._counters, lambda: self._read(rel))

    def read_text(self, rel: str | os.PathLike[str]) -> str:
        """The content of ``rel`` decoded with the configured encoding; see :meth:`read_bytes`."""
        return _counted(self._counters, lambda: self._read(rel)).decode(self._config.encoding)

    def write_text(self, rel: str | os.PathLike[str], text: str) -> None:
        """Replace the content of ``rel`` with ``text``, atomically.

        The text goes to a temporary file in the same directory, which then
        replaces the target with :func:`os.replace`: a reader sees the old
        content or the new, never a part. The parent directory must exist. An
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
        # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        with os.fdopen(self._open_nofollow(shown, real, flags), "rb") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
            if not stat.S_ISREG(mode):
                raise DeniedError("fs.special_file", shown, "not a regular file")
            return stream.read()

    def _write(self, rel: str | os.PathLike[str], text: str) -> None:
        _, real = self._confine(rel)
        data = text.encode(self._config.encoding)
        try:
            mode = stat.S_IMODE(os.stat(real).st_mode)
        except FileNotFoundError:
            mode = _NEW_FILE_MODE
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


# ---------------------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where :class:`HttpTool` may connect, and within which limits.

    ``allowed_hosts`` holds exact host names or IP addresses, each optionally
    with a port (``"127.0.0.1"`` allows every port, ``"127.0.0.1:8080"`` only
    that one, ``"[::1]:8080"`` for IPv6). No wildcard, no DNS-based matching.
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
        contacted. Raises :class:`RuntimeError` after :meth:`aclose`.
        """
        if self._closed:
            raise RuntimeError("HttpTool is closed")
        self._counters.calls += 1
        try:
            target = self._check(url, url, "http.scheme", "http.host")
            if self._pooled:
                return await self._follow(self._pooled_client(), target)
            async with self._new_client() as client:
                return await self._follow(client, target)
        except DeniedError:
            self._counters.denials += 1
            raise

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
