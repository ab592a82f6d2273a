"""HotTiles at preset spade-sextans-4: speedups over HotOnly, ColdOnly, IUnaware and the
best homogeneous design, the cost model's prediction error, and a >= 10 M-nonzero
matrix through compile and run (wall time, peak memory).

HotTiles (Gerogiannis, Aananthakrishnan, Torrellas, Hur, HPCA 2024), SPADE-Sextans at
scale 4, K = 32, fp32, ten SuiteSparse matrices of 22-100 M nonzeros: geomean speedups
8.7x over HotOnly, 1.9x over ColdOnly, 2.0x over IUnaware, 1.25x over the best
homogeneous design per matrix; prediction error 12.4% for HotTiles (4.8% HotOnly, 19.6%
ColdOnly). Those matrices cannot ship; the workloads here are

- the SuiteSparse matrices of examples/data/suitesparse (992 to 930 k nonzeros), and
- seeded synthetic matrices of millions of nonzeros with intra-matrix heterogeneity
  (`sparsec workload matrix rmat|banded`, tensors/synthetic_matrices.py).

Every matrix runs `C = matmul(A, B)` (A f32, B f32 K = 32 columns) through the normal
driver with `hottiles{preset=spade-sextans-4 policy=P}` for P in hottiles, hotonly,
coldonly, iunaware; best homogeneous is the faster measured of hotonly and coldonly.
Matrices under 1 M nonzeros are executed and checked against scipy; the larger ones
account cycles only (values are checked in the tests). The prediction error is
|predicted - measured| / measured, the partitioner's eq. 6 / 7 against the machine's
execution model (backends/hottiles/execution.py), averaged over matrices.

The large run is a user's: `sparsec workload matrix rmat --scale 20 --edge-factor 12`
(12 M nonzeros) then `sparsec run` of its spec in a fresh process, timed, with the
child's peak resident memory (getrusage).

Writes benchmarks/results/hottiles_suitesparse.md and .png.
Run: python benchmarks/hottiles_suitesparse.py [--skip-large]
"""

from __future__ import annotations

import argparse
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io
from rich.progress import Progress

from sparsec.backends.common.report import Report, write_atomically
from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.tensors import synthetic_matrices as sm

ROOT = Path(__file__).resolve().parents[1]
SUITESPARSE = ROOT / "examples" / "data" / "suitesparse"
RESULTS = ROOT / "benchmarks" / "results" / "hottiles_suitesparse.md"
PLOT = RESULTS.with_suffix(".png")
PRESET = "spade-sextans-4"
K = 32
POLICIES = ("hottiles", "hotonly", "coldonly", "iunaware")
BASELINES = ("hotonly", "coldonly", "iunaware", "best")
PAPER = {"hotonly": 8.7, "coldonly": 1.9, "iunaware": 2.0, "best": 1.25}
PAPER_ERROR = {"hottiles": 0.124, "hotonly": 0.048, "coldonly": 0.196}
EXECUTE_LIMIT = 1_000_000
LARGE = 100_000


@dataclass
class Case:
    """One matrix on every policy."""

    name: str
    group: str
    shape: tuple[int, int]
    nnz: int
    reports: dict[str, Report] = field(default_factory=dict)
    seconds: float = 0.0

    def cycles(self, policy: str) -> int:
        if policy == "best":
            return min(self.cycles("hotonly"), self.cycles("coldonly"))
        return self.reports[policy].cycles

    def speedup(self, baseline: str) -> float:
        return self.cycles(baseline) / max(1, self.cycles("hottiles"))

    def error(self, policy: str) -> float:
        model = self.reports[policy].details["model"]
        return abs(model["predicted_cycles"] - model["cycles"]) / max(1, model["cycles"])

    def detail(self, key: str):
        return self.reports["hottiles"].details["partition"][key]


def spec_text(path: Path, shape: tuple[int, int]) -> str:
    return (f"kernel spmm {{\n  param A: f32[{shape[0]}, {shape[1]}] = load(\"{path}\")\n"
            f"  in B: f32[{shape[1]}, {K}] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}}\n")


