"""The llama.cpp CPU arithmetic emulation against ggml's per-block formulas written as loops."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.tensors.ggml_numerics import GGML_CPU, ggml_gemm, ggml_rmsnorm, prepare, quantize_q8_blocks
from sparsec.tensors.gguf_model import QuantizedMatrix
from sparsec.tensors.hooks import Linear, round_f16


def _f16(x) -> float:
    return float(np.float16(x))


def _q4_1_weight(seed: int, rows: int, blocks: int) -> Linear:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 16, (rows, blocks * 32)).astype(np.uint8)
    scales = (rng.random((rows, blocks)) * 0.1).astype(np.float16)
    mins = (-rng.random((rows, blocks)) * 0.5).astype(np.float16)
    quant = QuantizedMatrix("Q4_1", codes, scales, mins)
    return prepare(Linear("w", quant.dequantize(), quant))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_q4_1_gemm_is_ggml_vec_dot_q4_1_q8_1(seed, rows_x, rows_w, blocks):
    """Per block: f16(d_w) f16(d_x) sum(q_w q_x) + f16(m_w) f16(s_x), s_x = f16(d_x sum q_x)."""
    weight = _q4_1_weight(seed, rows_w, blocks)
    x = (np.random.default_rng(seed + 1).standard_normal((rows_x, blocks * 32)) * 3).astype(np.float32)
    got = ggml_gemm(x, weight)
    quant = weight.quant
    for t in range(rows_x):
        for n in range(rows_w):
            total = 0.0
            for b in range(blocks):
                xs = x[t, b * 32:(b + 1) * 32]
                amax = float(np.max(np.abs(xs)))
                q = np.rint(xs * np.float32(127.0 / amax)) if amax else np.zeros(32)
                d = np.float32(amax) / np.float32(127.0)
                s = _f16(d * q.sum())
                dot = int(np.dot(q.astype(np.int64), quant.codes[n, b * 32:(b + 1) * 32].astype(np.int64)))
                total += float(quant.scales[n, b]) * _f16(d) * dot + float(quant.mins[n, b]) * s
            assert abs(got[t, n] - total) <= 1e-5 * max(1.0, abs(total))


def test_q8_quantization_keeps_ggml_block_rules():
    """q = round-half-even(x * 127 / max|x|) (AVX2 _mm256_round_ps), d = f16(max|x| / 127)."""
    x = np.zeros((2, 32), dtype=np.float32)
    x[0, :4] = [127.0, 2.5, -3.5, 0.5]
    q, d, s = quantize_q8_blocks(x)
    assert q[0, 0, :4].tolist() == [127, 2, -4, 0]
    assert d[0, 0, 0] == 1.0 and s[0, 0] == 125.0
    assert np.all(q[1] == 0) and d[1, 0, 0] == 0 and s[1, 0] == 0


def test_referee_numerics_round_kv_and_attention_operands_to_f16():
    k = np.random.default_rng(0).standard_normal((1, 5, 8)).astype(np.float32)
    np.testing.assert_array_equal(GGML_CPU.kv_store(k), round_f16(k))
    p = np.random.default_rng(1).random((1, 1, 2, 5)).astype(np.float32)
    np.testing.assert_allclose(GGML_CPU.attention_values(p, k), np.matmul(round_f16(p), k[:, None]), rtol=1e-6)


def test_ggml_rmsnorm_rounds_mean_and_scale_in_f32():
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    w = np.ones(64, np.float32)
    for row in range(4):
        mean = np.float32(np.sum((x[row] * x[row]).astype(np.float64)) / 64)
        scale = np.float32(1.0) / np.sqrt(np.float32(mean + np.float32(1e-5)))
        np.testing.assert_array_equal(ggml_rmsnorm(x, w, 1e-5)[row], x[row] * scale)
