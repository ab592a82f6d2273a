"""Fit HotTiles' visible latency per byte (vis_lat) of each worker type, as the paper does.

HotTiles (Sec. IV-D, VI-B) prices every memory task as bytes * vis_lat[worker], with
vis_lat "fitted once per machine: a few profiling runs on small test matrices, one worker
type at a time, and a simple search minimising the prediction error against the
measured homogeneous runtimes". Here the measurement is the `hottiles` machine's own
execution model (backends/hottiles/execution.py: lines, L1 hits, per-panel Dout, ports
and shared-DRAM contention on the Timeline), which the cost model never sees.

For each preset and worker type: the profiling matrices (small, seeded, generated here,
never the benchmark's) run HotOnly or ColdOnly with a fixed tile height (so the run does
not depend on vis_lat); then vis_lat is searched on a log grid of multiples of the
worker's Little's-law figure (1 / port bytes per cycle), minimising the mean relative
error of the model's predicted time. The result is written to
backends/hottiles/fitted.py, which the presets read.

Run: python benchmarks/hottiles_calibrate.py            (about a minute)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.progress import Progress

from sparsec.backends.common.spec import parse_target_string
from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.passes import hotcold_model
from sparsec.passes.hardware import heterogeneous_model
from sparsec.tensors import synthetic_matrices as sm
from sparsec.tensors.tiles import nonzeros

ROOT = Path(__file__).resolve().parents[1]
FITTED = ROOT / "backends" / "hottiles" / "fitted.py"
PRESETS = ("spade-sextans-1", "spade-sextans-2", "spade-sextans-4", "spade-sextans-8", "piuma")
K = 32
TILE_ROWS = 1024
GRID = np.geomspace(0.25, 8.0, 61)


def profiling_matrices() -> dict[str, object]:
    """Small matrices of both kinds of heterogeneity (seeds unused by the benchmark)."""
    return {"rmat-14": sm.rmat(14, 16, seed=101),
            "rmat-13-flat": sm.rmat(13, 24, a=0.45, b=0.22, c=0.22, seed=102),
            "banded-32k": sm.banded(32768, band=32, per_row=6, blocks=24, block_size=256,
                                    block_density=0.3, seed=103)}


def spec_text(name: str, shape: tuple[int, int], dtype: str) -> str:
    return (f"kernel spmm {{\n  param A: {dtype}[{shape[0]}, {shape[1]}] = load(\"{name}.mtx\")\n"
            f"  in B: {dtype}[{shape[1]}, {K}] = random(seed=1)\n  C = matmul(A, B)\n"
            "  out C\n}\n")


def measured(folder: Path, name: str, shape, dtype: str, options: str) -> int:
    compiled = compile_text(spec_text(name, shape, dtype),
                            CompileOptions(target=f"hottiles{{{options}}}", target_passes=True,
                                           compute_reference=False), str(folder / "k.sk"))
    return execute(compiled.module, compiled.store, execute_values=False).reports[0].cycles


def fit(preset: str, kind: str, matrices: dict, folder: Path) -> tuple[float, float]:
    """(vis_lat, mean relative error at it) of worker type `kind` on `preset`."""
    dtype = "f64" if preset == "piuma" else "f32"
    policy = "hotonly" if kind == "hot" else "coldonly"
    base = f"preset={preset} policy={policy} tile_rows={TILE_ROWS} fitted=false"
    spec = HottilesSpec.from_spec(parse_target_string(f"hottiles{{{base}}}"))
    derived = 1.0 / spec.port(kind)
    value_bytes = 8 if dtype == "f64" else 4
    problem = hotcold_model.Problem(K, value_bytes, value_bytes)
    actual, nzs = {}, {}
    for name, matrix in matrices.items():
        actual[name] = measured(folder, name, matrix.shape, dtype, base)
        nzs[name] = nonzeros(matrix.astype(np.float64 if dtype == "f64" else np.float32))
    errors = []
    for multiple in GRID:
        machine = heterogeneous_model("hottiles", f"{base} {kind}_vis_lat={derived * multiple}")
        predicted = {n: hotcold_model.partition(machine, nz, problem)[0].predicted
                     for n, nz in nzs.items()}
        errors.append(np.mean([abs(predicted[n] - actual[n]) / actual[n] for n in nzs]))
    best = int(np.argmin(errors))
    return float(derived * GRID[best]), float(errors[best])


def main() -> int:
    matrices = profiling_matrices()
    fitted: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        folder = Path(tmp)
        for name, matrix in matrices.items():
            sm.save_matrix(matrix, folder / f"{name}.mtx")
        task = progress.add_task("fitting vis_lat", total=len(PRESETS) * 2)
        for preset in PRESETS:
            fitted[preset], errors[preset] = {}, {}
            for kind in ("hot", "cold"):
                fitted[preset][kind], errors[preset][kind] = fit(preset, kind, matrices, folder)
                progress.advance(task)
    lines = ['"""vis_lat (cycles per byte) of each worker type per preset, fitted by',
             "`python benchmarks/hottiles_calibrate.py` (HotTiles Sec. VI-B: homogeneous",
             "profiling runs on small matrices, a search minimising the prediction error).",
             "Written by that script; mean relative error of the fit in the comments.", '"""',
             "", "VIS_LAT: dict[str, dict[str, float]] = {"]
    for preset in PRESETS:
        lines.append(f'    "{preset}": {{"hot": {fitted[preset]["hot"]:.6g}, '
                     f'"cold": {fitted[preset]["cold"]:.6g}}},  # error hot '
                     f'{errors[preset]["hot"]:.1%}, cold {errors[preset]["cold"]:.1%}')
    lines.append("}")
    FITTED.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
