"""The report's event-loop section: one commit's pairs on each loop it was measured on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness.bundle.files import load_bundle
from harness.report.loops import loop_name, loop_section
from harness.store.db import HistoryStore

from .test_store_size import synthetic_bundle

ASYNCIO_ID = "20240101T000000Z-0123456-asynci"
UVLOOP_ID = "20240101T010000Z-0123456-uvloop"


def _on_uvloop(asyncio_bundle: Path, out: Path) -> Path:
    """The same run re-labelled as measured on uvloop (another run id, another loop)."""
    path = out / UVLOOP_ID
    shutil.copytree(asyncio_bundle, path)
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    manifest["run_id"] = UVLOOP_ID
    manifest["started_utc"] = "2024-01-01T01:00:00+00:00"
    manifest["environment"]["fingerprint"]["event_loop"] = "uvloop 0.23.0"
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


def test_the_section_puts_the_commits_other_loop_beside_this_one(tmp_path: Path) -> None:
    first = synthetic_bundle(tmp_path, run_id=ASYNCIO_ID, workloads=("hook_latency",))
    second = _on_uvloop(first, tmp_path)
    db = tmp_path / "history.sqlite"
    store = HistoryStore(db)
    for path in (first, second):
        assert store.append_run(load_bundle(path))
    bundle = load_bundle(second)
    assert loop_name(bundle) == "uvloop"
    section = loop_section(bundle, db)
    assert section.loops == ("uvloop", "asyncio") and section.message == ""
    assert section.runs == (UVLOOP_ID, ASYNCIO_ID)
    (row,) = section.rows
    assert (row.workload, row.quantity) == ("hook_latency", "hook latency")
    assert len(row.figures) == 2 and row.figures[0] == row.figures[1]  # the same values


def test_a_commit_measured_on_one_loop_says_how_to_add_the_other(tmp_path: Path) -> None:
    only = synthetic_bundle(tmp_path, run_id=ASYNCIO_ID, workloads=("hook_latency",))
    section = loop_section(load_bundle(only), tmp_path / "absent.sqlite")
    assert section.loops == ("asyncio",)
    assert "`harness run --loop uvloop`" in section.message
    assert not (tmp_path / "absent.sqlite").exists()  # reading never creates a store
