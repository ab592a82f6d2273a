"""Dynamic sparsity for LLM decoding on SmolLM2-135M: KV-cache precision tiers, eviction,
runtime token pruning and an online controller, against static policies.

For each shipped text and context length C: prefill the first C tokens in float, then
decode the next `--steps` tokens teacher-forced (each step's input is the text's next
token), once per policy, all policies in one batch (the weight GEMMs read the weights
once for every policy; each policy has its own KV cache and attention). Per policy:

- perplexity of the decoded tokens, greedy agreement (argmax equals the float model's at
  the same step), mean and 95th-percentile per-step logit KL vs float;
- KV-cache bits stored (= read by each decode step) per token, tokens read, dequantized
  elements and deciding operations, all counted in the run (tensors/controller.py);
- cycles and energy per token on the systolic array: every layer's decode attention is
  compiled with the policy's passes (`kv-quantize`, `kv-evict`) and run by the systolic
  machine (KV bytes moved, dequantization on the vector unit, the fold MACs over the
  kept tokens), plus the policy-independent projections, FFN and LM head (one run).

Policies: static (one rung for every layer), per-layer static (levels calibrated offline
on another text, within the KL budget) and online (tensors/controller.OnlineController,
probing the float step every `--probe-every` steps; the probes' cost is charged).

    python benchmarks/dynamic_sparsity_llm.py                  # 3 texts, C = 256 and 640/1024
    python benchmarks/dynamic_sparsity_llm.py --quick          # one text, C = 256, 16 steps

Writes benchmarks/results/dynamic_sparsity_llm.{md,csv,json} and dynamic_sparsity_llm.png.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparsec.tensors import block_ops
from sparsec.tensors.controller import (
    Level,
    OnlineController,
    PolicyRunner,
    calibrate_layer_levels,
    kl_divergence,
    ladder,
)
from sparsec.tensors.kv_cache import KVPolicy

RESULTS = Path(__file__).parent / "results"

STATIC: dict[str, Level] = {
    "fp16": Level(KVPolicy(bits=(16,))),
    "kivi4 R128": Level(KVPolicy(bits=(16, 4), tiers=(128,))),
    "kivi2 R128": Level(KVPolicy(bits=(16, 2), tiers=(128,))),
    "4bit no-R": Level(KVPolicy(bits=(4,))),
    "2bit no-R": Level(KVPolicy(bits=(2,))),
    "16/4/2 R128+256": Level(KVPolicy(bits=(16, 4, 2), tiers=(128, 256))),
    "evict s4+w128": Level(KVPolicy(bits=(16,), sink=4, window=128)),
    "rtp 0.3": Level(KVPolicy(bits=(16,)), tokens=0.3),
    "kivi2+rtp 0.3": Level(KVPolicy(bits=(16, 2), tiers=(128,)), tokens=0.3),
}
"""Static policies (KIVI: keys per channel, values per token, groups of 32, R recent fp16)."""


@dataclass
class Variant:
    """One policy's run: its runner (None: float), caches, logits and counters."""

    name: str
    kind: str
    runner: PolicyRunner | None
    keys: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)
    controller: OnlineController | None = None
    level_steps: list[list[int]] = field(default_factory=list)


class PrefillRecorder:
    """Accumulates, per layer, the attention each prefill token received (for RTP)."""

    def __init__(self) -> None:
        self.score: dict[int, np.ndarray] = {}

    def __call__(self, layer: int, name: str, value: np.ndarray) -> None:
        if name == "probs" and value.shape[1] > 1:
            self.score[layer] = value.astype(np.float64).sum(axis=(0, 1))


def seed_pruners(runner: PolicyRunner, recorder: PrefillRecorder, heads: int) -> None:
    for layer, state in enumerate(runner.layers):
        score = recorder.score[layer]
        t = score.size
        pruner = state.pruner
        pruner.append(t)
        pruner.score[:] = score
        pruner.seen[:] = t - np.arange(t)
        pruner.heads = heads


