"""Where the time went: function-level attribution between two profiles, in the comparison's
Markdown and terminal table, and the profiles each side of ``harness interleave`` captures."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.bundle.files import PROFILE_TREE_MAX_BYTES, HotPathProfile, load_bundle
from harness.errors import BundleError
from harness.judge.compare import (
    Comparison,
    ComparisonVerdict,
    Row,
    SideRef,
)
from harness.judge.readout import GITHUB_COMMENT_LIMIT, format_markdown, format_table
from harness.judge.stats import RowVerdict
from harness.judge.where import (
    HOT_PATH_OF_WORKLOAD,
    CallTree,
    attribute,
    diff_tree,
    parse_tree,
    where_of_rows,
)
from harness.measure import interleave as il
from harness.measure.checkout import Checkout
from harness.measure.profiles import Capture, HotPath, capture_in, profile_hot_paths
from harness.measure.sides import no_profiles
from workloads import registry
from workloads.registry import Better

from . import _fake_workload as fake
from .test_interleave import FakeSides, ScriptedMeter, _fake_registry, _git, _options

# -- synthetic call trees ---------------------------------------------------------------


def frame(function: str, where: str, time: float, *children: dict[str, Any]) -> dict[str, Any]:
    """A call-tree node as harness.measure.profiles.call_tree writes it."""
    return {
        "function": function,
        "where": where,
        "time": time,
        "self": time - sum(child["time"] for child in children),
        "children": list(children),
    }


def scheduler_tree(hotspot_s: float, *, jitter: float = 0.0, work: int | None = None) -> str:
    """A scheduler-like profile; ``planted_hotspot`` spends ``hotspot_s`` of its own time."""
    commit = frame("commit", "reference_impl/kernel/scheduler.py:370", 0.30 + jitter)
    encode = frame("encode", "json/encoder.py:183", 0.20 - jitter)
    planted = frame("planted_hotspot", "reference_impl/pool.py:120", hotspot_s)
    sign = frame("_sign", "reference_impl/events.py:161", 0.10 + jitter / 2)
    worker = frame(
        "worker",
        "reference_impl/pool.py:416",
        0.05 + commit["time"] + encode["time"] + planted["time"] + sign["time"],
        commit,
        encode,
        planted,
        sign,
    )
    loop = frame("_run_once", "asyncio/base_events.py:1845", 0.02 + worker["time"], worker)
    root = frame("profile_hot_paths", "harness/measure/profiles.py:142", loop["time"], loop)
    if work is not None:
        root = {**root, "work": work, "work_unit": "task"}
    return json.dumps(root)


def tree(text: str, path: str = "scheduler") -> CallTree:
    return parse_tree(text, path=path, where=f"test profile {path}")


def test_a_planted_hotspot_is_named_first_with_most_of_the_change() -> None:
    base = tree(scheduler_tree(0.01))
    candidate = tree(scheduler_tree(0.31, jitter=0.004))
    attribution = attribute(base, candidate)
    first = attribution.changes[0]
    assert (first.function, first.where) == ("planted_hotspot", "reference_impl/pool.py:120")
    assert first.delta_s == pytest.approx(0.30)
    assert first.share is not None and first.share == pytest.approx(0.30 / 0.302, rel=1e-6)
    assert attribution.change_s == pytest.approx(0.302)
    assert sum(c.share or 0.0 for c in attribution.changes) == pytest.approx(1.0)
    assert attribution.scale == "run"


def test_the_real_planted_slowdown_is_named_first_from_real_profiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The scheduler's own test switch (AGENTBENCH_INJECT_SLOWDOWN) burns CPU in ``_burn``.

    Two real pyinstrument captures of the scheduler hot path, without and with the
    switch: the attribution names ``_burn`` first (its calls to time.thread_time
    count as its own time: C code runs on its caller's behalf).
    """
    monkeypatch.delenv("AGENTBENCH_INJECT_SLOWDOWN", raising=False)
    (base,) = profile_hot_paths((HotPath.SCHEDULER,))
    monkeypatch.setenv("AGENTBENCH_INJECT_SLOWDOWN", "3")
    (candidate,) = profile_hot_paths((HotPath.SCHEDULER,))
    attribution = attribute(tree(base.tree), tree(candidate.tree))
    first = attribution.changes[0]
    assert first.function == "_burn", attribution.changes[:3]
    assert first.where.startswith("reference_impl/kernel/scheduler.py:")
    assert first.base_s == 0.0 and first.delta_s > 0
    assert "both runs did the same work (200 tasks)" in attribution.note


