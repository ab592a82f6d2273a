"""SIGMA backend: fidelity and speed against STONNE, and SIGMA versus the systolic array.

Writes benchmarks/results/sigma.md:
  1. sparsec's cycles for STONNE's own operands (glibc rand() replayed) against the
     recorded STONNE figures (tests/data/reference/stonne_sigma_dev.csv and
     tests/data/stonne_sigma_extra.csv), with the error and the wall-time ratio;
  2. SIGMA (1024 multipliers, STONNE's configuration, stationary=auto) against the
     systolic backend with the same multipliers (32 x 32, best of os/ws/is), over
     sparsity and shape irregularity, beside the paper's claims.

Run: python benchmarks/sigma_vs_stonne_and_systolic.py
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from sparsec.backends.common.report import write_atomically
from sparsec.backends.sigma import stonne, timing
from sparsec.backends.sigma.spec import SigmaSpec
from sparsec.compiler.driver import CompileOptions, compile_text, execute

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT / "tests" / "data" / "reference" / "stonne_sigma_dev.csv"
EXTRA = ROOT / "tests" / "data" / "stonne_sigma_extra.csv"
OUT = ROOT / "benchmarks" / "results" / "sigma.md"

SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95)
SHAPES = {
    "square 512x512x512": (512, 512, 512),
    "tall-skinny 2048x16x512": (2048, 16, 512),
    "small K 512x512x16": (512, 512, 16),
    "K >> M, N 64x64x4096": (64, 64, 4096),
}


def model_cycles(m: int, n: int, k: int, zero_pct: int, multipliers: int, dn_bw: int,
                 rn_bw: int, dataflow: str) -> tuple[int, float]:
    """sparsec's cycles for STONNE's operands, and the wall time of the cycle model."""
    mk, kn = stonne.sparse_gemm_operands(m, n, k, zero_pct)
    spec = SigmaSpec(multipliers=multipliers, dn_bw=dn_bw, rn_bw=rn_bw)
    a_stationary = dataflow == "MK_STA_KN_STR"
    start = time.perf_counter()
    bits = timing.stationary_bits(mk != 0 if a_stationary else (kn != 0).T, spec.min_cluster)
    cycles = sum(c.cycles for c in timing.gemm_costs(bits, n if a_stationary else m, spec))
    return cycles, time.perf_counter() - start


def fidelity_rows() -> list[str]:
    lines = ["| M | N | K | zeros (s) | mult. | dn/rn bw | dataflow | STONNE | sparsec | error | "
             "STONNE s | sparsec s | ratio |", "|" + "---|" * 13]
    cases = []
    for r in csv.DictReader(DEV.open()):
        bw = r["dn_bw_rn_bw"]
        cases.append(("dev", r["M"], r["N"], r["K"], r["mk_zero_pct"], r["num_ms"], bw, bw,
                      "MK_STA_KN_STR", r["cycles"], r["stonne_wall_s"]))
    for r in csv.DictReader(EXTRA.open()):
        cases.append(("unseen", r["M"], r["N"], r["K"], r["mk_zero_pct"], r["num_ms"],
                      r["dn_bw"], r["rn_bw"], r["dataflow"], r["stonne_cycles"],
                      r["stonne_wall_s"]))
    errors = []
    for kind, *values, reference, wall in cases:
        m, n, k, s, ms, dn, rn = (int(v) for v in values[:7])
        ours, seconds = model_cycles(m, n, k, s, ms, dn, rn, values[7])
        error = 100 * (ours - int(reference)) / int(reference)
        errors.append(abs(error))
        ratio = f"{float(wall) / seconds:,.0f}x" if float(wall) >= 1 else "-"
        lines.append(f"| {m} | {n} | {k} | {s} ({kind}) | {ms} | {dn}/{rn} | {values[7]} | "
                     f"{reference} | {ours} | {error:+.2f}% | {wall} | {seconds:.3f} | {ratio} |")
    lines.append("")
    lines.append(f"Largest error {max(errors):.2f}%, mean {sum(errors) / len(errors):.3f}% over "
                 f"{len(errors)} cases.")
    return lines


def gemm_spec(m: int, n: int, k: int, sparsity: float) -> str:
    density = max(1e-3, 1.0 - sparsity)
    return (f"kernel g {{\n  in A: f32[{m}, {k}] = random(seed=1, density={density})\n"
            f"  param B: f32[{k}, {n}] = random(seed=2)\n  C = matmul(A, B)\n  out C\n}}\n")


def run_cycles(text: str, target: str) -> tuple[int, float]:
    start = time.perf_counter()
    compiled = compile_text(text, CompileOptions(target=target, compute_reference=False))
    report = execute(compiled.module, compiled.store, execute_values=False).reports[0]
    return report.cycles, time.perf_counter() - start


def headline_end_to_end() -> list[str]:
    """The 512^3, 90%-zeros dev case through `sparsec` (compile + run, no values): the
    first call pays Python's imports once, so the best of three later runs is reported."""
    text = gemm_spec(512, 512, 512, 0.91)
    _, cold = run_cycles(text, "sigma{preset=stonne}")
    runs = [run_cycles(text, "sigma{preset=stonne}") for _ in range(3)]
    cycles, seconds = min(runs, key=lambda run: run[1])
    return [f"End to end (`sparsec` compile + run without values, a random 91%-zero A, "
            f"512^3, 1024 multipliers): {cycles} cycles in {seconds:.3f} s, "
            f"{253.9 / seconds:,.0f}x faster than STONNE's recorded 253.9 s for this shape "
            f"and sparsity (the first call in a fresh process takes {cold:.2f} s: imports)."]


