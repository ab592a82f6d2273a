"""`sparsec analyze precision --target bitllm -o DIR`: the precision report the ISSCC'25
bit-level LLM accelerator's paper lacks, measured on SmolLM2-135M.

Sections (each with its PNG; README of backends/bitllm derives the equations):
1. AWSC theory: the register width that makes weight-shift compensation exact, and the
   worst-case error of a narrower register per mode (the bounds that tests/backends/bitllm
   check exhaustively).
2. AWSC measured: per layer, L1 / relative L2 of every projection's output against (a) a
   float32 GEMM of the same INT8 weights and BF16 activations and (b) the float model;
   spill passes, dropped activations, register events; the widths real data overflows.
3. Nonlinear units: max / mean error vs Taylor order 1..8 over the inputs SmolLM2 produces,
   beside the Lagrange bound; attention KL, entropy shift, max-probability drift; SiLU / GELU
   output distribution distance.
4. Layer by layer: bitllm GEMMs (then, separately, the polynomial units) in one layer at a
   time and cumulatively; perplexity and token agreement after each step.
5. Variants and the smallest configuration within 1% of the float model's perplexity.

Every file is written under a temporary name and renamed; a progress bar shows the runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROJECTION_INPUTS = {"wq": "attn_norm", "wk": "attn_norm", "wv": "attn_norm",
                     "wo": "context", "w_gate": "ffn_norm", "w_up": "ffn_norm",
                     "w_down": "ffn_act"}
"""Each projection of a block and the recorded array that is its input."""

ORDERS = tuple(range(1, 9))
F32_FLOOR = 2.0**-24
"""float32 rounding per datapath operation; a polynomial of order p adds about (p + 4) of
them (range reduction, Horner steps, exponent insert) to its Lagrange bound."""
FUNCTIONS = ("exp", "reciprocal", "rsqrt", "sigmoid", "silu", "gelu")



# -- atomic output -----------------------------------------------------------------------------


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    """Write through a temporary file in the same folder, then rename over `path`."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    _write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


def _write_text(path: Path, text: str) -> None:
    _write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# -- the model runs ------------------------------------------------------------------------------


@dataclass
class Runs:
    """The model, its token ids and the float baseline's logits and recorded arrays."""

    model: Any
    ids: np.ndarray
    float_logits: np.ndarray
    recorded: dict[str, np.ndarray]
    n_layers: int


def _recorder(store: dict[str, np.ndarray], names: set[str]) -> Callable[[int, str, np.ndarray], None]:
    def record(layer: int, name: str, value: np.ndarray) -> None:
        if name in names:
            store[f"{layer}.{name}"] = np.array(value, dtype=np.float32)
    return record


def float_runs(tokens: int, text: str, blocks: int | None = None) -> Runs:
    from sparsec.tensors import llm
    from sparsec.tensors.hooks import FLOAT

    model = llm.load_model()
    ids = llm.text_ids(model, llm.load_text(text), tokens, text)
    recorded: dict[str, np.ndarray] = {}
    names = {"attn_norm", "context", "ffn_norm", "ffn_act", "q", "k", "gate", "hidden_in",
             "ffn_in", "probs"}
    runner = llm.LlamaForward(model, FLOAT, n_blocks=blocks)
    logits = runner.teacher_forced(ids, _recorder(recorded, names))
    return Runs(model, ids, logits, recorded, len(runner.blocks))


def perplexity_and_agreement(runs: Runs, numerics: Any) -> tuple[float, float]:
    """(perplexity of the text, fraction of positions whose greedy next token equals the
    float model's) under `numerics`."""
    from sparsec.tensors import llm

    runner = llm.LlamaForward(runs.model, numerics, n_blocks=runs.n_layers)
    switches = getattr(numerics, "_bitllm_switches", None)

    def track(layer: int, name: str, value: np.ndarray) -> None:
        if switches is not None and name == "hidden_in":
            switches.current = layer

    logits = runner.teacher_forced(runs.ids, track)
    agree = float(np.mean(np.argmax(logits, -1) == np.argmax(runs.float_logits, -1)))
    return llm.perplexity(logits, runs.ids), agree


# -- 1. AWSC theory ------------------------------------------------------------------------------


