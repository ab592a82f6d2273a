"""KIVI-style KV-cache quantization, recency tiers and eviction (tensors/kv_cache.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.tensors.kv_cache import (
    KVPolicy,
    apply_policy,
    group_tiers,
    kept_positions,
    policy_storage_bits,
    quantize_cache,
    quantize_groups,
    token_bits,
)


def cache(heads: int, length: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(heads, length, dim)) * (1 + 4 * (np.arange(dim) % 7 == 0))  # outlier channels
    v = rng.normal(size=(heads, length, dim))
    return k, v


def test_eviction_keeps_sink_and_window():
    assert kept_positions(10, 2, 3).tolist() == [0, 1, 7, 8, 9]
    assert kept_positions(4, 2, 3).tolist() == [0, 1, 2, 3]
    assert kept_positions(6, 0, 0).tolist() == list(range(6))


def test_tiers_follow_the_newest_token_of_each_group():
    policy = KVPolicy(bits=(16, 4, 2), tiers=(4, 4), group=4)
    # 14 tokens: groups [0-3] [4-7] [8-11] [12-13]; ages of newest: 10, 6, 2, incomplete.
    assert group_tiers(14, policy).tolist() == [2, 1, 0, 0]
    assert token_bits(14, policy).tolist() == [2] * 4 + [4] * 4 + [16] * 6


def test_group_quantization_hand_checked():
    x = np.array([[0.0], [1.0], [3.0]])
    codes, scale, lo = quantize_groups(x, 2, axis=0)
    assert scale.item() == 1.0 and lo.item() == 0.0
    assert codes.ravel().tolist() == [0, 1, 3]


def test_keys_per_channel_values_per_token():
    """An outlier channel spoils only its own key scale; an outlier token only its own value
    groups: the layouts KIVI chose, measured."""
    rng = np.random.default_rng(1)
    k = rng.normal(size=(32, 64))
    k[:, 5] *= 100
    policy = KVPolicy(bits=(2,), group=32)
    per_channel = quantize_cache(k, policy, "key").values
    per_token = quantize_cache(k, policy, "value").values
    others = np.arange(64) != 5
    err_channel = np.abs(per_channel - k)[:, others].mean()
    err_token = np.abs(per_token - k)[:, others].mean()
    assert err_channel < 0.5 * err_token


@settings(max_examples=40, deadline=None)
@given(heads=st.integers(1, 2), length=st.integers(1, 90), dim=st.sampled_from([8, 32, 40]),
       bits=st.sampled_from([(16,), (4,), (2,), (16, 4), (16, 4, 2), (8, 2)]),
       group=st.sampled_from([4, 32]), sink=st.integers(0, 5), window=st.integers(0, 40),
       seed=st.integers(0, 5))
def test_storage_is_exact_and_error_bounded(heads, length, dim, bits, group, sink, window, seed):
    tiers = tuple([7, 20][: len(bits) - 1])
    policy = KVPolicy(bits=bits, tiers=tiers, group=group, sink=sink, window=window)
    k, v = cache(heads, length, dim, seed)
    result = apply_policy(k, v, policy)
    assert result.storage_bits == policy_storage_bits(policy, heads, length, dim, dim)
    kept = result.positions
    assert np.array_equal(kept, kept_positions(length, sink, window))
    # Each element is within half a step of the tier it was quantized into last; the
    # chained tiers add their steps, so bound by the sum of half-steps of the path.
    for out, x in ((result.keys, k), (result.values, v)):
        err = np.abs(out - x[:, kept])
        span = np.ptp(x) + 1e-12
        worst = sum(span / (2**b - 1) for b in bits if b < 16) + 1e-2 * np.abs(x).max()
        assert err.max() <= worst + 1e-9
    if policy.bits == (16,) and not policy.evicts:
        assert result.storage_bits == result.dense_bits


def test_fewer_bits_store_less_and_err_more():
    k, v = cache(2, 200, 64)
    errors, sizes = [], []
    for bits in [(16,), (8,), (4,), (2,)]:
        r = apply_policy(k, v, KVPolicy(bits=bits))
        errors.append(np.abs(r.keys - k).mean() + np.abs(r.values - v).mean())
        sizes.append(r.storage_bits)
    assert sizes == sorted(sizes, reverse=True)
    assert errors == sorted(errors)


def test_recent_window_is_exact_fp16():
    k, v = cache(1, 100, 32)
    policy = KVPolicy(bits=(16, 2), tiers=(32,), group=32)
    r = apply_policy(k, v, policy)
    recent = token_bits(100, policy) == 16
    assert recent.sum() >= 32
    assert np.array_equal(r.keys[:, recent], k[:, recent].astype(np.float16).astype(np.float64))


@pytest.mark.parametrize("policy_args,message", [
    ({"bits": (16, 4), "tiers": ()}, "tiers must give the size"),
    ({"bits": (4, 16), "tiers": (8,)}, "must not increase"),
    ({"bits": (0,)}, "bits must lie"),
    ({"group": 0}, "group must be"),
    ({"window": -1}, "sink and window"),
])
def test_invalid_policies(policy_args, message):
    with pytest.raises(ValueError, match=message):
        KVPolicy(**policy_args)


@settings(max_examples=20, deadline=None)
@given(key_axis=st.sampled_from(["channel", "token"]), value_axis=st.sampled_from(["channel", "token"]),
       length=st.integers(1, 70), seed=st.integers(0, 3))
def test_axes_and_compress_agree_with_storage(key_axis, value_axis, length, seed):
    from sparsec.tensors.kv_cache import compress
    policy = KVPolicy(bits=(16, 4, 2), tiers=(8, 16), group=8, key_axis=key_axis,
                      value_axis=value_axis, sink=2, window=40)
    k, v = cache(2, length, 24, seed)
    whole = apply_policy(k, v, policy)
    ck, cv = compress(k, policy, "key"), compress(v, policy, "value")
    assert ck.storage_bits + cv.storage_bits == whole.storage_bits
    assert whole.storage_bits == policy_storage_bits(policy, 2, length, 24, 24)
    assert np.array_equal(ck.values, whole.keys) and np.array_equal(cv.values, whole.values)


@settings(max_examples=40, deadline=None)
@given(length=st.integers(1, 120), dim=st.sampled_from([8, 24, 64]),
       bits=st.sampled_from([(16,), (4,), (16, 4), (16, 4, 2), (8, 3, 2)]),
       group=st.sampled_from([4, 32]), sink=st.integers(0, 5), window=st.integers(0, 50),
       role=st.sampled_from(["key", "value"]), seed=st.integers(0, 5))
def test_vectorized_equals_loop(length, dim, bits, group, sink, window, role, seed):
    from sparsec.tensors.kv_cache import compress, compress_fast
    tiers = tuple([5, 17][: len(bits) - 1])
    policy = KVPolicy(bits=bits, tiers=tiers, group=group, sink=sink, window=window)
    k, _ = cache(3, length, dim, seed)
    assert np.array_equal(compress_fast(k, policy, role), compress(k, policy, role).values)
