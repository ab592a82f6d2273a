"""The llama.cpp CPU arithmetic emulation against ggml's per-block formulas written as loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.tensors import block_ops
from sparsec.tensors.ggml_numerics import (
    FEW_ROWS,
    GGML_CPU,
    f16_mul_mat,
    fma32,
    ggml_gemm,
    ggml_rmsnorm,
    ggml_rope,
    ggml_softmax,
    ggml_v_expf,
    lane_dot,
    linear_aux,
    prepare,
    quantize_q8_blocks,
    rope_cache,
    sgemm_f16,
    vec_dot_f16,
)
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
    np.testing.assert_allclose(GGML_CPU.attention_values(p, k),
                               np.matmul(round_f16(p), round_f16(k)[:, None]), rtol=1e-6)


def _fma(a, b, c) -> np.float32:
    return np.float32(float(a) * float(b) + float(c))


def _hsum8(acc) -> np.float32:
    f = np.float32
    return f(f(f(acc[0] + acc[4]) + f(acc[2] + acc[6])) + f(f(acc[1] + acc[5]) + f(acc[3] + acc[7])))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))
def test_q4_1_gemm_is_bit_exact_with_the_avx2_kernel_written_as_loops(seed, rows_x, rows_w, blocks):
    """ggml_vec_dot_q4_1_q8_1 (AVX2/VNNI): 8 lanes of 4-element integer sums, an fma chain
    per lane over the blocks, a scalar fma chain of mins x sums, hsum_float_8 + summs."""
    weight = _q4_1_weight(seed, rows_w, blocks)
    x = (np.random.default_rng(seed + 1).standard_normal((rows_x, blocks * 32)) * 3).astype(np.float32)
    got = ggml_gemm(x, weight)
    q, d, s = quantize_q8_blocks(x)
    quant = weight.quant
    for t in range(rows_x):
        for n in range(rows_w):
            acc, summs = [np.float32(0)] * 8, np.float32(0)
            for b in range(blocks):
                scale = np.float32(d[t, b, 0]) * np.float32(quant.scales[n, b])
                summs = _fma(quant.mins[n, b], s[t, b], summs)
                codes = quant.codes[n, b * 32:(b + 1) * 32].astype(np.int64)
                for lane in range(8):
                    part = slice(4 * lane, 4 * lane + 4)
                    acc[lane] = _fma(scale, int(np.dot(q[t, b, part].astype(np.int64), codes[part])), acc[lane])
            assert got[t, n] == np.float32(_hsum8(acc) + summs)


@pytest.mark.parametrize("kind", ["Q4_1", "Q8_0"])
def test_lane_gemm_kernels_agree_bit_for_bit(kind):
    """The numba kernel and both numpy paths (many rows: scaled float64 operands; few rows:
    integer lane sums times the scale) form the same exact fma products, so they agree
    bit for bit, and row by row equals all rows at once."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(11)
    rows, blocks = 40, 3
    if kind == "Q4_1":
        quant = QuantizedMatrix("Q4_1", rng.integers(0, 16, (rows, blocks * 32)).astype(np.uint8),
                                (rng.random((rows, blocks)) * 0.1).astype(np.float16),
                                (-rng.random((rows, blocks)) * 0.5).astype(np.float16))
    else:
        quant = QuantizedMatrix("Q8_0", rng.integers(-127, 128, (rows, blocks * 32)).astype(np.int8),
                                (rng.random((rows, blocks)) * 0.01).astype(np.float16))
    weight = prepare(Linear("w", quant.dequantize(), quant))
    x = (rng.standard_normal((FEW_ROWS + 5, blocks * 32)) * 2).astype(np.float32)
    q, d, s = quantize_q8_blocks(x)
    codes, scales, mins = linear_aux(weight)
    extra = (mins, s) if kind == "Q4_1" else (None, None)
    compiled = lane_dot(q, d[..., 0], codes, scales, *extra, compiled=True)
    np.testing.assert_array_equal(compiled, lane_dot(q, d[..., 0], codes, scales, *extra, compiled=False))
    few = np.concatenate([lane_dot(q[i:i + 1], d[i:i + 1, :, 0], codes, scales, extra[0],
                                   None if extra[1] is None else extra[1][i:i + 1], compiled=False)
                          for i in range(len(x))])
    np.testing.assert_array_equal(compiled, few)
    np.testing.assert_array_equal(compiled, ggml_gemm(x, weight))


