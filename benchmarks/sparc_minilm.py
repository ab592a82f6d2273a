"""SpARC on real MiniLM attention: sparsity, error and cycles per layer, beside the paper.

For T = 128, 256 and 512 tokens of the bundled text, the Q, K and V of all six layers of
all-MiniLM-L6-v2 (12 heads of 32) are compiled through the normal driver and run on
`sparc{preset=paper}` at two operating points:

- `cluster-rows{threshold=0.2 rank=0.15}`: per 64-row block, the fewest clusters whose mean
  KL divergence from dense attention is at most 0.2 nats (the example's pipeline);
- `cluster-rows{clusters=8 rank=0.15}`: 8 clusters per 64 rows, 87.5% attention-map
  sparsity, the middle of the paper's 85-90%.

Per layer: attention-map sparsity (1 - clusters / rows), the mean KL over rows (nats),
the relative error of the layer's attention output against dense attention (the
driver's `error_vs_original`), SpARC cycles, the same machine's dense-attention cycles
and the centroid-cache hit rate; every run's output equals the row-clustered reference
exactly (checked). Then the sentence-embedding cosine against the dense model with every
layer's attention clustered (`BertModel.attention_hook`): each layer calibrated on its
own inputs, and calibrated on another text of the same length (the bundled prose
rotated to start at its fourth paragraph) and applied unchanged. Writes
benchmarks/results/sparc_minilm.md.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/sparc_minilm.py [--quick]
(one BLAS thread: numpy's small products are many times slower when threads contend).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sparsec.backends.common.report import Report, write_atomically
from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.passes.cluster_rows import ClusteredBertAttention
from sparsec.tensors.workloads import DEFAULT_TEXT, BertModel, WordPieceTokenizer, cosine

RESULTS = Path(__file__).parent / "results" / "sparc_minilm.md"
TARGET = "sparc{preset=paper}"
POINTS = {"threshold=0.2": {"threshold": 0.2}, "clusters=8": {"threshold": None, "clusters": 8}}
"""The two operating points: a KL budget per block, and the paper's sparsity."""
PAPER = ("SpARC (Cho et al., DAC 2024), abstract: \"attention map sparsity levels of 85-90% "
         "with negligible accuracy loss\"; \"up to 4x core attention speedup and 6x energy "
         "efficiency improvement compared to prior sparse attention transformer accelerators\".")


@dataclass(frozen=True)
class LayerRow:
    """One layer at one length and operating point."""

    layer: int
    sparsity: float
    kl: float
    rel_error: float
    cycles: int
    dense_cycles: int
    hit_rate: float
    exact: bool


def pipeline(point: str) -> str:
    return f"cluster-rows{{{point} rank=0.15 block=64}}"


def kernels(tokens: int) -> str:
    """Six attention kernels reading layer L's Q, K, V from w.npz."""
    shape = f"12, {tokens}, 32"
    return "\n".join(
        f"kernel layer{n} {{\n" + "".join(
            f'  in {x}: f32[{shape}] = load("w.npz", "layer{n}.{x.lower()}")\n' for x in "QKV")
        + "  O = attention(Q, K, V)\n  out O\n}\n" for n in range(6))


def run_layers(model: BertModel, tokens: int, point: str) -> list[LayerRow]:
    """Compile and run all six layers' attention at `tokens` through the driver."""
    workload = model.forward(model.default_text(tokens))
    with tempfile.TemporaryDirectory() as folder:
        workload.save(Path(folder) / "w.npz", per_head=False)
        compiled = compile_text(kernels(tokens), CompileOptions(pipeline=pipeline(point),
                                                                target=TARGET),
                                str(Path(folder) / "m.sk"))
        reports = execute(compiled.module, compiled.store).reports
    return [layer_row(n, report) for n, report in enumerate(reports)]


def layer_row(layer: int, report: Report) -> LayerRow:
    effect = report.passes["Q"][0]
    details = report.details
    assert report.error_vs_original is not None
    return LayerRow(layer, details["map_sparsity"], float(effect["kl"]),
                    report.error_vs_original["rel_err"], report.cycles,
                    details["dense_cycles"], details["centroid_cache"]["hit_rate"],
                    report.check.ok and report.check.max_abs_err == 0.0)


