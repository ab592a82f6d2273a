"""Runtime activation and token pruning (tensors/runtime_pruning.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.tensors.runtime_pruning import (
    TokenPruner,
    prune_activations,
    pruned_attention_step,
    skipped_attention_macs,
)


def test_activation_pruning_hand_checked():
    a = np.array([[0.1, -2.0, 0.0, 0.5]])
    w = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [4.0, 0.0]])
    r = prune_activations(a, 0.4, w)
    assert r.values.tolist() == [[0.0, -2.0, 0.0, 0.5]]
    # a0 skipped: W row 0 has 1 nonzero; the zero a2 is no product at all.
    assert (r.skipped_products, r.dense_products, r.decide_ops) == (1, 4, 4)
    est = prune_activations(a, 1.0, w, estimate="abs_w")
    assert est.values.tolist() == [[0.0, -2.0, 0.0, 0.5]]  # 0.5 * 4 >= 1, 0.1 * 1 < 1
    assert est.decide_ops == 8
    rel = prune_activations(a, 0.5, w, relative=True)
    assert rel.values.tolist() == [[0.0, -2.0, 0.0, 0.0]]
    assert rel.decide_ops == 8


@settings(max_examples=50, deadline=None)
@given(m=st.integers(1, 6), k=st.integers(1, 20), t=st.floats(0, 2), seed=st.integers(0, 9),
       estimate=st.sampled_from(["abs", "abs_w"]))
def test_activation_pruning_properties(m, k, t, seed, estimate):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(m, k))
    w = rng.normal(size=(k, 3)) * (rng.random((k, 3)) > 0.3)
    r = prune_activations(a, t, w, estimate=estimate)
    # Only zeroing; kept values are unchanged; the product error is the skipped part.
    assert np.all((r.values == a) | (r.values == 0))
    np.testing.assert_allclose(a @ w - r.values @ w, (a - r.values) @ w, atol=1e-12)
    assert 0 <= r.skipped_products <= r.dense_products
    bigger = prune_activations(a, t * 2 + 0.1, w, estimate=estimate)
    assert bigger.skipped_products >= r.skipped_products


def test_invalid_activation_options():
    with pytest.raises(ValueError, match="estimate"):
        prune_activations(np.ones((1, 2)), 0.1, estimate="l2")
    with pytest.raises(ValueError, match="needs the weight"):
        prune_activations(np.ones((1, 2)), 0.1, estimate="abs_w")


def _decode(pruner: TokenPruner, steps: int, seed: int, heads: int = 2, d: int = 8):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(heads, 0, d))
    v = rng.normal(size=(heads, 0, d))
    masks = []
    for _ in range(steps):
        k = np.concatenate([k, rng.normal(size=(heads, 1, d))], axis=1)
        v = np.concatenate([v, rng.normal(size=(heads, 1, d))], axis=1)
        pruner.append()
        alive = pruner.keep()
        masks.append(alive)
        _, probs = pruned_attention_step(rng.normal(size=(heads, d)) * 3, k, v, 0.35, alive)
        pruner.observe(probs)
    return masks


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 50), threshold=st.floats(0.05, 1.0), steps=st.integers(5, 40))
def test_token_pruning_is_causal_and_monotone(seed, threshold, steps):
    masks = _decode(TokenPruner(threshold=threshold, sink=1, recent=3), steps, seed)
    # Causal: the masks of a prefix run do not depend on what comes later.
    prefix = _decode(TokenPruner(threshold=threshold, sink=1, recent=3), steps // 2, seed)
    for a, b in zip(prefix, masks):
        assert np.array_equal(a, b)
    for before, after in zip(masks, masks[1:]):
        assert not np.any(after[: before.size] & ~before)  # a dropped token stays dropped
        assert np.all(after[:1]) and np.all(after[-3:])  # sink and recent protected


def test_token_pruning_drops_the_ignored_token_and_counts_cost():
    pruner = TokenPruner(threshold=0.5, sink=0, recent=1)
    pruner.append(4)
    pruner.observe(np.array([[0.5, 0.0, 0.25, 0.25]]))
    assert pruner.keep().tolist() == [True, False, True, True]
    assert pruner.decide_ops == 4 + 2 * 4
    assert skipped_attention_macs(9, 3, 64, 64) == 9 * 3 * 128


def test_pruned_step_equals_attention_on_kept_tokens():
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(2, 4)), rng.normal(size=(2, 6, 4)), rng.normal(size=(2, 6, 5))
    alive = np.array([1, 0, 1, 1, 0, 1], dtype=bool)
    out, probs = pruned_attention_step(q, k, v, 0.5, alive)
    ref, _ = pruned_attention_step(q, k[:, alive], v[:, alive], 0.5, np.ones(4, dtype=bool))
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert np.all(probs[:, ~alive] == 0)
