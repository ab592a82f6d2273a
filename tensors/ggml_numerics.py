"""llama.cpp's CPU arithmetic as `Numerics` (the 'referee' option of `sparsec eval llm`).

What ggml's CPU backend does differently from float32 numpy, emulated op kind by op kind:

- **GEMM activations are quantized** to the weight type's `vec_dot_type` before the dot
  products (ggml_compute_forward_mul_mat): Q4_1 weights take Q8_1 activations, Q8_0
  weights (the tied output/embedding matrix) take Q8_0, F16 takes F16. A Q8 block of 32
  activations keeps d = max|x| / 127 (stored f16) and q = round(x * 127 / max|x|) (round
  half to even, as the AVX2 quantizer's _mm256_round_ps); Q8_1 also keeps
  s = f16(d * sum(q)). Per block, Q4_1 x Q8_1 accumulates
  f16(d_w) f16(d_x) sum(q_w q_x) + f16(m_w) f16(s_x), and Q8_0 x Q8_0
  f16(d_w) f16(d_x) sum(q_w q_x) (vec_dot_q4_1_q8_1, vec_dot_q8_0_q8_0). Both become two
  float32 BLAS products here: (q_x d_x) @ (q_w d_w)^T + s_x @ m_w^T.
- **The KV cache is float16** (llama.cpp's default type_k = type_v = f16).
- **Attention without flash attention** (the referee runs flash_attn=False): K Q^T is a
  ggml_mul_mat with f16 K, so Q is converted to f16 (F16's vec_dot_type); softmax in f32;
  V^T P is a mul_mat with f16 V, so the probabilities are converted to f16.

Norms, RoPE, SiLU and residual adds are float32 in ggml too (sums in double where ggml
uses ggml_float), as in the float numerics.
"""

from __future__ import annotations

import numpy as np

from sparsec.tensors import block_ops
from sparsec.tensors.gguf_model import QK
from sparsec.tensors.hooks import FLOAT, Linear, Numerics, attention_scores, attention_values, round_f16


def quantize_q8_blocks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ggml's Q8_0/Q8_1 quantization of rows x [T, K] in blocks of 32.

    Returns (q [T, K/32, 32] integer-valued float32, d [T, K/32, 1] = f16(max|x|/127)
    widened to float32, s [T, K/32] = f16(d * sum q) with d unrounded, as Q8_1 stores it).
    """
    t, k = x.shape
    blocks = x.astype(np.float32, copy=False).reshape(t, k // QK, QK)
    amax = np.max(np.abs(blocks), axis=-1, keepdims=True)
    d = amax / np.float32(127.0)
    inv = np.divide(np.float32(127.0), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.rint(blocks * inv)
    s = round_f16(d[..., 0] * q.sum(axis=-1))
    return q, round_f16(d), s


def ggml_gemm(x: np.ndarray, linear: Linear) -> np.ndarray:
    """x @ W^T the way ggml's CPU mul_mat computes it for W's storage type (module doc)."""
    quant = linear.quant
    if quant is None:
        return np.matmul(x.astype(np.float32, copy=False), linear.matrix.T)
    q, d, s = quantize_q8_blocks(x)
    activations = (q * d).reshape(x.shape)
    if quant.kind == "Q8_0":
        return np.matmul(activations, linear.matrix.T)
    scaled, mins = linear_aux(linear)
    return np.matmul(activations, scaled.T) + np.matmul(s, mins.T)


def linear_aux(linear: Linear) -> tuple[np.ndarray, np.ndarray]:
    """(codes * d [N, K], mins [N, K/32]) of a Q4_1 weight, kept in linear.aux."""
    if "ggml_scaled" not in linear.aux:
        quant = linear.quant
        rows, cols = quant.shape
        codes = quant.codes.reshape(rows, cols // QK, QK).astype(np.float32)
        linear.aux["ggml_scaled"] = (codes * quant.scales.astype(np.float32)[..., None]).reshape(rows, cols)
        linear.aux["ggml_mins"] = quant.mins.astype(np.float32)
    return linear.aux["ggml_scaled"], linear.aux["ggml_mins"]


def prepare(linear: Linear) -> Linear:
    """Reject weight types this emulation does not cover; precompute Q4_1's scaled codes."""
    if linear.quant is not None and linear.quant.kind not in ("Q4_1", "Q8_0"):
        raise ValueError(f"{linear.name}: ggml numerics cover Q4_1 and Q8_0 weights, not {linear.quant.kind}")
    if linear.quant is not None and linear.quant.kind == "Q4_1":
        linear_aux(linear)
    return linear