def awsc_theory(spec: Any) -> dict[str, Any]:
    from sparsec.backends.bitllm.arith import (
        max_cluster_magnitude,
        register_error_bound,
        required_acc_bits,
    )

    m, w, s, g = 8, 8, spec.span, spec.group
    need = required_acc_bits(m, w, s, g)
    rows = []
    for bits in range(max(2, need - 10), need + 1):
        rows.append({"acc_bits": bits, **{mode: register_error_bound(m, w, s, g, bits, mode)
                                          for mode in ("saturate", "wrap", "truncate")}})
    spans = [{"span": span, "required_bits": required_acc_bits(m, w, span, g),
              "max_abs_sum": max_cluster_magnitude(m, w, span, g)} for span in range(0, 7)]
    return {"act_bits": m, "weight_bits": w, "span": s, "group": g, "required": need,
            "bounds": rows, "spans": spans}


# -- 2. AWSC measured ----------------------------------------------------------------------------


@dataclass
class LayerGemm:
    layer: int
    l1_vs_int8: float = 0.0
    l2_vs_int8: float = 0.0
    l1_vs_float: float = 0.0
    l2_vs_float: float = 0.0
    max_sum_bits: int = 0
    events: dict[str, Any] = field(default_factory=dict)


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    norm = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / norm if norm else 0.0


def awsc_measured(runs: Runs, spec: Any, advance: Callable[[], None]) -> list[LayerGemm]:
    from sparsec.backends.bitllm.arith import GemmStats
    from sparsec.backends.bitllm.numerics import int8_codes, int_fp_matmul, to_bf16
    from sparsec.tensors.llm import PROJECTIONS

    cfg = spec.int_fp_config()
    out = []
    for layer in range(runs.n_layers):
        stats = GemmStats()
        hw, int8, flt = [], [], []
        for short, stem in PROJECTIONS.items():
            weight = runs.model.matrix(f"blk.{layer}.{stem}.weight")
            x = runs.recorded[f"{layer}.{PROJECTION_INPUTS[short]}"]
            codes, scale = int8_codes(weight.T, spec.max_ones, spec.method)
            y, part = int_fp_matmul(x, codes, scale, cfg)
            stats.merge(part)
            hw.append(y.ravel())
            int8.append((to_bf16(x) @ (codes * scale[None, :]).astype(np.float32)).ravel())
            flt.append((x @ weight.T).ravel())
        y_hw, y_int8, y_float = (np.concatenate(v).astype(np.float64) for v in (hw, int8, flt))
        out.append(LayerGemm(layer, float(np.mean(np.abs(y_hw - y_int8))), _rel_l2(y_hw, y_int8),
                             float(np.mean(np.abs(y_hw - y_float))), _rel_l2(y_hw, y_float),
                             len(stats.sum_bits_histogram) - 1, stats.as_dict()))
        advance()
    return out


def overflow_table(layers: list[LayerGemm], need: int) -> list[dict[str, Any]]:
    """Per register width: cluster sums that would be altered by saturate/wrap (outside the
    range), over every layer's GEMMs; read from the measured bit-length histogram."""
    total = np.zeros(need + 2, dtype=np.int64)
    for layer in layers:
        hist = np.asarray(layer.events["sum_bits_histogram"], dtype=np.int64)
        total[: hist.size] += hist[: need + 2]
    rows = []
    for bits in range(max(2, need - 10), need + 1):
        rows.append({"acc_bits": bits, "overflowing_sums": int(total[bits + 1:].sum()),
                     "sums": int(total.sum())})
    return rows


# -- 3. nonlinear units --------------------------------------------------------------------------