def test_self_frames_and_builtins_fold_into_their_caller_and_siblings_merge() -> None:
    thread_time = frame("thread_time", "<built-in>:0", 0.4)
    self_frame = frame("[self]", "reference_impl/kernel/scheduler.py:None", 0.1)
    burn_a = frame("_burn", "reference_impl/kernel/scheduler.py:494", 0.5, thread_time, self_frame)
    burn_b = frame("_burn", "reference_impl/kernel/scheduler.py:494", 0.2)
    root = frame("run", "asyncio/runners.py:86", 0.7, burn_a, burn_b)
    parsed = tree(json.dumps(root)).root
    (burn,) = parsed.children
    assert (burn.function, burn.children) == ("_burn", ())
    assert burn.time_s == pytest.approx(0.7)
    assert burn.self_s == pytest.approx(0.7)  # 0.4 in thread_time + 0.1 [self] + 0.2
    assert burn.where == "reference_impl/kernel/scheduler.py:494"


def test_a_function_that_moved_lines_is_the_same_function() -> None:
    base = tree(scheduler_tree(0.01))
    moved = scheduler_tree(0.01).replace("reference_impl/pool.py:120", "reference_impl/pool.py:135")
    attribution = attribute(base, tree(moved))
    planted = [c for c in attribution.changes if c.function == "planted_hotspot"]
    assert len(planted) == 1 and planted[0].delta_s == pytest.approx(0.0)
    assert planted[0].where == "reference_impl/pool.py:135"  # the candidate's line is shown


def test_profiles_of_different_work_compare_per_unit() -> None:
    # Twice the tasks in twice the time: no change per task, whatever the totals say.
    base = tree(scheduler_tree(0.01, work=100))
    doubled = json.loads(scheduler_tree(0.01, work=200))

    def scale(node: dict[str, Any]) -> None:
        node["time"] *= 2
        node["self"] *= 2
        for child in node["children"]:
            scale(child)

    scale(doubled)
    attribution = attribute(base, tree(json.dumps(doubled)))
    assert attribution.scale == "task"
    assert "per task" in attribution.note
    assert attribution.base_total_s == pytest.approx(attribution.candidate_total_s)
    assert all(c.delta_s == pytest.approx(0.0) for c in attribution.changes)
    # With the hotspot grown as well, per task it is the one change.
    grown = json.loads(scheduler_tree(0.01, work=200))
    scale(grown)
    worker = grown["children"][0]["children"][0]
    worker["children"][2]["time"] += 0.2
    worker["children"][2]["self"] += 0.2
    attribution = attribute(base, tree(json.dumps(grown)))
    assert attribution.changes[0].function == "planted_hotspot"
    assert attribution.changes[0].delta_s == pytest.approx(0.2 / 200)


def test_changes_that_cancel_out_have_no_share() -> None:
    def two(f_s: float, g_s: float) -> CallTree:
        f = frame("f", "m.py:1", f_s)
        g = frame("g", "m.py:9", g_s)
        return tree(json.dumps(frame("root", "m.py:20", f_s + g_s, f, g)))

    attribution = attribute(two(0.3, 0.3), two(0.4, 0.2))  # +0.1 and -0.1: no net change
    assert [(c.function, c.share) for c in attribution.changes[:2]] == [("f", None), ("g", None)]
    assert [round(c.delta_s, 9) for c in attribution.changes] == [0.1, -0.1, 0.0]
    assert "cancel out" in attribution.note