def decode_batch(forward, variants: list[Variant], ids: np.ndarray, ctx: int, steps: int,
                 progress=None) -> None:
    """Teacher-forced decode of ids[ctx : ctx+steps] for every variant at once."""
    cfg = forward.config
    g_heads, group, dh = cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads, cfg.head_dim
    scale = 1.0 / math.sqrt(dh)
    for step in range(steps):
        pos = ctx + step
        token = int(ids[pos])
        x = np.repeat(forward.embedding[[token]], len(variants), axis=0)
        positions = np.full(len(variants), pos)
        for layer, w in enumerate(forward.blocks):
            lin = w.linears
            x = x.astype(np.float32, copy=False)
            h = block_ops.rmsnorm(x, w.attn_norm, cfg.rms_eps).astype(np.float32, copy=False)
            q = block_ops.rope(h @ lin["wq"].matrix.T, positions, cfg.rope_base, dh,
                               cfg.rope_convention)
            k = block_ops.rope(h @ lin["wk"].matrix.T, positions, cfg.rope_base, dh,
                               cfg.rope_convention)
            v = h @ lin["wv"].matrix.T
            context = np.empty((len(variants), cfg.n_heads * dh), np.float32)
            for b, var in enumerate(variants):
                var.keys[layer][:, pos] = k[b].reshape(g_heads, dh)
                var.values[layer][:, pos] = v[b].reshape(g_heads, dh)
                keys = var.keys[layer][:, :pos + 1]
                vals = var.values[layer][:, :pos + 1]
                qg = q[b].reshape(g_heads, group, 1, dh).astype(np.float32)
                if var.runner is None:
                    scores = np.matmul(qg, np.swapaxes(keys, -1, -2)[:, None]) * np.float32(scale)
                    probs = block_ops.softmax(scores).astype(np.float32)
                    out = np.matmul(probs, vals[:, None])
                else:
                    scores = var.runner.attention_scores(qg, keys, scale)
                    probs = block_ops.softmax(scores).astype(np.float32)
                    out = var.runner.attention_values(probs, vals)
                context[b] = out.reshape(cfg.n_heads * dh)
            x = x + context @ lin["wo"].matrix.T
            h = block_ops.rmsnorm(x, w.ffn_norm, cfg.rms_eps).astype(np.float32, copy=False)
            act = (block_ops.silu(h @ lin["w_gate"].matrix.T) * (h @ lin["w_up"].matrix.T)
                   ).astype(np.float32, copy=False)
            x = x + act @ lin["w_down"].matrix.T
        x = x.astype(np.float32, copy=False)
        logits = (block_ops.rmsnorm(x, forward.output_norm, cfg.rms_eps).astype(np.float32)
                  @ forward.output.matrix.T)
        reference = logits[0]
        for b, var in enumerate(variants):
            var.logits.append(logits[b].astype(np.float32))
            if var.runner is not None:
                var.level_steps.append([s.level for s in var.runner.layers])
            if var.controller is None:
                continue
            probe = kl_divergence(reference, logits[b]) if var.controller.wants_probe(step) else None
            var.controller.after_step(var.runner, probe)
        if progress is not None:
            progress()


def new_variant(name: str, kind: str, runner: PolicyRunner | None, cache, capacity: int,
                ctx: int) -> Variant:
    var = Variant(name, kind, runner)
    for layer in range(len(cache.keys)):
        keys = np.zeros((cache.keys[layer].shape[0], capacity, cache.keys[layer].shape[2]), np.float32)
        values = np.zeros_like(keys)
        keys[:, :ctx] = cache.keys[layer][:, :ctx]
        values[:, :ctx] = cache.values[layer][:, :ctx]
        var.keys.append(keys)
        var.values.append(values)
    return var


def metrics(var: Variant, floats: Variant, ids: np.ndarray, ctx: int) -> dict[str, float]:
    logits = np.stack(var.logits)
    steps = logits.shape[0]
    targets = ids[ctx + 1: ctx + 1 + steps]
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    n = min(steps, targets.size)
    ppl = float(np.exp(-logp[np.arange(n), targets[:n]].mean()))
    ref = np.stack(floats.logits)
    agree = float(np.mean(np.argmax(logits, 1) == np.argmax(ref, 1)))
    kls = np.array([kl_divergence(r, q) for r, q in zip(ref, logits, strict=True)])
    row = {"ppl": ppl, "agreement": agree, "kl_mean": float(kls.mean()),
           "kl_p95": float(np.percentile(kls, 95))}
    if var.runner is None:
        return row
    layers = var.runner.layers
    row["kv_bits_per_step"] = float(sum(s.stored_bits for s in layers))
    row["tokens_read_frac"] = float(sum(s.tokens_read for s in layers) /
                                    max(1, sum(s.tokens_total for s in layers)))
    row["dequant_per_step"] = float(sum(s.dequantized for s in layers) / steps)
    row["decide_ops_per_step"] = float(sum(s.decide_ops for s in layers) / steps)
    levels = np.array(var.level_steps)
    row["mean_level"] = float(levels.mean())
    if var.controller is not None:
        row["probes"] = var.controller.probes
        row["level_changes"] = var.controller.changes
    return row


