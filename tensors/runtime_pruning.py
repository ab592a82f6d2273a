"""Runtime importance pruning: activations by magnitude, tokens by accumulated attention.

Both decide from the data as it arrives, never from the future, and both count what
deciding costs (the saliency computation is work the hardware does):

- **Activations** (`prune_activations`): in a product A [M, K] x W [K, N], the
  activation A[m, k] is skipped (all its N products) when its estimated contribution is
  below a threshold. Estimates: `abs` |A[m, k]|, or `abs_w` |A[m, k]| * w_k with
  w_k = max_n |W[k, n]| (an offline per-row weight magnitude, one multiply per
  activation). With `relative=True` the threshold is a fraction of the row's largest
  estimate (one max pass per row). Deciding costs one compare per activation, plus the
  multiply (abs_w) and the max pass (relative).
- **Tokens** (`TokenPruner`, RTP-like after MulTCIM's runtime token pruner, whose exact
  rule is unpublished): each layer accumulates, per cached token, the attention it has
  received (summed over heads) since it entered the cache. Before a decode step, a token
  is dropped for good when its mean received attention per step and head is below
  `threshold / L` (L = tokens alive: `threshold` is relative to uniform attention), unless
  it is one of the `sink` first tokens, one of the `recent` newest, or seen fewer than
  `min_seen` steps. The decision for step t uses the probabilities of steps < t only.
  Deciding costs H*L adds (accumulate) and 2*L operations (normalize, compare) per step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ESTIMATES = ("abs", "abs_w")


@dataclass
class ActivationPruning:
    """Activations after pruning and what it saved and cost."""

    values: np.ndarray
    kept: np.ndarray
    skipped_products: int
    dense_products: int
    decide_ops: int

    @property
    def skipped_fraction(self) -> float:
        return self.skipped_products / self.dense_products if self.dense_products else 0.0


def weight_row_magnitude(weight: np.ndarray) -> np.ndarray:
    """w_k = max_n |W[k, n]|: the offline per-row magnitude the abs_w estimate uses."""
    return np.max(np.abs(weight.astype(np.float64)), axis=1)


def prune_activations(a: np.ndarray, threshold: float, weight: np.ndarray | None = None,
                      estimate: str = "abs", relative: bool = False) -> ActivationPruning:
    """Zero the activations of A [M, K] whose estimated contribution is below `threshold`.

    `weight` [K, N] is needed for the product count (skipped products are the nonzeros
    of W's row k for each skipped A[m, k]) and for `abs_w`.
    """
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {', '.join(ESTIMATES)}, got {estimate!r}")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if estimate == "abs_w" and weight is None:
        raise ValueError("estimate abs_w needs the weight")
    x = np.asarray(a)
    saliency = np.abs(x.astype(np.float64))
    decide = x.size
    if estimate == "abs_w":
        saliency = saliency * weight_row_magnitude(weight)[None, :]  # type: ignore[arg-type]
        decide += x.size
    limit = threshold
    if relative:
        limit = threshold * np.max(saliency, axis=-1, keepdims=True)
        decide += x.size
    kept = saliency >= limit
    kept &= x != 0
    values = np.where(kept, x, np.zeros((), dtype=x.dtype))
    row_nnz = (np.count_nonzero(weight, axis=1) if weight is not None
               else np.ones(x.shape[-1], dtype=np.int64))
    nonzero = (x != 0).astype(np.int64)
    dense = int(np.sum(nonzero * row_nnz[None, :]))
    skipped = int(np.sum((nonzero - kept.astype(np.int64)) * row_nnz[None, :]))
    return ActivationPruning(values, kept, skipped, dense, decide)


@dataclass
class TokenPruner:
    """Runtime token pruning of one layer's KV cache by accumulated attention (causal).

    Call `keep()` before each decode step to get the alive mask over the current cache,
    run attention over the alive tokens, then `observe(probs)` with that step's
    probabilities [H, L] (0 on dropped tokens). `append()` adds the new token.
    """

    threshold: float = 0.0
    sink: int = 4
    recent: int = 32
    min_seen: int = 1
    score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    seen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    decide_ops: int = 0
    heads: int = 1

    def __post_init__(self) -> None:
        if self.threshold < 0 or self.sink < 0 or self.recent < 0 or self.min_seen < 0:
            raise ValueError("threshold, sink, recent and min_seen must be >= 0")

    @property
    def length(self) -> int:
        return int(self.alive.size)

    def append(self, count: int = 1) -> None:
        """New tokens enter the cache alive, with no attention received yet."""
        self.score = np.concatenate([self.score, np.zeros(count)])
        self.seen = np.concatenate([self.seen, np.zeros(count, dtype=np.int64)])
        self.alive = np.concatenate([self.alive, np.ones(count, dtype=bool)])

    def observe_prefill(self, probs: np.ndarray) -> None:
        """Accumulate a causal prefill's probabilities [H, T, T]: token j was seen by the
        T - j queries at or after it."""
        h, t, _ = probs.shape
        self.heads = h
        if self.length < t:
            self.append(t - self.length)
        self.score[:t] += probs.sum(axis=(0, 1))
        self.seen[:t] += t - np.arange(t)
        self.decide_ops += h * t * t
        self._decide()

    def observe(self, probs: np.ndarray) -> None:
        """Accumulate one decode step's probabilities [H, L] and decide the next mask."""
        h, length = probs.shape
        if length != self.length:
            raise ValueError(f"probabilities cover {length} tokens, the cache has {self.length}")
        self.heads = h
        self.score += probs.sum(axis=0)
        self.seen += self.alive
        self.decide_ops += h * length
        self._decide()

    def _decide(self) -> None:
        """Drop alive tokens whose mean attention is below threshold / L (not protected):
        `decide_tokens` on the state, the semantics of `sparsec.prune_tokens`."""
        self.decide_ops += 2 * self.length
        self.alive = decide_tokens(self.state(), self.heads, self.threshold, self.sink,
                                   self.recent, self.min_seen)

    def state(self) -> np.ndarray:
        """The accumulated-importance state [3, L] a decode kernel takes as an input:
        rows (attention received, summed over heads; steps seen; alive 1/0)."""
        return np.stack([self.score, self.seen.astype(np.float64),
                         self.alive.astype(np.float64)])

    def keep(self) -> np.ndarray:
        """The alive mask over the current cache (a copy)."""
        return self.alive.copy()


def decide_tokens(state: np.ndarray, heads: int, threshold: float, sink: int, recent: int,
                  min_seen: int) -> np.ndarray:
    """Which of L cached tokens stay alive for the next decode step (boolean [L]), from the
    accumulated state [3, L] (attention received summed over heads, steps seen, alive)
    that earlier steps built: nothing from the step being decided.

    An alive token is dropped, for good, when its mean received attention per step and
    head, score / (max(seen, 1) * heads), is below threshold / A (A: alive tokens, so the
    threshold is relative to uniform attention), unless it is one of the `sink` first, one
    of the `recent` last, or seen fewer than `min_seen` steps. threshold 0 drops nothing.
    """
    score, seen, alive = state[0], state[1], state[2] > 0
    length = alive.size
    if threshold <= 0 or length == 0:
        return alive.copy()
    mean = score / (np.maximum(seen, 1) * max(heads, 1))
    positions = np.arange(length)
    protected = (positions < sink) | (positions >= length - recent) | (seen < min_seen)
    drop = alive & ~protected & (mean < threshold / max(int(alive.sum()), 1))
    return alive & ~drop


def token_decide_ops(heads: int, length: int) -> int:
    """Operations the token pruner spends per decode step on a cache of `length` tokens:
    accumulating the last step's probabilities (heads adds per token) and deciding
    (normalize and compare: 2 per token)."""
    return (heads + 2) * length


def pruned_attention_step(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float,
                          alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One decode step's attention over the alive tokens: q [H, d], k/v [H, L, d].

    Returns (output [H, e], probabilities [H, L] with 0 on dropped tokens), in float64.
    """
    scores = np.einsum("hd,hld->hl", q.astype(np.float64), k.astype(np.float64)) * scale
    scores = np.where(alive[None, :], scores, -np.inf)
    scores -= scores.max(axis=1, keepdims=True)
    e = np.exp(scores)
    probs = e / e.sum(axis=1, keepdims=True)
    return np.einsum("hl,hle->he", probs, v.astype(np.float64)), probs


def skipped_attention_macs(heads: int, dropped: int, key_dim: int, value_dim: int) -> int:
    """MACs a decode step skips for `dropped` tokens: their Q.K and P.V products."""
    return heads * dropped * (key_dim + value_dim)
