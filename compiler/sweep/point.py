"""One point of a sweep, as a worker runs it: compile, execute, and the figures it yields.

`run_point` takes and returns plain data (dicts of str, numbers and JSON text), so the
same function is a task on the local pool and on a Dask cluster. It never raises for a
point's own failure: a bad combination or a backend refusing becomes a `failed` result
with its message, and the sweep goes on.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import time
import traceback
from typing import Any

BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Variables that fix the thread count of BLAS/OpenMP libraries when they load."""

_pinned = False


def pin_blas_threads() -> int:
    """One BLAS/OpenMP thread in this process (a worker's parallelism is its process);
    returns the largest thread count any loaded library still reports (1 once pinned)."""
    global _pinned
    from threadpoolctl import threadpool_info, threadpool_limits

    if not _pinned:
        for name in BLAS_ENV:
            os.environ[name] = "1"
        threadpool_limits(limits=1)
        _pinned = True
    return max((pool["num_threads"] for pool in threadpool_info()), default=1)


def worker_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_point(task: dict[str, Any]) -> dict[str, Any]:
    """Compile and run one point; its figures, or `status=failed` and the message."""
    blas_threads = pin_blas_threads()
    start = time.perf_counter()
    result: dict[str, Any] = {"key": task["key"], "worker": worker_label(),
                              "blas_threads": blas_threads}
    try:
        result.update(_figures(task))
        result["status"] = "ok"
    except Exception as err:  # noqa: BLE001 - any failure of a point is a row, not a crash
        result["status"] = "failed"
        result["error"] = _message(err)
    result["wall_s"] = time.perf_counter() - start
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _message(err: Exception) -> str:
    """The user-facing message of expected failures; type and last frame for others."""
    from sparsec.compiler.compare import RUN_ERRORS

    text = str(err).strip() or type(err).__name__
    if isinstance(err, RUN_ERRORS):
        return text
    frame = traceback.extract_tb(err.__traceback__)[-1:]
    where = f" at {frame[0].filename.rsplit('/', 1)[-1]}:{frame[0].lineno}" if frame else ""
    return f"{type(err).__name__}: {text}{where}"


def _figures(task: dict[str, Any]) -> dict[str, Any]:
    from sparsec.compiler.compare import Row, pipeline_for
    from sparsec.compiler.driver import CompileOptions, compile_text, execute

    execute_values = bool(task["execute"])
    pipeline = pipeline_for(task["target"], task["pipeline"])
    compiled = compile_text(task["spec_text"],
                            CompileOptions(pipeline=pipeline, target=task["target"],
                                           compute_reference=execute_values,
                                           defer_data=not execute_values,
                                           target_passes=False),
                            path=task["spec_path"])
    reports = execute(compiled.module, compiled.store, execute_values=execute_values).reports
    row = Row(task["target"], pipeline, reports)
    levels: dict[str, dict[str, int]] = {}
    for report in reports:
        for level, counts in report.bytes.items():
            merged = levels.setdefault(level, {})
            for kind, count in counts.items():
                merged[kind] = merged.get(kind, 0) + int(count)
    errors = [r.error_vs_original["rel_err"] for r in reports if r.error_vs_original]
    checked = [r for r in reports if not r.check.skipped]
    return {
        "full_pipeline": pipeline,
        "cycles": row.cycles,
        "stall_cycles": sum(r.stall_cycles for r in reports),
        "time_us": row.time_us,
        "utilization": row.utilization,
        "dram_bytes": row.dram_bytes,
        "bytes": json.dumps(levels, sort_keys=True),
        "energy_pj": row.energy_pj,
        "dram_energy_pj": row.dram_energy_pj,
        "effectual_macs": sum(int(r.macs["effectual"]) for r in reports),
        "dense_macs": sum(int(r.macs["dense"]) for r in reports),
        "error_vs_original": max(errors) if errors else (0.0 if execute_values else None),
        "check_ok": all(r.check.ok for r in checked) if checked else None,
    }