# --------------------------------------------------------------------------- systolic costs

ATTN_SPEC = """
kernel attn {{
  in    Q: {dt}[9, 1, 64] = random(seed=1)
  in    Kc: {dt}[3, {cached}, 64] = random(seed=12)
  in    Vc: {dt}[3, {cached}, 64] = random(seed=13)
  in    Kn: {dt}[3, 1, 64] = random(seed=14)
  in    Vn: {dt}[3, 1, 64] = random(seed=15)
  K = concat(Kc, Kn, axis=1)
  V = concat(Vc, Vn, axis=1)
  C = attention(Q, K, V, scale=0.125, mask=causal, start={cached})
  out C
}}
"""

REST_SPEC = """
kernel rest {
  in    H: DT[1, 576] = random(seed=1)
  in    Cx: DT[1, 576] = random(seed=2)
  in    F: DT[1, 576] = random(seed=3)
  in    A: DT[1, 1536] = random(seed=4)
  param Wq: DT[576, 576] = random(seed=5, std=0.05)
  param Wk: DT[576, 192] = random(seed=6, std=0.05)
  param Wv: DT[576, 192] = random(seed=7, std=0.05)
  param Wo: DT[576, 576] = random(seed=8, std=0.05)
  param Wg: DT[576, 1536] = random(seed=9, std=0.05)
  param Wu: DT[576, 1536] = random(seed=10, std=0.05)
  param Wd: DT[1536, 576] = random(seed=11, std=0.05)
  Q = matmul(H, Wq)
  K = matmul(H, Wk)
  V = matmul(H, Wv)
  O = matmul(Cx, Wo)
  G = matmul(F, Wg)
  U = matmul(F, Wu)
  D = matmul(A, Wd)
  out Q, K, V, O, G, U, D
}
"""

HEAD_SPEC = """
kernel head {
  in    X: DT[1, 576] = random(seed=1)
  param Wout: DT[576, 49152] = random(seed=2, std=0.05)
  Y = matmul(X, Wout)
  out Y
}
"""


def pipeline_of(level: Level) -> str:
    """The kernel passes of a rung (token pruning is costed by kept tokens, see below)."""
    kv = level.kv
    parts = []
    recent = ",".join(map(str, kv.tiers)) if kv.tiers else "0"
    parts.append(f"kv-quantize{{bits={','.join(map(str, kv.bits))} recent={recent} "
                 f"group={kv.group}}}")
    if kv.evicts:
        parts.append(f"kv-evict{{window={kv.window} sink={kv.sink}}}")
    return ",".join(parts)


class KernelCosts:
    """Cycles, energy and KV bytes of one decode step on a backend, measured by compiling
    and running the kernels (cached per (pipeline, cache length)): the decode attention
    under a rung's passes, the policy-independent projections/FFN of one layer and the LM
    head. `lanes` / `alu_pj`: where the controller's and pruner's deciding work runs."""

    TARGET = ""
    DTYPE = "f32"
    name = ""
    lanes = 1
    alu_pj = 0.0

    def __init__(self) -> None:
        from sparsec.compiler.driver import CompileOptions, compile_text, execute

        self._compile, self._options, self._execute = compile_text, CompileOptions, execute
        self.cache: dict[tuple[str, int], dict[str, float]] = {}
        self.rest = self._run(REST_SPEC.replace("DT", self.DTYPE), "")
        self.head = self._run(HEAD_SPEC.replace("DT", self.DTYPE), "")

    def _run(self, text: str, pipeline: str) -> dict[str, float]:
        compiled = self._compile(text, self._options(pipeline=pipeline, target=self.TARGET,
                                                     target_passes=True))
        report = self._execute(compiled.module, compiled.store).reports[0]
        if not report.check.ok:
            raise RuntimeError(f"{self.name} check failed for {pipeline}: {report.check}")
        kv = report.details.get("kv_cache", {})
        return {"cycles": report.cycles, "energy_pj": report.energy_pj,
                "kv_bytes": kv.get("bytes", 0), "dequant_cycles": self.dequant_cycles(report)}

    def dequant_cycles(self, report) -> int:
        raise NotImplementedError

    def attention(self, level: Level, cached: int) -> dict[str, float]:
        key = (pipeline_of(level), cached)
        if key not in self.cache:
            self.cache[key] = self._run(ATTN_SPEC.format(cached=cached, dt=self.DTYPE), key[0])
        return self.cache[key]


