"""Per-layer KV/pruning levels, the online feedback controller and offline calibration."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.tensors.controller import (
    GroupHistory,
    OnlineController,
    PolicyRunner,
    calibrate_layer_levels,
    kl_divergence,
    ladder,
)
from sparsec.tensors.kv_cache import KVPolicy, compress_fast, group_paths


@settings(max_examples=30, deadline=None)
@given(steps=st.integers(1, 90), group=st.sampled_from([4, 8]), r=st.integers(1, 20))
def test_history_of_a_fixed_policy_is_its_tier_chain(steps, group, r):
    policy = KVPolicy(bits=(16, 4, 2), tiers=(r, 2 * r), group=group)
    history = GroupHistory()
    for length in range(1, steps + 1):
        paths = history.update(length, policy)
    assert paths == group_paths(steps, policy)


def test_precision_never_goes_back_up():
    history = GroupHistory()
    history.update(64, KVPolicy(bits=(16, 2), tiers=(8,), group=8))
    history.update(65, KVPolicy(bits=(16,), group=8))
    assert history.paths[0] == (16, 2)
    history.update(66, KVPolicy(bits=(16, 4, 2), tiers=(8, 8), group=8))
    assert history.paths[0] == (16, 2)


def _runner(levels, rungs=None):
    return PolicyRunner(rungs or ladder(recent=8, group=8), levels, heads=4, kv_heads=2, head_dim=8)


def _step(runner, q, k, v):
    scores = runner.attention_scores(q, k, 0.35)
    z = scores - scores.max(axis=-1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    return runner.attention_values(p.astype(np.float32), v)


def test_runner_decode_step_equals_attention_over_compressed_cache():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 2, 1, 8)).astype(np.float32)
    k = rng.normal(size=(2, 40, 8)).astype(np.float32)
    v = rng.normal(size=(2, 40, 8)).astype(np.float32)
    rung = ladder(recent=8, group=8)[4]
    runner = _runner([4])
    out = _step(runner, q, k, v)
    kq = compress_fast(k, rung.kv, "key").astype(np.float32)
    vq = compress_fast(v, rung.kv, "value").astype(np.float32)
    s = np.matmul(q, np.swapaxes(kq, -1, -2)[:, None]) * np.float32(0.35)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(out, np.matmul(p, vq[:, None]), rtol=1e-5, atol=1e-6)
    state = runner.layers[0]
    assert state.signal > 0 and state.stored_bits > 0
    exact = _runner([0])
    np.testing.assert_allclose(_step(exact, q, k, v)[0, 0, 0],
                               _step(_runner([0]), q, k, v)[0, 0, 0])
    assert exact.layers[0].signal == 0.0  # fp16 everywhere: no quantization signal
    assert exact.layers[0].stored_bits == 2 * 2 * 40 * 8 * 16


def test_online_controller_holds_the_budget_on_a_plant():
    """A plant whose true KL is 0.01 * sum of signals: the controller settles where the
    estimate is within budget and keeps tightening while there is slack."""
    rng = np.random.default_rng(1)
    layers = 4
    runner = _runner([0] * layers)
    controller = OnlineController(budget=0.002, layers=layers, top=6, probe_every=4, moves=1)
    k = rng.normal(size=(2, 16, 8)).astype(np.float32)
    v = rng.normal(size=(2, 16, 8)).astype(np.float32)
    for step in range(60):
        k = np.concatenate([k, rng.normal(size=(2, 1, 8)).astype(np.float32)], axis=1)
        v = np.concatenate([v, rng.normal(size=(2, 1, 8)).astype(np.float32)], axis=1)
        for _ in range(layers):
            _step(runner, rng.normal(size=(2, 2, 1, 8)).astype(np.float32), k, v)
        true_kl = 0.01 * float(runner.signals().sum())
        controller.after_step(runner, true_kl if controller.wants_probe(step) else None)
    levels = [s.level for s in runner.layers]
    assert max(levels) > 0  # it used the slack
    late = np.array(controller.estimates[-20:])
    assert np.mean(late <= controller.budget) >= 0.7
    assert controller.probes >= 60 // 4


def test_calibration_prefers_insensitive_layers():
    kl = {0: 0.001, 1: 0.05, 2: 0.002}
    levels = calibrate_layer_levels(lambda layer, level: kl[layer] * level, 3, [2, 4], 0.011)
    assert levels == [4, 0, 2]


def test_kl_divergence():
    a = np.array([1.0, 2.0, 3.0])
    assert kl_divergence(a, a) == 0.0
    assert kl_divergence(a, a[::-1]) > 0


def test_eval_rows_split_kv_passes_into_a_decode_policy():
    from sparsec.compiler.eval_llm import split_decode_passes
    from sparsec.tensors.controller import decode_policy_numerics
    from sparsec.tensors.hooks import FLOAT

    rest, decode = split_decode_passes("prune-nm{n=2 m=4},kv-quantize{bits=16,2 recent=8 group=8},"
                                       "kv-evict{window=24 sink=2}")
    assert rest.startswith("prune-nm") and [p.name for p in decode] == ["kv-quantize", "kv-evict"]
    numerics = decode_policy_numerics(FLOAT, decode)
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 2, 1, 8)).astype(np.float32)
    k = rng.normal(size=(2, 40, 8)).astype(np.float32)
    scores = numerics.attention_scores(q, k, 0.3)
    policy = KVPolicy(bits=(16, 2), tiers=(8,), group=8, sink=2, window=24)
    kept = np.isfinite(scores[0, 0, 0])
    assert kept.sum() == 26 and kept[:2].all() and not kept[2:16].any()
    kq = compress_fast(k, policy, "key").astype(np.float32)
    expect = np.matmul(q, np.swapaxes(kq, -1, -2)[:, None]) * np.float32(0.3)
    np.testing.assert_allclose(scores[..., kept], expect, rtol=1e-6)
    assert split_decode_passes("prune-nm{n=2 m=4}") == ("prune-nm{n=2 m=4}", [])