def test_the_differential_tree_is_the_candidates_with_the_bases_own_time() -> None:
    base = tree(scheduler_tree(0.01))
    candidate = tree(scheduler_tree(0.31))
    diff = diff_tree(base, candidate)
    assert diff.time_s == pytest.approx(candidate.total_s)
    worker = diff.children[0].children[0]
    planted = next(c for c in worker.children if c.function == "planted_hotspot")
    assert planted.base_self_s == pytest.approx(0.01)
    assert planted.self_s == pytest.approx(0.31)
    assert planted.delta_s == pytest.approx(0.30)
    assert worker.children[0].function == "planted_hotspot"  # the largest frame first


@st.composite
def call_trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    names = st.sampled_from(["a", "b", "c", "[self]", "thread_time"])
    function = draw(names) if depth else "root"
    where = (
        "<built-in>:0"
        if function == "thread_time"
        else f"m/{function}.py:{draw(st.integers(1, 3))}"
    )
    children = (
        draw(st.lists(call_trees(depth + 1), max_size=3))
        if depth < 4 and function != "[self]"
        else []
    )
    own = draw(st.floats(0.0, 1.0))
    return frame(function, where, own + sum(c["time"] for c in children), *children)


@given(call_trees(), call_trees())
@settings(max_examples=60, deadline=None)
def test_own_times_add_up_to_the_total_and_the_shares_to_one(
    base_tree: dict[str, Any], candidate_tree: dict[str, Any]
) -> None:
    base, candidate = tree(json.dumps(base_tree)), tree(json.dumps(candidate_tree))
    attribution = attribute(base, candidate)
    assert sum(c.base_s for c in attribution.changes) == pytest.approx(base.total_s)
    assert sum(c.candidate_s for c in attribution.changes) == pytest.approx(candidate.total_s)
    deltas = [abs(c.delta_s) for c in attribution.changes]
    assert deltas == sorted(deltas, reverse=True)
    if all(c.share is not None for c in attribution.changes) and attribution.changes:
        assert sum(c.share or 0.0 for c in attribution.changes) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "a node is list"),
        ('{"function": "f", "where": "x:1", "time": 1, "self": 1}', "children is not a list"),
        (
            '{"function": "f", "where": "x:1", "time": "1", "self": 1, "children": []}',
            "field time is '1'",
        ),
        (
            '{"function": "f", "where": "x:1", "time": 1, "self": 1, "children": [{"where": 1}]}',
            "without function or where",
        ),
        (
            '{"function": "f", "where": "x:1", "time": 1, "self": 1, "children": [], "work": 0, '
            '"work_unit": "task"}',
            "work 0",
        ),
    ],
)
def test_a_malformed_tree_is_one_error_naming_the_profile(text: str, message: str) -> None:
    with pytest.raises(BundleError) as caught:
        parse_tree(text, path="pool", where="candidate profile pool")
    assert message in str(caught.value)
    assert str(caught.value).startswith("candidate profile pool")
    assert "\n" not in str(caught.value)


def _encode(profiles: Sequence[HotPathProfile]) -> str:
    return msgspec.json.encode(list(profiles)).decode()


def _profile(path: str, text: str) -> HotPathProfile:
    return HotPathProfile(
        path=path,
        description=f"{path} profile",
        duration_s=1.0,
        text="text view",
        note="n",
        tree=text,
    )


def test_rows_map_to_their_hot_paths_and_a_missing_side_is_said() -> None:
    assert set(HOT_PATH_OF_WORKLOAD.values()) <= {p.value for p in HotPath}
    assert set(HOT_PATH_OF_WORKLOAD) <= set(registry.WORKLOADS)
    rows = [
        ("scheduler_latency", "scheduler_latency/task_latency/p95", "regression"),
        ("scheduler_throughput", "scheduler_throughput/pyperf/median", "faster"),
        ("hook_latency", "hook_latency/hook_latency_pooled/p95", "slower"),
        ("pool_overhead", "pool_overhead/pyperf/median", "no change"),  # nothing to explain
        ("proof_import", "proof_import/pyperf/median", "regression"),  # no hot path
    ]
    base = [_profile("scheduler", scheduler_tree(0.01))]
    candidate = [_profile("scheduler", scheduler_tree(0.31)), _profile("mcp_hooks", "{")]
    found = where_of_rows(rows, base, candidate)
    assert [entry.path for entry in found] == ["scheduler", "mcp_hooks"]
    scheduler, hooks = found
    assert scheduler.rows == (
        "scheduler_latency/task_latency/p95 (regression)",
        "scheduler_throughput/pyperf/median (faster)",
    )
    assert scheduler.attribution is not None
    assert scheduler.attribution.changes[0].function == "planted_hotspot"
    assert hooks.attribution is None
    assert "the base bundle has no call tree of mcp_hooks" in hooks.note
    assert "candidate profile mcp_hooks" in hooks.note and "not JSON" in hooks.note


