"""Hostile and ordinary inputs for the allowlisted shell, filesystem and HTTP tools.

Every denial asserts the ``rule`` of the :class:`DeniedError`; nothing asserts on
wall time. HTTP tests talk only to a real server on 127.0.0.1 started here;
``localhost`` plays the disallowed host and is denied before any connection.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    ToolStatistics,
    minimal_environment,
)
from reference_impl.kernel.tools import shell as shell_tool

# ---------------------------------------------------------------------------- shell


def _shell(*names: str, **options: Any) -> ShellTool:
    return ShellTool(ShellConfig(allowed_executables=frozenset(names), **options))


def _run(tool: ShellTool, argv: Any) -> ShellResult:
    return asyncio.run(tool.run(argv))


def _denied_rule(tool: ShellTool, argv: Any) -> str:
    with pytest.raises(DeniedError) as caught:
        _run(tool, argv)
    return caught.value.rule


def test_runs_an_allowed_executable_and_captures_its_output() -> None:
    result = _run(_shell("echo"), ["echo", "hello", "world"])
    assert result.exit_code == 0
    assert result.stdout == b"hello world\n"
    assert result.stderr == b""
    assert result.argv == ("echo", "hello", "world")


def test_an_absolute_path_to_the_allowed_binary_runs() -> None:
    echo = shutil.which("echo", path=tools.DEFAULT_SHELL_PATH)
    assert echo is not None
    assert _run(_shell("echo"), [echo, "ok"]).stdout == b"ok\n"


def test_a_non_zero_exit_is_a_result_not_a_denial() -> None:
    result = _run(_shell("ls"), ["ls", "/nonexistent-path-for-the-shell-tool"])
    assert result.exit_code != 0
    assert result.stderr


def test_the_child_sees_only_the_minimal_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHELL_TOOL_SECRET", "must-not-leak")
    result = _run(ShellTool(ShellConfig(frozenset(), allowed_argvs=frozenset({("env",)}))), ["env"])
    lines = sorted(result.stdout.decode().splitlines())
    assert lines == sorted(f"{key}={value}" for key, value in minimal_environment().items())


def test_the_child_gets_an_explicit_environment_and_later_mutation_is_ignored() -> None:
    env = {"PATH": tools.DEFAULT_SHELL_PATH, "GREETING": "hi"}
    tool = ShellTool(ShellConfig(frozenset(), env=env, allowed_argvs=frozenset({("env",)})))
    env["GREETING"] = "changed"
    lines = _run(tool, ["env"]).stdout.decode().splitlines()
    assert "GREETING=hi" in lines


def test_denies_an_executable_outside_the_allowlist(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    assert _denied_rule(_shell("echo"), ["rm", "-f", str(victim)]) == "shell.executable"
    assert victim.exists()


def test_denies_an_absolute_path_to_a_disallowed_binary() -> None:
    assert _denied_rule(_shell("echo"), ["/bin/sh", "-c", "echo pwned"]) == "shell.executable"


def test_denies_a_relative_path_trick_with_an_allowed_basename(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    fake_echo = tmp_path / "echo"
    fake_echo.write_text(f"#!/bin/sh\ntouch {marker}\n")
    fake_echo.chmod(0o755)
    tool = _shell("echo", cwd=str(tmp_path))
    assert _denied_rule(tool, ["./echo", "hi"]) == "shell.executable"
    assert not marker.exists()


def test_denies_a_symlink_named_like_an_allowed_binary(tmp_path: Path) -> None:
    disguised = tmp_path / "echo"
    disguised.symlink_to("/bin/sh")
    assert _denied_rule(_shell("echo"), [str(disguised), "-c", "true"]) == "shell.executable"


def test_denies_argv_given_as_a_shell_string() -> None:
    assert _denied_rule(_shell("echo"), "echo hello; rm -rf /") == "shell.argv"


@pytest.mark.parametrize("argv", [[], ["echo", "a\x00b"], ["echo", b"bytes"]])
def test_denies_malformed_argv(argv: list[Any]) -> None:
    assert _denied_rule(_shell("echo"), argv) == "shell.argv"


def test_stdout_exactly_at_the_cap_is_kept() -> None:
    result = _run(_shell("head", output_cap_bytes=16), ["head", "-c", "16", "/dev/zero"])
    assert result.stdout == bytes(16)


def test_stdout_one_byte_over_the_cap_is_denied() -> None:
    tool = _shell("head", output_cap_bytes=15)
    assert _denied_rule(tool, ["head", "-c", "16", "/dev/zero"]) == "shell.output_cap"


class _ProcessRecorder:
    """Wraps ``create_subprocess_exec`` to keep the processes it started."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.processes: list[asyncio.subprocess.Process] = []
        real = asyncio.create_subprocess_exec

        async def recording(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
            process = await real(*args, **kwargs)
            self.processes.append(process)
            return process

        monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)