class SystolicCosts(KernelCosts):
    """The 32x32 output-stationary array, 2-byte words, 16 words per cycle of DRAM."""

    TARGET = "systolic{rows=32 cols=32 dataflow=os word_bytes=2 mode=user bandwidth=16}"
    name = "systolic"

    def __init__(self) -> None:
        from sparsec.backends.systolic.spec import SystolicSpec

        spec = SystolicSpec(rows=32, cols=32, word_bytes=2, mode="user", bandwidth=16)
        self.lanes, self.alu_pj = spec.lanes, spec.vector_alu_pj
        super().__init__()

    def dequant_cycles(self, report) -> int:
        return report.details.get("vector_unit", {}).get("kv_dequant", {}).get("cycles", 0)


class BitllmCosts(KernelCosts):
    """The bit-level weight-compressed chip at its defaults (ISSCC'25 23.8): weights as
    INT8 CSD codes of <= 3 terms (prepare()'s bitlevel-encode), BF16 activations; the
    deciding work on its nonlinear lanes."""

    TARGET = "bitllm"
    DTYPE = "bf16"
    name = "bitllm"

    def __init__(self) -> None:
        from sparsec.backends.bitllm.spec import BitllmSpec

        spec = BitllmSpec()
        self.lanes, self.alu_pj = spec.lanes, spec.nlu_pj
        super().__init__()

    def dequant_cycles(self, report) -> int:
        return report.details.get("kv_dequant", {}).get("cycles", 0)


def bitllm_forward(model):
    """SmolLM2 with the bitllm's weights: every projection and the LM head as per-output-
    channel INT8 codes of <= 3 CSD terms (backends/bitllm/numerics.int8_codes, what the
    chip multiplies by), dequantized; everything else float32 (see docs)."""
    from sparsec.backends.bitllm.numerics import int8_codes
    from sparsec.backends.bitllm.spec import BitllmSpec
    from sparsec.tensors import llm

    spec = BitllmSpec()
    forward = llm.LlamaForward(model)

    def coded(linear):
        codes, scale = int8_codes(np.asarray(linear.matrix, np.float32).T, spec.max_ones,
                                  spec.method)
        return linear.with_matrix((codes * scale[None, :]).T.astype(np.float32))

    for block in forward.blocks:
        for name in list(block.linears):
            block.linears[name] = coded(block.linears[name])
    forward.output = coded(forward.output)
    return forward


