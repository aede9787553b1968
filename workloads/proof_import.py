"""proof_import: the proof module's import cost, cold and per invocation.

Per round: ``cold_import``, the import in a fresh interpreter (a subprocess
that times only the import statement); ``per_invocation_legacy``, today's
re-import on every invocation (``sys.modules.pop`` + import), averaged over
``INVOCATIONS``; ``per_invocation_cached``, the lazy importer's cost per
invocation once loaded (a dictionary lookup), averaged likewise. pyperf's value
is the cached pass.
"""

from __future__ import annotations

import subprocess
import sys
import time

from reference_impl.cache import LazyImporter
from reference_impl.kernel.scheduler import DEFAULT_PROOF_MODULE
from workloads._bench import Round, main, run_async

INVOCATIONS = 200

_COLD = (
    "import time; s = time.perf_counter(); "
    f"import {DEFAULT_PROOF_MODULE}; print(time.perf_counter() - s)"
)


def _legacy(invocations: int) -> float:
    import importlib

    start = time.perf_counter()
    for _ in range(invocations):
        sys.modules.pop(DEFAULT_PROOF_MODULE, None)
        importlib.import_module(DEFAULT_PROOF_MODULE)
    return (time.perf_counter() - start) / invocations


async def _cached(invocations: int) -> float:
    importer = LazyImporter()
    await importer.get(DEFAULT_PROOF_MODULE)  # the one real import, off the loop
    start = time.perf_counter()
    for _ in range(invocations):
        await importer.get(DEFAULT_PROOF_MODULE)
    return (time.perf_counter() - start) / invocations


def one_round(round_: Round, _number: int) -> float:
    cold = subprocess.run(
        [sys.executable, "-c", _COLD], capture_output=True, text=True, check=True, timeout=60
    )
    round_.record("cold_import", [float(cold.stdout.strip())])
    round_.record("per_invocation_legacy", [_legacy(INVOCATIONS)])
    cached = run_async(_cached(INVOCATIONS))
    round_.record("per_invocation_cached", [cached])
    return cached * INVOCATIONS


if __name__ == "__main__":
    main("proof_import", one_round, "proof module import: cold, legacy and cached per invocation")
