"""Runtime token pruning as IR: prune-runtime{tokens=...} puts sparsec.prune_tokens on a
decode attention, deciding from the accumulated-importance state the kernel takes as an
input; the decode loop's TokenPruner decides with the same function; bitllm accounts the
skipped tokens and the deciding work; the unsupported combinations are refused."""

from __future__ import annotations

import numpy as np
import pytest

from sparsec.compiler.driver import CompileError, CompileOptions, compile_text, execute
from sparsec.tensors.runtime_pruning import TokenPruner, decide_tokens, pruned_attention_step

SPEC = """
kernel kvd {{
  in    Q: bf16[{heads}, 1, 32] = load("{q}")
  in    Kc: bf16[1, {cached}, 32] = load("{k}")
  in    Vc: bf16[1, {cached}, 32] = load("{v}")
  in    Kn: bf16[1, 1, 32] = random(seed=14)
  in    Vn: bf16[1, 1, 32] = random(seed=15)
  in    importance: f32[3, {cached}] = load("{state}")
  K = concat(Kc, Kn, axis=1)
  V = concat(Vc, Vn, axis=1)
  C = attention(Q, K, V, scale=0.2, mask=causal, start={cached})
  out C
}}
"""


def _spec(tmp_path, state, q=None, heads=2, seed=0):
    rng = np.random.default_rng(seed)
    cached = state.shape[1]
    arrays = {"q": q if q is not None else rng.normal(size=(heads, 1, 32)),
              "k": rng.normal(size=(1, cached, 32)), "v": rng.normal(size=(1, cached, 32)),
              "state": state}
    paths = {}
    for name, array in arrays.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], np.asarray(array, dtype=np.float32))
    return SPEC.format(heads=heads, cached=cached, **{k: str(p) for k, p in paths.items()})


def _run(text, pipeline, target="bitllm"):
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target))
    return compiled, execute(compiled.module, compiled.store)


def test_decide_tokens_by_hand():
    """6 tokens, 2 heads, threshold 0.5 of uniform over the 5 alive: limit 0.1. Means
    score / (seen * heads): 0.5, 0.05, 0.01, 0.2, 0.04, 0.01. Token 0 is a sink, 5 recent,
    4 seen 0 times (< min_seen), 2 already dropped: only 1 goes."""
    state = np.array([[2.0, 0.2, 0.04, 0.8, 0.0, 0.02],
                      [2, 2, 2, 2, 0, 1],
                      [1, 1, 0, 1, 1, 1]], dtype=np.float64)
    alive = decide_tokens(state, heads=2, threshold=0.5, sink=1, recent=1, min_seen=1)
    assert alive.tolist() == [True, False, False, True, True, True]
    assert decide_tokens(state, 2, 0.0, 1, 1, 1).tolist() == (state[2] > 0).tolist()


def test_the_kernel_decides_as_the_decode_loop(tmp_path):
    """Five decode steps of the loop's TokenPruner; at the sixth, the kernel compiled with
    prune-runtime{tokens} on the loop's state keeps the same tokens, its output is the
    pruned attention over them, and bitllm reads only those tokens."""
    rng = np.random.default_rng(3)
    pruner = TokenPruner(threshold=0.8, sink=2, recent=4)
    pruner.append(24)
    for _ in range(5):
        logits = rng.normal(size=(2, pruner.length)) * 3
        probs = np.where(pruner.keep()[None, :], np.exp(logits), 0.0)
        pruner.observe(probs / probs.sum(axis=1, keepdims=True))
    state = pruner.state()
    expected = np.concatenate([pruner.keep(), [True]])
    assert 0 < (~expected).sum() < 20
    text = _spec(tmp_path, state)
    compiled, result = _run(text, "prune-runtime{tokens=0.8 sink=2 recent=4},"
                                  "kv-quantize{bits=16 recent=0}")
    report = result.reports[0]
    assert report.check.ok, report.check
    assert report.details["runtime_pruning"]["tokens_pruned"] == int((~expected).sum())
    kept = int(expected.sum())
    assert report.details["kv_cache"]["tokens_kept"] == 2 * kept
    assert report.details["kv_cache"]["bytes"] == 2 * kept * 32 * 2  # fp16, alive only
    # the output is the reference's pruned attention over the kept tokens
    store = compiled.store
    q, kc, vc = (np.asarray(store.get(f"kvd.{n}"), np.float64) for n in ("Q", "Kc", "Vc"))
    kn, vn = (np.asarray(store.get(f"kvd.{n}"), np.float64) for n in ("Kn", "Vn"))
    k, v = np.concatenate([kc, kn], 1), np.concatenate([vc, vn], 1)
    out, _ = pruned_attention_step(q[:, 0], np.repeat(k, 2, 0), np.repeat(v, 2, 0), 0.2, expected)
    got = np.asarray(result.outputs["kvd"][0], np.float64)[:, 0]
    assert np.linalg.norm(got - out) <= 1.6e-2 * np.linalg.norm(out)  # bf16 tolerance
    dense, _ = pruned_attention_step(q[:, 0], np.repeat(k, 2, 0), np.repeat(v, 2, 0), 0.2,
                                     np.ones(expected.size, dtype=bool))
    assert np.linalg.norm(got - dense) > 0.05 * np.linalg.norm(dense)  # pruning acted