def step_cost(costs: KernelCosts, rungs: list[Level], level_steps: np.ndarray, ctx: int,
              tokens_read_frac: float, decide_ops: float) -> dict[str, float]:
    """Mean per-token cycles/energy: for each step and layer, the attention kernel of the
    layer's rung at that cache length (token-pruned rungs: over the kept fraction of the
    cache), plus projections/FFN per layer and the LM head; plus the deciding ALU work."""
    steps, layers = level_steps.shape
    mid = ctx + steps // 2
    cycles = energy = kv = attn = 0.0
    unique, counts = np.unique(level_steps, return_counts=True)
    for level, count in zip(unique, counts, strict=True):
        rung = rungs[int(level)]
        cached = mid if not rung.tokens else max(1, int(round(mid * tokens_read_frac)))
        c = costs.attention(Level(rung.kv), cached)
        share = count / steps
        cycles += share * c["cycles"]
        energy += share * c["energy_pj"]
        attn += share * c["energy_pj"]
        kv += share * c["kv_bytes"]
    cycles += layers * costs.rest["cycles"] + costs.head["cycles"]
    energy += layers * costs.rest["energy_pj"] + costs.head["energy_pj"]
    cycles += -(-decide_ops // costs.lanes)
    energy += decide_ops * costs.alu_pj
    attn += decide_ops * costs.alu_pj
    return {"cycles_per_token": cycles, "energy_uj_per_token": energy * 1e-6,
            "attn_energy_uj_per_token": attn * 1e-6, "kv_bytes_per_token": kv}


# --------------------------------------------------------------------------- driver

def run_text(forward, model, text: str, ctx: int, steps: int, budget: float,
             calibrated: list[int] | None, costs: KernelCosts | None, rungs: list[Level],
             probe_every: int, log, backend: str = "systolic") -> list[dict[str, object]]:
    """Every policy on one text and context, decoded in one batch; `forward` carries the
    backend's weights (float32 for systolic, INT8 CSD codes for bitllm) and `costs` its
    cycles and energy. Agreement and KL are against the batch's first variant: the same
    backend without a KV policy."""
    from sparsec.tensors import llm

    ids = llm.text_ids(model, llm.load_text(text), ctx + steps + 1, text)
    cfg = forward.config
    cache = forward.new_cache(ctx)
    recorder = PrefillRecorder()
    forward.forward(ids[:ctx], cache, record=recorder, last_only=True)
    capacity = ctx + steps
    variants = [new_variant("float" if backend == "systolic" else "no policy", "float", None,
                            cache, capacity, ctx)]
    dims = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)
    for name, level in STATIC.items():
        runner = PolicyRunner([level], [0] * cfg.n_layers, *dims)
        variants.append(new_variant(name, "static", runner, cache, capacity, ctx))
    if calibrated is not None:
        runner = PolicyRunner(rungs, calibrated, *dims)
        variants.append(new_variant("per-layer static", "per-layer", runner, cache, capacity, ctx))
    runner = PolicyRunner(rungs, [2] * cfg.n_layers, *dims)
    online = new_variant("online", "online", runner, cache, capacity, ctx)
    online.controller = OnlineController(budget, cfg.n_layers, len(rungs) - 1,
                                         probe_every=probe_every)
    variants.append(online)
    for var in variants[1:]:
        seed_pruners(var.runner, recorder, cfg.n_heads)
    began = time.perf_counter()
    decode_batch(forward, variants, ids, ctx, steps, progress=log)
    seconds = time.perf_counter() - began
    rows = []
    for var in variants:
        row: dict[str, object] = {"text": text, "context": ctx, "steps": steps,
                                  "backend": backend, "policy": var.name,
                                  "kind": var.kind, **metrics(var, variants[0], ids, ctx)}
        if costs is not None and var.runner is not None:
            var_rungs = var.runner.rungs
            cost = step_cost(costs, var_rungs, np.array(var.level_steps), ctx,
                             float(row["tokens_read_frac"]), float(row["decide_ops_per_step"]))
            if var.controller is not None:  # probes run a float step
                probe = step_cost(costs, [STATIC["fp16"]], np.zeros((1, cfg.n_layers), int),
                                  ctx, 1.0, 0.0)
                share = var.controller.probes / steps
                cost = {k: v + share * probe[k] for k, v in cost.items()}
            row.update(cost)
        rows.append(row)
    print(f"{backend} {text} C={ctx}: {len(variants)} policies x {steps} steps in {seconds:.0f} s",
          file=sys.stderr)
    return rows


def calibrate(forward, model, text: str, ctx: int, steps: int, budget: float,
              rungs: list[Level], candidates: list[int], log) -> list[int]:
    """Per-layer static levels from a calibration text: each (layer, candidate) alone."""
    from sparsec.tensors import llm

    ids = llm.text_ids(model, llm.load_text(text), ctx + steps + 1, text)
    cfg = forward.config
    cache = forward.new_cache(ctx)
    recorder = PrefillRecorder()
    forward.forward(ids[:ctx], cache, record=recorder, last_only=True)
    dims = (cfg.n_heads, cfg.n_kv_heads, cfg.head_dim)
    variants = [new_variant("float", "float", None, cache, ctx + steps, ctx)]
    index = {}
    for layer in range(cfg.n_layers):
        for c in candidates:
            levels = [0] * cfg.n_layers
            levels[layer] = c
            runner = PolicyRunner(rungs, levels, *dims)
            seed_pruners(runner, recorder, cfg.n_heads)
            index[(layer, c)] = len(variants)
            variants.append(new_variant(f"L{layer}@{c}", "calib", runner, cache, ctx + steps, ctx))
    decode_batch(forward, variants, ids, ctx, steps)
    ref = variants[0].logits
    kl = {key: float(np.mean([kl_divergence(r, q) for r, q in zip(ref, variants[i].logits, strict=True)]))
          for key, i in index.items()}
    levels = calibrate_layer_levels(lambda layer, c: kl[(layer, c)], cfg.n_layers, candidates,
                                    budget)
    log(f"calibrated on {text} C={ctx}: levels {levels}")
    return levels