def test_endless_output_over_the_cap_is_killed_and_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _ProcessRecorder(monkeypatch)
    assert _denied_rule(_shell("yes", output_cap_bytes=4096), ["yes"]) == "shell.output_cap"
    [process] = recorder.processes
    assert process.returncode == -signal.SIGKILL


def test_a_command_over_the_timeout_is_killed_and_reaped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _ProcessRecorder(monkeypatch)
    assert _denied_rule(_shell("sleep", timeout_s=0.2), ["sleep", "30"]) == "shell.timeout"
    [process] = recorder.processes
    assert process.returncode == -signal.SIGKILL


def test_cancelling_the_caller_kills_and_reaps_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = _ProcessRecorder(monkeypatch)

    async def scenario() -> None:
        running = asyncio.create_task(_shell("sleep").run(["sleep", "30"]))
        for _ in range(10_000):  # bounded: until the child exists
            if recorder.processes:
                break
            await asyncio.sleep(0)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    asyncio.run(scenario())
    [process] = recorder.processes
    assert process.returncode == -signal.SIGKILL


def test_a_descendant_that_left_the_process_group_cannot_hang_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setsid forks a child in a session of its own, which keeps stdout open after
    # the process group is killed; the call must still end (it lives 1 s, unowned).
    monkeypatch.setattr(shell_tool, "_DRAIN_TIMEOUT_S", 0.05)
    config = ShellConfig(
        frozenset(), timeout_s=0.2, allowed_argvs=frozenset({("setsid", "sleep", "1")})
    )
    assert _denied_rule(ShellTool(config), ["setsid", "sleep", "1"]) == "shell.timeout"


def test_stderr_over_the_cap_is_truncated_not_denied() -> None:
    tool = _shell("ls", output_cap_bytes=8)
    result = _run(tool, ["ls", "/nonexistent-path-for-the-shell-tool"])
    assert len(result.stderr) == 8
    assert result.stderr_truncated


def test_duration_comes_from_the_injected_clock() -> None:
    ticks = iter([10.0, 12.5])
    tool = ShellTool(ShellConfig(frozenset({"echo"})), clock=lambda: next(ticks))
    assert _run(tool, ["echo"]).duration_s == 2.5