def test_bitllm_accounts_skipped_tokens_and_deciding_by_hand(tmp_path):
    """63 cached tokens of which 20 (10..29) were dropped at earlier steps, no threshold
    for more (0 < mean): 44 of 64 keys are read, fp16: 44 * 32 * 2 = 2816 B per tensor;
    BF16-mode MACs 2 heads x 44 x 32 x 2; deciding (2 heads + 2) * 63 = 252 ops, 2 cycles
    on 128 lanes, 252 * 2.0 pJ."""
    state = np.ones((3, 63))
    state[2, 10:30] = 0
    text = _spec(tmp_path, state)
    _, result = _run(text, "prune-runtime{tokens=0.01 sink=0 recent=0},"
                           "kv-quantize{bits=16 recent=0}")
    report = result.reports[0]
    assert report.check.ok, report.check
    assert report.details["kv_cache"]["bytes"] == 2 * 2816
    assert report.details["fp_mode_macs"] == 2 * 44 * 32 * 2
    tally = report.details["runtime_pruning"]
    assert tally["decide_ops"] == 252 and tally["cycles"] == 2
    assert tally["tokens_pruned"] == 20
    assert report.details["energy_breakdown_pj"]["runtime_pruning"] == pytest.approx(504.0)
    _, full = _run(text, "kv-quantize{bits=16 recent=0}")
    assert full.reports[0].details["kv_cache"]["bytes"] == 2 * 64 * 32 * 2
    assert full.reports[0].cycles > report.cycles


@pytest.mark.parametrize("pipeline,target,message", [
    ("prune-runtime{tokens=0.3}", "systolic", "systolic cannot run sparsec.prune_tokens"),
    ("prune-runtime{tokens=0.3},kv-evict{window=16 sink=2}", "bitllm",
     "prune tokens or evict, not both"),
    ("kv-evict{window=16 sink=2},prune-runtime{tokens=0.3}", "bitllm",
     "prune tokens or evict, not both"),
    ("prune-runtime{tokens=0.3 state=imp}", "bitllm", "declare `in imp: f32[3, S]`"),
    ("prune-runtime{tokens=0.3},prune-runtime{tokens=0.3}", "bitllm", "prune once"),
])
def test_unsupported_combinations_are_refused(tmp_path, pipeline, target, message):
    text = _spec(tmp_path, np.ones((3, 40)))
    with pytest.raises(CompileError, match=message.replace("[", r"\[").replace("{", r"\{")):
        _run(text, pipeline, target)


def test_a_state_of_the_wrong_length_is_refused(tmp_path):
    text = _spec(tmp_path, np.ones((3, 40))).replace("importance: f32[3, 40]",
                                                    "importance: f32[3, 41]")
    text = text.replace(str(tmp_path / "state.npy"), "x")
    text = text.replace('load("x")', "random(seed=3)")
    with pytest.raises(CompileError, match=r"must be \[3, 40\]"):
        _run(text, "prune-runtime{tokens=0.3}")