# -- the comparison's Markdown and table ---------------------------------------------------


def _row(index: int, verdict: RowVerdict, *, error: str | None = None) -> Row:
    ratio = 1.0 + (index % 9 - 4) / 100
    return Row(
        workload=["scheduler_latency", "pool_overhead", "hook_latency"][index % 3],
        metric=f"metric_number_{index:03d}_with_a_long_descriptive_name",
        statistic="p95",
        unit="s",
        clock="wall",
        rounds=12,
        ratio=ratio,
        ci_low=ratio - 0.02,
        ci_high=ratio + 0.02,
        p_raw=0.001,
        p_adjusted=0.004,
        noise=0.02,
        mde=0.03,
        rounds_needed=None,
        threshold=0.05,
        verdict=verdict,
        direction=Better.LOWER,
        paired=True,
        error=error,
    )


def _comparison(rows: Sequence[Row], base: str = "", candidate: str = "") -> Comparison:
    return Comparison(
        verdict=ComparisonVerdict.REGRESSION,
        method="paired rounds, Wilcoxon signed-rank, Benjamini-Hochberg",
        fdr_q=0.05,
        threshold=0.05,
        paired=True,
        base=SideRef("20240101T000000Z-0000000-aaaaaa", base),
        candidate=SideRef("20240102T000000Z-1111111-bbbbbb", candidate),
        warnings=("a | warning",),
        calibration=None,
        rows=tuple(rows),
        tests=len(rows),
        reasons=("2 regression: ...",),
    )


def _verdicts(count: int) -> list[RowVerdict]:
    cycle = [RowVerdict.NO_CHANGE] * 6 + [
        RowVerdict.FASTER,
        RowVerdict.INCONCLUSIVE,
        RowVerdict.SLOWER,
        RowVerdict.REGRESSION,
    ]
    return [cycle[i % len(cycle)] for i in range(count)]


def test_markdown_reads_in_the_order_people_act_and_fits_a_comment() -> None:
    rows = [_row(i, verdict) for i, verdict in enumerate(_verdicts(200))]
    markdown = format_markdown(_comparison(rows), where=())
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    assert markdown.splitlines()[0] == "**Comparison verdict: regression**"
    assert "> **Warning:** a \\| warning" in markdown
    table = markdown[: markdown.index("<details>")]
    verdicts = [
        line.split(" | ")[0].strip("|* ") for line in table.splitlines() if line.startswith("| ")
    ]
    assert verdicts[0] == "verdict"
    order = ["REGRESSION", "slower", "faster", "inconclusive"]
    assert verdicts[1:] == sorted(verdicts[1:], key=order.index)
    assert verdicts.count("REGRESSION") == 20 and "no change" not in verdicts
    assert "**20 regression**, 20 slower, 20 faster, 20 inconclusive, 120 no change" in markdown
    details = markdown.split("<details>")[1]
    assert "method:" in details and details.rstrip().endswith("</details>")


def test_markdown_longer_than_a_comment_is_cut_with_a_note_and_stays_whole() -> None:
    long_error = "base has no positive value in any round; " * 12
    rows = [
        _row(i, verdict, error=long_error if verdict is RowVerdict.NO_CHANGE else None)
        for i, verdict in enumerate(_verdicts(200))
    ]
    markdown = format_markdown(_comparison(rows), where=())
    assert len(markdown) <= GITHUB_COMMENT_LIMIT
    assert "more row(s) left out: a pull-request comment holds 65536 characters" in markdown
    # The rows to act on survive whole; the folded details lose rows, not their end.
    table = markdown[: markdown.index("<details>")]
    assert table.count("| **REGRESSION** |") == 20
    assert markdown.rstrip().endswith("</details>") and "- method:" in markdown
    small = format_markdown(_comparison(rows), where=(), limit=4000)
    assert len(small) <= 4000 and "left out" in small


