"""Dynamic KV-cache precision and token pruning during decode: static, per-layer-static and
online policies, run inside a decoder's forward pass through its attention hooks.

**The knob.** Each layer has an aggressiveness level on a ladder (`LADDER`, mild to
aggressive; an assumption (A) of ours, built from KIVI's settings): the KV bit tiers with
the recent window R, then runtime token pruning (tensors/runtime_pruning.py) on top.
Storage is stateful and causal: a token group's precision can only go down (once stored
at 2 bits its fp16 values are gone), so each group keeps the history of widths it was
quantized through (`GroupHistory`); a level change affects the groups from then on.

**The online controller** (`OnlineController`) is a feedback controller, not a bandit:
aggressiveness is ordered and the error grows with it, so a one-dimensional feedback
loop per layer converges in a few steps, whereas a bandit would spend steps exploring
arms that break the budget (every exploratory step of a bandit is a step of output).
Each decode step it

1. measures a cheap signal per layer from what the hardware already has on chip: the
   attention mass on low-precision tokens weighted by their relative quantization step,
   s_l = mean_heads sum_j p_j 2^-b_j, plus the estimated mass of pruned tokens (their
   last mean attention); one multiply-add per cached token;
2. estimates the step's logit KL against the float model as KL^ = gain * sum_l s_l, where
   `gain` is an exponential average of KL / sum_l s_l measured at probe steps (every
   `probe_every` steps the step is also run in float, which costs a float step; the
   benchmark counts it);
3. if KL^ > budget, backs the `moves` layers with the largest signals off by one level;
   if KL^ < `low` * budget, tightens the `moves` layers with the smallest signals by one
   level (hysteresis between low * budget and budget: a discrete integral controller).

**Per-layer static** (`calibrate_layer_levels`): offline, on a calibration text, each
layer alone at a candidate level gives its KL; layers are raised in order of increasing
sensitivity while the predicted sum of per-layer KLs stays within the budget (additivity
is the assumption).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sparsec.tensors.kv_cache import FULL_BITS, KVPolicy, group_paths, kept_positions, quantize_paths
from sparsec.tensors.runtime_pruning import TokenPruner


@dataclass(frozen=True)
class Level:
    """One rung of the ladder: a KV policy and a token-pruning threshold (0: none)."""

    kv: KVPolicy
    tokens: float = 0.0

    def label(self) -> str:
        extra = f" rtp={self.tokens:g}" if self.tokens else ""
        return self.kv.label() + extra


def ladder(recent: int = 128, group: int = 32) -> list[Level]:
    """Mild to aggressive (A): fp16; 16/8, 16/4, 16/4/2, 16/2 with R recent fp16 tokens;
    16/2 plus token pruning at 0.1 and 0.3 (relative to uniform attention)."""
    r, g = recent, group
    return [
        Level(KVPolicy(bits=(16,), group=g)),
        Level(KVPolicy(bits=(16, 8), tiers=(r,), group=g)),
        Level(KVPolicy(bits=(16, 4), tiers=(r,), group=g)),
        Level(KVPolicy(bits=(16, 4, 2), tiers=(r, 2 * r), group=g)),
        Level(KVPolicy(bits=(16, 2), tiers=(r,), group=g)),
        Level(KVPolicy(bits=(16, 2), tiers=(r,), group=g), tokens=0.1),
        Level(KVPolicy(bits=(16, 2), tiers=(r,), group=g), tokens=0.3),
    ]


@dataclass
class GroupHistory:
    """Per token group of one layer's cache, the widths it was quantized through
    (descending); a group's precision only goes down."""

    paths: list[tuple[int, ...]] = field(default_factory=list)

    def update(self, length: int, policy: KVPolicy) -> list[tuple[int, ...]]:
        """Extend to `length` tokens and lower each group to what `policy` assigns now."""
        assigned = group_paths(length, policy)
        for g, path in enumerate(assigned):
            if g >= len(self.paths):
                self.paths.append(path)
                continue
            last, now = self.paths[g][-1], path[-1]
            if now < last:
                self.paths[g] = (*self.paths[g], now)
        return self.paths

    def token_bits(self, length: int, group: int) -> np.ndarray:
        widths = np.array([p[-1] for p in self.paths], dtype=np.int64)
        return np.repeat(widths, group)[:length]


@dataclass
class LayerState:
    """One layer's storage history, token pruner and last signal."""

    level: int
    history: GroupHistory = field(default_factory=GroupHistory)
    pruner: TokenPruner = field(default_factory=TokenPruner)
    kept: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    paths: list[tuple[int, ...]] = field(default_factory=list)
    signal: float = 0.0
    stored_bits: int = 0
    dequantized: int = 0
    decide_ops: int = 0
    tokens_read: int = 0
    tokens_total: int = 0


