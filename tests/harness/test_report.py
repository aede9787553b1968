"""``harness report``: every section, offline-only HTML, the comparison, the summary, bad input."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.bundle.files import load_bundle
from harness.cli import main
from harness.cli import report as cli_report
from harness.measure.profiles import HotPath, html_is_offline, profile_hot_paths
from harness.report.html import DEFAULT_TREND_RUNS, ReportOptions, Status, write_report
from harness.report.sections import PEER_INSTALL

from . import _report_bundles as rb

SECTIONS = [
    "verdict",
    "targets",
    "pairs",
    "distributions",
    "trends",
    "comparison",
    "peers",
    "determinism",
    "profiles",
    "environment",
]
_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)")
_EXTERNAL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


class _Page(HTMLParser):
    """What the tests check in a page: sections, elements, ids, every URL it could load."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[str] = []
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.urls: list[str] = []
        self.classes: list[str] = []
        self._in_style = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self.sections.append(str(values["id"]))
        if values.get("id"):
            self.ids.append(str(values["id"]))
        if values.get("class"):
            self.classes.extend(str(values["class"]).split())
        for name, value in attrs:
            if value is None:
                continue
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                self.urls.append(value)
            if name == "style":
                self.urls.extend(_URL.findall(value))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls.extend(_URL.findall(data))
            self.urls.extend(re.findall(r"@import\s+['\"]([^'\"]+)", data))
        else:
            self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _render(tmp_path: Path, **options: Any) -> tuple[str, Path]:
    bundle = options.pop("bundle", None) or rb.build_report_bundle(tmp_path / "reports")
    out = tmp_path / "out" / "report.html"
    result = write_report(ReportOptions(bundle=bundle, out=out, **options))
    return result.html_path.read_text(encoding="utf-8"), result.summary_path


def test_report_has_every_section_in_the_reviewers_order(tmp_path: Path) -> None:
    html, _ = _render(tmp_path)
    page = _parse(html)
    assert page.sections == SECTIONS


def test_targets_table_has_one_row_per_target_with_value_bound_and_clock(tmp_path: Path) -> None:
    bundle = rb.build_report_bundle(tmp_path / "reports")
    html, _ = _render(tmp_path, bundle=bundle)
    table = html[
        html.index('id="targets-table"') : html.index("</table>", html.index("targets-table"))
    ]
    assert table.count('class="target-row"') == len(rb.TARGETS)
    for target in rb.TARGETS:
        assert f"<strong>{target.name}</strong>" in table
    assert "wall time" in table and "trace time" in table
    assert "≤ 250 ms" in table and "≥ 30/h" in table
    assert table.count("✓ PASS") == len(rb.TARGETS)
    # The description's "<in workload>" is escaped, not markup.
    assert "&lt;in scheduler_latency&gt;" in table


def test_every_chart_is_inline_svg_and_nothing_else_is_embedded(tmp_path: Path) -> None:
    rb.build_history(tmp_path / "reports", runs=3)
    bundle = sorted(p for p in (tmp_path / "reports").iterdir() if p.is_dir())[2]
    comparison = rb.comparison_json(tmp_path / "comparison.json")
    html, _ = _render(tmp_path, bundle=bundle, base=comparison)
    page = _parse(html)
    expected = (
        len(rb.PAIR_WORKLOADS)  # legacy vs pooled
        + rb.MANY_VALUE_METRICS  # distributions
        + len(rb.TARGETS)  # trends
        + 1  # forest plot
        + 1  # peers
    )
    assert page.classes.count("chart") == expected
    assert page.tags.count("svg") == expected
    for tag in ("script", "img", "link", "iframe", "object", "embed"):
        assert tag not in page.tags
    assert len(page.ids) == len(set(page.ids)), "element ids must be unique across charts"


def test_no_url_in_any_src_href_or_css_url_leaves_the_page(tmp_path: Path) -> None:
    rb.build_history(tmp_path / "reports", runs=2)
    bundle = sorted(p for p in (tmp_path / "reports").iterdir() if p.is_dir())[1]
    html, _ = _render(
        tmp_path, bundle=bundle, base=rb.comparison_json(tmp_path / "comparison.json")
    )
    page = _parse(html)
    assert page.urls, "the page has internal references (section links, SVG ids)"
    external = [url for url in page.urls if _EXTERNAL.match(url) or not url.startswith("#")]
    assert external == []
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
        'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
    )
    assert "https://" not in html