def test_markdown_says_where_the_time_went_when_the_bundles_carry_profiles(
    tmp_path: Path,
) -> None:
    base = tmp_path / "base"
    candidate = tmp_path / "candidate"
    for directory, hotspot in ((base, 0.01), (candidate, 0.31)):
        directory.mkdir()
        profile = _profile("scheduler", scheduler_tree(hotspot, work=200))
        (directory / "profiles.json").write_text(_encode([profile]), encoding="utf-8")
    rows = [_row(0, RowVerdict.REGRESSION), _row(3, RowVerdict.NO_CHANGE)]
    markdown = format_markdown(_comparison(rows, str(base), str(candidate)))
    where = markdown[markdown.index("### Where the time went") : markdown.index("<details>")]
    assert markdown.index("| verdict |") < markdown.index("### Where the time went")
    assert "**scheduler** (`scheduler_latency/" in where
    first = next(line for line in where.splitlines() if line.startswith("| `"))
    assert first.startswith("| `planted_hotspot` | `reference_impl/pool.py:120` |")
    assert first.endswith("| 10 ms | 310 ms | +300 ms | 100% |")
    assert "whole run: base" in where and "both runs did the same work (200 tasks)" in where
    # Bundles without profiles: no "where" at all.
    assert "Where the time went" not in format_markdown(_comparison(rows, "", ""))


def test_terminal_table_puts_the_verdict_first_and_regressions_on_top() -> None:
    rows = [_row(i, verdict) for i, verdict in enumerate(_verdicts(20))]
    table = format_table(_comparison(rows))
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("verdict  "))
    assert lines[header].split()[:3] == ["verdict", "workload", "metric"]
    body = [line.split()[0] for line in lines[header + 1 : header + 21]]
    assert body[:2] == ["REGRESSION", "REGRESSION"]
    assert body[-12:] == ["no"] * 12  # "no change", last


# -- profiles of each side of an interleaved comparison ---------------------------------------

NEW_LAYOUT = """
import json
def profile_hot_paths():
    tree = {"function": "root", "where": "x.py:1", "time": 1.0, "self": 1.0, "children": [],
            "work": 4, "work_unit": "task"}
    return [{"path": "pool", "description": "d", "duration_s": 1.0, "text": "t", "note": "n",
             "tree": json.dumps(tree)},
            {"path": "scheduler", "description": "d", "duration_s": 1.0, "text": "t", "note": "n",
             "tree": "x" * %d}]
"""
OLD_LAYOUT = """
import dataclasses, enum
class HotPath(enum.Enum):
    POOL = "pool"
@dataclasses.dataclass(frozen=True)
class HotPathProfile:
    path: HotPath
    description: str
    duration_s: float
    text: str
    note: str
def profile_hot_paths():
    return [HotPathProfile(HotPath.POOL, "d", 1.0, "text view", "n")]
"""


# A side's interpreter sees its own harness only; ours, installed editable in the test's
# interpreter, would answer for the modules a fake lacks: the fake turns its finder off.
ONLY_THIS_HARNESS = """
import sys
sys.meta_path[:] = [
    f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))
]
"""


