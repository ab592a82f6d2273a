"""2:4 sparse vs dense tensor-core GEMM time on the stc model, beside published measurements.

For each shape Y[M x N] = X[M x K] . W[N x K]^T (PyTorch's nn.Linear layout; W is 2:4
along K), f16, the kernel is compiled twice through the normal driver, `stc{preset=P}`
(2:4 mma.sp) and `stc{preset=P sparse=false}` (dense mma on the same pruned values), and
accounted with `execute(..., execute_values=False)` (cycles from shapes and sparsity,
as `sparsec run --no-execute`). The operands are zero-copy numpy views (X all ones, W
the 2:4 pattern 1 1 0 0 along K), so a 16384^3 GEMM (16384 thread-block tiles) runs in
seconds. Writes benchmarks/results/stc_sparse_vs_dense.md.

Run: python benchmarks/stc_sparse_vs_dense.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr

from sparsec.backends.common.report import Report, write_atomically
from sparsec.backends.stc.isa import two_four_encoding
from sparsec.compiler.datastore import DataStore
from sparsec.compiler.driver import CompileOptions, compile_module, execute
from sparsec.dialects.sparsec import OUTPUTS_ATTR, InputOp, MatmulOp, ParamOp, tensor_type

RESULTS = Path(__file__).parent / "results" / "stc_sparse_vs_dense.md"
PRESETS = ("a100", "h100")


@dataclass(frozen=True)
class Shape:
    """One GEMM and what was measured on real hardware for it, if anything."""

    m: int
    n: int
    k: int
    label: str
    published: str = ""

    @property
    def text(self) -> str:
        return f"{self.m} x {self.n} x {self.k}"


SHAPES = (
    Shape(1, 4096, 4096, "GEMV (batch 1)",
          "A100: 0.11x (dense 0.022 ms, 2:4 0.196 ms; PyTorch issue #111339, cuSPARSELt)"),
    Shape(16, 4096, 4096, "batch 16"),
    Shape(256, 4096, 4096, "batch 256"),
    Shape(3072, 3072, 10240, "PyTorch tutorial linear",
          "A100 80GB: 1.38x (dense 0.870 ms, 2:4 0.630 ms; PyTorch 2:4 tutorial, CUTLASS)"),
    Shape(4096, 4096, 4096, "4096 cubed",
          "A100: 1.11x (CUTLASS dense 0.608 ms, cuSPARSELt 0.546 ms; CUDALibrarySamples #57)"),
    Shape(8192, 8192, 8192, "8192 cubed",
          "H100: about 1.20-1.22x (cuSPARSELt sample; CUDALibrarySamples #203)"),
    Shape(16384, 16384, 16384, "16384 cubed"),
)


def two_four_pattern(rows: int, k: int) -> np.ndarray:
    """A rows x K f16 view whose every 4-block along K is 1 1 0 0 (no memory per row)."""
    pattern = np.tile(np.array([1, 1, 0, 0], dtype=np.float16), -(-k // 4))[:k]
    return np.broadcast_to(pattern, (rows, k))


def linear_kernel(shape: Shape, sparse: bool) -> tuple[ModuleOp, DataStore]:
    """Kernel IR of Y = X . W^T with W 2:4 along K (encoded only when `sparse`)."""
    m, n, k = shape.m, shape.n, shape.k
    store = DataStore()
    store.put("linear.X", np.broadcast_to(np.float16(1), (m, k)), "f16")
    store.put("linear.W", two_four_pattern(n, k), "f16")
    x = InputOp("X", tensor_type((m, k), "f16"))
    w = ParamOp("W", tensor_type((n, k), "f16", two_four_encoding(1) if sparse else None),
                nnz=n * k // 2, density=0.5)
    y = MatmulOp(x.result, w.result, tensor_type((m, n), "f16"), transpose_b=True)
    function = func.FuncOp("linear", ([], [y.result.type]))
    function.body.block.add_ops([x, w, y, func.ReturnOp(y.result)])
    function.attributes[OUTPUTS_ATTR] = ArrayAttr([StringAttr("Y")])
    return ModuleOp([function]), store


def run(shape: Shape, target: str, sparse: bool) -> Report:
    module, store = linear_kernel(shape, sparse)
    options = CompileOptions(compute_reference=False)
    compiled = compile_module(module, store, "", target, options)
    return execute(compiled.module, compiled.store, execute_values=False).reports[0]


def microseconds(report: Report) -> float:
    return report.time_us


def bound(report: Report) -> str:
    return report.details["gemms"][0]["bound"]


def measure(shapes: tuple[Shape, ...]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for shape in shapes:
        row: dict[str, object] = {"shape": shape}
        for preset in PRESETS:
            dense = run(shape, f"stc{{preset={preset} sparse=false}}", sparse=False)
            sparse = run(shape, f"stc{{preset={preset}}}", sparse=True)
            row[preset] = (dense, sparse)
        rows.append(row)
        print(f"{shape.text:>24}: " + "  ".join(
            f"{p} {_speedup(row, p):.2f}x" for p in PRESETS), flush=True)
    return rows


def _speedup(row: dict[str, object], preset: str) -> float:
    dense, sparse = row[preset]  # type: ignore[misc]
    return dense.cycles / sparse.cycles


def table(rows: list[dict[str, object]]) -> str:
    head = ("| M x N x K | kernel | A100 dense us | A100 2:4 us | A100 2:4 speedup | A100 bound "
            "(dense / 2:4) | H100 dense us | H100 2:4 us | H100 2:4 speedup | H100 bound "
            "(dense / 2:4) | published |")
    lines = [head, "|" + "---|" * 11]
    for row in rows:
        shape: Shape = row["shape"]  # type: ignore[assignment]
        cells = [shape.text, shape.label]
        for preset in PRESETS:
            dense, sparse = row[preset]  # type: ignore[misc]
            cells += [f"{microseconds(dense):,.1f}", f"{microseconds(sparse):,.1f}",
                      f"**{_speedup(row, preset):.2f}x**", f"{bound(dense)} / {bound(sparse)}"]
        cells.append(shape.published or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details(rows: list[dict[str, object]]) -> str:
    """Per shape and preset: tiles, waves, tail, per-tile math vs memory cycles."""
    lines = ["| M x N x K | preset | mma | tile | tiles | waves (tail tiles) | tile math cycles | "
             "tile memory cycles (HBM / L2) | achieved TFLOPS |", "|" + "---|" * 9]
    for row in rows:
        shape: Shape = row["shape"]  # type: ignore[assignment]
        for preset in PRESETS:
            for report in row[preset]:  # type: ignore[attr-defined]
                g = report.details["gemms"][0]
                wave = g["first_wave"]
                lines.append(
                    f"| {shape.text} | {preset} | {g['mma']} | {'x'.join(map(str, g['tile']))} | "
                    f"{g['tiles']} | {g['waves']} ({g['tail_wave_tiles']}) | "
                    f"{g['tile_compute_cycles']:,} | {wave['hbm_cycles']:,} / "
                    f"{wave['l2_cycles']:,} | {g['achieved_tflops']:,.0f} |")
    return "\n".join(lines)


NOTES = """
## How to read this