# --------------------------------------------------------------------------- MiniLM

def minilm_rows(thresholds: list[float], texts: list[str]) -> list[dict[str, object]]:
    """Runtime importance pruning in the real MiniLM encoder: every layer's FFN
    intermediate (GELU output, the down projection's input) goes through
    prune_activations (|a| * max|w| estimate, threshold relative to the row's largest);
    sentence-embedding cosine vs float, fraction of down-projection products skipped and
    deciding operations, over texts truncated to the encoder's 512 tokens."""
    import dataclasses

    from sparsec.tensors import llm
    from sparsec.tensors.runtime_pruning import prune_activations
    from sparsec.tensors.workloads import BertModel, _layer_norm, cosine

    class Pruned(BertModel):
        threshold = 0.0
        tally = {"skipped": 0, "dense": 0, "decide": 0}

        def layer(self, index, hidden):  # type: ignore[override]
            record = super().layer(index, hidden)
            if not self.threshold:
                return record
            p = f"encoder.layer.{index}."
            w2 = self._w(f"{p}output.dense.weight")
            result = prune_activations(record.ffn_act, self.threshold, w2.T, "abs_w", relative=True)
            self.tally["skipped"] += result.skipped_products
            self.tally["dense"] += result.dense_products
            self.tally["decide"] += result.decide_ops
            out = result.values @ w2.T + self._w(f"{p}output.dense.bias")
            hidden_out = _layer_norm(out + record.ffn_in, self._w(f"{p}output.LayerNorm.weight"),
                                     self._w(f"{p}output.LayerNorm.bias"), self.config.layer_norm_eps)
            return dataclasses.replace(record, ffn_act=result.values, hidden_out=hidden_out)

    model = Pruned.from_path_or_package()
    rows = []
    for text in texts:
        body = llm.load_text(text)
        reference = model.encode(body, truncate=True)
        for t in thresholds:
            model.threshold = t
            model.tally = {"skipped": 0, "dense": 0, "decide": 0}
            embedding = model.encode(body, truncate=True)
            tally = model.tally
            rows.append({"text": text, "threshold": t, "cosine": cosine(reference, embedding),
                         "skipped_products": tally["skipped"] / max(1, tally["dense"]),
                         "decide_ops": tally["decide"]})
        model.threshold = 0.0
    return rows


