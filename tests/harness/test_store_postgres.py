"""A team's history on PostgreSQL: choosing the store, `harness history import`, bad input.

The store's own behaviour on both backends is test_store_backends.py. Here: a URL is
kept whole and its password never printed (errors, ``--help``); ``AGENTBENCH_DB``;
psycopg missing; an unreachable server, wrong credentials and a store of a newer
schema are one line and exit status 2 with nothing written; ``history import`` copies
every run whole and, run twice, changes nothing. Tests that need the real server
(tests/_postgres.py) are ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.bundle.files import load_bundle
from harness.cli import build_parser, main
from harness.measure.preflight import check_history_store
from harness.store.db import SCHEMA_VERSION, CalibrationRow, HistoryStore, StoreError
from harness.store.location import (
    DB_VARIABLE,
    Location,
    parse_location,
    password_of,
    redacted,
)

from .._postgres import Cluster, closed_port, unavailable
from ._bundles import make_environment
from .test_store_backends import TABLES, raw
from .test_store_hostile import OLD_ID, _v2_store
from .test_store_size import synthetic_bundle

SECRET = "s3cr3t-Pa55word"
RUN_IDS = (
    "20240101T000000Z-0123456-first1",
    "20240102T000000Z-0123456-second",
    "20240103T000000Z-0123456-third3",
)
ROOT = Path(__file__).resolve().parents[2]


def require_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install 'agentbench[postgres]'")


def one_error_line(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    """The one line on stderr (``harness: error: ...``), holding ``words`` and no password."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("harness: error: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert SECRET not in captured.err + captured.out
    return lines[0]


def sqlite_store(directory: Path, run_ids: Sequence[str] = RUN_IDS) -> Path:
    """A SQLite store of synthetic runs (bundles kept) and one calibration."""
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "history.sqlite"
    store = HistoryStore(db)
    bundles = directory / "bundles"
    bundles.mkdir(exist_ok=True)
    for day, run_id in enumerate(run_ids, start=1):
        path = synthetic_bundle(
            bundles,
            run_id=run_id,
            workloads=("scheduler_latency", "approval_wait"),
            started_utc=f"2024-01-0{day}T00:00:00+00:00",
            seed=day,
        )
        assert store.append_run(load_bundle(path))
    fingerprint = make_environment().fingerprint_digest
    store.append_calibration(
        [
            CalibrationRow(
                "cal-1", fingerprint, "fast", "scheduler_latency", "pyperf", "median", "s",
                "wall", 12, 0.01, float("inf"), "2024-01-01T00:00:00+00:00",
            )
        ]
    )  # fmt: skip
    return db


def table_rows(location: Location, table: str) -> list[tuple[Any, ...]]:
    """Every row of ``table``, in a stable order, binary values as bytes."""
    rows = raw(location, f"SELECT * FROM {table}")
    return sorted(
        (tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows),
        key=repr,
    )


# --------------------------------------------------------------------------- locations


def test_a_url_is_kept_whole_and_printed_without_its_password() -> None:
    url = f"postgresql://bench:{SECRET}@db.example:5433/history?sslmode=require"
    assert parse_location(url) == url  # a Path would have collapsed its //
    assert parse_location("reports/history.sqlite") == Path("reports/history.sqlite")
    assert redacted(url) == "postgresql://bench@db.example:5433/history?sslmode=require"
    assert password_of(url) == SECRET
    in_query = f"postgres://bench@h/db?password={SECRET}&application_name=x"
    assert redacted(in_query) == "postgres://bench@h/db?application_name=x"
    assert password_of(in_query) == SECRET
    assert redacted("postgresql://h1:5432,h2:5433/db") == "postgresql://h1:5432,h2:5433/db"
    assert redacted(Path("reports/history.sqlite")) == "reports/history.sqlite"
    with pytest.raises(StoreError, match="unsupported store URL scheme 'mysql'") as caught:
        parse_location(f"mysql://bench:{SECRET}@h/db")
    assert SECRET not in str(caught.value)


def test_db_takes_a_url_and_agentbench_db_is_its_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://bench:{SECRET}@127.0.0.1:5432/history"
    monkeypatch.delenv(DB_VARIABLE, raising=False)
    args = build_parser().parse_args(["history", "--db", url])
    assert args.db == url
    assert build_parser().parse_args(["history"]).db == Path("reports/history.sqlite")
    monkeypatch.setenv(DB_VARIABLE, url)
    assert build_parser().parse_args(["history"]).db == url
    assert build_parser().parse_args(["compare", "x", "--db", "a.sqlite"]).db == Path("a.sqlite")
    with pytest.raises(SystemExit):
        main(["history", "--help"])
    printed = capsys.readouterr().out
    assert "postgresql://bench@127.0.0.1:5432/history" in printed
    assert SECRET not in printed