def rotated_text(tokens: int, tokenizer: WordPieceTokenizer) -> str:
    """The bundled prose from its fourth paragraph on (then its start), cut to exactly
    `tokens` tokens with [CLS] and [SEP]: a calibration text unlike the evaluation one."""
    paragraphs = DEFAULT_TEXT.split("\n\n")
    words = " ".join([*paragraphs[3:], *paragraphs[:3]]).split()
    budget, used, kept = tokens - 2, 0, []
    for word in words:
        count = len(tokenizer.tokenize(word))
        if used + count > budget:
            pieces = tokenizer.tokenize(word)[: budget - used]
            kept.append("".join(p.removeprefix("##") for p in pieces))
            break
        kept.append(word)
        used += count
    text = " ".join(kept)
    length = len(tokenizer.encode(text))
    if length != tokens:
        raise RuntimeError(f"calibration text has {length} tokens, wanted {tokens}")
    return text


def embedding_cosines(model: BertModel, tokens: int, point: str) -> tuple[float, float]:
    """(self-calibrated, held-out) cosine of the clustered model's sentence embedding."""
    text = model.default_text(tokens)
    dense = model.encode(text)
    options = POINTS[point]
    hook = ClusteredBertAttention(**options)  # type: ignore[arg-type]
    model.attention_hook = hook
    own = cosine(dense, model.encode(text))
    calibration = ClusteredBertAttention(**options)  # type: ignore[arg-type]
    model.attention_hook = calibration
    model.encode(rotated_text(tokens, model.tokenizer))
    model.attention_hook = ClusteredBertAttention(formats=dict(calibration.used))
    held_out = cosine(dense, model.encode(text))
    model.attention_hook = None
    return own, held_out