def table(rows: list[dict[str, object]]) -> str:
    cols = ["text", "context", "backend", "policy", "ppl", "agreement", "kl_mean", "kl_p95",
            "kv_bits_per_step", "tokens_read_frac", "mean_level", "cycles_per_token",
            "energy_uj_per_token", "attn_energy_uj_per_token", "kv_bytes_per_token"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


SUMMARY_POLICIES = ("fp16", "kivi4 R128", "4bit no-R", "per-layer static", "online")
KIVI_POLICIES = ("kivi4 R128", "4bit no-R", "kivi2 R128", "2bit no-R")


def summary(rows: list[dict[str, object]]) -> str:
    """The two tables the docs cite: KIVI's direction (perplexity change and KL of each
    policy against the same backend without a policy) and, per text and context, where
    the online controller lands against the static policies on each backend."""
    def base_of(r):
        return next(b for b in rows if b["text"] == r["text"] and b["context"] == r["context"]
                    and b["backend"] == r["backend"] and b["kind"] == "float")

    def change(r):
        return f"{100 * (float(r['ppl']) / float(base_of(r)['ppl']) - 1):+.1f}%"

    groups = sorted({(str(r["text"]), int(r["context"]), str(r["backend"])) for r in rows},
                    key=lambda g: (g[0], g[1], g[2] != "systolic"))
    lines = ["## KIVI's direction (ppl change vs the same backend without a policy / mean "
             "per-step logit KL)", "",
             "| text, C, backend | ppl without policy | " + " | ".join(KIVI_POLICIES) + " |",
             "|---" * (2 + len(KIVI_POLICIES)) + "|"]
    for text, ctx, backend in groups:
        sel = {str(r["policy"]): r for r in rows
               if (r["text"], r["context"], r["backend"]) == (text, ctx, backend)}
        base = next(r for r in sel.values() if r["kind"] == "float")
        cells = [f"{change(sel[p])} / KL {float(sel[p]['kl_mean']):.4f}" if p in sel else ""
                 for p in KIVI_POLICIES]
        lines.append(f"| {text}, {ctx}, {backend} | {float(base['ppl']):.3f} | "
                     + " | ".join(cells) + " |")
    lines += ["", "## Static, per-layer static and online per text (budget: mean KL per step)",
              "", "| text, C | backend | policy | ppl vs no policy | KL mean | agree | KV MB/token "
              "| attention uJ/token | total uJ/token | cycles/token |", "|---" * 10 + "|"]
    for text, ctx, backend in groups:
        for policy in SUMMARY_POLICIES:
            match = [r for r in rows if (r["text"], r["context"], r["backend"], r["policy"])
                     == (text, ctx, backend, policy)]
            if not match:
                continue
            r = match[0]
            cost = ("| " + " | ".join(f"{float(r[k]) * scale:.{digits}f}" for k, scale, digits in (
                ("kv_bytes_per_token", 1e-6, 2), ("attn_energy_uj_per_token", 1, 0),
                ("energy_uj_per_token", 1, 0), ("cycles_per_token", 1e-6, 3))) + " |"
                    if "energy_uj_per_token" in r else "| | | | |")
            lines.append(f"| {text}, {ctx} | {backend} | {policy} | {change(r)} | "
                         f"{float(r['kl_mean']):.4f} | {float(r['agreement']):.2f} {cost}")
    lines.append("")
    lines.append("cycles/token in millions.")
    return "\n".join(lines)


def plot(rows: list[dict[str, object]], path: Path) -> None:
    """Per (text, context), per backend: perplexity against energy per token (the whole
    token, weights included, and the attention, where the policies act), Pareto front
    dashed, the backend's run without a policy dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costed = [r for r in rows if "energy_uj_per_token" in r]
    groups = sorted({(r["text"], r["context"]) for r in costed})
    backends = sorted({str(r.get("backend", "systolic")) for r in costed},
                      key=lambda b: b != "systolic")
    if not groups:
        return
    panels = [(b, key, what) for b in backends
              for key, what in (("energy_uj_per_token", "energy per token (uJ)"),
                                ("attn_energy_uj_per_token", "attention energy per token (uJ)"))]
    fig, axes = plt.subplots(len(groups), len(panels),
                             figsize=(5.2 * len(panels), 3.4 * len(groups) + 0.6), squeeze=False)
    colors = {"static": "#4477AA", "per-layer": "#CC6677", "online": "#228833"}
    for line, (text, ctx) in enumerate(groups):
        for col, (backend, key, what) in enumerate(panels):
            ax = axes[line][col]
            mine = [r for r in rows if r["text"] == text and r["context"] == ctx
                    and r.get("backend", "systolic") == backend]
            sel = [r for r in mine if "energy_uj_per_token" in r]
            base = next(r for r in mine if r["kind"] == "float")
            for r in sel:
                ax.scatter(r[key], r["ppl"], color=colors.get(str(r["kind"]), "k"), s=25)
                ax.annotate(str(r["policy"]), (r[key], r["ppl"]), fontsize=6,
                            xytext=(3, 2), textcoords="offset points")
            pts = sorted((float(r[key]), float(r["ppl"])) for r in sel)
            front, best = [], math.inf
            for e, p in pts:
                if p < best:
                    front.append((e, p))
                    best = p
            ax.plot(*zip(*front, strict=True), color="#999999", lw=1, ls="--", label="Pareto front")
            ax.axhline(float(base["ppl"]), color="k", lw=0.8, ls=":",
                       label=f"{backend}, no policy")
            ax.set_title(f"{text}, C={ctx}, {backend}", fontsize=9)
            ax.set_xlabel(f"{backend} {what}", fontsize=8)
            ax.set_ylabel(f"ppl of {base['steps']} decoded tokens", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6)
    fig.suptitle("blue: static; red: per-layer static (calibrated on another text); green: "
                 "online controller (probe cost included).\nsystolic: float weights, 2-byte "
                 "words; bitllm: INT8 CSD-3 weights (its ppl includes the weight code)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    os.replace(tmp, path)


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", default="prose,code,table")
    parser.add_argument("--contexts", default="256,1024",
                        help="context lengths; a text too short for one is skipped (said)")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--budget", type=float, default=0.01, help="per-step logit KL budget (nats)")
    parser.add_argument("--probe-every", type=int, default=16)
    parser.add_argument("--calib-steps", type=int, default=8)
    parser.add_argument("--backends", default="systolic,bitllm",
                        help="cost and weight models: systolic (float weights) and/or bitllm "
                             "(INT8 CSD-3 weights)")
    parser.add_argument("--no-costs", action="store_true", help="accuracy only: no kernel runs")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replot", action="store_true",
                        help="redraw the PNG from the JSON of an earlier run")
    parser.add_argument("--minilm-only", action="store_true",
                        help="only the MiniLM importance-pruning table")
    parser.add_argument("--out", default=str(RESULTS / "dynamic_sparsity_llm"))
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # small batched GEMMs: BLAS threads only contend on a shared machine
    if args.quick:
        args.texts, args.contexts, args.steps, args.calib_steps = "prose", "256", 8, 2
    from sparsec.tensors import llm

    if args.replot:
        out = Path(args.out)
        plot(json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".png"))
        return 0
    if args.minilm_only:
        mrows = minilm_rows([0.0, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1], args.texts.split(","))
        lines = ["| text | threshold (relative) | embedding cosine | products skipped | deciding ops |",
                 "|---|---|---|---|---|"]
        lines += [f"| {r['text']} | {r['threshold']} | {r['cosine']:.5f} | "
                  f"{r['skipped_products']:.3f} | {r['decide_ops']} |" for r in mrows]
        text = ("# Runtime importance pruning in MiniLM (FFN down-projection inputs)\n\nCommand: "
                "`python benchmarks/dynamic_sparsity_llm.py --minilm-only`\n\n" + "\n".join(lines) + "\n")
        write(Path(args.out).with_name("dynamic_sparsity_minilm.md"), text)
        print(text)
        return 0

    def log(message: str | None = None) -> None:
        if message:
            print(message, file=sys.stderr, flush=True)

    model = llm.load_model()
    forward = llm.LlamaForward(model)
    rungs = ladder()
    texts = args.texts.split(",")
    contexts = [int(c) for c in args.contexts.split(",")]
    backends = args.backends.split(",")
    unknown = sorted(set(backends) - {"systolic", "bitllm"})
    if unknown:
        parser.error(f"--backends takes systolic and/or bitllm, got {', '.join(unknown)}")
    runs = []  # (backend, forward, costs)
    for backend in backends:
        log(f"preparing {backend} (weights, policy-independent kernels)")
        fwd = forward if backend == "systolic" else bitllm_forward(model)
        costs = None if args.no_costs else (SystolicCosts() if backend == "systolic"
                                            else BitllmCosts())
        runs.append((backend, fwd, costs))
    rows: list[dict[str, object]] = []
    skipped = []
    step_counter = {"n": 0}

    def tick() -> None:
        step_counter["n"] += 1
        if step_counter["n"] % 16 == 0:
            log(f"  step {step_counter['n']}")

    calibrated: dict[str, list[int]] = {}
    for text in texts:
        # Calibrate on another text (code, or prose for code): never on the evaluated one.
        calib_text = "prose" if text == "code" else "code"
        if calib_text not in calibrated:
            calibrated[calib_text] = calibrate(forward, model, calib_text, 256, args.calib_steps,
                                               args.budget, rungs, [2, 4, 6], log)
        levels = calibrated[calib_text]
        for ctx in contexts:
            available = len(llm.text_ids(model, llm.load_text(text), None))
            if available < ctx + args.steps + 1:
                skipped.append(f"{text} C={ctx} ({available} tokens < {ctx + args.steps + 1})")
                continue
            for backend, fwd, costs in runs:
                rows.extend(run_text(fwd, model, text, ctx, args.steps, args.budget, levels,
                                     costs, rungs, args.probe_every, tick, backend))
            log(f"done {text} C={ctx}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Dynamic sparsity for decoding, SmolLM2-135M\n\nCommand: `python "
              f"benchmarks/dynamic_sparsity_llm.py {' '.join(sys.argv[1:])}`; budget "
              f"{args.budget} nats per step, probes every {args.probe_every} steps; teacher-"
              f"forced decode of {args.steps} tokens after a float prefill of C tokens.\n"
              f"Skipped (text too short): {', '.join(skipped) or 'none'}.\n\n")
    write(out.with_suffix(".md"), header + summary(rows) + "\n\n## Every row\n\n" + table(rows)
          + "\n")
    write(out.with_suffix(".json"), json.dumps(rows, indent=1))
    buf = io.StringIO()
    keys = sorted({k for r in rows for k in r})
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    write(out.with_suffix(".csv"), buf.getvalue())
    plot(rows, out.with_suffix(".png"))
    print(header + table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