def observed_inputs(runs: Runs, limit: int = 200_000, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs each function sees in the float model: exp (scores minus the row max),
    reciprocal (softmax row sums), rsqrt (mean square + eps of the normalized rows), sigmoid
    / SiLU / GELU (the FFN gate; SmolLM2 has no GELU, so GELU is measured on the same)."""
    from sparsec.tensors import block_ops

    cfg = runs.model.config
    exp_in, sums, rms, gate = [], [], [], []
    for layer in range(runs.n_layers):
        scores = attention_scores(runs, layer)
        shifted = scores - scores.max(axis=-1, keepdims=True)
        finite = shifted[np.isfinite(shifted)]
        exp_in.append(finite)
        sums.append(np.exp(shifted).sum(axis=-1).ravel())
        for name in ("hidden_in", "ffn_in"):
            x = runs.recorded[f"{layer}.{name}"].astype(np.float64)
            rms.append(np.mean(x * x, axis=-1) + cfg.rms_eps)
        gate.append(runs.recorded[f"{layer}.gate"].ravel())
    del block_ops
    rng = np.random.default_rng(seed)

    def sample(parts: list[np.ndarray]) -> np.ndarray:
        values = np.concatenate([np.ravel(p) for p in parts]).astype(np.float32)
        if values.size > limit:
            values = rng.choice(values, limit, replace=False)
        return values

    g = sample(gate)
    return {"exp": sample(exp_in), "reciprocal": sample(sums), "rsqrt": sample(rms),
            "sigmoid": g, "silu": g, "gelu": g}


def attention_scores(runs: Runs, layer: int) -> np.ndarray:
    """Masked scaled scores [H, T, T] of a layer from its recorded q and k."""
    from sparsec.tensors import block_ops

    cfg = runs.model.config
    q = runs.recorded[f"{layer}.q"].astype(np.float64)
    k = runs.recorded[f"{layer}.k"].astype(np.float64)
    group = cfg.n_heads // cfg.n_kv_heads
    keys = np.repeat(k, group, axis=0)
    scores = q @ np.swapaxes(keys, -1, -2) / math.sqrt(cfg.head_dim)
    t = scores.shape[-1]
    return np.where(block_ops.causal_mask(t, t, 0), scores, -np.inf)


def order_errors(inputs: dict[str, np.ndarray]) -> dict[str, list[dict[str, float]]]:
    from sparsec.backends.bitllm import nonlinear as nl

    table: dict[str, list[dict[str, float]]] = {}
    for function in FUNCTIONS:
        x = inputs[function]
        exact = nl.exact(function, x)
        rows = []
        for order in ORDERS:
            got = nl.EVALUATORS[function](x, order).astype(np.float64)
            err = np.abs(got - exact)
            # relative error where the value is not negligible: GELU's left tail (|f| <
            # 1e-6 max |f|) underflows in float32 and has no meaningful relative error
            big = np.abs(exact) >= 1e-6 * np.abs(exact).max()
            rel = err[big] / np.abs(exact[big])
            bound = nl.lagrange_relative_bound(function, order)
            floor = F32_FLOOR * (order + 4 + (float(np.abs(x).max()) if function == "exp" else 0))
            rows.append({"order": order, "max_abs": float(err.max()),
                         "mean_abs": float(err.mean()), "max_rel": float(rel.max()),
                         "bound_rel": bound, "bound_rel_f32": bound + floor,
                         "bound_abs": bound * float(np.abs(exact).max())})
        table[function] = rows
    return table


def attention_effects(runs: Runs) -> list[dict[str, float]]:
    """Per order: per-row KL(float || unit), entropy shift and largest-probability drift of
    the attention probabilities over every layer; the unit's row sums' deviation from 1."""
    from sparsec.backends.bitllm import nonlinear as nl

    all_scores = [attention_scores(runs, layer).astype(np.float32) for layer in range(runs.n_layers)]
    rows = []
    for order in ORDERS:
        kls, shifts, drifts, sums = [], [], [], []
        for scores in all_scores:
            s64 = scores.astype(np.float64)
            ref = np.exp(s64 - s64.max(-1, keepdims=True))
            ref /= ref.sum(-1, keepdims=True)
            unit = nl.poly_softmax(scores, order).astype(np.float64)
            total = unit.sum(-1, keepdims=True)
            sums.append(np.abs(total - 1).ravel())
            unit_n = unit / total
            with np.errstate(divide="ignore", invalid="ignore"):
                kl = np.where(ref > 0, ref * (np.log(ref) - np.log(np.maximum(unit_n, 1e-300))), 0)
                ent_ref = -np.where(ref > 0, ref * np.log(ref), 0).sum(-1)
                ent_unit = -np.where(unit_n > 0, unit_n * np.log(unit_n), 0).sum(-1)
            kls.append(kl.sum(-1).ravel())
            shifts.append((ent_unit - ent_ref).ravel())
            drifts.append((unit.max(-1) - ref.max(-1)).ravel())
        kl_all, shift, drift, dev = (np.concatenate(v) for v in (kls, shifts, drifts, sums))
        rows.append({"order": order, "kl_mean": float(kl_all.mean()), "kl_max": float(kl_all.max()),
                     "entropy_shift_mean": float(shift.mean()),
                     "entropy_shift_max": float(np.abs(shift).max()),
                     "max_prob_drift_mean": float(np.abs(drift).mean()),
                     "max_prob_drift_max": float(np.abs(drift).max()),
                     "row_sum_error_max": float(dev.max())})
    return rows


def activation_drift(inputs: dict[str, np.ndarray]) -> dict[str, list[dict[str, float]]]:
    """SiLU / GELU output distributions, unit vs exact: Wasserstein-1 distance and the total
    variation distance of 200-bin histograms over the float outputs' range."""
    from scipy.stats import wasserstein_distance

    from sparsec.backends.bitllm import nonlinear as nl

    table: dict[str, list[dict[str, float]]] = {}
    for function in ("silu", "gelu"):
        x = inputs[function]
        exact = nl.exact(function, x)
        edges = np.linspace(exact.min(), exact.max(), 201)
        ref_hist = np.histogram(exact, edges)[0] / exact.size
        rows = []
        for order in ORDERS:
            got = nl.EVALUATORS[function](x, order).astype(np.float64)
            hist = np.histogram(np.clip(got, edges[0], edges[-1]), edges)[0] / got.size
            rows.append({"order": order, "wasserstein": float(wasserstein_distance(exact, got)),
                         "total_variation": float(0.5 * np.abs(hist - ref_hist).sum())})
        table[function] = rows
    return table


# -- 4 / 5. whole-model runs ---------------------------------------------------------------------


def bitllm_numerics(spec: Any, gemm: bool = True, nonlinear: bool = True,
                    layers: frozenset[int] | None = None, head: bool = False) -> Any:
    from sparsec.backends.bitllm.numerics import Switches, numerics

    switches = Switches(gemm=gemm, nonlinear=nonlinear, layers=layers, head=head)
    hooks = numerics("bf16", spec, switches=switches)
    object.__setattr__(hooks, "_bitllm_switches", switches)
    return hooks


def layer_sweep(runs: Runs, spec: Any, points: list[int], advance: Callable[[], None]
                ) -> list[dict[str, Any]]:
    rows = []
    for part in ("gemm", "nonlinear"):
        for mode in ("single", "cumulative"):
            for layer in points:
                chosen = frozenset([layer]) if mode == "single" else frozenset(range(layer + 1))
                hooks = bitllm_numerics(spec, gemm=part == "gemm",
                                        nonlinear=part == "nonlinear", layers=chosen)
                ppl, agree = perplexity_and_agreement(runs, hooks)
                rows.append({"part": part, "mode": mode, "layer": layer, "perplexity": ppl,
                             "agreement": agree})
                advance()
    return rows


def variants(spec: Any) -> list[tuple[str, Any]]:
    """The default configuration and variants of C, S, Taylor order, k ones and register."""
    replace = dataclasses.replace
    return [
        ("default", spec),
        ("clusters=2 overflow=drop", replace(spec, clusters=2, overflow="drop")),
        ("taylor_order=3", replace(spec, taylor_order=3)),
        ("max_ones=2", replace(spec, max_ones=2)),
        ("acc_bits=18 saturate", replace(spec, acc_bits=18)),
    ]


# -- plots ---------------------------------------------------------------------------------------


def plot_theory(theory: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    bits = [r["acc_bits"] for r in theory["bounds"]]
    for mode, marker in (("saturate", "o"), ("wrap", "s"), ("truncate", "^")):
        ax.semilogy(bits, [max(r[mode], 0.5) for r in theory["bounds"]], marker=marker, label=mode)
    ax.axvline(theory["required"], color="gray", ls="--", label=f"exact width {theory['required']}")
    ax.set_xlabel("cluster register width (bits)")
    ax.set_ylabel("worst-case |P - register(P)| (LSB; 0 drawn at 0.5)")
    ax.set_title(f"AWSC register bound, M=8 W=8 S={theory['span']} G={theory['group']}")
    ax.legend()
    _save_figure(fig, path)


def plot_layers(layers: list[LayerGemm], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    x = [layer.layer for layer in layers]
    ax.semilogy(x, [layer.l2_vs_int8 for layer in layers], "o-",
                label="vs float32 GEMM of the same INT8 weights, BF16 activations")
    ax.semilogy(x, [layer.l2_vs_float for layer in layers], "s-", label="vs the float model")
    ax.set_xlabel("layer")
    ax.set_ylabel("relative L2 error of GEMM outputs")
    ax.set_title("bitllm GEMMs per SmolLM2 layer (7 projections each)")
    ax.legend(fontsize=8)
    _save_figure(fig, path)


def plot_orders(errors: dict[str, list[dict[str, float]]], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 6.5), sharex=True)
    for ax, function in zip(axes.ravel(), FUNCTIONS, strict=True):
        rows = errors[function]
        orders = [r["order"] for r in rows]
        ax.semilogy(orders, [r["max_rel"] for r in rows], "o-", label="max relative error")
        ax.semilogy(orders, [max(r["mean_abs"], 1e-12) for r in rows], "^-", label="mean abs error")
        ax.semilogy(orders, [r["bound_rel"] for r in rows], "k--", label="Lagrange bound (rel)")
        ax.semilogy(orders, [r["bound_rel_f32"] for r in rows], "k:",
                    label="Lagrange + float32 rounding")
        ax.set_title(function)
        ax.set_xlabel("Taylor order")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Polynomial unit error over the inputs SmolLM2 produces")
    fig.tight_layout()
    _save_figure(fig, path)


def plot_attention(rows: list[dict[str, float]], drift: dict[str, list[dict[str, float]]],
                   path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    orders = [r["order"] for r in rows]
    for key, label in (("kl_mean", "KL mean"), ("kl_max", "KL max"),
                       ("entropy_shift_max", "|entropy shift| max (nats)"),
                       ("max_prob_drift_max", "max-probability drift max"),
                       ("row_sum_error_max", "|row sum - 1| max")):
        a.semilogy(orders, [max(r[key], 1e-16) for r in rows], "o-", label=label)
    a.set_xlabel("Taylor order")
    a.set_title("attention probabilities: unit vs exact softmax")
    a.legend(fontsize=7)
    for function, rows_f in drift.items():
        b.semilogy(orders, [max(r["wasserstein"], 1e-16) for r in rows_f], "o-",
                   label=f"{function}: Wasserstein-1")
        b.semilogy(orders, [max(r["total_variation"], 1e-16) for r in rows_f], "s--",
                   label=f"{function}: histogram TV")
    b.set_xlabel("Taylor order")
    b.set_title("SiLU / GELU output distribution drift")
    b.legend(fontsize=7)
    _save_figure(fig, path)


def plot_sweep(rows: list[dict[str, Any]], base: float, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for part in ("gemm", "nonlinear"):
        for mode, style in (("single", "o--"), ("cumulative", "s-")):
            sel = [r for r in rows if r["part"] == part and r["mode"] == mode]
            label = f"{'GEMMs (AWSC)' if part == 'gemm' else 'polynomial units'}, {mode}"
            a.plot([r["layer"] for r in sel], [r["perplexity"] for r in sel], style, label=label)
            b.plot([r["layer"] for r in sel], [r["agreement"] for r in sel], style, label=label)
    a.axhline(base, color="gray", ls=":", label="float model")
    a.axhline(base * 1.01, color="red", ls=":", label="float + 1%")
    a.set_xlabel("layer (single: only it; cumulative: 0..it)")
    a.set_ylabel("perplexity")
    b.set_xlabel("layer")
    b.set_ylabel("greedy next-token agreement with float")
    a.legend(fontsize=7)
    _save_figure(fig, path)


# -- the report ----------------------------------------------------------------------------------


def _md_table(rows: list[dict[str, Any]], keys: list[str], fmt: str = "{:.4g}") -> str:
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    body = ""
    for row in rows:
        cells = [fmt.format(row[k]) if isinstance(row[k], float) else str(row[k]) for k in keys]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("analyze precision", total=total)
        yield lambda: progress.advance(task)


def analyze_precision(spec: Any, out: Path, tokens: int, text: str, points: list[int],
                      smallest: bool = True, blocks: int | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with _progress(2 + (blocks or 30) + 4 * len(points) + len(variants(spec)) + 11) as advance:
        runs = float_runs(tokens, text, blocks)
        advance()
        from sparsec.tensors.llm import perplexity

        base_ppl = perplexity(runs.float_logits, runs.ids)
        theory = awsc_theory(spec)
        layers = awsc_measured(runs, spec, advance)
        overflow = overflow_table(layers, theory["required"])
        inputs = observed_inputs(runs)
        errors = order_errors(inputs)
        attn = attention_effects(runs)
        drift = activation_drift(inputs)
        advance()
        sweep = layer_sweep(runs, spec, [p for p in points if p < runs.n_layers], advance)
        results = []
        for label, variant in variants(spec):
            ppl, agree = perplexity_and_agreement(runs, bitllm_numerics(variant))
            results.append({"configuration": label, "target": variant.label(), "perplexity": ppl,
                            "vs_float": ppl / base_ppl - 1, "agreement": agree})
            advance()
        widest = max(layer.max_sum_bits for layer in layers)
        best = (smallest_configuration(runs, spec, base_ppl, results, widest, advance)
                if smallest else None)
    ranges = {f: (float(inputs[f].min()), float(inputs[f].max())) for f in FUNCTIONS}
    plot_theory(theory, out / "awsc_bound.png")
    plot_layers(layers, out / "awsc_layers.png")
    plot_orders(errors, out / "nonlinear_orders.png")
    plot_attention(attn, drift, out / "attention_drift.png")
    plot_sweep(sweep, base_ppl, out / "layer_sweep.png")
    data = {"target": spec.target_string(), "tokens": int(runs.ids.size), "text": text,
            "blocks": runs.n_layers,
            "float_perplexity": base_ppl, "theory": theory, "overflow": overflow,
            "layers": [dataclasses.asdict(layer) for layer in layers], "orders": errors,
            "ranges": ranges, "attention": attn, "activation_drift": drift, "sweep": sweep,
            "variants": results, "smallest": best}
    _write_text(out / "precision.json", json.dumps(data, indent=1, default=_jsonable))
    _write_text(out / "precision.md", render(data))
    return out / "precision.md"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    raise TypeError(f"not JSON: {type(value)}")


def smallest_configuration(runs: Runs, spec: Any, base: float, results: list[dict[str, Any]],
                           widest: int, advance: Callable[[], None]) -> dict[str, Any]:
    """Smallest Taylor order (polynomial units alone), fewest ones per weight (GEMMs alone),
    the narrowest register that no cluster sum of this data overflows (lossless by
    construction: it holds every sum exactly), then the combination, run once."""
    replace = dataclasses.replace
    found: dict[str, Any] = {"float_perplexity": base, "tried": []}

    def ok(variant: Any, gemm: bool, nonlinear: bool, label: str) -> bool:
        ppl, agree = perplexity_and_agreement(
            runs, bitllm_numerics(variant, gemm=gemm, nonlinear=nonlinear))
        within = abs(ppl - base) <= 0.01 * base
        found["tried"].append({"configuration": label, "perplexity": ppl, "agreement": agree,
                               "within_1pct": within})
        advance()
        return within

    order = next((p for p in range(1, 9)
                  if ok(replace(spec, taylor_order=p), False, True,
                        f"taylor_order={p} (units only)")), 8)
    ones = 1 if ok(replace(spec, max_ones=1), True, False, "max_ones=1 (GEMMs only)") else None
    if ones is None:
        two = next((r for r in results if r["configuration"] == "max_ones=2"), None)
        ones = 2 if two is not None and abs(two["vs_float"]) <= 0.01 else spec.max_ones
    width = widest
    combined = replace(spec, taylor_order=order, max_ones=ones, acc_bits=width)
    holds = ok(combined, True, True, f"combined: {combined.label()}")
    found.update({"taylor_order": order, "max_ones": ones, "acc_bits": width,
                  "target": combined.label(), "combined_within_1pct": holds})
    return found


def render(d: dict[str, Any]) -> str:
    theory = d["theory"]
    lines = [
        "# Precision of the bit-level LLM accelerator on SmolLM2-135M",
        "",
        f"Target `{d['target']}`; {d['tokens']} tokens of the shipped text `{d['text']}`; "
        f"float model perplexity {d['float_perplexity']:.4f}. Reproduce: "
        "`sparsec analyze precision --target bitllm -o DIR`.",
        "",
        "## 1. AWSC: when shifting weights equals aligning activations",
        "",
        f"Per cluster, AWSC forms P = sum (-1)^s m (w << d) with m < 2^{theory['act_bits']}, "
        f"|w| <= 2^{theory['weight_bits'] - 1}, d <= S = {theory['span']}, n <= G = "
        f"{theory['group']}: max |P| = (2^M - 1) 2^(W-1) ((G - 1) 2^S + 1), so a register of "
        f"A >= 1 + bitlen(max |P|) = **{theory['required']} bits** equals activation "
        "alignment exactly (integer multiplication commutes; zero extension into W + d bits "
        "loses nothing). Narrower registers err by at most (LSB of the cluster):",
        "",
        _md_table(theory["bounds"], ["acc_bits", "saturate", "wrap", "truncate"]),
        "Required width per span S:",
        "",
        _md_table(theory["spans"], ["span", "required_bits", "max_abs_sum"]),
        "![AWSC bound](awsc_bound.png)",
        "",
        "## 2. AWSC measured per layer",
        "",
        "Relative L2 / mean L1 of all 7 projections' outputs of each layer, bitllm vs (a) "
        "float32 GEMM of the same INT8 (bit-level coded) weights and BF16 activations, "
        "(b) the float model (GGUF weights, float32 activations).",
        "",
        _md_table([{"layer": r["layer"], "L2 vs INT8": r["l2_vs_int8"], "L1 vs INT8": r["l1_vs_int8"],
                    "L2 vs float": r["l2_vs_float"], "L1 vs float": r["l1_vs_float"],
                    "max sum bits": r["max_sum_bits"],
                    "spilled groups": r["events"]["spilled_groups"],
                    "extra passes": r["events"]["extra_passes"],
                    "register events": r["events"]["register_events"],
                    "dropped": r["events"]["dropped_elements"]} for r in d["layers"]],
                  ["layer", "L2 vs INT8", "L1 vs INT8", "L2 vs float", "L1 vs float",
                   "max sum bits", "spilled groups", "extra passes", "register events",
                   "dropped"]),
        "![per layer](awsc_layers.png)",
        "",
        "Which register widths overflow on this data (cluster sums outside the range of a "
        "saturating or wrapping register):",
        "",
        _md_table(d["overflow"], ["acc_bits", "overflowing_sums", "sums"]),
        "## 3. Nonlinear units",
        "",
        "bound_rel is the Lagrange remainder on the reduced range (exact arithmetic); "
        "bound_rel_f32 adds (p + 4) float32 roundings (exp: plus |x|max 2^-24, the float32 "
        "range reduction r = x - n ln2 with ln2 rounded): beyond order 5 exp is limited by "
        "that, not by the polynomial. max_rel is taken where |f| >= 1e-6 max|f| (GELU's far "
        "left tail underflows).",
        "",
        "Observed input ranges: " + ", ".join(f"{f} [{lo:.4g}, {hi:.4g}]"
                                              for f, (lo, hi) in d["ranges"].items()) + ".",
        "",
    ]
    for function, rows in d["orders"].items():
        lines += [f"**{function}**", "", _md_table(rows, ["order", "max_abs", "mean_abs", "max_rel",
                                                          "bound_rel", "bound_rel_f32"])]
    lines += [
        "![orders](nonlinear_orders.png)",
        "",
        "Attention probabilities (unit softmax at each order vs exact), over every layer's rows:",
        "",
        _md_table(d["attention"], ["order", "kl_mean", "kl_max", "entropy_shift_mean",
                                   "entropy_shift_max", "max_prob_drift_mean",
                                   "max_prob_drift_max", "row_sum_error_max"]),
        "SiLU / GELU output distributions (GELU on the same gate inputs):",
        "",
    ]
    for function, rows in d["activation_drift"].items():
        lines += [f"**{function}**", "", _md_table(rows, ["order", "wasserstein", "total_variation"])]
    lines += ["![attention](attention_drift.png)", "", "## 4. Layer by layer", "",
              _md_table(d["sweep"], ["part", "mode", "layer", "perplexity", "agreement"]),
              "![sweep](layer_sweep.png)", "",
              "## 5. Variants (every block in bitllm numerics; the tied LM head float (A), "
              "as in eval llm; C and S alone change cycles, not values: spill is exact)", "",
              _md_table(d["variants"], ["configuration", "target", "perplexity", "vs_float",
                                        "agreement"])]
    best = d.get("smallest")
    if best:
        lines += ["## 6. Smallest configuration within 1% of float perplexity", "",
                  _md_table(best["tried"], ["configuration", "perplexity", "agreement",
                                            "within_1pct"]),
                  f"Smallest: Taylor order {best['taylor_order']}, {best['max_ones']} ones per "
                  f"weight, a {best['acc_bits']}-bit saturating register (the widest cluster "
                  f"sum of this data, so it never saturates): `{best['target']}` "
                  f"({'holds' if best['combined_within_1pct'] else 'does NOT hold'} combined).",
                  ""]
    return "\n".join(lines) + "\n"


# -- CLI -----------------------------------------------------------------------------------------