def versus_systolic() -> list[str]:
    header = "| shape | " + " | ".join(f"{int(100 * s)}% zeros" for s in SPARSITIES) + " |"
    lines = [header, "|" + "---|" * (len(SPARSITIES) + 1)]
    for label, (m, n, k) in SHAPES.items():
        cells = []
        for sparsity in SPARSITIES:
            text = gemm_spec(m, n, k, sparsity)
            sigma, _ = run_cycles(text, "sigma{preset=stonne stationary=auto}")
            systolic = min(run_cycles(text, f"systolic{{rows=32 cols=32 dataflow={df}}}")[0]
                           for df in ("os", "ws", "is"))
            cells.append(f"{systolic / sigma:.2f}x ({sigma} vs {systolic})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    text = [
        "# SIGMA: fidelity against STONNE, speed, and SIGMA versus a systolic array",
        "",
        "Produced by `benchmarks/sigma_vs_stonne_and_systolic.py`.",
        "",
        "## 1. Cycles against STONNE's SIGMA model",
        "",
        "sparsec's cycle model run on STONNE's own operands (its `rand()` replayed, "
        "`backends/sigma/stonne.py`), against STONNE's cycles: the 13 shared reference "
        "cases (dev) and cases measured here with STONNE rebuilt from its public sources "
        "(unseen: other shapes, 30/60/95% sparsity, 256/512 multipliers, 64/128/512 "
        "bandwidths, both dataflows; the 2x3x4 rows are the hand-checked cases of the "
        "tests). Wall times: STONNE's recorded time per case (dev: the shared figures; "
        "unseen: measured on this 2-core machine under load) against the sparsec cycle "
        "model's time for the same case.",
        "",
        *fidelity_rows(),
        "",
        *headline_end_to_end(),
        "",
        "## 2. SIGMA versus the systolic array, 1024 multipliers each",
        "",
        "Speedup = systolic cycles / SIGMA cycles (SIGMA cycles vs systolic cycles in "
        "brackets). SIGMA: `sigma{preset=stonne stationary=auto}` (1024 multipliers, "
        "full DN/RN bandwidth, STONNE's accounting); systolic: 32 x 32, best of "
        "os/ws/is (SCALE-Sim's accounting, which never skips zeros). A is M x K with the "
        "given fraction of zeros, B dense.",
        "",
        *versus_systolic(),
        "",
    ]
    write_atomically(OUT, "\n".join(text) + "\n")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
