"""Flame graphs in the report: readable labels, hover titles, nothing external; the comparison
section in the order a reader acts on it, with "where the time went" (and, in Chromium, a table
that fits the page)."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.bundle.files import HotPathProfile
from harness.judge.where import diff_tree, parse_tree
from harness.report.flame import (
    CHAR_WIDTH,
    LABEL_PADDING,
    MAX_DEPTH,
    MIN_BOX_WIDTH,
    MIN_LABEL_CHARS,
    WIDTH,
    diff_flame_svg,
    fit_label,
    flame_svg,
    profile_groups,
)
from harness.report.html import ReportOptions, write_report

from . import _report_bundles as rb
from . import test_report_browser as browser
from .test_where import frame, scheduler_tree

SVG = "{http://www.w3.org/2000/svg}"
devtools = browser.devtools  # the headless Chromium fixture, used by name


def _svg(text: str) -> ET.Element:
    return ET.fromstring(text)


def _boxes(svg: ET.Element) -> list[tuple[str, float, str]]:
    """Each drawn frame: its hover title, its box width, its label ("" when none)."""
    boxes = []
    for group in svg.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        rect = group.find(f"{SVG}rect")
        label = group.find(f"{SVG}text")
        assert title is not None and rect is not None
        boxes.append(
            (
                title.text or "",
                float(rect.get("width", "0")),
                "" if label is None else label.text or "",
            )
        )
    return boxes


def _wide_tree() -> dict[str, Any]:
    """A root, a long-named child, and 400 children too narrow to draw."""
    tiny = [frame(f"tiny_{i}", f"reference_impl/x.py:{i}", 0.0001) for i in range(400)]
    long_name = frame(
        "a_function_with_a_name_far_too_long_for_its_box" * 3, "workloads/w.py:3", 0.2
    )
    short = frame("ok", "asyncio/events.py:78", 0.5)
    return frame("root", "harness/measure/profiles.py:1", 0.74, short, long_name, *tiny)


def test_every_box_has_a_hover_title_and_a_label_that_fits() -> None:
    tree = parse_tree(json.dumps(_wide_tree()), path="pool", where="test")
    svg = _svg(flame_svg(tree, ident="flame-pool", title="pool"))
    boxes = _boxes(svg)
    assert boxes, "something is drawn"
    for title, width, label in boxes:
        function, where, times = title.split("\n")
        assert where.count(":") == 1 and "% of pool" in times and times.startswith("time ")
        assert width >= MIN_BOX_WIDTH
        assert len(label) * CHAR_WIDTH + 2 * LABEL_PADDING <= width + 1e-9
        if label and label != function:
            assert label.endswith("…") and function.startswith(label[:-1])
    root = next(b for b in boxes if b[0].startswith("root\n"))
    assert root[1] == pytest.approx(WIDTH) and "100.0% of pool" in root[0]
    long_box = next(b for b in boxes if b[0].startswith("a_function_with"))
    assert long_box[2].endswith("…")
    # The 400 tiny frames are left out and counted, never drawn as slivers.
    assert not any(title.startswith("tiny_") for title, _, _ in boxes)
    assert svg.get("data-hidden") == "400"


def test_labels_are_cut_with_an_ellipsis_or_left_out() -> None:
    assert fit_label("commit", 200.0) == "commit"
    cut = fit_label("a_long_function_name", 2 * LABEL_PADDING + 8 * CHAR_WIDTH)
    assert cut == "a_long_…" and len(cut) == 8
    assert fit_label("commit", 2 * LABEL_PADDING + (MIN_LABEL_CHARS - 1) * CHAR_WIDTH) == ""


def test_frames_deeper_than_the_limit_are_left_out() -> None:
    node = frame("leaf", "m.py:1", 1.0)
    for depth in range(MAX_DEPTH + 10):
        node = frame(f"f{depth}", f"m.py:{depth + 2}", 1.0, node)
    svg = _svg(
        flame_svg(parse_tree(json.dumps(node), path="deep", where="t"), ident="d", title="d")
    )
    assert len(_boxes(svg)) == MAX_DEPTH
    assert svg.get("data-hidden") == "11"


def test_a_graph_references_nothing_outside_itself_and_ids_are_its_own() -> None:
    tree = parse_tree(scheduler_tree(0.2), path="scheduler", where="t")
    text = flame_svg(tree, ident="flame-scheduler", title='a <title> & "quotes"')
    _svg(text)  # well-formed XML, the title escaped
    assert re.findall(r"\b(?:href|src)\s*=", text) == []
    assert "url(" not in text and "@import" not in text and "<script" not in text
    assert re.findall(r"https?://[^\"]+", text) == ["http://www.w3.org/2000/svg"]
    assert re.findall(r'\bid="([^"]+)"', text) == ["flame-scheduler", "flame-scheduler-title"]
    assert "monospace" in text and "@font-face" not in text


def _hue(fill: str) -> int:
    match = re.match(r"hsl\((\d+), (\d+)%", fill)
    assert match, fill
    return int(match.group(1)) if int(match.group(2)) else -1  # -1: grey


def test_the_differential_graph_colours_more_red_and_less_blue() -> None:
    base = parse_tree(scheduler_tree(0.01, jitter=0.0), path="scheduler", where="base")
    candidate = parse_tree(scheduler_tree(0.31, jitter=-0.05), path="scheduler", where="cand")
    svg = _svg(diff_flame_svg(diff_tree(base, candidate), ident="diff", title="diff", per="task"))
    fills = {}
    for group in svg.iter(f"{SVG}g"):
        title, rect = group.find(f"{SVG}title"), group.find(f"{SVG}rect")
        assert title is not None and rect is not None
        fills[(title.text or "").split("\n")[0]] = _hue(rect.get("fill", ""))
        assert "own time per task: base " in (title.text or "")
    assert fills["planted_hotspot"] == 0  # more own time: red
    assert fills["commit"] == 215  # 0.05 s less: blue
    assert fills["_run_once"] == -1  # unchanged: grey
    planted = next(g for g in svg.iter(f"{SVG}g") if "planted_hotspot" in ET.tostring(g, "unicode"))
    assert "→ candidate 310 ms (+300 ms)" in ET.tostring(planted, "unicode")


def _profile(path: str, tree: str, description: str = "a hot path") -> HotPathProfile:
    return HotPathProfile(
        path=path, description=description, duration_s=0.5, text=f"{path} text", note="n", tree=tree
    )


def test_legacy_and_pooled_profiles_stand_side_by_side() -> None:
    groups = profile_groups(
        [
            _profile("scheduler", scheduler_tree(0.1, work=200)),
            _profile("pool", ""),
            _profile("scheduler_legacy", scheduler_tree(0.5, work=25)),
            _profile("mcp_hooks", "{not json"),
        ]
    )
    assert [g.path for g in groups] == ["scheduler", "pool", "mcp_hooks"]
    scheduler, pool, hooks = groups
    assert [c.mode for c in scheduler.cards] == ["legacy", "pooled"]
    assert all(f'viewBox="0 0 {WIDTH / 2:g} ' in c.svg for c in scheduler.cards)
    assert (
        "for 25 tasks:" in scheduler.cards[0].caption and "per task" in scheduler.cards[0].caption
    )
    assert pool.cards[0].svg == "" and "text view only" in pool.cards[0].caption
    assert hooks.cards[0].svg == "" and "cannot be drawn" in hooks.cards[0].caption


# -- the report ----------------------------------------------------------------------------


def _comparison_rows() -> list[dict[str, Any]]:
    def row(workload: str, metric: str, verdict: str, ratio: float) -> dict[str, Any]:
        return {
            "workload": workload,
            "metric": metric,
            "statistic": "p95",
            "unit": "s",
            "clock": "wall",
            "rounds": 12,
            "ratio": ratio,
            "ci_low": ratio - 0.03,
            "ci_high": ratio + 0.03,
            "p_raw": 0.001,
            "p_adjusted": 0.004,
            "noise": 0.02,
            "mde": 0.03,
            "rounds_needed": None,
            "threshold": 0.05,
            "verdict": verdict,
            "direction": "lower is better",
        }

    return [
        row("approval_wait", "wait", "no change", 1.0),
        row("gate_throughput", "gates_per_hour_pooled", "inconclusive", 1.02),
        row("hook_latency", "hook_latency_pooled", "faster", 0.9),
        row("pool_overhead", "item_cost_ordered_pool_c16", "slower", 1.03),
        row("prp_end_to_end", "makespan_pooled", "no change", 1.0),
        row("scheduler_latency", "task_latency", "regression", 1.08),
        row("scheduler_throughput", "pyperf", "regression", 1.2),
    ]


def _report(tmp_path: Path, *, base_profiles: bool = True) -> str:
    reports = tmp_path / "reports"
    profiles = [
        _profile("scheduler", scheduler_tree(0.31, work=200)),
        _profile("scheduler_legacy", scheduler_tree(0.9, work=25)),
    ]
    base = rb.build_report_bundle(
        reports,
        "20240101T000000Z-0000000-aaaaaa",
        profiles=[_profile("scheduler", scheduler_tree(0.01, work=200))] if base_profiles else (),
    )
    candidate = rb.build_report_bundle(reports, profiles=profiles)
    document = json.loads(rb.comparison_json(tmp_path / "c.json").read_text())
    document["rows"] = _comparison_rows()
    document["base"]["path"] = str(base)
    (tmp_path / "c.json").write_text(json.dumps(document))
    result = write_report(
        ReportOptions(bundle=candidate, base=tmp_path / "c.json", out=tmp_path / "out" / "r.html")
    )
    return result.html_path.read_text(encoding="utf-8")


def _section(html: str, name: str, following: str) -> str:
    return html[html.index(f'<section id="{name}">') : html.index(f'<section id="{following}">')]


def test_comparison_rows_read_verdict_first_and_no_change_is_folded(tmp_path: Path) -> None:
    section = _section(_report(tmp_path), "comparison", "peers")
    start = section.index('id="comparison-table"')
    main = section[start : section.index("</table>", start)]
    verdicts = re.findall(r'<tr><td><span class="badge \w+">[^a-z]*([a-z ]+)</span>', main)
    assert verdicts == ["regression", "regression", "slower", "faster", "inconclusive"]
    # Within a verdict, the largest change first.
    assert main.index("scheduler_throughput") < main.index("scheduler_latency")
    headers = re.findall(r"<th[^>]*>([^<]+)</th>", main)
    assert headers[0] == "Verdict"
    folded = section[section.index('<details class="folded"') : section.index("</details>")]
    assert "2 row(s) with no change" in folded
    assert folded.count("<tr><td>") == 2 and "approval_wait" in folded


def test_where_the_time_went_names_the_planted_function_and_draws_the_change(
    tmp_path: Path,
) -> None:
    html = _report(tmp_path)
    section = _section(html, "comparison", "peers")
    where = section[section.index('<h3 id="where">') :]
    card = where[where.index('id="where-scheduler"') :]
    assert "scheduler_latency/task_latency/p95 (regression)" in card
    functions = re.findall(r'<tr class="function-row"><td class="mono">(.*?)</td>', card)
    assert functions[0] == "planted_<wbr>hotspot"
    assert '<svg class="flame" id="flame-diff-scheduler"' in card
    # Both regressions of the scheduler link to the block; the hook row has no profiles.
    assert section.count('href="#where-scheduler"') == 2
    hooks = where[where.index('id="where-mcp_hooks"') :]
    assert "neither bundle has a call tree of mcp_hooks" in hooks
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))


def test_profiles_section_draws_a_graph_per_profile_legacy_beside_pooled(tmp_path: Path) -> None:
    html = _report(tmp_path)
    section = _section(html, "profiles", "environment")
    assert section.count('<svg class="flame"') == 2
    assert 'id="flame-scheduler_legacy"' in section and 'id="flame-scheduler"' in section
    assert section.index("flame-scheduler_legacy") < section.index('id="flame-scheduler"')
    assert "legacy and pooled" in section
    assert section.count('<pre class="profile">') == 2  # the text views stay, folded
    external = re.findall(r'(?:src|href)="(?!#)[^"]*"|url\((?!#)', html)
    assert external == []


def test_a_base_without_profiles_says_so_where_it_would_show_them(tmp_path: Path) -> None:
    section = _section(_report(tmp_path, base_profiles=False), "comparison", "peers")
    card = section[section.index('id="where-scheduler"') :]
    assert "the base bundle has no call tree of scheduler" in card
    assert "flame-diff" not in section


# -- in a real browser ------------------------------------------------------------------------


def _nightly_report(tmp_path: Path) -> Path:
    """A 74-row comparison with long real metric names, profiles on both sides."""
    from workloads import registry

    reports = tmp_path / "reports"
    base = rb.build_report_bundle(
        reports,
        "20240101T000000Z-0000000-aaaaaa",
        profiles=[_profile("scheduler", scheduler_tree(0.01, work=200))],
    )
    candidate = rb.build_report_bundle(
        reports,
        profiles=[
            _profile("scheduler", scheduler_tree(0.31, work=200)),
            _profile("scheduler_legacy", scheduler_tree(0.9, work=25)),
        ],
    )
    names = sorted((w, m.name) for w, info in registry.WORKLOADS.items() for m in info.metrics)
    verdicts = ["no change"] * 6 + ["inconclusive", "regression", "slower", "faster", "error"]
    rows = []
    for index in range(74):
        workload, metric = names[index % len(names)]
        verdict = verdicts[index % len(verdicts)]
        rows.append(
            {
                **_comparison_rows()[0],
                "workload": workload,
                "metric": metric,
                "statistic": ("p50", "p95", "p99", "median")[index % 4],
                "ratio": 1234.567 if index == 7 else 1.0 + (index % 7 - 3) / 50,
                "ci_low": 0.000123,
                "ci_high": 12345.678,
                "p_adjusted": 1.23e-05,
                "rounds_needed": 4096 if verdict == "inconclusive" else None,
                "verdict": verdict,
                "error": "the base has no positive value in any round"
                if verdict == "error"
                else None,
            }
        )
    # The regression row is the scheduler's, whatever the registry's names: its hot
    # path's differential flame graph is drawn.
    rows[7].update(workload="scheduler_latency", metric="task_latency")
    document = json.loads(rb.comparison_json(tmp_path / "c.json").read_text())
    document.update(rows=rows, base={"run_id": "base", "path": str(base)})
    (tmp_path / "c.json").write_text(json.dumps(document))
    return write_report(
        ReportOptions(bundle=candidate, base=tmp_path / "c.json", out=tmp_path / "site" / "r.html")
    ).html_path


FITS = """
(() => {
  const out = [];
  for (const table of document.querySelectorAll('table.comparison, table.where-table')) {
    const wrap = table.closest('.table-wrap');
    if (!wrap || !wrap.getClientRects().length) continue;
    const badges = Array.from(table.querySelectorAll('.badge'));
    out.push({
      id: table.id || table.className,
      overflow: wrap.scrollWidth - wrap.clientWidth,
      right: table.getBoundingClientRect().right - wrap.getBoundingClientRect().right,
      firstHeader: table.querySelector('thead th').textContent.trim(),
      badgeOut: badges.filter(b => b.getBoundingClientRect().right >
                                   b.closest('td').getBoundingClientRect().right + 0.5).length,
    });
  }
  return out;
})()
"""


@pytest.mark.slow
@pytest.mark.parametrize("width", [1400, 1024])
def test_comparison_fits_the_page_and_flame_graphs_draw_in_chromium(
    tmp_path: Path, devtools: browser.DevTools, width: int
) -> None:
    page = _nightly_report(tmp_path)
    for domain in ("Runtime", "Network", "Page"):
        devtools.call(f"{domain}.enable")
    devtools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    url = page.resolve().as_uri()
    devtools.call("Page.navigate", url=url)
    devtools.wait_for("Page.loadEventFired")
    devtools.drain(browser.SETTLE_S)
    requests = [
        e["params"]["request"]["url"]
        for e in devtools.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert requests == [url]
    devtools.evaluate("document.querySelector('#comparison-folded').open = true")
    tables = devtools.evaluate(FITS)
    assert {t["id"] for t in tables} >= {"comparison-table", "comparison-folded-table"}
    for table in tables:
        assert table["overflow"] <= 0, table
        assert table["right"] <= 0.5, table
        assert table["badgeOut"] == 0, table
    assert all(t["firstHeader"] == "Verdict" for t in tables if "comparison" in t["id"])
    flames = devtools.evaluate(
        "Array.from(document.querySelectorAll('svg.flame')).map(s => {"
        " const r = s.getBoundingClientRect(); return [s.id, r.width, r.height,"
        " s.querySelectorAll('g > title').length]; })"
    )
    assert {f[0] for f in flames} == {
        "flame-diff-scheduler",
        "flame-scheduler",
        "flame-scheduler_legacy",
    }
    assert all(w > 250 and h > 60 and titles > 5 for _, w, h, titles in flames), flames
    # Labels fit their boxes as the browser lays out the text.
    overflowing = devtools.evaluate(
        "Array.from(document.querySelectorAll('svg.flame g')).filter(g => {"
        " const t = g.querySelector('text'); if (!t) return false;"
        " const r = g.querySelector('rect');"
        " return t.getBBox().x + t.getBBox().width > r.x.baseVal.value + r.width.baseVal.value + 1;"
        "}).length"
    )
    assert overflowing == 0
    shot = devtools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    screenshot = browser._artifacts(tmp_path) / f"comparison-{width}.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