def run_case(name: str, group: str, path: Path) -> Case:
    rows, cols, entries, *_ = scipy.io.mminfo(str(path))
    case = Case(name, group, (rows, cols), entries)
    execute_values = entries < EXECUTE_LIMIT
    start = time.perf_counter()
    for policy in POLICIES:
        target = f"hottiles{{preset={PRESET} policy={policy}}}"
        compiled = compile_text(spec_text(path, (rows, cols)),
                                CompileOptions(target=target, target_passes=True,
                                               compute_reference=execute_values),
                                str(path.parent / f"{name}.sk"))
        result = execute(compiled.module, compiled.store, execute_values=execute_values)
        report = result.reports[0]
        if execute_values and not report.check.ok:
            raise SystemExit(f"{name} on {target}: output differs from scipy")
        case.reports[policy] = report
    case.nnz = int(case.reports["hottiles"].macs["effectual"] // K)
    case.seconds = time.perf_counter() - start
    return case


def synthetic(folder: Path) -> dict[str, Path]:
    """The synthetic set (seeded; millions of nonzeros each)."""
    made = {
        "rmat-18": sm.rmat(18, 16, seed=1),
        "rmat-18-flat": sm.rmat(18, 12, a=0.45, b=0.22, c=0.22, seed=2),
        "banded-256k": sm.banded(262144, band=32, per_row=6, blocks=32, block_size=512,
                                 block_density=0.2, seed=3),
        "banded-1m-sparse": sm.banded(1 << 20, band=256, per_row=3, blocks=16,
                                      block_size=1024, block_density=0.1, seed=4),
        "rmat-20": sm.rmat(20, 12, seed=1),
    }
    return {name: sm.save_matrix(matrix, folder / f"{name}.mtx") for name, matrix in made.items()}


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def large_run(folder: Path) -> dict[str, float]:
    """A 12 M-nonzero R-MAT through `sparsec workload` and `sparsec run`, fresh processes."""
    exe = Path(sys.executable).with_name("sparsec")
    path = folder / "rmat-20.mtx"
    subprocess.run([str(exe), "workload", "matrix", "rmat", "--scale", "20", "--edge-factor",
                    "12", "--seed", "1", "-o", str(path)], check=True, capture_output=True)
    rows, _, nnz, *_ = scipy.io.mminfo(str(path))
    spec = folder / "rmat-20.sk"
    spec.write_text(spec_text(path, (rows, rows)))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([str(exe), "run", str(spec), "--target", f"hottiles{{preset={PRESET}}}"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"large run failed: {done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": rows, "nnz": nnz, "seconds": seconds,
            "peak_gib": max(peak, before) * 1024 / 2**30, "ok": "check" in done.stdout}


def plot(cases: list[Case], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 5.5),
                                      gridspec_kw={"width_ratios": [3, 1.2]})
    names = [c.name for c in cases]
    x = np.arange(len(cases))
    width = 0.2
    large = [c for c in cases if c.nnz >= LARGE]
    for i, baseline in enumerate(BASELINES):
        left.bar(x + (i - 1.5) * width, [c.speedup(baseline) for c in cases], width,
                 label=f"over {baseline} (geomean of the {len(large)} with >= {LARGE // 1000} k "
                       f"nnz {geomean([c.speedup(baseline) for c in large]):.2f}x, paper "
                       f"{PAPER[baseline]}x)")
    left.axhline(1.0, color="black", lw=0.8)
    left.set_yscale("log")
    left.set_xticks(x, names, rotation=35, ha="right", fontsize=8)
    left.set_ylabel("HotTiles speedup (log)")
    left.set_title(f"HotTiles on {PRESET}, K = {K}, f32")
    left.legend(fontsize=8)
    errors = [100 * c.error("hottiles") for c in cases]
    right.barh(np.arange(len(cases)), errors, color="tab:gray")
    right.axvline(100 * PAPER_ERROR["hottiles"], color="tab:red", ls="--",
                  label=f"paper {100 * PAPER_ERROR['hottiles']:.1f}%")
    right.axvline(float(np.mean(errors)), color="tab:blue",
                  label=f"mean here {np.mean(errors):.1f}%")
    right.set_yticks(np.arange(len(cases)), names, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("prediction error of HotTiles' partition (%)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(cases: list[Case], title: str) -> list[str]:
    lines = [f"### {title}", "",
             "| matrix | rows | nnz | HotTiles cycles | heuristic | hot nnz | over HotOnly | "
             "over ColdOnly | over IUnaware | over best hom. | pred. error |",
             "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for c in cases:
        lines.append(f"| {c.name} | {c.shape[0]:,} | {c.nnz:,} | {c.cycles('hottiles'):,} | "
                     f"{c.detail('heuristic') or '-'} ({c.detail('schedule')}) | "
                     f"{c.detail('hot_nnz_share'):.0%} | "
                     + " | ".join(f"{c.speedup(b):.2f}x" for b in BASELINES)
                     + f" | {c.error('hottiles'):.1%} |")
    lines.append("| **geomean** | | | | | | " + " | ".join(
        f"**{geomean([c.speedup(b) for c in cases]):.2f}x**" for b in BASELINES)
        + f" | **{np.mean([c.error('hottiles') for c in cases]):.1%}** (mean) |")
    return lines + [""]


def report(cases: list[Case], large: dict | None) -> str:
    groups = {"SuiteSparse (examples/data/suitesparse)": [c for c in cases if c.group == "ss"],
              "synthetic (seeded, sparsec workload matrix)": [c for c in cases if c.group == "syn"],
              "all matrices": cases,
              "large": [c for c in cases if c.nnz >= LARGE]}
    lines = ["# HotTiles at spade-sextans-4: speedups and prediction error", "",
             "Written by `python benchmarks/hottiles_suitesparse.py` (see its docstring). "
             f"Preset `{PRESET}` (1 Sextans, 16 SPADE PEs, 0.8 GHz, 205 GB/s), K = {K}, f32.",
             f"Geomean speedups; prediction error is the mean of |predicted - measured| / "
             f"measured. 'large' = the {len(groups['large'])} matrices of >= {LARGE:,} "
             "nonzeros (the paper's are 22-100 M; the small SuiteSparse ones are a single "
             "16384-wide tile at the scratchpad rule).",
             "", "| HotTiles over | here (large) | here (all) | here (SuiteSparse) | "
             "here (synthetic) | paper |", "|---|---:|---:|---:|---:|---:|"]
    for b in BASELINES:
        cells = [geomean([c.speedup(b) for c in group]) for group in groups.values()]
        lines.append(f"| {b} | **{cells[3]:.2f}x** | {cells[2]:.2f}x | {cells[0]:.2f}x | "
                     f"{cells[1]:.2f}x | {PAPER[b]}x |")
    for policy in ("hottiles", "hotonly", "coldonly"):
        cells = [np.mean([c.error(policy) for c in group]) for group in groups.values()]
        lines.append(f"| prediction error, {policy} | **{cells[3]:.1%}** | {cells[2]:.1%} | "
                     f"{cells[0]:.1%} | {cells[1]:.1%} | {PAPER_ERROR[policy]:.1%} |")
    lines += ["", f"![speedups and prediction error]({PLOT.name})", ""]
    for title, group in groups.items():
        if title not in ("all matrices", "large"):
            lines += table(group, title)
    if large:
        lines += ["### A matrix of >= 10 M nonzeros through compile and run", "",
                  f"R-MAT scale 20 ({large['rows']:,} rows, {large['nnz']:,} entries), "
                  f"`sparsec run ... --target 'hottiles{{preset={PRESET}}}'` in a fresh "
                  f"process, values executed and checked: **{large['seconds']:.1f} s** wall, "
                  f"**{large['peak_gib']:.2f} GiB** peak resident memory.", ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="skip the 12 M-nnz run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Progress() as progress:
        folder = Path(tmp)
        task = progress.add_task("generating synthetic matrices", total=None)
        paths = [(p.name.removesuffix(".mtx.gz"), "ss", p)
                 for p in sorted(SUITESPARSE.glob("*.mtx.gz"))]
        paths += [(name, "syn", p) for name, p in synthetic(folder).items()]
        progress.update(task, description="running", total=len(paths), completed=0)
        cases = []
        for name, group, path in paths:
            progress.update(task, description=f"{name}")
            cases.append(run_case(name, group, path))
            progress.advance(task)
        large = None
        if not args.skip_large:
            progress.update(task, description="12 M-nnz R-MAT, fresh process")
            large = large_run(folder)
    plot(cases, PLOT)
    text = report(cases, large)
    write_atomically(RESULTS, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
