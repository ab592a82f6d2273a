"""block_ops: each vectorised reference against a straightforward per-element loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.tensors import block_ops

SETTINGS = settings(max_examples=40, deadline=None)


def _array(seed: int, *shape: int, scale: float = 2.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 33))
def test_rmsnorm_matches_loop(seed, rows, cols):
    x, w = _array(seed, rows, cols), _array(seed + 1, cols)
    got = block_ops.rmsnorm(x, w, 1e-5)
    for r in range(rows):
        ms = sum(float(v) ** 2 for v in x[r]) / cols
        for c in range(cols):
            assert got[r, c] == pytest.approx(x[r, c] / math.sqrt(ms + 1e-5) * w[c], rel=1e-5, abs=1e-6)


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(2, 33))
def test_layernorm_matches_loop(seed, rows, cols):
    x, g, b = _array(seed, rows, cols), _array(seed + 1, cols), _array(seed + 2, cols)
    got = block_ops.layernorm(x, g, b, 1e-12)
    for r in range(rows):
        mean = sum(float(v) for v in x[r]) / cols
        var = sum((float(v) - mean) ** 2 for v in x[r]) / cols
        for c in range(cols):
            want = (x[r, c] - mean) / math.sqrt(var + 1e-12) * g[c] + b[c]
            assert got[r, c] == pytest.approx(want, rel=1e-4, abs=1e-4)


@SETTINGS
@given(st.lists(st.floats(-60, 60, allow_nan=False, width=32), min_size=1, max_size=20))
def test_activations_match_scalar_formulas(values):
    x = np.array(values, dtype=np.float32)
    silu, exact, tanh = block_ops.silu(x), block_ops.gelu(x), block_ops.gelu(x, "tanh")
    for i, v in enumerate(values):
        assert silu[i] == pytest.approx(v / (1 + math.exp(-v)), rel=1e-5, abs=1e-6)
        assert exact[i] == pytest.approx(0.5 * v * (1 + math.erf(v / math.sqrt(2))), rel=1e-5, abs=1e-6)
        inner = math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)
        assert tanh[i] == pytest.approx(0.5 * v * (1 + math.tanh(inner)), rel=1e-5, abs=1e-6)
    assert np.all(np.isfinite(silu))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        block_ops.gelu(np.zeros(3), "erfc")


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(1, 9))
def test_softmax_matches_loop_and_handles_masked_rows(seed, rows, cols):
    x = _array(seed, rows, cols, scale=20.0)
    x[0, : cols // 2] = -np.inf
    got = block_ops.softmax(x)
    for r in range(rows):
        finite = [float(v) for v in x[r] if np.isfinite(v)]
        top = max(finite)
        total = sum(math.exp(v - top) for v in finite)
        for c in range(cols):
            want = math.exp(float(x[r, c]) - top) / total if np.isfinite(x[r, c]) else 0.0
            assert got[r, c] == pytest.approx(want, rel=1e-5, abs=1e-7)
    assert np.all(block_ops.softmax(np.full((2, 3), -np.inf, np.float32)) == 0)


def _rope_loop(x, positions, base, head_dim, convention):
    out = np.array(x, dtype=np.float64)
    half = head_dim // 2
    for t, pos in enumerate(positions):
        for h0 in range(0, x.shape[-1], head_dim):
            for i in range(half):
                theta = pos * base ** (-2 * i / head_dim)
                ia, ib = (h0 + 2 * i, h0 + 2 * i + 1) if convention == "normal" else (h0 + i, h0 + i + half)
                a, b = float(x[t, ia]), float(x[t, ib])
                out[t, ia] = a * math.cos(theta) - b * math.sin(theta)
                out[t, ib] = a * math.sin(theta) + b * math.cos(theta)
    return out


@SETTINGS
@given(st.integers(0, 10_000), st.integers(1, 5), st.integers(1, 3), st.sampled_from([2, 4, 8]),
       st.sampled_from(block_ops.ROPE_CONVENTIONS), st.sampled_from([10000.0, 100000.0]),
       st.integers(0, 500))
def test_rope_matches_loop(seed, rows, heads, head_dim, convention, base, offset):
    x = _array(seed, rows, heads * head_dim)
    positions = np.arange(rows) + offset
    got = block_ops.rope(x, positions, base, head_dim, convention)
    np.testing.assert_allclose(got, _rope_loop(x, positions, base, head_dim, convention), rtol=1e-4, atol=1e-4)


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from([2, 4, 8, 16]), st.integers(0, 300), st.integers(0, 300))
def test_rope_conventions_agree_on_permuted_rows_and_keep_relative_scores(seed, head_dim, pos_q, pos_k):
    """'neox' on HF weights == 'normal' on the converter's permuted rows; q.k depends on pos_q - pos_k."""
    q, k = _array(seed, 1, head_dim), _array(seed + 1, 1, head_dim)
    perm = block_ops.rope_permutation(head_dim)
    normal_q = np.empty_like(q)
    normal_q[:, perm] = q
    neox = block_ops.rope(q, np.array([pos_q]), 10000.0, None, "neox")
    normal = block_ops.rope(normal_q, np.array([pos_q]), 10000.0, None, "normal")
    np.testing.assert_allclose(normal[:, perm], neox, rtol=1e-5, atol=1e-5)
    rq = block_ops.rope(q, np.array([pos_q]), 10000.0)
    rk = block_ops.rope(k, np.array([pos_k]), 10000.0)
    shifted_q = block_ops.rope(q, np.array([pos_q + 7]), 10000.0)
    shifted_k = block_ops.rope(k, np.array([pos_k + 7]), 10000.0)
    assert float((rq @ rk.T)[0, 0]) == pytest.approx(float((shifted_q @ shifted_k.T)[0, 0]), rel=1e-3, abs=1e-3)


