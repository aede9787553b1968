"""An attacker's inputs for the allowlisted tools (issue 17, items 6, 7 and 8).

Shell: trampolines (``env id``, ``find -exec``, a symlink that hides ``env``)
allowlisted by name. Filesystem: files over the read cap (sparse, or lying
about their size in procfs), special files, writes aimed at a directory or the
root itself. HTTP: a real server on 127.0.0.1 that drips its headers, its body
or its redirects. Nothing asserts on wall time: bytes and requests are counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reference_impl.errors import ConfigError, DeniedError
from reference_impl.kernel import tools
from reference_impl.kernel.tools import (
    FileSystemConfig,
    FileSystemTool,
    HttpConfig,
    HttpTool,
    ShellConfig,
    ShellResult,
    ShellTool,
    is_trampoline,
)

# ---------------------------------------------------------------------------- shell


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The argv of every process the shell tool starts."""
    argvs: list[tuple[Any, ...]] = []
    real = asyncio.create_subprocess_exec

    async def recording(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        argvs.append(args)
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)
    return argvs


def _run(tool: ShellTool, argv: list[str]) -> ShellResult:
    return asyncio.run(tool.run(argv))


def _shell_denial(tool: ShellTool, argv: list[str]) -> DeniedError:
    with pytest.raises(DeniedError) as caught:
        _run(tool, argv)
    return caught.value


def _which(name: str) -> str:
    found = shutil.which(name, path=tools.DEFAULT_SHELL_PATH)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def test_a_trampoline_allowlisted_by_name_cannot_run_an_allowed_program(
    started: list[tuple[Any, ...]],
) -> None:
    tool = ShellTool(ShellConfig(frozenset({"env", "id"})))
    for argv in (["env", "id"], [_which("env"), "id"], ["env"]):
        denial = _shell_denial(tool, argv)
        assert denial.rule == "shell.trampoline"
        assert denial.subject == argv[0]
        assert "env" in str(denial)
    assert started == []
    assert _run(tool, ["id", "-u"]).stdout == f"{os.getuid()}\n".encode()


def test_env_allowlisted_by_name_does_not_run_its_payload(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tool = ShellTool(ShellConfig(frozenset({"env", "touch"})))
    assert _shell_denial(tool, ["env", "touch", str(marker)]).rule == "shell.trampoline"
    assert not marker.exists()


def test_a_symlink_named_env_in_the_cwd_is_still_env(
    tmp_path: Path, started: list[tuple[Any, ...]]
) -> None:
    (tmp_path / "env").symlink_to(_which("env"))
    tool = ShellTool(ShellConfig(frozenset({"env", "id"}), cwd=str(tmp_path)))
    assert _shell_denial(tool, ["./env", "id"]).rule == "shell.trampoline"
    assert started == []


def test_an_innocent_name_for_a_trampoline_binary_is_a_trampoline(
    tmp_path: Path, started: list[tuple[Any, ...]]
) -> None:
    # An allowlisted name that is really env (say a distribution alias on PATH).
    (tmp_path / "innocent").symlink_to(_which("env"))
    env = {"PATH": f"{tmp_path}:{tools.DEFAULT_SHELL_PATH}", "LC_ALL": "C"}
    tool = ShellTool(ShellConfig(frozenset({"innocent", "id"}), env=env))
    denial = _shell_denial(tool, ["innocent", "id"])
    assert denial.rule == "shell.trampoline"
    assert os.path.realpath(_which("env")) in denial.detail
    assert started == []


@pytest.mark.parametrize(
    "argv",
    [
        ["sh", "-c", "id"],
        ["bash", "-c", "id"],
        ["dash", "-c", "id"],
        ["xargs", "id"],
        ["nice", "id"],
        ["nohup", "id"],
        ["timeout", "5", "id"],
        ["setsid", "id"],
        ["stdbuf", "-o0", "id"],
        ["flock", "/tmp", "id"],
        ["taskset", "1", "id"],
        ["ionice", "id"],
        ["chrt", "-o", "0", "id"],
        ["python3", "-c", "import os; os.system('id')"],
        ["perl", "-e", "system('id')"],
        ["awk", 'BEGIN { system("id") }'],
        ["sed", "-n", "1e id", "/etc/hostname"],
        ["git", "-c", "alias.x=!id", "x"],
        ["tar", "-cf", "/dev/null", "--to-command=id", "/etc/hostname"],
        ["busybox", "sh", "-c", "id"],
    ],
    ids=lambda argv: argv[0],
)
def test_known_trampolines_are_refused_by_name(
    argv: list[str], started: list[tuple[Any, ...]]
) -> None:
    _which(argv[0])
    tool = ShellTool(ShellConfig(frozenset({argv[0], "id"})))
    denial = _shell_denial(tool, argv)
    assert (denial.rule, denial.subject) == ("shell.trampoline", argv[0])
    assert started == []


def test_find_runs_by_name_but_not_with_an_exec_action(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    tool = ShellTool(ShellConfig(frozenset({"find"})))
    listed = _run(tool, ["find", str(tmp_path), "-name", "*.txt"])
    assert listed.stdout == f"{tmp_path / 'a.txt'}\n".encode()
    marker = tmp_path / "ran"
    for action in ("-exec", "-execdir", "-ok", "-okdir"):
        argv = ["find", str(tmp_path), "-name", "a.txt", action, "touch", str(marker), ";"]
        denial = _shell_denial(tool, argv)
        assert denial.rule == "shell.trampoline"
        assert action in denial.detail
    assert not marker.exists()


def test_an_exact_argv_runs_a_trampoline_with_those_arguments_only(
    started: list[tuple[Any, ...]],
) -> None:
    env_path = _which("env")
    tool = ShellTool(ShellConfig(frozenset({"id"}), allowed_argvs=frozenset({("env",)})))
    assert b"LC_ALL=C\n" in _run(tool, ["env"]).stdout
    assert b"LC_ALL=C\n" in _run(tool, [env_path]).stdout  # same binary, same argv
    assert _shell_denial(tool, ["env", "id"]).rule == "shell.trampoline"
    assert len(started) == 2


def test_an_exact_argv_of_an_ordinary_program_allows_only_that_argv() -> None:
    tool = ShellTool(ShellConfig(frozenset(), allowed_argvs=frozenset({("echo", "hi")})))
    assert _run(tool, ["echo", "hi"]).stdout == b"hi\n"
    assert _shell_denial(tool, ["echo", "bye"]).rule == "shell.executable"
    assert _shell_denial(tool, ["echo", "hi", "there"]).rule == "shell.executable"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("env", True),
        ("python3.11", True),
        ("pypy3", True),
        ("perl5.36", True),
        ("vim.basic", True),
        ("busybox", True),
        ("find", False),  # only with its -exec family
        ("echo", False),
        ("id", False),
        ("environment", False),
        ("pythonista-report", False),
    ],
)
def test_is_trampoline_matches_whole_names(name: str, expected: bool) -> None:
    assert is_trampoline(name) is expected