class PolicyRunner:
    """Applies per-layer levels inside a decoder's attention hooks (decode steps only).

    `levels[l]` picks layer l's rung of `rungs`. Prefill attention runs in float (the
    cache is compressed from the first decode step on, as KIVI does); its probabilities
    seed the token pruners. Layers are recognized by call order (the forward calls the
    attention hooks once per layer, in order).
    """

    def __init__(self, rungs: Sequence[Level], levels: Sequence[int], heads: int = 0,
                 kv_heads: int = 0, head_dim: int = 0):
        self.rungs = list(rungs)
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.default_level = levels[-1] if levels else 0
        self.layers = [self._state(level) for level in levels]
        self.cursor = -1
        self._call: tuple[int, int] | None = None

    def _state(self, level: int) -> LayerState:
        rung = self.rungs[level]
        return LayerState(level, pruner=TokenPruner(threshold=rung.tokens, sink=4,
                                                    recent=rung.kv.tiers[0] if rung.kv.tiers else 32))

    def _enter(self, q: np.ndarray, k: np.ndarray) -> LayerState:
        """The state of the layer this call belongs to: calls with the same (query rows,
        cache length) are the successive layers of one forward step; a new pair starts
        again at layer 0. Layers beyond `levels` get the last level."""
        call = (q.shape[2], k.shape[1])
        self.cursor = self.cursor + 1 if call == self._call else 0
        self._call = call
        self.kv_heads, self.head_dim = k.shape[0], k.shape[2]
        self.heads = q.shape[0] * q.shape[1]
        while len(self.layers) <= self.cursor:
            self.layers.append(self._state(self.default_level))
        return self.layers[self.cursor]

    def set_level(self, layer: int, level: int) -> None:
        state = self.layers[layer]
        state.level = level
        state.pruner.threshold = self.rungs[level].tokens

    # -- hooks -----------------------------------------------------------------------

    def attention_scores(self, q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
        state = self._enter(q, k)
        length = k.shape[1]
        if q.shape[2] > 1:  # prefill: float; a new sequence starts a fresh history
            state = self.layers[self.cursor] = self._state(state.level)
            state.kept = np.ones(length, dtype=bool)
            return np.matmul(q, np.swapaxes(k, -1, -2)[:, None]) * np.float32(scale)
        policy = self.rungs[state.level].kv
        if state.pruner.length < length:
            state.pruner.append(length - state.pruner.length)
        kept = np.zeros(length, dtype=bool)
        kept[kept_positions(length, policy.sink, policy.window)] = True
        kept &= state.pruner.keep()
        state.paths = state.history.update(length, policy)
        state.kept = kept
        keys = quantize_paths(k, kept, state.paths, policy.group, policy.key_axis,
                              policy.meta_bits).astype(np.float32)
        scores = np.matmul(q, np.swapaxes(keys, -1, -2)[:, None]) * np.float32(scale)
        return np.where(kept, scores, -np.inf).astype(np.float32)

    def attention_values(self, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        state = self.layers[self.cursor]
        probs = p.reshape(self.heads, p.shape[2], p.shape[3])
        if p.shape[2] > 1:
            state.pruner.observe_prefill(probs.astype(np.float64))
            return np.matmul(p, v[:, None])
        policy = self.rungs[state.level].kv
        values = quantize_paths(v, state.kept, state.paths, policy.group, policy.value_axis,
                                policy.meta_bits).astype(np.float32)
        self._account(state, policy, probs[:, 0].astype(np.float64), v.shape[1])
        return np.matmul(p, values[:, None])

    def _account(self, state: LayerState, policy: KVPolicy, probs: np.ndarray,
                 length: int) -> None:
        """The cheap signal, the bits read and the deciding work of this step."""
        bits = state.history.token_bits(length, policy.group)
        step = np.where(bits < FULL_BITS, 2.0 ** -bits.astype(np.float64), 0.0)
        before = state.pruner.decide_ops
        dropped = ~state.pruner.alive
        mean = state.pruner.score / (np.maximum(state.pruner.seen, 1) * max(state.pruner.heads, 1))
        state.signal = float((probs * step).sum(axis=1).mean() + mean[dropped].sum())
        state.pruner.observe(probs)
        state.decide_ops += state.pruner.decide_ops - before + length
        state.stored_bits = _stored_bits(state, policy, length, self.kv_heads, self.head_dim)
        kept = int(state.kept.sum())
        state.tokens_read += kept
        state.tokens_total += length
        state.dequantized += 2 * self.kv_heads * self.head_dim * int(
            np.count_nonzero(bits[state.kept] < FULL_BITS))

    # -- totals ----------------------------------------------------------------------

    def signals(self) -> np.ndarray:
        return np.array([s.signal for s in self.layers])

    def stored_bits(self) -> int:
        return sum(s.stored_bits for s in self.layers)


def _stored_bits(state: LayerState, policy: KVPolicy, length: int, heads: int, dim: int) -> int:
    """Exact bits of one layer's K and V as stored now (kept tokens, their current widths):
    per group of t kept tokens at b < 16 bits, keys t*d*b + 2*d*meta (per channel), values
    t*d*b + 2*t*ceil(d/G)*meta (per token); fp16 groups t*d*16 each."""
    g = policy.group
    kept = np.flatnonzero(state.kept)
    counts = np.bincount(kept // g, minlength=len(state.history.paths))
    total = 0
    for group, t in enumerate(counts):
        if t == 0:
            continue
        b = state.history.paths[group][-1]
        if b >= FULL_BITS:
            total += 2 * t * dim * FULL_BITS
            continue
        meta = policy.meta_bits
        key_meta = 2 * dim if policy.key_axis == "channel" else 2 * t * -(-dim // g)
        value_meta = 2 * dim if policy.value_axis == "channel" else 2 * t * -(-dim // g)
        total += 2 * t * dim * b + (key_meta + value_meta) * meta
    return heads * int(total)


@dataclass
class OnlineController:
    """Feedback control of per-layer levels to keep the estimated step KL within `budget`.

    Call `after_step(runner, kl_probe)` after each decode step, with the measured KL of
    that step vs float on probe steps (None otherwise).
    """

    budget: float
    layers: int
    top: int
    probe_every: int = 8
    low: float = 0.5
    smoothing: float = 0.5
    moves: int = 3
    gain: float | None = None
    probes: int = 0
    changes: int = 0
    estimates: list[float] = field(default_factory=list)

    def wants_probe(self, step: int) -> bool:
        return self.gain is None or step % self.probe_every == 0

    def after_step(self, runner: PolicyRunner, kl_probe: float | None) -> None:
        signals = runner.signals()
        total = float(signals.sum())
        if kl_probe is not None:
            self.probes += 1
            if total > 0:
                ratio = kl_probe / total
                self.gain = ratio if self.gain is None else (
                    self.smoothing * self.gain + (1 - self.smoothing) * ratio)
        gain = self.gain if self.gain is not None else 0.0
        estimate = kl_probe if kl_probe is not None else gain * total
        self.estimates.append(estimate)
        levels = np.array([s.level for s in runner.layers])
        if estimate > self.budget:
            candidates = np.flatnonzero(levels > 0)
            for worst in candidates[np.argsort(-signals[candidates], kind="stable")][: self.moves]:
                runner.set_level(int(worst), int(levels[worst]) - 1)
                self.changes += 1
            return
        if estimate < self.low * self.budget:
            candidates = np.flatnonzero(levels < self.top)
            for best in candidates[np.argsort(signals[candidates], kind="stable")][: self.moves]:
                runner.set_level(int(best), int(levels[best]) + 1)
                self.changes += 1


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    """KL(softmax(p) || softmax(q)) in nats, float64 (p: float model, q: policy)."""
    a = p_logits.astype(np.float64) - p_logits.max()
    b = q_logits.astype(np.float64) - q_logits.max()
    la = a - math.log(np.exp(a).sum())
    lb = b - math.log(np.exp(b).sum())
    return float(np.sum(np.exp(la) * (la - lb)))


def calibrate_layer_levels(layer_kl: Callable[[int, int], float], layers: int,
                           candidates: Sequence[int], budget: float) -> list[int]:
    """Per-layer static levels: measure `layer_kl(layer, level)` (that layer alone at
    `level`, every other at 0) for each candidate; then, cheapest KL per gained level
    first, raise layers while the summed per-layer KL stays <= budget."""
    levels = [0] * layers
    table = {(layer, c): layer_kl(layer, c) for layer in range(layers) for c in candidates}
    spent = 0.0
    for c in sorted(candidates):
        order = sorted(range(layers), key=lambda layer: table[(layer, c)])
        for layer in order:
            previous = table.get((layer, levels[layer]), 0.0) if levels[layer] else 0.0
            extra = table[(layer, c)] - previous
            if spent + extra > budget:
                continue
            spent += extra
            levels[layer] = c
    return levels


DECODE_PASSES = ("kv-quantize", "kv-evict")
"""Pipeline passes that become a decode-time policy in whole-model evaluation."""


def decode_policy_numerics(numerics, passes: Sequence[object]):
    """`numerics` (a tensors.hooks.Numerics) whose attention runs the KV policy that the
    given kv-quantize / kv-evict pass objects spell, on every layer's decode steps."""
    bits, tiers, group, sink, window = (16,), (), 32, 0, 0
    key_axis, value_axis, meta = "channel", "token", 16
    for p in passes:
        if p.name == "kv-quantize":
            bits, tiers, group = tuple(p.bits), p.tiers(), p.group
            key_axis, value_axis, meta = p.key_axis, p.value_axis, p.meta_bits
        elif p.name == "kv-evict":
            sink, window = p.sink, p.window
    policy = KVPolicy(bits=bits, tiers=tiers, group=group, sink=sink, window=window,
                      meta_bits=meta, key_axis=key_axis, value_axis=value_axis)
    runner = PolicyRunner([Level(policy)], [0])
    label = ",".join(str(p.pipeline_pass_spec()) for p in passes)
    return numerics.replace(f"{numerics.name} | {label}", attention_scores=runner.attention_scores,
                            attention_values=runner.attention_values)