def test_rope_rejects_bad_arguments():
    with pytest.raises(ValueError, match="convention"):
        block_ops.rope(np.zeros((2, 4)), np.arange(2), convention="gptj")
    with pytest.raises(ValueError, match="whole heads"):
        block_ops.rope(np.zeros((2, 6)), np.arange(2), head_dim=4)
    with pytest.raises(ValueError, match="positions"):
        block_ops.rope(np.zeros((2, 4)), np.arange(3))


def _attention_loop(q, k, v, n_heads, n_kv, start):
    d = q.shape[2]
    out = np.zeros(q.shape)
    probs = np.zeros((n_heads, q.shape[1], k.shape[1]))
    for h in range(n_heads):
        g = h // (n_heads // n_kv)
        for i in range(q.shape[1]):
            allowed = [j for j in range(k.shape[1]) if j <= start + i]
            s = {j: float(np.dot(q[h, i].astype(np.float64), k[g, j])) / math.sqrt(d) for j in allowed}
            top = max(s.values())
            total = sum(math.exp(x - top) for x in s.values())
            for j in allowed:
                probs[h, i, j] = math.exp(s[j] - top) / total
                out[h, i] += probs[h, i, j] * v[g, j]
    return out, probs


@SETTINGS
@given(st.integers(0, 10_000), st.sampled_from([(1, 1), (2, 1), (4, 2), (6, 3)]), st.integers(1, 6),
       st.integers(0, 4), st.sampled_from([2, 4, 8]))
def test_gqa_attention_matches_loop(seed, heads, rows, extra_keys, head_dim):
    n_heads, n_kv = heads
    n_keys = rows + extra_keys
    q = _array(seed, n_heads, rows, head_dim)
    k, v = _array(seed + 1, n_kv, n_keys, head_dim), _array(seed + 2, n_kv, n_keys, head_dim)
    out, probs = block_ops.gqa_attention(q, k, v, n_heads, n_kv, start=extra_keys)
    want_out, want_probs = _attention_loop(q, k, v, n_heads, n_kv, extra_keys)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out, want_out, rtol=1e-4, atol=1e-4)


def test_decode_step_equals_last_prefill_row():
    """One query row against T cached keys == the last row of the causal prefill."""
    q, k, v = _array(1, 6, 5, 8), _array(2, 2, 5, 8), _array(3, 2, 5, 8)
    full, full_p = block_ops.gqa_attention(q, k, v, 6, 2, start=0)
    step, step_p = block_ops.gqa_attention(q[:, -1:], k, v, 6, 2, start=4)
    np.testing.assert_allclose(step[:, 0], full[:, -1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(step_p[:, 0], full_p[:, -1], rtol=1e-6, atol=1e-7)
    assert np.all(np.triu(full_p[0], 1) == 0)


@pytest.mark.parametrize("heads,start,message", [
    ((4, 3), 0, "multiple"), ((4, 2), 3, "beyond"),
])
def test_gqa_attention_rejects_bad_shapes(heads, start, message):
    n_heads, n_kv = heads
    q, k = np.zeros((n_heads, 2, 4)), np.zeros((n_kv, 4, 4))
    with pytest.raises(ValueError, match=message):
        block_ops.gqa_attention(q, k, k, n_heads, n_kv, start)