def ggml_rmsnorm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """ggml_compute_forward_rms_norm_f32 (fused with the weight multiply): squares in f32,
    their sum in double, mean = f32(sum / n), scale = 1 / sqrtf(mean + eps) in f32,
    y = x * scale * w."""
    xf = x.astype(np.float32, copy=False)
    total = np.sum(xf * xf, axis=-1, keepdims=True, dtype=np.float64)
    mean = (total / xf.shape[-1]).astype(np.float32)
    scale = np.float32(1.0) / np.sqrt(mean + np.float32(eps))
    y = xf * scale
    return y if weight is None else y * weight.astype(np.float32, copy=False)


def ggml_softmax(scores: np.ndarray) -> np.ndarray:
    """ggml_vec_soft_max_f32: e = expf(x - max) in f32, sum in double, p = e * f32(1 / sum)."""
    xf = scores.astype(np.float32, copy=False)
    e = np.exp(xf - np.max(xf, axis=-1, keepdims=True))
    total = np.sum(e, axis=-1, keepdims=True, dtype=np.float64)
    return e * (1.0 / total).astype(np.float32)


def ggml_rope(x: np.ndarray, positions: np.ndarray, base: float, head_dim: int | None,
              convention: str) -> np.ndarray:
    """ggml_rope_cache_init: theta_scale = powf(base, -2/n_dims); for pair i, theta is the
    position (f32) multiplied by theta_scale i times, rounding to f32 at each step; cos/sin
    are cosf/sinf of that f32 angle (correctly rounded here, via float64)."""
    xf, head_dim = block_ops._check_rope(x, positions, head_dim, convention)
    theta_scale = np.float32(float(np.float32(base)) ** (-2.0 / head_dim))
    theta = np.asarray(positions, dtype=np.float32)
    angles = np.empty((len(theta), head_dim // 2), dtype=np.float32)
    for i in range(head_dim // 2):
        angles[:, i] = theta
        theta = theta * theta_scale
    wide = angles.astype(np.float64)
    return block_ops.rotate_pairs(xf, np.cos(wide).astype(np.float32), np.sin(wide).astype(np.float32),
                                  head_dim, convention)


def _scores(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    return attention_scores(round_f16(q), k, scale)


def _values(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    return attention_values(round_f16(p), v)


GGML_CPU = FLOAT.replace("referee", prepare_weight=prepare, gemm=ggml_gemm, kv_store=round_f16,
                         attention_scores=_scores, attention_values=_values, rmsnorm=ggml_rmsnorm,
                         softmax=ggml_softmax, rope=ggml_rope)
"""llama.cpp CPU (no flash attention, f16 KV cache) numerics."""


def ggml_numerics(activations: bool = True, kv_f16: bool = True, attention_f16: bool = True) -> Numerics:
    """GGML_CPU with parts switched off, to measure what each part contributes."""
    kinds = {}
    if not activations:
        kinds["gemm"] = FLOAT.gemm
    if not kv_f16:
        kinds["kv_store"] = FLOAT.kv_store
    if not attention_f16:
        kinds.update(attention_scores=FLOAT.attention_scores, attention_values=FLOAT.attention_values)
    return GGML_CPU.replace("referee" if not kinds else "referee-partial", **kinds)