def test_comparison_json_is_rendered_with_method_mde_forest_and_warnings(tmp_path: Path) -> None:
    comparison = rb.comparison_json(
        tmp_path / "comparison.json", warnings=["bundles from different machines"]
    )
    html, summary = _render(tmp_path, base=comparison)
    section = html[html.index('<section id="comparison">') : html.index('<section id="peers">')]
    assert section.count("<tr><td>") == 2
    assert "bootstrap of per-round ratios" in section
    assert "MDE" in section and "3.5%" in section and "4.8%" in section
    assert "[1.060, 1.140]" in section
    assert "✗ regression" in section
    assert 'class="chart"' in section
    assert 'role="alert"' in html and "bundles from different machines" in html
    assert 'class="banner fail"' in html
    text = summary.read_text(encoding="utf-8")
    assert "## Comparison" in text and "| scheduler_latency | task_latency | 1.100 |" in text


def test_comparison_without_regression_passes_and_states_the_mde(tmp_path: Path) -> None:
    html, _ = _render(tmp_path, base=rb.comparison_json(tmp_path / "c.json", regression=False))
    assert 'class="banner pass"' in html
    assert "no regression" in html
    assert "minimum detectable effect" in html


def test_base_bundle_is_compared_through_harness_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = rb.comparison_json(tmp_path / "c.json", regression=False).read_text()
    calls: list[tuple[str, str]] = []

    class _Result:
        def as_json(self) -> Any:
            import json

            return json.loads(document)

    def compare_bundles(base: Any, candidate: Any) -> _Result:
        calls.append((base.manifest.run_id, candidate.manifest.run_id))
        return _Result()

    monkeypatch.setattr("harness.report.comparison.compare_bundles", compare_bundles)
    base = rb.build_report_bundle(tmp_path / "reports", "20240101T000000Z-0000000-aaaaaa")
    html, _ = _render(tmp_path, base=base)
    assert calls == [("20240101T000000Z-0000000-aaaaaa", "20240105T000000Z-0123456-abcdef")]
    assert 'id="comparison-table"' in html and "from harness.judge.compare" in html


def test_peers_absent_say_they_were_not_run_and_how_to_install(tmp_path: Path) -> None:
    bundle = rb.build_report_bundle(tmp_path / "reports", peers=False)
    html, _ = _render(tmp_path, bundle=bundle)
    section = html[html.index('<section id="peers">') : html.index('<section id="determinism">')]
    assert "were not run" in section
    assert PEER_INSTALL.replace("'", "&#39;") in section
    assert "<svg" not in section


def test_peers_present_show_every_ratio_and_the_langgraph_version(tmp_path: Path) -> None:
    html, _ = _render(tmp_path)
    section = html[html.index('<section id="peers">') : html.index('<section id="determinism">')]
    assert "ratio_vs_langgraph" in section and "ratio_vs_langgraph_n16" in section
    assert "overhead_ours" not in section
    assert "LangGraph 0.6.1" in section
    assert section.count("<svg") == 1


def test_trends_read_the_last_runs_of_the_same_branch(tmp_path: Path) -> None:
    paths = rb.build_history(tmp_path / "reports", runs=4, other_branch_runs=2)
    html, _ = _render(tmp_path, bundle=paths[-1], trend_runs=3)
    section = html[html.index('<section id="trends">') : html.index('<section id="comparison">')]
    assert "The last 3 run(s) of branch main" in section
    assert section.count("<svg") == len(rb.TARGETS)
    assert "0000003*" in section  # this run's label
    assert "0000000" not in section  # beyond the last 3
    assert "0000004" not in section  # another branch


def test_no_history_is_said_not_failed(tmp_path: Path) -> None:
    html, _ = _render(tmp_path, history=tmp_path / "none.sqlite")
    section = html[html.index('<section id="trends">') : html.index('<section id="comparison">')]
    assert "No history" in section and "<svg" not in section


def test_divergence_is_shown_in_full_and_fails_the_verdict(tmp_path: Path) -> None:
    bundle = rb.build_report_bundle(tmp_path / "reports", diverged=True)
    html, summary = _render(tmp_path, bundle=bundle)
    section = html[html.index('<section id="determinism">') : html.index('<section id="profiles">')]
    assert "first diverging event #17 (events)" in section
    assert (
        "&#34;task_id&#34;: &#34;t17&#34;" in section
        and "&#34;task_id&#34;: &#34;t18&#34;" in section
    )
    assert section.count("✗ no") == 1
    assert 'class="banner fail"' in html
    assert summary.read_text(encoding="utf-8").startswith("# FAIL")


def test_summary_puts_the_verdict_first_then_the_targets(tmp_path: Path) -> None:
    _, summary = _render(tmp_path)
    lines = summary.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# PASS")
    header = lines.index("| target | value | 95% CI | bound | margin | result | clock | n |")
    rows = lines[header + 2 : header + 2 + len(rb.TARGETS)]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == [t.name for t in rb.TARGETS]


def test_distributions_say_where_their_percentiles_come_from(tmp_path: Path) -> None:
    html, _ = _render(tmp_path)
    section = html[html.index('<section id="distributions">') : html.index('<section id="trends">')]
    assert "samples recorded inside the workload" in section
    assert "pyperf values" in section  # prp_end_to_end records too few samples
    assert section.count("<svg") == rb.MANY_VALUE_METRICS