def table(rows: list[LayerRow]) -> list[str]:
    lines = ["| layer | map sparsity | KL (nats) | rel. error of output | cycles | dense cycles "
             "| speedup | cache hits | exact |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for r in rows:
        lines.append(f"| {r.layer} | {r.sparsity:.1%} | {r.kl:.3f} | {r.rel_error:.3f} | "
                     f"{r.cycles:,} | {r.dense_cycles:,} | {r.dense_cycles / r.cycles:.2f}x | "
                     f"{r.hit_rate:.1%} | {'yes' if r.exact else 'NO'} |")
    total, dense = sum(r.cycles for r in rows), sum(r.dense_cycles for r in rows)
    lines.append(f"| all | {np.mean([r.sparsity for r in rows]):.1%} | "
                 f"{np.mean([r.kl for r in rows]):.3f} | "
                 f"{np.mean([r.rel_error for r in rows]):.3f} | {total:,} | {dense:,} | "
                 f"{dense / total:.2f}x | | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 128 only")
    args = parser.parse_args()
    lengths = (128,) if args.quick else (128, 256, 512)
    model = BertModel.from_path_or_package()
    start = time.perf_counter()
    layers: dict[tuple[int, str], list[LayerRow]] = {}
    cosines: dict[tuple[int, str], tuple[float, float]] = {}
    for tokens in lengths:
        for point in POINTS:
            layers[(tokens, point)] = run_layers(model, tokens, point)
            cosines[(tokens, point)] = embedding_cosines(model, tokens, point)
            print(f"T={tokens} {point}: done ({time.perf_counter() - start:.0f} s)", flush=True)
    write_atomically(RESULTS, report(lengths, layers, cosines, time.perf_counter() - start))
    print(f"wrote {RESULTS}")


def report(lengths: tuple[int, ...], layers: dict[tuple[int, str], list[LayerRow]],
           cosines: dict[tuple[int, str], tuple[float, float]], seconds: float) -> str:
    out = ["# SpARC on real MiniLM attention (all-MiniLM-L6-v2, 6 layers x 12 heads of 32)",
           "", f"Paper: {PAPER}", "",
           f"Target `{TARGET}`; pipelines `{pipeline('threshold=0.2')}` and "
           f"`{pipeline('clusters=8')}`. Map sparsity = 1 - clusters / rows (rows whose "
           "attention is not computed exactly); KL = mean over rows of KL(dense || clustered) "
           "on the layer's own inputs (the calibration data); rel. error = ||O~ - O|| / ||O|| "
           "of the attention output; dense cycles = the same machine's matrix-unit time for "
           "dense attention (max with its exponent-unit time); exact = SpARC's output equals "
           "the numpy reference of the row-clustered program bit for bit.", ""]
    out += ["## Summary", "",
            "| T | operating point | map sparsity | mean rel. error | cycles (6 layers) | "
            "speedup vs dense | embedding cosine (self-calibrated) | embedding cosine "
            "(held-out calibration) |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for tokens in lengths:
        for point in POINTS:
            rows = layers[(tokens, point)]
            own, held = cosines[(tokens, point)]
            total, dense = sum(r.cycles for r in rows), sum(r.dense_cycles for r in rows)
            out.append(f"| {tokens} | `{point}` | {np.mean([r.sparsity for r in rows]):.1%} | "
                       f"{np.mean([r.rel_error for r in rows]):.3f} | {total:,} | "
                       f"{dense / total:.2f}x | {own:.4f} | {held:.4f} |")
    for tokens in lengths:
        for point in POINTS:
            out += ["", f"## T = {tokens}, `{point}`", "", *table(layers[(tokens, point)])]
    out += ["", "## Reading", "", *reading(lengths, layers, cosines)]
    out += ["", f"Wall time: {seconds:.0f} s.", ""]
    return "\n".join(out)


def reading(lengths: tuple[int, ...], layers: dict[tuple[int, str], list[LayerRow]],
            cosines: dict[tuple[int, str], tuple[float, float]]) -> list[str]:
    """What the tables say, with the figures taken from them."""
    def span(values: list[float], fmt: str) -> str:
        return f"{min(values):{fmt}}-{max(values):{fmt}}"

    def speedup(tokens: int, point: str) -> float:
        rows = layers[(tokens, point)]
        return sum(r.dense_cycles for r in rows) / sum(r.cycles for r in rows)

    forced = [c for (tokens, point), pair in cosines.items() if point == "clusters=8" for c in pair]
    budget = [c for (tokens, point), pair in cosines.items() if point == "threshold=0.2" for c in pair]
    sparsity = [float(np.mean([r.sparsity for r in rows]))
                for (tokens, point), rows in layers.items() if point == "threshold=0.2"]
    errors = [r.rel_error for (tokens, point), rows in layers.items() if point == "clusters=8"
              for r in rows]
    first, last = lengths[0], lengths[-1]
    return [
        f"- The paper's 85-90% sparsity is reached on MiniLM only by forcing it (`clusters=8`, "
        f"87.5%): each layer's attention output then moves by a relative error of "
        f"{span(errors, '.2f')} and the sentence embedding keeps a cosine of "
        f"{span(forced, '.3f')} to the dense model's: not a negligible loss. With a KL budget "
        f"of 0.2 nats per block, cluster-rows keeps more clusters where rows differ (the "
        f"positional heads of layers 1 and 2) and reaches {span(sparsity, '.0%')} mean "
        f"sparsity with an embedding cosine of {span(budget, '.3f')}. MiniLM is a 6-layer "
        "distilled model with 32-wide heads whose attention rows are far less alike than "
        "those of the BERT-base GLUE inputs the paper evaluates, and the paper's accuracy "
        "(task accuracy) is not an embedding cosine; the direction holds (clustering "
        "trades accuracy for skipped rows), the size of the free lunch does not.",
        "- Speedup is against dense attention on the same modeled machine (its matrix-unit "
        "bound), not against the prior accelerators behind the paper's 4x, which sparsec "
        f"does not model for attention. At T = {last} the speedup is "
        f"{speedup(last, 'threshold=0.2'):.2f}x at the KL budget and "
        f"{speedup(last, 'clusters=8'):.2f}x at 87.5% sparsity; at T = {first} a block's "
        "dependency chain (low-rank scores, L1 passes, centroids, divider, scores, softmax, "
        "A_c V) is longer than two blocks of matrix work, so SpARC is latency bound "
        f"({speedup(first, 'threshold=0.2'):.2f}x and {speedup(first, 'clusters=8'):.2f}x).",
    ]


if __name__ == "__main__":
    main()