@pytest.mark.parametrize(
    "entry",
    ["env", (), ("/usr/bin/env",), ("./env",), ("",), ("env", "a\x00b"), ("env", 1)],
)
def test_shell_config_rejects_malformed_argv_entries(entry: Any) -> None:
    with pytest.raises(ConfigError, match="allowed_argvs"):
        ShellConfig(frozenset(), allowed_argvs=frozenset({entry}))


# ----------------------------------------------------------------------- filesystem


class _CountingReader:
    """A file object that counts the bytes its reads returned."""

    def __init__(self, wrapped: io.BufferedReader, counts: list[int]) -> None:
        self._wrapped = wrapped
        self._counts = counts

    def __enter__(self) -> _CountingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._wrapped.close()

    def fileno(self) -> int:
        return self._wrapped.fileno()

    def read(self, size: int = -1) -> bytes:
        chunk = self._wrapped.read(size)
        self._counts.append(len(chunk))
        return chunk


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every read the filesystem tool makes from a file it opened."""
    counts: list[int] = []
    real = os.fdopen

    def counting_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        stream = real(fd, *args, **kwargs)
        mode = args[0] if args else kwargs.get("mode", "r")
        return _CountingReader(stream, counts) if "r" in mode else stream

    monkeypatch.setattr(os, "fdopen", counting_fdopen)
    return counts


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "data.txt").write_text("inside")
    return root


def _fs_denial(action: Callable[..., object], *args: Any) -> DeniedError:
    with pytest.raises(DeniedError) as caught:
        action(*args)
    return caught.value


def test_the_default_read_cap_is_16_mib(fs_root: Path) -> None:
    assert FileSystemConfig(root=fs_root).max_read_bytes == 16 * 1024 * 1024


def test_a_300_mb_file_is_denied_without_being_read(fs_root: Path, bytes_read: list[int]) -> None:
    with open(fs_root / "huge.bin", "wb") as huge:
        huge.truncate(300 * 1024 * 1024)  # sparse: no disk used
    tool = FileSystemTool(FileSystemConfig(root=fs_root))
    assert _fs_denial(tool.read_bytes, "huge.bin").rule == "fs.size"
    assert _fs_denial(tool.read_text, "huge.bin").rule == "fs.size"
    assert sum(bytes_read) == 0
    assert tool.statistics().denials == 2


def test_a_file_exactly_at_the_cap_is_read_and_one_byte_more_is_denied(fs_root: Path) -> None:
    (fs_root / "ten.bin").write_bytes(b"0123456789")
    (fs_root / "eleven.bin").write_bytes(b"0123456789A")
    tool = FileSystemTool(FileSystemConfig(root=fs_root, max_read_bytes=10))
    assert tool.read_bytes("ten.bin") == b"0123456789"
    assert _fs_denial(tool.read_bytes, "eleven.bin").rule == "fs.size"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux procfs")
def test_a_file_that_lies_about_its_size_is_read_only_one_byte_past_the_cap(
    bytes_read: list[int],
) -> None:
    # procfs files report st_size 0 whatever their content (status is ~1 KiB).
    tool = FileSystemTool(FileSystemConfig(root="/proc/self", max_read_bytes=64))
    assert os.stat("/proc/self/status").st_size == 0
    assert _fs_denial(tool.read_bytes, "status").rule == "fs.size"
    assert 0 < sum(bytes_read) <= 65
    whole = FileSystemTool(FileSystemConfig(root="/proc/self")).read_bytes("status")
    assert whole.startswith(b"Name:") and len(whole) > 65


def test_a_fifo_and_a_symlink_to_it_are_denied_without_blocking(fs_root: Path) -> None:
    os.mkfifo(fs_root / "pipe")
    (fs_root / "sub" / "to-pipe").symlink_to(fs_root / "pipe")
    tool = FileSystemTool(FileSystemConfig(root=fs_root))
    assert _fs_denial(tool.read_bytes, "pipe").rule == "fs.special_file"
    assert _fs_denial(tool.read_text, "sub/to-pipe").rule == "fs.special_file"


def test_a_unix_socket_is_denied(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    if len(str(root / "s")) >= 100:
        pytest.skip("tmp path too long for an AF_UNIX address")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(root / "s"))
        tool = FileSystemTool(FileSystemConfig(root=root))
        assert _fs_denial(tool.read_bytes, "s").rule == "fs.special_file"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_are_denied_without_reading(bytes_read: list[int]) -> None:
    tool = FileSystemTool(FileSystemConfig(root="/dev"))
    for device in ("zero", "null", "urandom"):
        assert _fs_denial(tool.read_bytes, device).rule == "fs.special_file"
    assert bytes_read == []


@pytest.mark.parametrize("rel", ["", ".", "./", "sub", "sub/", "sub/.", "sub/up", "alias"])
def test_a_write_aimed_at_a_directory_is_denied_before_anything_is_written(
    fs_root: Path, rel: str
) -> None:
    (fs_root / "sub" / "up").symlink_to(fs_root)
    (fs_root / "alias").symlink_to("sub")
    before_parent = sorted(os.listdir(fs_root.parent))
    before_root = sorted(os.listdir(fs_root))
    tool = FileSystemTool(FileSystemConfig(root=fs_root))
    denial = _fs_denial(tool.write_text, rel, "planted")
    assert (denial.rule, denial.subject) == ("fs.directory", rel)
    assert sorted(os.listdir(fs_root.parent)) == before_parent
    assert sorted(os.listdir(fs_root)) == before_root
    assert sorted(os.listdir(fs_root / "sub")) == ["up"]


def test_the_temporary_file_is_created_in_the_targets_own_directory(
    fs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directories: list[str] = []
    real = tempfile.mkstemp

    def recording(*, dir: str, prefix: str, suffix: str) -> tuple[int, str]:
        directories.append(dir)
        return real(dir=dir, prefix=prefix, suffix=suffix)

    monkeypatch.setattr(tempfile, "mkstemp", recording)
    (fs_root / "alias").symlink_to("sub")
    tool = FileSystemTool(FileSystemConfig(root=fs_root))
    tool.write_text("top.txt", "1")
    tool.write_text("alias/deep.txt", "2")
    assert directories == [tool.root, os.path.join(tool.root, "sub")]
    assert (fs_root / "sub" / "deep.txt").read_text() == "2"


def test_filesystem_config_rejects_a_negative_cap(fs_root: Path) -> None:
    with pytest.raises(ConfigError, match="max_read_bytes"):
        FileSystemConfig(root=fs_root, max_read_bytes=-1)


# ---------------------------------------------------------------------------- HTTP

_DRIP_INTERVAL_S = 0.2
_DRIP_LIMIT = 50  # the test's bound on the server: 10 s if the deadline were ignored
_HEADERS = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"


class _SlowServer:
    """An HTTP/1.1 server on 127.0.0.1 that drips, counting what it sent.

    ``/drip-body`` sends its headers at once, then one body byte per interval;
    ``/drip-headers`` sends even its status line one byte per interval;
    ``/hop/<n>`` waits one interval, then redirects to ``/hop/<n + 1>``;
    anything else is a prompt ``200 hello``. Every drip stops at the limit.
    """

    def __init__(self) -> None:
        self.bytes_dripped = 0
        self.requests: list[str] = []
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[_SlowServer]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for handler in self._handlers:
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while request := await reader.readuntil(b"\r\n\r\n"):
                path = request.split(b" ", 2)[1].decode()
                self.requests.append(path)
                await self._respond(path, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up, as it should once its deadline passed
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, path: str, writer: asyncio.StreamWriter) -> None:
        if path == "/drip-body":
            writer.write(_HEADERS)
            await self._drip(writer, b"x" * _DRIP_LIMIT)
        elif path == "/drip-headers":
            await self._drip(writer, _HEADERS)
        elif path.startswith("/hop/"):
            await asyncio.sleep(_DRIP_INTERVAL_S)
            following = int(path.removeprefix("/hop/")) + 1
            writer.write(
                f"HTTP/1.1 302 Found\r\nLocation: /hop/{following}\r\n"
                "Content-Length: 0\r\n\r\n".encode()
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()

    async def _drip(self, writer: asyncio.StreamWriter, payload: bytes) -> None:
        for index in range(len(payload)):
            writer.write(payload[index : index + 1])
            await writer.drain()
            self.bytes_dripped += 1
            await asyncio.sleep(_DRIP_INTERVAL_S)


@dataclass(frozen=True, slots=True)
class _Timeout:
    """A call that hit its deadline, and what the server had done by then."""

    denial: DeniedError
    url: str
    bytes_dripped: int
    requests: tuple[str, ...]


def _slow_call(path: str, *, pooled: bool, **options: Any) -> _Timeout:
    """GET ``path`` from a fresh slow server, expecting a denial."""
    slow = _SlowServer()

    async def scenario() -> _Timeout:
        async with slow.serving():
            config = HttpConfig(allowed_hosts=frozenset({"127.0.0.1"}), **options)
            async with HttpTool(config, pooled=pooled) as tool:
                with pytest.raises(DeniedError) as caught:
                    await tool.get(slow.url(path))
                assert tool.statistics().denials == 1
                # Read now: the server keeps dripping until the test stops it.
                return _Timeout(
                    caught.value, slow.url(path), slow.bytes_dripped, tuple(slow.requests)
                )

    return asyncio.run(scenario())


@pytest.mark.parametrize("pooled", [True, False])
@pytest.mark.parametrize("path", ["/drip-body", "/drip-headers"])
def test_a_dripping_server_cannot_outlast_the_deadline(path: str, pooled: bool) -> None:
    timeout = _slow_call(path, pooled=pooled, timeout_s=0.5)
    assert (timeout.denial.rule, timeout.denial.subject) == ("http.timeout", timeout.url)
    # About 3 bytes at one per 0.2 s; all 50 if the deadline applied per read.
    assert timeout.bytes_dripped < 20
    assert timeout.requests == (path,)


def test_the_deadline_covers_the_whole_redirect_chain() -> None:
    timeout = _slow_call("/hop/0", pooled=True, timeout_s=0.5, max_redirects=40)
    assert timeout.denial.rule == "http.timeout"
    # Each hop alone is well within the deadline; together they are not.
    assert 1 < len(timeout.requests) < 20


def test_a_pooled_tool_still_works_after_a_timeout() -> None:
    slow = _SlowServer()

    async def scenario() -> bytes:
        async with slow.serving():
            config = HttpConfig(allowed_hosts=frozenset({"127.0.0.1"}), timeout_s=0.5)
            async with HttpTool(config, pooled=True) as tool:
                with pytest.raises(DeniedError, match=r"http\.timeout"):
                    await tool.get(slow.url("/drip-body"))
                return (await tool.get(slow.url("/ok"))).body

    assert asyncio.run(scenario()) == b"hello"


def test_a_prompt_server_is_unaffected_by_the_deadline() -> None:
    slow = _SlowServer()

    async def scenario() -> int:
        async with slow.serving():
            config = HttpConfig(allowed_hosts=frozenset({"127.0.0.1"}), timeout_s=5.0)
            async with HttpTool(config) as tool:
                for _ in range(3):
                    await tool.get(slow.url("/ok"))
                return tool.statistics().denials

    assert asyncio.run(scenario()) == 0
    assert slow.requests == ["/ok"] * 3