def _harness(root: Path, files: dict[str, str]) -> dict[str, str]:
    """A fake installed harness under ``root`` (first on the path): the environment to run it."""
    for name, text in {"harness/__init__.py": ONLY_THIS_HARNESS, **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return {"PYTHONPATH": str(root), "PATH": os.environ.get("PATH", "")}


def test_a_side_captures_its_own_harness_profiles_bounded(tmp_path: Path) -> None:
    env = _harness(
        tmp_path / "new",
        {
            "harness/measure/__init__.py": "",
            "harness/measure/profiles.py": NEW_LAYOUT % (PROFILE_TREE_MAX_BYTES + 1),
        },
    )
    capture = capture_in(Path(sys.executable), env=env, cwd=tmp_path)
    assert [p.path for p in capture.profiles] == ["pool", "scheduler"]
    pool, scheduler = capture.profiles
    assert tree(pool.tree).work is not None
    assert scheduler.tree == "" and scheduler.text == "t"  # above the bound: text view only
    assert (
        capture.note
        == "text views only for scheduler: no call tree (from harness.measure.profiles)"
    )


def test_a_side_of_the_flat_layout_gives_text_views_and_without_profiles_nothing(
    tmp_path: Path,
) -> None:
    old = capture_in(
        Path(sys.executable),
        env=_harness(tmp_path / "old", {"harness/profiles.py": OLD_LAYOUT}),
        cwd=tmp_path,
    )
    assert [(p.path, p.text, p.tree) for p in old.profiles] == [("pool", "text view", "")]
    assert "from harness.profiles" in old.note
    none = capture_in(Path(sys.executable), env=_harness(tmp_path / "none", {}), cwd=tmp_path)
    assert none == Capture((), "no profiles: its harness has no profile capture")
    broken = capture_in(
        Path(sys.executable),
        env=_harness(
            tmp_path / "broken",
            {
                "harness/measure/__init__.py": "",
                "harness/measure/profiles.py": "import no_such_xyz",
            },
        ),
        cwd=tmp_path,
    )
    assert broken.profiles == ()
    assert broken.note.startswith("no profiles: the capture failed: ModuleNotFoundError")
    assert "no_such_xyz" in broken.note
    missing = capture_in(tmp_path / "no" / "python", env={}, cwd=tmp_path)
    assert missing.profiles == () and "could not run" in missing.note


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A throwaway repository of two commits on branch ``main`` (as the interleave tests')."""
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    for number in (1, 2):
        (root / "file.txt").write_text(f"version {number}\n", encoding="utf-8")
        _git(root, "add", "file.txt")
        _git(root, "commit", "-q", "-m", f"commit {number}")
    return root


def test_interleave_stores_each_sides_profiles_and_notes_a_side_without(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_registry(monkeypatch, ("fake",))
    sides = FakeSides(frozenset({"fake"}))
    asked: list[tuple[str, dict[str, str]]] = []

    def profiler(checkout: Checkout, side_env: Any, workdir: Path) -> Capture:
        asked.append((checkout.label, dict(side_env)))
        assert workdir.is_dir() and workdir.name == checkout.label
        if checkout.label == "base":
            return Capture((), "no profiles: its harness has no profile capture")
        return Capture((_profile("scheduler", scheduler_tree(0.3)),))

    progress = io.StringIO()
    result = il.interleave(
        _options(
            repo,
            tmp_path,
            fake.write_targets(tmp_path),
            rounds=2,
            candidate_env={"AGENTBENCH_INJECT_SLOWDOWN": "0.1"},
        ),
        progress=progress,
        prepare=sides.prepare,
        runner=sides.run,
        meter=ScriptedMeter(),  # type: ignore[arg-type]
        profiler=profiler,
    )
    assert asked == [("base", {}), ("candidate", {"AGENTBENCH_INJECT_SLOWDOWN": "0.1"})]
    assert load_bundle(result.base_bundle).profiles == ()
    (profile,) = load_bundle(result.candidate_bundle).profiles
    assert profile.path == "scheduler" and tree(profile.tree).root.function == "profile_hot_paths"
    lines = progress.getvalue()
    assert "note: base (HEAD~1 = " in lines and "has no profile capture" in lines
    # Profiles come after every round: the last round's line is before them.
    assert lines.index("round 2/2") < lines.index("profiling the hot paths of base")
    quiet = il.interleave(
        _options(repo, tmp_path / "quiet", fake.write_targets(tmp_path), rounds=2),
        progress=io.StringIO(),
        prepare=sides.prepare,
        runner=sides.run,
        meter=ScriptedMeter(),  # type: ignore[arg-type]
        profiler=no_profiles,
    )
    assert load_bundle(quiet.candidate_bundle).profiles == ()
