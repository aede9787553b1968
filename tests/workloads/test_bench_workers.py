"""pyperf's workers measure the code their parent measures, not an installed copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import workloads

_ROOT = Path(workloads.__file__).resolve().parents[1]
_REPORT = """
import os as _os
with open(_os.environ["AGENTBENCH_TEST_IMPORTS"], "a", encoding="utf-8") as _out:
    _out.write(__file__ + "\\n")
"""


def test_every_worker_imports_the_workloads_of_the_checkout_it_was_started_in(
    tmp_path: Path,
) -> None:
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "traces")
    for package in ("workloads", "reference_impl"):
        shutil.copytree(_ROOT / package, checkout / package, ignore=ignore)
    # Each process that imports this copy's workloads._bench says so.
    with (checkout / "workloads" / "_bench.py").open("a", encoding="utf-8") as bench:
        bench.write(_REPORT)
    imports = tmp_path / "imports.txt"
    env = {**os.environ, "AGENTBENCH_TEST_IMPORTS": str(imports)}
    env.pop("AGENTBENCH_SAMPLES_DIR", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "workloads.proof_import",
            "--processes=2",
            "--values=1",
            "--warmups=0",
            "--loops=1",
            "--inherit-environ=AGENTBENCH_TEST_IMPORTS",
            "--quiet",
            f"--output={tmp_path / 'out.json'}",
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = imports.read_text(encoding="utf-8").splitlines()
    # The parent and its two workers, each from the copy (not the installed checkout).
    assert len(seen) == 3
    assert all(Path(path).resolve().parent.parent == checkout.resolve() for path in seen)