def test_profiles_captured_by_the_run_are_read_from_the_bundle(tmp_path: Path) -> None:
    captured = profile_hot_paths((HotPath.POOL,))
    bundle = rb.build_report_bundle(tmp_path / "reports", profiles=captured)
    assert load_bundle(bundle).profiles == captured  # stored whole, session JSON too
    tree = json.loads(captured[0].tree)
    assert tree["time"] > 0 and tree["children"]
    assert any("pool.py" in node["where"] for node in _walk(tree))
    result = write_report(ReportOptions(bundle=bundle, out=tmp_path / "r.html"))
    html = result.html_path.read_text(encoding="utf-8")
    section = html[html.index('<section id="profiles">') : html.index('<section id="environment">')]
    assert section.count('<pre class="profile">') == 1
    assert "pool.py" in section
    assert "<iframe" not in html and "<script" not in html


def _walk(tree: dict[str, Any]) -> list[dict[str, Any]]:
    return [tree, *(node for child in tree["children"] for node in _walk(child))]


def test_a_bundle_without_profiles_says_so_and_profiles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_profiling(*_: object) -> None:
        raise AssertionError("the report must not profile anything")

    monkeypatch.setattr("harness.measure.profiles.profile_hot_paths", no_profiling)
    bundle = rb.build_report_bundle(tmp_path / "reports")
    html = write_report(ReportOptions(bundle=bundle, out=tmp_path / "r.html")).html_path
    section = html.read_text(encoding="utf-8").split('<section id="profiles">')[1]
    assert "This bundle has no profiles" in section.split("</section>")[0]


def test_html_is_offline_spots_every_kind_of_external_load() -> None:
    assert html_is_offline("<html><body><a href='#x'>x</a></body></html>")
    assert not html_is_offline('<link rel="stylesheet" href="https://cdn.example/x.css">')
    assert not html_is_offline("<style>@import url('https://fonts.example/css');</style>")
    assert not html_is_offline('<img src="//cdn.example/x.png">')
    assert not html_is_offline("<div style=\"background: url('http://x.example/a.png')\">")


def test_cli_renders_the_latest_bundle_into_the_reports_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    rb.build_report_bundle(reports, "20240101T000000Z-0000000-aaaaaa")
    rb.build_report_bundle(reports, "20240102T000000Z-0000001-bbbbbb", diverged=True)
    (reports / ".tmp-20240109T000000Z-0000009-cccccc").mkdir()
    status = main(["report", "--reports", str(reports)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.splitlines()[0] == "FAIL: replay not deterministic"
    html = (reports / "report.html").read_text(encoding="utf-8")
    assert "20240102T000000Z-0000001-bbbbbb" in html
    assert (reports / "summary.md").is_file()
    load_bundle(reports / "20240102T000000Z-0000001-bbbbbb")  # the bundle is untouched


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error: ")
    return lines[0]


def test_missing_bundle_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["report", str(tmp_path / "nope")])
    assert status == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(tmp_path / "nope") in line and "no bundle directory" in line


def test_empty_reports_dir_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["report", "--reports", str(tmp_path)])
    assert status == 2
    assert "no run bundle found" in _one_error_line(capsys.readouterr().err)


def test_bad_comparison_json_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = rb.build_report_bundle(tmp_path / "reports")
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"schema": 1, "verdict": "pass", "method": "x", "base": {"run_id": "a"},'
        ' "candidate": {"run_id": "b"}, "rows": [{"workload": 3}]}'
    )
    status = main(["report", str(bundle), "--base", str(bad)])
    assert status == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "bad.json: field $.rows[0].workload" in line


def test_missing_base_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = rb.build_report_bundle(tmp_path / "reports")
    status = main(["report", str(bundle), "--base", str(tmp_path / "nope")])
    assert status == 2
    assert "no such bundle or comparison" in _one_error_line(capsys.readouterr().err)


def test_cli_default_trend_runs_is_the_reports() -> None:
    assert cli_report.REPORT_TREND_RUNS == DEFAULT_TREND_RUNS


def test_status_values_are_the_banner_classes() -> None:
    assert [status.value for status in Status] == ["pass", "warn", "fail"]


def test_base_bundle_through_the_real_harness_compare(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    base = rb.build_report_bundle(reports, "20240101T000000Z-0000000-aaaaaa", seed=1)
    candidate = rb.build_report_bundle(reports, "20240102T000000Z-0000001-bbbbbb", seed=2)
    html, _ = _render(tmp_path, bundle=candidate, base=base)
    section = html[html.index('<section id="comparison">') : html.index('<section id="peers">')]
    assert "from harness.judge.compare" in section or "harness compare refused" in section
    if "from harness.judge.compare" in section:
        assert 'id="comparison-table"' in section and "task_latency" in section