def test_f16_sgemm_keeps_16_lanes_and_the_avx512_reduction_tree():
    """tinyBLAS<16>: lane = index mod 16, lanes summed in index order, then 8+8, 4+4,
    ([0]+[2]) + ([1]+[3]); zero padding beyond a multiple of 16 changes nothing."""
    rng = np.random.default_rng(5)
    a = round_f16(rng.standard_normal((3, 40)))
    b = round_f16(rng.standard_normal((2, 40)))
    got = sgemm_f16(a, b)
    f = np.float32
    for i in range(3):
        for j in range(2):
            acc = [f(0)] * 16
            for index in range(40):
                acc[index % 16] = f(acc[index % 16] + f(a[i, index] * b[j, index]))
            eight = [f(acc[m + 8] + acc[m]) for m in range(8)]
            four = [f(eight[m + 4] + eight[m]) for m in range(4)]
            assert got[i, j] == f(f(four[0] + four[2]) + f(four[1] + four[3]))


def test_f16_vec_dot_keeps_four_accumulators_of_16_lanes():
    """ggml_vec_dot_f16 (one row, a decode step): index i feeds accumulator (i // 16) % 4,
    lane i % 16; then s0 + s2, s1 + s3, their sum, and the 16-lane tree; llamafile's order
    is chosen from two rows on."""
    rng = np.random.default_rng(6)
    a = round_f16(rng.standard_normal((1, 128)))
    b = round_f16(rng.standard_normal((2, 128)))
    got = vec_dot_f16(a, b)
    f = np.float32
    for j in range(2):
        acc = [[f(0)] * 16 for _ in range(4)]
        for index in range(128):
            slot, lane = (index // 16) % 4, index % 16
            acc[slot][lane] = f(acc[slot][lane] + f(a[0, index] * b[j, index]))
        lanes = [f(f(acc[0][m] + acc[2][m]) + f(acc[1][m] + acc[3][m])) for m in range(16)]
        eight = [f(lanes[m + 8] + lanes[m]) for m in range(8)]
        four = [f(eight[m + 4] + eight[m]) for m in range(4)]
        assert got[0, j] == f(f(four[0] + four[2]) + f(four[1] + four[3]))
    np.testing.assert_array_equal(f16_mul_mat(a, b), got)
    two_rows = np.concatenate([a, a])
    np.testing.assert_array_equal(f16_mul_mat(two_rows, b), sgemm_f16(two_rows, b))


def test_ggml_expf_is_within_its_documented_error_and_flushes_out_of_range():
    """ggml_v_expf: about 1.45 + 0.5 ulp from exp (the source says so; 2.5 ulp of the float32
    spacing allows for results just below a power of two); exp(-inf) = 0, out of range 0 / inf."""
    x = np.linspace(-87.0, 88.0, 20001, dtype=np.float32)
    got = ggml_v_expf(x)
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) < 2.5
    assert ggml_v_expf(np.array([-np.inf, -200.0, 200.0], np.float32)).tolist() == [0.0, 0.0, np.inf]


def test_ggml_softmax_sums_to_one_and_masks_exactly():
    scores = np.random.default_rng(2).standard_normal((3, 37)).astype(np.float32)
    scores[:, 30:] = -np.inf
    p = ggml_softmax(scores)
    assert np.all(p[:, 30:] == 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p, block_ops.softmax(scores), rtol=1e-5, atol=1e-7)


def test_ggml_rope_is_the_fma_rotation_of_ggml_angles():
    """Normal mode: y0 = fma(x0, cos, -(x1 sin)), y1 = fma(x0, sin, x1 cos); close to the
    float64 rotation, and position 0 is the identity."""
    x = np.random.default_rng(4).standard_normal((6, 2 * 16)).astype(np.float32)
    got = ggml_rope(x, np.arange(6), 10000.0, 16, "normal")
    np.testing.assert_allclose(got, block_ops.rope(x, np.arange(6), 10000.0, 16, "normal"), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[0], x[0])
    cos, sin = rope_cache((0, 6), 10000.0, 16)
    pairs = x.reshape(6, 2, 8, 2)
    y0 = fma32(pairs[..., 0], cos[:, None], -(pairs[..., 1] * sin[:, None]))
    np.testing.assert_array_equal(got.reshape(6, 2, 8, 2)[..., 0], y0)


def test_ggml_rmsnorm_rounds_mean_and_scale_in_f32():
    x = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
    w = np.ones(64, np.float32)
    for row in range(4):
        mean = np.float32(np.sum((x[row] * x[row]).astype(np.float64)) / 64)
        scale = np.float32(1.0) / np.sqrt(np.float32(mean + np.float32(1e-5)))
        np.testing.assert_array_equal(ggml_rmsnorm(x, w, 1e-5)[row], x[row] * scale)
