"""numpy reference semantics of the ops a transformer block is made of.

Every part of sparsec that computes one of these (the SmolLM2 forward pass in
`sparsec.tensors.llm`, the kernel ops' references, the backends' vector units) uses
these functions, so they agree by construction. Each function states its exact
formula; all of them are pure (no argument is modified).

Precision: a float input of any width is computed in float32 (float64 input stays
float64), the way llama.cpp's CPU kernels and the modelled accelerators' vector units
work; reductions (means, softmax sums) accumulate in float64 and round once.

Conventions checked against llama.cpp (see docs/decisions.md, "SmolLM2 from GGUF"):

- RoPE: llama.cpp's converter (`convert_hf_to_gguf.py`, LlamaModel.permute) reorders
  the rows of the Q and K projections of a Hugging Face Llama checkpoint so that a GGUF
  Llama uses the **'normal'** pairing, (x[2i], x[2i+1]); Hugging Face's own code uses
  the **'neox'** pairing (x[i], x[i + d/2]) ("rotate_half") on the unpermuted weights.
  Both give the same attention scores on their own weights.
- Grouped-query attention: query head h reads KV head h // (n_heads / n_kv_heads)
  (Hugging Face's `repeat_kv` and llama.cpp's broadcast in `ggml_mul_mat` agree).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

ROPE_CONVENTIONS = ("normal", "neox")
"""'normal': rotate pairs (x[2i], x[2i+1]) (GGUF Llama, llama.cpp LLAMA_ROPE_TYPE_NORM);
'neox': rotate pairs (x[i], x[i + d/2]) (GPT-NeoX, Hugging Face rotate_half)."""

GELU_APPROXIMATIONS = ("none", "tanh")
"""'none': exact x * Phi(x) with erf (BERT, MiniLM); 'tanh': the tanh approximation (GPT-2)."""


def _float(x: np.ndarray) -> np.ndarray:
    """x as float32, or float64 when it already is."""
    x = np.asarray(x)
    return x if x.dtype == np.float64 else x.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- normalization

def rmsnorm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """Root-mean-square normalization over the last axis (Llama's RMSNorm).

    y[..., j] = x[..., j] / sqrt(mean_k(x[..., k]^2) + eps) * weight[j]
    (weight None: no scaling). The mean of squares accumulates in float64.
    """
    xf = _float(x)
    mean_sq = np.mean(np.square(xf, dtype=np.float64), axis=-1, keepdims=True)
    y = xf * (1.0 / np.sqrt(mean_sq + eps)).astype(xf.dtype)
    return y if weight is None else y * _float(weight)


def layernorm(x: np.ndarray, gamma: np.ndarray | None, beta: np.ndarray | None,
              eps: float) -> np.ndarray:
    """Layer normalization over the last axis with the biased variance (BERT, PyTorch).

    y = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * gamma + beta
    (gamma / beta None: 1 / 0). Statistics accumulate in float64.
    """
    xf = _float(x)
    mean = np.mean(xf, axis=-1, keepdims=True, dtype=np.float64)
    centered = xf.astype(np.float64) - mean
    var = np.mean(np.square(centered), axis=-1, keepdims=True)
    y = (centered / np.sqrt(var + eps)).astype(xf.dtype)
    if gamma is not None:
        y = y * _float(gamma)
    if beta is not None:
        y = y + _float(beta)
    return y


# --------------------------------------------------------------------------- activations

def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    xf = _float(x)
    e = np.exp(-np.abs(xf))
    return np.where(xf >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(xf.dtype)


def silu(x: np.ndarray) -> np.ndarray:
    """SiLU (swish): x * sigmoid(x)."""
    xf = _float(x)
    return xf * sigmoid(xf)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU. approximate='none': x * (1 + erf(x / sqrt 2)) / 2 (exact);
    'tanh': x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) / 2."""
    xf = _float(x)
    if approximate == "none":
        return (0.5 * xf * (1.0 + erf(xf / np.sqrt(2.0)))).astype(xf.dtype)
    if approximate == "tanh":
        inner = np.sqrt(2.0 / np.pi) * (xf + 0.044715 * xf ** 3)
        return (0.5 * xf * (1.0 + np.tanh(inner))).astype(xf.dtype)
    raise ValueError(f"gelu approximate must be one of {GELU_APPROXIMATIONS}, not '{approximate}'")


def swiglu(gate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """The SwiGLU FFN product: silu(gate) * up, elementwise."""
    return silu(gate) * _float(up)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along `axis`; -inf entries get probability 0.

    A slice that is all -inf gives all zeros (no NaN). The sum accumulates in float64.
    """
    xf = _float(x)
    row_max = np.max(xf, axis=axis, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0)
    e = np.exp(xf - row_max)
    total = np.sum(e, axis=axis, keepdims=True, dtype=np.float64)
    out = np.divide(e, total, out=np.zeros(e.shape, np.float64), where=total > 0)
    return out.astype(xf.dtype)


# --------------------------------------------------------------------------- RoPE

def rope_angles(positions: np.ndarray, base: float, rotary_dim: int) -> np.ndarray:
    """[T, rotary_dim / 2] angles theta[t, i] = positions[t] * base^(-2i / rotary_dim).

    Computed in float64 and returned in float64 (cos/sin are taken of these).
    """
    if rotary_dim % 2:
        raise ValueError(f"rope: rotary dimension {rotary_dim} must be even")
    inv_freq = base ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    return np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]


def rope(x: np.ndarray, positions: np.ndarray, base: float = 10000.0,
         head_dim: int | None = None, convention: str = "normal") -> np.ndarray:
    """Rotary position embedding of x [..., T, F] at absolute positions [T].

    F is split into F / head_dim heads of head_dim (default: one head, head_dim = F).
    Within each head, pair p = (a_i, b_i), i < head_dim/2, rotates by theta = pos *
    base^(-2i/head_dim):
        a' = a cos(theta) - b sin(theta),   b' = a sin(theta) + b cos(theta)
    with a_i = x[2i], b_i = x[2i+1] for convention 'normal' (GGUF Llama) and
    a_i = x[i], b_i = x[i + head_dim/2] for 'neox' (Hugging Face rotate_half).
    """
    xf, head_dim = _check_rope(x, positions, head_dim, convention)
    angles = rope_angles(np.asarray(positions), base, head_dim)
    return rotate_pairs(xf, np.cos(angles), np.sin(angles), head_dim, convention)


def _check_rope(x: np.ndarray, positions: np.ndarray, head_dim: int | None,
                convention: str) -> tuple[np.ndarray, int]:
    """x as float and the head size; ValueError naming the rule a rope argument breaks."""
    if convention not in ROPE_CONVENTIONS:
        raise ValueError(f"rope convention must be one of {ROPE_CONVENTIONS}, not '{convention}'")
    xf = _float(x)
    positions = np.asarray(positions)
    features = xf.shape[-1]
    head_dim = features if head_dim is None else head_dim
    if features % head_dim or head_dim % 2:
        raise ValueError(f"rope: {features} features are not whole heads of even size {head_dim}")
    if positions.shape != (xf.shape[-2],):
        raise ValueError(f"rope: positions shape {positions.shape} != ({xf.shape[-2]},) rows")
    return xf, head_dim


def rotate_pairs(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, head_dim: int,
                 convention: str) -> np.ndarray:
    """The rotation step of `rope` with given cos/sin [T, head_dim/2] (cast to x's type):
    a' = a cos - b sin, b' = a sin + b cos for the convention's pairs (a_i, b_i)."""
    features = x.shape[-1]
    cos = cos.astype(x.dtype)[:, None, :]
    sin = sin.astype(x.dtype)[:, None, :]
    heads = x.reshape(*x.shape[:-1], features // head_dim, head_dim)
    half = head_dim // 2
    if convention == "normal":
        a, b = heads[..., 0::2], heads[..., 1::2]
    else:
        a, b = heads[..., :half], heads[..., half:]
    out = np.empty_like(heads)
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if convention == "normal":
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., :half], out[..., half:] = ra, rb
    return out.reshape(x.shape)


def rope_permutation(head_dim: int) -> np.ndarray:
    """Index map from 'neox' to 'normal' layout within one head.

    normal[:, perm] == neox: `perm[j]` is where the 'normal' layout keeps the feature the
    'neox' layout keeps at j (neox pair (i, i + d/2) -> normal pair (2i, 2i+1)). This is
    the row reordering llama.cpp's converter applies to the Q and K weights per head.
    """
    half = head_dim // 2
    perm = np.empty(head_dim, dtype=np.int64)
    perm[:half] = 2 * np.arange(half)
    perm[half:] = 2 * np.arange(half) + 1
    return perm


# --------------------------------------------------------------------------- attention

def kv_head_of(head: int, n_heads: int, n_kv_heads: int) -> int:
    """The KV head query head `head` reads under grouped-query attention."""
    return head // (n_heads // n_kv_heads)


def causal_mask(n_queries: int, n_keys: int, start: int) -> np.ndarray:
    """Boolean [Tq, Tk]: query row i (absolute position start + i) may read key j
    (absolute position j) iff j <= start + i."""
    return np.arange(n_keys)[None, :] <= (start + np.arange(n_queries))[:, None]


def gqa_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, n_heads: int, n_kv_heads: int,
                  start: int, scale: float | None = None, causal: bool = True,
                  keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grouped-query (optionally causal) attention over a KV cache.

    q [n_heads, Tq, d]; k, v [n_kv_heads, Tk, d] with keys at absolute positions 0..Tk-1;
    query row i is at absolute position start + i (prefill: start = 0, Tq = Tk; decode
    step: Tq = 1, start = Tk - 1). For query head h and its KV head g = kv_head_of(h):
        s[h, i, j] = scale * q[h, i] . k[g, j]        (scale default 1/sqrt(d))
        p[h, i, :] = softmax over the allowed j (j <= start + i when causal, keep[j] != 0
                     when `keep` [Tk] is given (runtime token pruning); others 0)
        o[h, i]    = sum_j p[h, i, j] v[g, j]
    Returns (o [n_heads, Tq, d], p [n_heads, Tq, Tk]).
    """
    qf, kf, vf = _float(q), _float(k), _float(v)
    _check_attention_shapes(qf, kf, vf, n_heads, n_kv_heads, start)
    group = n_heads // n_kv_heads
    n_queries, head_dim = qf.shape[1], qf.shape[2]
    n_keys = kf.shape[1]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    # [g, group, Tq, d] @ [g, 1, d, Tk]: query heads of a group share their KV head.
    grouped_q = qf.reshape(n_kv_heads, group, n_queries, head_dim)
    scores = np.matmul(grouped_q, np.swapaxes(kf, -1, -2)[:, None]) * qf.dtype.type(scale)
    if causal:
        scores = np.where(causal_mask(n_queries, n_keys, start), scores, -np.inf)
    if keep is not None:
        scores = np.where(np.asarray(keep)[None, :] != 0, scores, -np.inf)
    probs = softmax(scores, axis=-1)
    out = np.matmul(probs, vf[:, None])
    return (out.reshape(n_heads, n_queries, head_dim),
            probs.reshape(n_heads, n_queries, n_keys))


def _check_attention_shapes(q: np.ndarray, k: np.ndarray, v: np.ndarray, n_heads: int,
                            n_kv_heads: int, start: int) -> None:
    """Raise ValueError naming the rule a q/k/v shape breaks."""
    if q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        raise ValueError("attention: q, k, v must be rank 3 [heads, rows, head_dim]")
    if n_kv_heads <= 0 or n_heads % n_kv_heads:
        raise ValueError(f"attention: {n_heads} query heads are not a multiple of {n_kv_heads} KV heads")
    if q.shape[0] != n_heads or k.shape[0] != n_kv_heads or v.shape[0] != n_kv_heads:
        raise ValueError(f"attention: head counts {q.shape[0]}/{k.shape[0]}/{v.shape[0]} != "
                         f"{n_heads}/{n_kv_heads}/{n_kv_heads}")
    if k.shape != v.shape or q.shape[2] != k.shape[2]:
        raise ValueError(f"attention: k {k.shape}, v {v.shape}, q {q.shape} disagree on rows/head_dim")
    if start < 0 or start + q.shape[1] > k.shape[1]:
        raise ValueError(f"attention: query rows {start}..{start + q.shape[1] - 1} lie beyond "
                         f"the {k.shape[1]} cached keys")
