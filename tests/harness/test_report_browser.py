"""The HTML report in a real headless Chromium, driven over the Chrome DevTools Protocol.

Asserts what a reader's browser would show: no console error or exception, no
network request but the page itself, the targets table and every chart in the
DOM; and saves a full-page screenshot to ``$AGENTBENCH_ARTIFACTS`` (default: the
test's temporary directory; never the repository).

Chromium is Debian's (``.ci/run`` installs it). Without it the test fails when
``CI`` is set and skips otherwise. Every wait is bounded; the browser is killed
in a finalizer whatever happens.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.measure.profiles import profile_hot_paths
from harness.report.html import ReportOptions, write_report

from . import _report_bundles as rb

pytestmark = pytest.mark.slow

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--mute-audio",
    "--window-size=1280,900",
    "--remote-debugging-port=0",
)
START_TIMEOUT_S = 30.0
LOAD_TIMEOUT_S = 60.0
SETTLE_S = 1.0


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the report's browser test must run)")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    _unavailable("chromium not found: install Debian's `chromium` (.ci/run does)")
    raise AssertionError("unreachable")


@dataclass
class DevTools:
    """One page's DevTools connection: commands, and every event seen so far."""

    socket: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0

    def _receive(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no DevTools message in time")
        self.socket.settimeout(remaining)
        message: dict[str, Any] = json.loads(self.socket.recv())
        return message

    def call(self, method: str, timeout_s: float = LOAD_TIMEOUT_S, **params: Any) -> Any:
        """Send ``method`` and return its result (events received meanwhile are kept)."""
        self._next_id += 1
        ident = self._next_id
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._receive(deadline)
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method} failed: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout_s: float = LOAD_TIMEOUT_S) -> dict[str, Any]:
        """The first event ``method`` (already seen or next to come)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._receive(deadline)
            self.events.append(message)
            if message.get("method") == method:
                return message

    def drain(self, seconds: float) -> None:
        """Keep the events of the next ``seconds`` (late console messages, requests)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._receive(deadline))
            except (TimeoutError, OSError):
                return
            except Exception as exc:  # websocket's own timeout type
                if type(exc).__name__ == "WebSocketTimeoutException":
                    return
                raise

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@pytest.fixture
def devtools(tmp_path: Path) -> Iterator[DevTools]:
    """A fresh headless Chromium, its blank page attached; killed afterwards, always."""
    chromium = _chromium()
    try:
        import websocket
    except ModuleNotFoundError:
        _unavailable("websocket-client is not installed: pip install -e '.[test]'")
        raise
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    socket = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None:
                raise AssertionError(
                    f"chromium exited with {process.returncode}: "
                    + (tmp_path / "chromium.log").read_text(errors="replace")[-2000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"chromium wrote no DevToolsActivePort in {START_TIMEOUT_S}s")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        browser = websocket.create_connection(
            f"ws://127.0.0.1:{port}" + port_file.read_text().splitlines()[1],
            timeout=START_TIMEOUT_S,
            suppress_origin=True,
        )
        try:
            session = DevTools(browser)
            targets = session.call("Target.getTargets", START_TIMEOUT_S)["targetInfos"]
            page = next(t for t in targets if t["type"] == "page")
        finally:
            browser.close()
        socket = websocket.create_connection(
            f"ws://127.0.0.1:{port}/devtools/page/{page['targetId']}",
            timeout=START_TIMEOUT_S,
            suppress_origin=True,
        )
        yield DevTools(socket)
    finally:
        if socket is not None:
            socket.close()
        process.kill()
        process.wait(timeout=30)
        log.close()


def _artifacts(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("AGENTBENCH_ARTIFACTS") or tmp_path / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_report_in_chromium_has_no_error_no_request_and_every_chart(
    tmp_path: Path, devtools: DevTools
) -> None:
    reports = tmp_path / "reports"
    captured = profile_hot_paths()  # as `harness run` captures them into its bundle
    bundle = rb.build_history(reports, runs=5, profiles=captured)[-1]
    comparison = rb.comparison_json(tmp_path / "comparison.json", warnings=["demo warning"])
    result = write_report(
        ReportOptions(bundle=bundle, base=comparison, out=tmp_path / "site" / "report.html")
    )
    page_url = result.html_path.resolve().as_uri()
    html = result.html_path.read_text(encoding="utf-8")
    charts_rendered = html.count('class="chart"')

    for domain in ("Runtime", "Log", "Network", "Page"):
        devtools.call(f"{domain}.enable")
    devtools.call("Page.navigate", url=page_url)
    devtools.wait_for("Page.loadEventFired")
    devtools.drain(SETTLE_S)

    console_errors = [
        event["params"]
        for event in devtools.events
        if (
            event.get("method") == "Runtime.consoleAPICalled"
            and event["params"].get("type") in ("error", "assert")
        )
        or event.get("method") == "Runtime.exceptionThrown"
        or (
            event.get("method") == "Log.entryAdded"
            and event["params"]["entry"].get("level") == "error"
        )
    ]
    assert console_errors == []

    requests = [
        event["params"]["request"]["url"]
        for event in devtools.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert requests == [page_url], f"requests other than the page itself: {requests}"

    assert devtools.evaluate("document.querySelectorAll('#targets-table').length") == 1
    assert devtools.evaluate(
        "document.querySelectorAll('#targets-table tbody tr.target-row').length"
    ) == len(rb.TARGETS)
    svg_count = devtools.evaluate("document.querySelectorAll('svg.chart').length")
    assert svg_count == charts_rendered
    assert svg_count == (len(rb.PAIR_WORKLOADS) + rb.MANY_VALUE_METRICS + len(rb.TARGETS) + 1 + 1)
    # Every chart is laid out (drawn with a size), not merely present.
    sizes = devtools.evaluate(
        "Array.from(document.querySelectorAll('svg.chart'))"
        ".map(e => e.getBoundingClientRect()).map(r => r.width > 100 && r.height > 50)"
    )
    assert all(sizes)
    sections = devtools.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
    assert sections[0] == "verdict" and "environment" in sections
    assert devtools.evaluate("document.querySelectorAll('pre.profile').length") == len(captured)

    metrics = devtools.call("Page.getLayoutMetrics")
    content = metrics.get("cssContentSize") or metrics["contentSize"]
    width, height = 1280, int(min(content["height"], 16000))
    devtools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = devtools.call(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    )
    screenshot = _artifacts(tmp_path) / "report.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    shutil.copy(result.html_path, screenshot.with_name("report.html"))
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