The model's speedup is the ratio of two roofline-style wave schedules that differ only
in the mma (2:4 halves the math per tile) and in the bytes of the 2:4 operand (half the
values plus 2 bits of metadata per kept value: 9/16 of the dense bytes for f16). Both
runs use the same tile shape, launch order and memory system, so the ratio isolates
what the sparse tensor cores change. Equations: backends/stc/README.md.

**Where the model agrees with the measurements.**
- *Direction and ordering.* 2:4 helps most on large, math-bound GEMMs and less on
  bandwidth-bound ones; on H100 the gain is smaller than on A100. In the model that is
  because H100's per-SM math doubled while the L2 feeding it is assumed to deliver
  A100's 5120 bytes/clk (the H100 whitepaper gives no L2 bandwidth), so even dense
  128x256 tiles are L2-bound and the 2:4 tiles more so. Users of the cuSPARSELt sample
  report about 1.2x for 8192 cubed on H100 (CUDALibrarySamples #203); the model gives
  {h100_8192:.2f}x, which supports that assumption without proving it.
- *The dense GEMV's absolute time.* The model's A100 dense GEMV takes {a100_gemv_dense:.1f} us
  (HBM-bound: 32 MiB of W at 1555 GB/s); PyTorch issue #111339 measured 22 us.
- *Near 2x only where math-bound.* A100 math-bound shapes reach {a100_big:.2f}x, not 2x: with
  128x128x32 tiles the 2:4 tile's L2 traffic (4608 + 8192 bytes per k-chunk at 47.4
  bytes/clk/SM = 270 cycles) exceeds its halved math (256 cycles).