def test_shell_statistics_count_calls_and_denials() -> None:
    tool = _shell("echo")
    _run(tool, ["echo"])
    with pytest.raises(DeniedError):
        _run(tool, ["rm"])
    assert tool.statistics() == ToolStatistics(calls=2, denials=1)


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_executables": frozenset({"/bin/echo"})},
        {"allowed_executables": frozenset({""})},
        {"allowed_executables": frozenset({"echo"}), "timeout_s": 0},
        {"allowed_executables": frozenset({"echo"}), "output_cap_bytes": -1},
    ],
)
def test_shell_config_rejects_invalid_values(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ShellConfig(**options)


# ----------------------------------------------------------------------- filesystem


@pytest.fixture
def fs_root(tmp_path: Path) -> Path:
    """A root with one file and one subdirectory, beside an ``outside`` directory."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "data.txt").write_text("inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return root


def _fs(root: Path) -> FileSystemTool:
    return FileSystemTool(FileSystemConfig(root=root))


def _fs_rule(action: Any, *args: Any) -> str:
    with pytest.raises(DeniedError) as caught:
        action(*args)
    return caught.value.rule


def test_reads_writes_and_lists_inside_the_root(fs_root: Path) -> None:
    tool = _fs(fs_root)
    assert tool.read_text("data.txt") == "inside"
    tool.write_text("sub/new.txt", "héllo")
    assert tool.read_bytes("sub/new.txt") == "héllo".encode()
    assert tool.list_dir() == ("data.txt", "sub")
    assert tool.list_dir("sub") == ("new.txt",)


def test_write_replaces_atomically_and_leaves_no_temporary_file(fs_root: Path) -> None:
    tool = _fs(fs_root)
    (fs_root / "data.txt").chmod(0o640)
    tool.write_text("data.txt", "replaced")
    assert (fs_root / "data.txt").read_text() == "replaced"
    assert (fs_root / "data.txt").stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(fs_root)) == ["data.txt", "sub"]


def test_a_failed_write_leaves_no_temporary_file(
    fs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _fs(fs_root)

    def failing_replace(source: str, target: str) -> None:
        raise PermissionError(target)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PermissionError):
        tool.write_text("sub/new.txt", "x")
    assert os.listdir(fs_root / "sub") == []


@pytest.mark.parametrize("rel", ["../outside/secret.txt", "sub/../../outside", "sub/../data.txt"])
def test_denies_any_parent_component(fs_root: Path, rel: str) -> None:
    tool = _fs(fs_root)
    assert _fs_rule(tool.read_text, rel) == "fs.traversal"
    assert _fs_rule(tool.write_text, rel, "x") == "fs.traversal"
    assert _fs_rule(tool.list_dir, rel) == "fs.traversal"


def test_denies_an_absolute_path(fs_root: Path) -> None:
    tool = _fs(fs_root)
    secret = str(fs_root.parent / "outside" / "secret.txt")
    assert _fs_rule(tool.read_text, secret) == "fs.absolute"
    assert _fs_rule(tool.write_text, "/tmp/agent-tool-write", "x") == "fs.absolute"
    assert not os.path.exists("/tmp/agent-tool-write")


def test_denies_a_nul_byte(fs_root: Path) -> None:
    tool = _fs(fs_root)
    assert _fs_rule(tool.read_text, "data.txt\x00.png") == "fs.nul"
    assert _fs_rule(tool.write_text, "a\x00b", "x") == "fs.nul"


def test_denies_a_file_symlink_escaping_the_root(fs_root: Path) -> None:
    (fs_root / "link.txt").symlink_to(fs_root.parent / "outside" / "secret.txt")
    tool = _fs(fs_root)
    assert _fs_rule(tool.read_text, "link.txt") == "fs.symlink_escape"
    assert _fs_rule(tool.write_text, "link.txt", "overwritten") == "fs.symlink_escape"
    assert (fs_root.parent / "outside" / "secret.txt").read_text() == "secret"


def test_denies_a_directory_symlink_escaping_the_root(fs_root: Path) -> None:
    (fs_root / "sub" / "escape").symlink_to(fs_root.parent / "outside")
    tool = _fs(fs_root)
    assert _fs_rule(tool.read_text, "sub/escape/secret.txt") == "fs.symlink_escape"
    assert _fs_rule(tool.list_dir, "sub/escape") == "fs.symlink_escape"
    assert _fs_rule(tool.write_text, "sub/escape/planted.txt", "x") == "fs.symlink_escape"
    assert not (fs_root.parent / "outside" / "planted.txt").exists()


def test_denies_a_dangling_symlink_pointing_outside(fs_root: Path) -> None:
    (fs_root / "dangling").symlink_to(fs_root.parent / "outside" / "not-yet.txt")
    tool = _fs(fs_root)
    assert _fs_rule(tool.write_text, "dangling", "x") == "fs.symlink_escape"
    assert not (fs_root.parent / "outside" / "not-yet.txt").exists()


def test_symlinks_that_stay_inside_the_root_are_followed(fs_root: Path) -> None:
    (fs_root / "alias.txt").symlink_to("data.txt")
    (fs_root / "sub" / "up").symlink_to(fs_root)
    tool = _fs(fs_root)
    assert tool.read_text("alias.txt") == "inside"
    assert tool.read_text("sub/up/data.txt") == "inside"
    assert tool.list_dir("sub/up") == ("alias.txt", "data.txt", "sub")
    tool.write_text("alias.txt", "via link")
    assert (fs_root / "alias.txt").is_symlink()
    assert (fs_root / "data.txt").read_text() == "via link"


def test_a_final_component_swapped_for_a_symlink_after_the_check_is_refused(
    fs_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _fs(fs_root)
    checked = FileSystemTool._confine

    def confine_then_swap(self: FileSystemTool, rel: str) -> tuple[str, str]:
        shown, real = checked(self, rel)
        os.unlink(real)  # the race: replaced by a symlink between check and open
        os.symlink(fs_root.parent / "outside" / "secret.txt", real)
        return shown, real

    monkeypatch.setattr(FileSystemTool, "_confine", confine_then_swap)
    assert _fs_rule(tool.read_text, "data.txt") == "fs.symlink_escape"


def test_denies_reading_a_fifo_without_blocking(fs_root: Path) -> None:
    os.mkfifo(fs_root / "pipe")
    assert _fs_rule(_fs(fs_root).read_bytes, "pipe") == "fs.special_file"


def test_fs_statistics_count_calls_and_denials(fs_root: Path) -> None:
    tool = _fs(fs_root)
    tool.read_text("data.txt")
    with pytest.raises(DeniedError):
        tool.read_text("../x")
    assert tool.statistics() == ToolStatistics(calls=2, denials=1)


def test_the_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        FileSystemTool(FileSystemConfig(root=tmp_path / "missing"))


# ---------------------------------------------------------------------------- HTTP


class _RecordingServer(ThreadingHTTPServer):
    """Records every request path and every accepted connection."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.paths: list[str] = []
        self.connections = 0

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooling is visible per connection
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _RecordingServer

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        port = self.server.port
        redirects = {
            "/to-ok": f"http://127.0.0.1:{port}/ok",
            "/to-ok-relative": "/ok",
            "/twice": "/to-ok",
            "/to-localhost": f"http://localhost:{port}/target",
            "/to-file": "file:///etc/passwd",
            "/loop": "/loop",
        }
        if self.path in redirects:
            self._respond(302, b"moved", {"Location": redirects[self.path]})
        elif self.path == "/big":
            self._respond(200, b"x" * 10_000)
        else:
            self._respond(200, b"hello", {"X-Path": self.path})

    def _respond(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read ``server.paths`` instead."""


@pytest.fixture
def server() -> Iterator[_RecordingServer]:
    """A real HTTP server on 127.0.0.1, an ephemeral port, stopped after the test."""
    recording = _RecordingServer()
    thread = threading.Thread(
        target=recording.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield recording
    finally:
        recording.shutdown()
        recording.server_close()
        thread.join(timeout=5)


def _http(*, pooled: bool = True, **options: Any) -> HttpTool:
    options.setdefault("allowed_hosts", frozenset({"127.0.0.1"}))
    options.setdefault("timeout_s", 5.0)
    return HttpTool(HttpConfig(**options), pooled=pooled)


def _http_rule(tool: HttpTool, url: str) -> str:
    async def attempt() -> None:
        async with tool:
            await tool.get(url)

    with pytest.raises(DeniedError) as caught:
        asyncio.run(attempt())
    return caught.value.rule


@pytest.mark.parametrize("pooled", [True, False])
def test_gets_from_an_allowed_host(server: _RecordingServer, pooled: bool) -> None:
    async def scenario() -> tools.HttpResponse:
        async with _http(pooled=pooled) as tool:
            return await tool.get(server.url("/ok"))

    response = asyncio.run(scenario())
    assert response.status_code == 200
    assert response.body == b"hello"
    assert not response.body_truncated
    assert ("x-path", "/ok") in response.headers
    assert response.url == server.url("/ok")
    assert response.redirects_followed == 0


def test_pooled_mode_opens_one_client_for_many_calls(server: _RecordingServer) -> None:
    async def scenario() -> HttpTool:
        async with _http(pooled=True) as tool:
            assert tool.connections_opened == 0  # lazy: nothing before the first call
            for _ in range(5):
                await tool.get(server.url("/ok"))
            return tool

    tool = asyncio.run(scenario())
    assert tool.connections_opened == 1
    assert server.connections == 1  # one keep-alive TCP connection served all five
    assert tool.statistics() == tools.HttpStatistics(calls=5, denials=0, clients_created=1)


def test_legacy_mode_opens_one_client_per_call(server: _RecordingServer) -> None:
    async def scenario() -> HttpTool:
        async with _http(pooled=False) as tool:
            for _ in range(5):
                await tool.get(server.url("/ok"))
            return tool

    tool = asyncio.run(scenario())
    assert tool.connections_opened == 5
    assert server.connections == 5


def test_a_closed_tool_refuses_calls(server: _RecordingServer) -> None:
    async def scenario() -> None:
        async with _http() as tool:
            await tool.get(server.url("/ok"))
        await tool.get(server.url("/ok"))

    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(scenario())


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/target",
        "http://127.0.0.1:{port}@localhost:{port}/target",  # userinfo that looks allowed
        "http://127.0.0.2:{port}/target",
    ],
)
def test_denies_a_disallowed_host_before_connecting(server: _RecordingServer, url: str) -> None:
    tool = _http()
    assert _http_rule(tool, url.format(port=server.port)) == "http.host"
    assert tool.connections_opened == 0
    assert server.paths == []
    assert tool.statistics().denials == 1


def test_a_port_in_the_allowlist_restricts_the_port(server: _RecordingServer) -> None:
    async def scenario() -> int:
        async with _http(allowed_hosts=frozenset({f"127.0.0.1:{server.port}"})) as tool:
            return (await tool.get(server.url("/ok"))).status_code

    assert asyncio.run(scenario()) == 200
    other_port = _http(allowed_hosts=frozenset({f"127.0.0.1:{server.port + 1}"}))
    assert _http_rule(other_port, server.url("/ok")) == "http.host"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/pub", "/relative"])
def test_denies_a_disallowed_scheme(url: str) -> None:
    assert _http_rule(_http(), url) == "http.scheme"


def test_denies_an_unparsable_url() -> None:
    assert _http_rule(_http(), "http://[::1") == "http.url"


def test_a_scheme_can_be_removed_from_the_allowlist(server: _RecordingServer) -> None:
    https_only = _http(allowed_schemes=frozenset({"https"}))
    assert _http_rule(https_only, server.url("/ok")) == "http.scheme"
    assert server.paths == []


@pytest.mark.parametrize("pooled", [True, False])
def test_follows_a_redirect_to_an_allowed_host(server: _RecordingServer, pooled: bool) -> None:
    async def scenario() -> tuple[tools.HttpResponse, tools.HttpResponse]:
        async with _http(pooled=pooled) as tool:
            absolute = await tool.get(server.url("/twice"))
            relative = await tool.get(server.url("/to-ok-relative"))
            return absolute, relative

    absolute, relative = asyncio.run(scenario())
    assert (absolute.status_code, absolute.body, absolute.redirects_followed) == (200, b"hello", 2)
    assert absolute.url == server.url("/ok")
    assert relative.redirects_followed == 1
    assert server.paths == ["/twice", "/to-ok", "/ok", "/to-ok-relative", "/ok"]


def test_denies_a_redirect_to_a_disallowed_host_before_contacting_it(
    server: _RecordingServer,
) -> None:
    tool = _http()
    assert _http_rule(tool, server.url("/to-localhost")) == "http.redirect_host"
    assert server.paths == ["/to-localhost"]  # "/target" was never requested
    assert tool.statistics() == tools.HttpStatistics(calls=1, denials=1, clients_created=1)


def test_denies_a_redirect_to_a_disallowed_scheme(server: _RecordingServer) -> None:
    assert _http_rule(_http(), server.url("/to-file")) == "http.redirect_scheme"


def test_denies_more_redirects_than_the_limit(server: _RecordingServer) -> None:
    assert _http_rule(_http(max_redirects=2), server.url("/loop")) == "http.redirect_limit"
    assert server.paths == ["/loop"] * 3


def test_the_body_is_capped(server: _RecordingServer) -> None:
    async def scenario() -> tools.HttpResponse:
        async with _http(body_cap_bytes=100) as tool:
            return await tool.get(server.url("/big"))

    response = asyncio.run(scenario())
    assert response.body == b"x" * 100
    assert response.body_truncated


@pytest.mark.parametrize(
    "options",
    [
        {"allowed_hosts": frozenset({"127.0.0.1:http"})},
        {"allowed_hosts": frozenset({""})},
        {"allowed_hosts": frozenset({"h"}), "allowed_schemes": frozenset({"ftp"})},
        {"allowed_hosts": frozenset({"h"}), "max_redirects": -1},
    ],
)
def test_http_config_rejects_invalid_values(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        HttpConfig(**options)