def test_an_agentbench_db_of_another_scheme_is_a_usage_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DB_VARIABLE, f"mysql://bench:{SECRET}@h/db")
    with pytest.raises(SystemExit) as caught:
        main(["history"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "unsupported store URL scheme" in err and "mysql://bench@h/db" in err
    assert SECRET not in err


def test_without_psycopg_one_line_says_how_to_install_it_and_files_still_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    url = f"postgresql://bench:{SECRET}@127.0.0.1:{closed_port()}/history"
    assert main(["history", "--db", url]) == 2
    one_error_line(capsys, "pip install 'agentbench[postgres]'", redacted(url))
    source = sqlite_store(tmp_path / "a", RUN_IDS[:1])  # the SQLite default needs none of it
    copy = tmp_path / "copy.sqlite"
    assert main(["history", "import", "--from", str(source), "--db", str(copy)]) == 0
    assert main(["history", "--db", str(copy)]) == 0
    assert RUN_IDS[0] in capsys.readouterr().out


def test_an_unreachable_server_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_psycopg()
    url = f"postgresql://bench:{SECRET}@127.0.0.1:{closed_port()}/history"
    assert main(["history", "--db", url]) == 2
    one_error_line(capsys, "cannot connect to the history store", redacted(url))
    with pytest.raises(StoreError, match="cannot connect"):
        check_history_store(url)  # harness run refuses it before measuring anything


def test_an_unreachable_server_exits_2_from_the_command(tmp_path: Path) -> None:
    require_psycopg()
    url = f"postgresql://bench:{SECRET}@127.0.0.1:{closed_port()}/history"
    environment = {**os.environ, DB_VARIABLE: url}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "history", "import", "--from", "missing.sqlite"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env=environment,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("harness: error: ")
    assert SECRET not in done.stderr + done.stdout


@pytest.mark.slow
def test_the_nightly_baseline_and_the_report_read_a_server_store(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli.nightly import choose_baseline

    source = sqlite_store(tmp_path / "a")
    assert main(["history", "import", "--from", str(source), "--db", postgres_url]) == 0
    newest = load_bundle(tmp_path / "a" / "bundles" / RUN_IDS[-1])
    # Tonight's run (the newest stored) is compared with the night before it, stored.
    baseline = choose_baseline(postgres_url, newest.manifest)
    assert (baseline.path, baseline.run_id) == ("stored", RUN_IDS[1])
    capsys.readouterr()
    out = tmp_path / "report.html"
    argv = ["report", str(newest.path), "--history", postgres_url, "--out", str(out)]
    assert main(argv) == 0
    html = out.read_text(encoding="utf-8")
    assert f"in {redacted(postgres_url)}, oldest first" in html  # the trends came from it
    secret = password_of(postgres_url)
    assert not secret or secret not in html + capsys.readouterr().out


# --------------------------------------------------------------------------- history import


def test_history_import_between_files_copies_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_store(tmp_path / "a")
    destination = tmp_path / "b.sqlite"
    argv = ["history", "import", "--from", str(source), "--db", str(destination)]
    assert main(argv) == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith("3 runs copied, 0 already present; 1 calibrations copied, 0 already present")
    )
    assert main(argv) == 0
    assert (
        capsys.readouterr()
        .out.strip()
        .endswith("0 runs copied, 3 already present; 0 calibrations copied, 1 already present")
    )
    for table in (*TABLES, "calibrations"):
        assert table_rows(destination, table) == table_rows(source, table), table


def test_history_import_refuses_stray_flags_and_a_missing_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "b.sqlite"
    assert main(["history", "import", "--db", str(db)]) == 2
    one_error_line(capsys, "import without --from")
    assert main(["history", "import", "--from", "x", "--target", "t", "--db", str(db)]) == 2
    one_error_line(capsys, "--target with import")
    assert main(["history", "--from", "x", "--db", str(db)]) == 2
    one_error_line(capsys, "--from without import")
    assert (
        main(["history", "import", "--from", str(tmp_path / "none.sqlite"), "--db", str(db)]) == 2
    )
    one_error_line(capsys, "no history store")
    assert not db.exists()


@pytest.mark.slow
def test_history_import_into_the_server_copies_every_run_whole_and_twice_nothing(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_store(tmp_path)
    argv = ["history", "import", "--from", str(source), "--db", postgres_url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        f"{source} -> {redacted(postgres_url)}: 3 runs copied, 0 already present; "
        "1 calibrations copied, 0 already present"
    )
    for table in (*TABLES, "calibrations"):
        assert table_rows(postgres_url, table) == table_rows(source, table), table
    assert main(argv) == 0
    assert "0 runs copied, 3 already present; 0 calibrations copied, 1 already present" in (
        capsys.readouterr().out
    )
    assert table_rows(postgres_url, "runs") == table_rows(source, "runs")
    server, local = HistoryStore(postgres_url), HistoryStore(source)
    for run_id in RUN_IDS:
        rebuilt, original = server.load_run(run_id), local.load_run(run_id)
        assert rebuilt.manifest == original.manifest
        assert rebuilt.samples == original.samples
    assert server.latest_calibration(make_environment().fingerprint_digest) == (
        local.latest_calibration(make_environment().fingerprint_digest)
    )
    # And back: the server's history into a new file.
    copy = tmp_path / "copy.sqlite"
    assert main(["history", "import", "--from", postgres_url, "--db", str(copy)]) == 0
    assert "3 runs copied" in capsys.readouterr().out
    for table in (*TABLES, "calibrations"):
        assert table_rows(copy, table) == table_rows(source, table), table


@pytest.mark.slow
def test_a_schema_2_file_imports_as_its_migration_would_leave_it(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.sqlite"
    _v2_store(old, tmp_path / "gone" / OLD_ID)
    assert main(["history", "import", "--from", str(old), "--db", postgres_url]) == 0
    assert "1 runs copied" in capsys.readouterr().out
    assert raw(postgres_url, "SELECT run_id, stored_schema FROM runs") == [(OLD_ID, 2)]
    assert raw(postgres_url, "SELECT count(*) FROM run_manifests") == [(0,)]
    assert main(["history", "--db", postgres_url]) == 0
    listing = capsys.readouterr().out
    assert OLD_ID in listing and "False" in listing  # no values: says so
    assert (
        len(HistoryStore(postgres_url).latest_calibration(make_environment().fingerprint_digest))
        == 1
    )


@pytest.mark.slow
def test_agentbench_db_points_every_command_at_the_server(
    tmp_path: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = sqlite_store(tmp_path)
    monkeypatch.setenv(DB_VARIABLE, postgres_url)
    assert main(["history", "import", "--from", str(source)]) == 0
    capsys.readouterr()
    assert main(["history"]) == 0
    listing = capsys.readouterr().out
    assert all(run_id in listing for run_id in RUN_IDS)
    assert main(["history", "--target", "scheduler_p95_latency", "--limit", "2"]) == 0
    assert RUN_IDS[0] not in (target := capsys.readouterr().out) and RUN_IDS[2] in target
    assert main(["history", "--check"]) == 0
    assert capsys.readouterr().out.strip() == "ok"
    assert main(["history", "--changes"]) == 0
    assert "change points over 3 night(s)" in capsys.readouterr().out
    check_history_store(postgres_url)  # reachable, its schema known: harness run may start


@pytest.mark.slow
def test_compare_reads_run_ids_and_the_last_good_run_from_the_server(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_store(tmp_path)
    assert main(["history", "import", "--from", str(source), "--db", postgres_url]) == 0
    shutil.rmtree(tmp_path / "bundles")  # the server's copy of the runs is all there is
    capsys.readouterr()
    argv = ["compare", "--last-good", RUN_IDS[2], "--db", postgres_url, "--no-calibration"]
    status = main([*argv, "--json", str(tmp_path / "compare.json")])
    assert status in (0, 1), capsys.readouterr().err
    compared = json.loads((tmp_path / "compare.json").read_text(encoding="utf-8"))
    assert (compared["base"]["run_id"], compared["candidate"]["run_id"]) == RUN_IDS[1:]


# --------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_wrong_credentials_are_one_line_and_nothing_is_written(
    tmp_path: Path,
    postgres_cluster: Cluster,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = sqlite_store(tmp_path, RUN_IDS[:1])
    wrong = postgres_url.replace(postgres_cluster.password, SECRET)
    assert wrong != postgres_url
    assert main(["history", "import", "--from", str(source), "--db", wrong]) == 2
    line = one_error_line(capsys, redacted(wrong), "password authentication failed")
    assert postgres_cluster.password not in line
    assert raw(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []
    # PGPASSWORD is honoured when the URL has no password; the wrong one is refused too.
    no_password = wrong.replace(f":{SECRET}@", "@")
    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert main(["history", "--db", no_password]) == 2
    one_error_line(capsys, "password authentication failed")
    monkeypatch.setenv("PGPASSWORD", postgres_cluster.password)
    argv = ["history", "import", "--from", str(source), "--db", no_password]
    assert main(argv) == 0  # the right one is taken from there
    assert "1 runs copied" in capsys.readouterr().out


@pytest.mark.slow
def test_a_server_store_of_a_newer_schema_is_refused_and_left_as_it_was(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = sqlite_store(tmp_path, RUN_IDS[:1])
    assert main(["history", "import", "--from", str(source), "--db", postgres_url]) == 0
    capsys.readouterr()
    raw(postgres_url, "UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    before = {table: table_rows(postgres_url, table) for table in TABLES}
    more = sqlite_store(tmp_path / "more", RUN_IDS[1:])
    assert main(["history", "import", "--from", str(more), "--db", postgres_url]) == 2
    one_error_line(capsys, f"schema version {SCHEMA_VERSION + 1}", redacted(postgres_url))
    assert main(["history", "--db", postgres_url]) == 2
    one_error_line(capsys, f"schema version {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}"):
        check_history_store(postgres_url)
    assert {table: table_rows(postgres_url, table) for table in TABLES} == before
