"""One SmolLM2-135M decoder block on the systolic array: where the cycles go, prefill vs
decode step, and how long sparsec takes to compile and run it.

For examples/smollm2_block_prefill.sk and examples/smollm2_block_decode.sk (their
header commands make the data they load) on `systolic` (32x32 os, SCALE-Sim accounting
for the GEMMs, the vector unit of backends/systolic/vector.py for the rest):

* array cycles per GEMM kind (Q/K/V projections, attention's Q K^T and P V, output
  projection, FFN gate/up, FFN down) and vector-unit cycles per instruction kind
  (rmsnorm, rope, the scores' scale-and-mask epilogue, softmax, silu, mul, add);
* total cycles (the Timeline span: units overlap where dependencies allow), DRAM bytes,
  energy and the output check;
* wall time (median of --repeats) of compile (parse, load, build, lower) and of run
  (interpret, check), in-process.

Run:  python benchmarks/smollm2_block_systolic.py [--repeats 3] [--target systolic]
Writes benchmarks/results/smollm2_block_systolic.md and .png.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from sparsec.backends.common.report import write_atomically
from sparsec.compiler.cli import main as sparsec_main
from sparsec.compiler.driver import CompileOptions, compile_spec, execute

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EXAMPLES = {"prefill": "smollm2_block_prefill.sk", "decode": "smollm2_block_decode.sk"}

GEMM_KINDS = {
    "Qp": "Q/K/V projections", "Kp": "Q/K/V projections", "Vp": "Q/K/V projections",
    "C_scores": "attention Q K^T", "C": "attention P V", "A": "output projection",
    "Gt": "FFN gate/up", "Up": "FFN gate/up", "D": "FFN down",
}
"""Tensor names of the examples' GEMM results -> the kind they are reported under."""


def _prepare(workdir: Path) -> Path:
    """A copy of examples/ in which every SmolLM2 example's header commands that make data
    (`sparsec workload ...`) have run, as tests/test_examples.py does."""
    shutil.copytree(ROOT / "examples", workdir / "examples")
    here = Path.cwd()
    os.chdir(workdir)
    try:
        commands = [c for name in EXAMPLES.values()
                    for c in header_commands(workdir / "examples" / name)]
        for command in dict.fromkeys(commands):  # once each, in order
            argv = shlex.split(command)
            if argv[1] == "workload":
                assert sparsec_main(argv[1:]) == 0, command
    finally:
        os.chdir(here)
    return workdir / "examples"


def header_commands(path: Path) -> list[str]:
    """The `sparsec ...` commands of a spec's leading comment block (`\\` continuations
    joined), as tests/test_examples.py reads them."""
    commands: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if pending:
            pending += " " + text.rstrip("\\").strip()
        elif text.startswith("sparsec "):
            pending = text.rstrip("\\").strip()
        if pending and not text.endswith("\\"):
            commands.append(pending)
            pending = ""
    return commands


def _median(action, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(spec: Path, target: str, repeats: int) -> dict:
    compile_s, compiled = _median(lambda: compile_spec(spec, CompileOptions(target=target)),
                                  repeats)
    run_s, result = _median(lambda: execute(compiled.module, compiled.store), repeats)
    report = result.reports[0]
    array: dict[str, int] = {}
    for gemm in report.details["gemms"]:
        kind = GEMM_KINDS.get(gemm["name"], gemm["name"])
        array[kind] = array.get(kind, 0) + gemm["array_cycles"]
    vector = {kind: v["cycles"] for kind, v in report.details["vector_unit"].items()}
    return {"compile_s": compile_s, "run_s": run_s, "cycles": report.cycles,
            "array": array, "vector": vector, "dram": report.bytes["dram"],
            "energy_uj": report.energy_pj / 1e6,
            "check": f"{'ok' if report.check.ok else 'FAIL'} (rel {report.check.rel_err:.1e})"}


def table(results: dict[str, dict], target: str, repeats: int) -> str:
    phases = list(results)
    lines = [f"# SmolLM2-135M decoder block on `{target}`", "",
             "`python benchmarks/smollm2_block_systolic.py` (examples/smollm2_block_*.sk; "
             f"wall times: median of {repeats}, in-process, shared 2-core machine).", "",
             "| | " + " | ".join(phases) + " |", "|---|" + "---:|" * len(phases)]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("total cycles (span)", [f"{results[p]['cycles']:,}" for p in phases])
    kinds = sorted({k for p in phases for k in results[p]["array"]},
                   key=lambda k: list(GEMM_KINDS.values()).index(k)
                   if k in GEMM_KINDS.values() else 99)
    for kind in kinds:
        row(f"array: {kind}", [f"{results[p]['array'].get(kind, 0):,}" for p in phases])
    vkinds = sorted({k for p in phases for k in results[p]["vector"]})
    for kind in vkinds:
        row(f"vector: {kind}", [f"{results[p]['vector'].get(kind, 0):,}" for p in phases])
    row("DRAM bytes read / written", [f"{results[p]['dram']['read']:,} / "
                                      f"{results[p]['dram']['write']:,}" for p in phases])
    row("energy (uJ)", [f"{results[p]['energy_uj']:.1f}" for p in phases])
    row("check", [str(results[p]["check"]) for p in phases])
    row("compile wall time (s)", [f"{results[p]['compile_s']:.2f}" for p in phases])
    row("run wall time (s)", [f"{results[p]['run_s']:.2f}" for p in phases])
    if {"prefill", "decode"} <= set(results):
        pre, dec = results["prefill"], results["decode"]
        ffn = sum(v for k, v in pre["array"].items() if k.startswith("FFN"))
        array_total, vector_total = sum(pre["array"].values()), sum(pre["vector"].values())
        lines += ["", f"Prefill: the FFN's GEMMs are {ffn / array_total:.0%} of the array's "
                  f"cycles; the vector unit is busy {vector_total / pre['cycles']:.0%} of the "
                  f"span. A decode step takes {dec['cycles'] / pre['cycles']:.2f}x the cycles "
                  "of the whole prefill: with one query row, each output-stationary fold "
                  "keeps one array row busy while streaming all of K."]
    lines += ["", "Array cycles are the folds' busy cycles (SCALE-Sim's fold length, one fold "
              "at a time); vector cycles follow backends/systolic/vector.py. The span is "
              "smaller than their sum where the vector unit, the DMAs and the array overlap.",
              ""]
    return "\n".join(lines)


def plot(results: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = list(results)
    parts: dict[str, list[int]] = {}
    for p in phases:
        for kind, cycles in results[p]["array"].items():
            parts.setdefault(f"array: {kind}", [0] * len(phases))[phases.index(p)] = cycles
        for kind, cycles in results[p]["vector"].items():
            parts.setdefault(f"vector: {kind}", [0] * len(phases))[phases.index(p)] = cycles
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bottom = [0] * len(phases)
    colors = plt.get_cmap("tab20").colors
    for i, (label, values) in enumerate(parts.items()):
        ax.bar(phases, values, bottom=bottom, label=label, color=colors[i % len(colors)])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("busy cycles")
    ax.set_title("SmolLM2-135M block on a 32x32 systolic array: busy cycles by op kind")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", default="systolic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        examples = _prepare(Path(tmp))
        results = {phase: measure(examples / name, args.target, args.repeats)
                   for phase, name in EXAMPLES.items()}
    text = table(results, args.target, args.repeats)
    write_atomically(RESULTS / "smollm2_block_systolic.md", text)
    plot(results, RESULTS / "smollm2_block_systolic.png")
    print(text)


if __name__ == "__main__":
    main()
