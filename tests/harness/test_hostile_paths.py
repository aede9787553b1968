"""Output paths the user gave: refused in one line (exit 2) before anything is measured.

Each command that writes a file the user named replaces it by a rename; whatever is
at the path and is not a regular file (a FIFO, a device, a symlink, a directory) is
refused and left as it was. OS errors on those paths, a bad SOURCE_DATE_EPOCH and a
closed stdout end as one line or quietly, never as a traceback (exit 1 reads as a
regression in CI).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.bundle.files import load_bundle
from harness.bundle.paths import check_output_file, write_text_atomically
from harness.cli import main
from harness.errors import EnvironmentRefused
from harness.store.db import HistoryStore

from ._bundles import build_bundle

HARNESS = Path(sys.executable).parent / "harness"  # the real console script


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _symlink(path: Path) -> Path:
    target = path.with_name("target.txt")
    target.write_text("keep me\n")
    path.symlink_to(target)
    return path


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _character_device(path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("making a character device needs root (os.mknod)")
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null of our own
    return path


MAKERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (_fifo, "a FIFO (named pipe), not a regular file"),
    "symlink": (_symlink, "a symbolic link, not a regular file"),
    "directory": (_directory, "a directory, not a regular file"),
    "char-device": (_character_device, "a character device, not a regular file"),
}


def _kind(path: Path) -> int:
    return stat.S_IFMT(os.lstat(path).st_mode)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("harness: error: ")
    return err[0]


@pytest.mark.parametrize("kind", list(MAKERS))
def test_record_refuses_anything_but_a_regular_file_and_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    make, message = MAKERS[kind]
    out = make(tmp_path / "out.jsonl")
    before = _kind(out)
    argv = ["record", "--scenario", "kernel-small", "--seed", "1", "--out", str(out)]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert f"--out {out}: {message}" in line
    assert _kind(out) == before
    if kind == "symlink":
        assert out.read_text() == "keep me\n"


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "char-device"])
@pytest.mark.parametrize("flag", ["--out", "--summary"])
def test_report_refuses_anything_but_a_regular_file_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, flag: str
) -> None:
    bundle = _bundle(tmp_path)
    make, message = MAKERS[kind]
    target = make(tmp_path / "target")
    before = _kind(target)
    other = "--summary" if flag == "--out" else "--out"
    argv = ["report", str(bundle), flag, str(target), other, str(tmp_path / "other")]
    assert main(argv) == 2
    assert f"{flag} {target}: {message}" in _one_error_line(capsys)
    assert _kind(target) == before
    assert not (tmp_path / "other").exists()  # nothing written at all


def test_check_output_file_accepts_a_regular_file_or_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "existing.json"
    existing.write_text("{}")
    check_output_file(existing, "--json")
    check_output_file(tmp_path / "new.json", "--json")
    check_output_file(tmp_path / "a" / "b" / "new.json", "--out", create_parents=True)
    with pytest.raises(EnvironmentRefused, match="does not exist"):
        check_output_file(tmp_path / "a" / "new.json", "--json")


def test_a_path_under_a_regular_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "x.jsonl"
    assert main(["record", "--scenario", "kernel-small", "--seed", "1", "--out", str(out)]) == 2
    assert f"--out {out}: a path under something that is not a directory" in _one_error_line(capsys)


def test_a_read_only_directory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes a read-only directory anyway: nothing to refuse")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    out = locked / "x.jsonl"
    assert main(["record", "--scenario", "kernel-small", "--seed", "1", "--out", str(out)]) == 2
    assert f"the directory {locked} is not writable" in _one_error_line(capsys)


def test_compare_refuses_an_output_in_a_missing_directory_before_comparing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "nodir" / "x.json"
    # The bundles do not even exist: the output path is refused first.
    assert main(["compare", "--json", str(out), "no-such-base", "no-such-candidate"]) == 2
    line = _one_error_line(capsys)
    assert f"--json {out}: the directory {out.parent} does not exist" in line
    fifo = _fifo(tmp_path / "md")
    assert main(["compare", "--markdown", str(fifo), "no-such-base", "no-such-candidate"]) == 2
    assert f"--markdown {fifo}: a FIFO" in _one_error_line(capsys)


def test_atomic_write_keeps_the_replaced_files_permissions(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("old")
    path.chmod(0o640)
    write_text_atomically(path, "new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.md"
    write_text_atomically(fresh, "x")
    assert stat.S_IMODE(fresh.stat().st_mode) & 0o044 == 0o044 & ~_umask()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _bundle(tmp_path: Path) -> Path:
    reports = tmp_path / "reports"
    reports.mkdir()
    return build_bundle(reports)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_bad_source_date_epoch_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "abc")
    out = tmp_path / "t.jsonl"
    assert main(["record", "--scenario", "kernel-small", "--seed", "1", "--out", str(out)]) == 2
    assert "SOURCE_DATE_EPOCH='abc': expected a whole number of seconds" in _one_error_line(capsys)
    assert not out.exists()


def test_the_console_script_survives_a_bad_source_date_epoch_at_import(tmp_path: Path) -> None:
    """numpy.f2py parses the variable when scipy is imported: the CLI must not import it first."""
    out = tmp_path / "t.jsonl"
    done = subprocess.run(
        [str(HARNESS), "record", "--scenario", "kernel-small", "--seed", "1", "--out", str(out)],
        env={**os.environ, "SOURCE_DATE_EPOCH": "abc"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SOURCE_DATE_EPOCH='abc'" in lines[0]
    assert "Traceback" not in done.stderr


def test_history_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``harness history | head -1``: the reader is gone before the first write."""
    bundle = _bundle(tmp_path)
    db = tmp_path / "reports" / "history.sqlite"
    HistoryStore(db).append_run(load_bundle(bundle))
    process = subprocess.Popen(
        [str(HARNESS), "history", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # long before the child has imported anything
    try:
        stderr = process.stderr.read()
        status = process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    assert (status, stderr) == (0, b"")