**Where it does not, and why.**
- *Large GEMMs: the model is optimistic (A100 4096 cubed: {a100_4096:.2f}x vs 1.11x measured;
  the tutorial shape: {a100_tut:.2f}x vs 1.38x).* The model lets both kernels reach the
  roofline of their tile. The measured kernels do not: CUTLASS dense runs 4096 cubed at
  0.608 ms = 226 TFLOPS (72% of 312), cuSPARSELt at 0.546 ms = 252 dense-equivalent
  TFLOPS (40% of 624); the tutorial's 3072 x 10240 x 3072 runs dense at 71% and 2:4 at
  49% of peak. The sparse kernels lose efficiency the model does not represent
  (metadata loads into registers and their layout shuffles, register pressure, fewer
  pipeline stages, library tile choices); the model bounds what the hardware allows.
- *GEMV: the model says {a100_gemv:.2f}x, the measurement 0.11x.* A memory-bound GEMV moves the
  2:4 operand's bytes, 9/16 of dense, so the hardware bound is 16/9 = 1.78x, and the model
  reaches it. The measured slowdown comes from the software path: PyTorch pads the
  1-row input to 32 rows for cuSPARSELt (issue #111339) and calls a GEMM kernel not
  made for one column, while dense runs cuBLAS's GEMV at the HBM roof (22 us).
  Kernels written for this case do turn the smaller bytes into speed: Sparse-Marlin's
  README (IST Austria) reports about 5.3x over FP16 at small batch for 4-bit 2:4
  weights, where dense 4-bit Marlin stays close to its ideal of about 3.9x: ~1.36x
  from 2:4, near that format's byte ratio (16 bits of values + 4 of metadata vs 16
  bits per 4 weights: 1.33x). **The target "below
  1.1x for the GEMV" is therefore not met by this model, on purpose**: it is a hardware
  model, and nothing in the hardware makes a bandwidth-bound 2:4 GEMV slower than dense.
- The model has cold caches for every GEMM (benchmarks loop and keep up to 40-50 MB
  warm in L2), no kernel-launch or pipeline-fill latency, and one resident tile per SM
  (no overlap of one wave's epilogue with the next wave's loads).
"""


def report_text(rows: list[dict[str, object]], seconds: float) -> str:
    by_label = {row["shape"].label: row for row in rows}  # type: ignore[union-attr]

    def speedup(label: str, preset: str) -> float:
        row = by_label.get(label)
        return _speedup(row, preset) if row else float("nan")

    gemv = by_label.get("GEMV (batch 1)")
    gemv_dense = microseconds(gemv["a100"][0]) if gemv else float("nan")  # type: ignore[index]
    notes = NOTES.format(
        h100_8192=speedup("8192 cubed", "h100"), a100_gemv_dense=gemv_dense,
        a100_big=speedup("16384 cubed", "a100"), a100_4096=speedup("4096 cubed", "a100"),
        a100_tut=speedup("PyTorch tutorial linear", "a100"),
        a100_gemv=speedup("GEMV (batch 1)", "a100"))
    return (
        "# 2:4 sparse vs dense on the stc model (f16), beside published measurements\n\n"
        "Generated by `python benchmarks/stc_sparse_vs_dense.py` "
        f"({seconds:.0f} s on this machine). Y = X . W^T, W (N x K) 2:4 along K; "
        "`stc{preset=P}` vs `stc{preset=P sparse=false}` on the same pruned values, "
        "accounted without executing values (`--no-execute`). Time = cycles / clock "
        "(A100 1.41 GHz, H100 1.83 GHz). *bound*: what limits a full wave's tiles "
        "(math, L2 -> shared memory, or HBM).\n\n"
        f"{table(rows)}\n{notes}\n## Per-tile figures\n\n{details(rows)}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the two largest shapes")
    args = parser.parse_args()
    shapes = SHAPES[:-2] if args.quick else SHAPES
    start = time.perf_counter()
    rows = measure(shapes)
    text = report_text(rows, time.perf_counter() - start)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(RESULTS, text)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
