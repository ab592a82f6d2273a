"""KV-cache policies (kv-quantize, kv-evict) and runtime activation pruning on the bitllm:
outputs equal the numpy reference of the compressed program, the KV bytes moved are the
exact stored bits, and the dequantization work and its cycles hold on hand-checked cases."""

from __future__ import annotations

import math

import pytest

from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.tensors.kv_cache import KVPolicy, policy_dequantized_elements, policy_storage_bits_one

DECODE = """
kernel kvd {{
  in    Q: bf16[{heads}, 1, {dim}] = random(seed=1)
  in    Kc: bf16[{kv}, {cached}, {dim}] = random(seed=12)
  in    Vc: bf16[{kv}, {cached}, {dim}] = random(seed=13)
  in    Kn: bf16[{kv}, 1, {dim}] = random(seed=14)
  in    Vn: bf16[{kv}, 1, {dim}] = random(seed=15)
  K = concat(Kc, Kn, axis=1)
  V = concat(Vc, Vn, axis=1)
  C = attention(Q, K, V, scale=0.2, mask=causal, start={cached})
  out C
}}
"""


def _run(pipeline: str, target: str = "bitllm", cached: int = 63, heads: int = 2, kv: int = 1,
         dim: int = 32):
    text = DECODE.format(heads=heads, kv=kv, cached=cached, dim=dim)
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target))
    return execute(compiled.module, compiled.store).reports[0]


@pytest.mark.parametrize("cached,bits,recent,group,window,sink", [
    (40, "16,4,2", "8,16", 8, 0, 0),
    (33, "4", "0", 32, 20, 3),
    (70, "16,2", "16", 16, 48, 4),
])
def test_bitllm_runs_the_policy_and_moves_the_exact_bytes(cached, bits, recent, group, window,
                                                           sink):
    pipeline = f"kv-quantize{{bits={bits} recent={recent} group={group}}}"
    if window:
        pipeline += f",kv-evict{{window={window} sink={sink}}}"
    report = _run(pipeline, cached=cached, heads=6, kv=2)
    assert report.check.ok, report.check
    widths = tuple(int(b) for b in bits.split(","))
    tiers = () if recent == "0" else tuple(int(r) for r in recent.split(","))
    policy = KVPolicy(bits=widths, tiers=tiers, group=group, sink=sink, window=window)
    length = cached + 1
    stored = sum(-(-policy_storage_bits_one(policy, role, 2, length, 32) // 8)
                 for role in ("key", "value"))
    kv = report.details["kv_cache"]
    assert kv["bytes"] == stored
    dequant = 2 * policy_dequantized_elements(policy, 2, length, 32)
    assert kv["dequantized_elements"] == dequant
    assert report.details["kv_dequant"]["ops"] == dequant  # kv_dequant_ops = 1
    # Q (6 x 32 BF16) is loaded; the cache is read only as stored.
    assert report.bytes["dram"]["read"] == stored + 6 * 32 * 2


def test_quantized_cache_by_hand():
    """16/2 with R = 32, groups of 32, 64 tokens, 1 KV head of 32 channels: group 0 (age 32)
    is at 2 bits, group 1 (age 0) fp16. Keys: 32*32*2 codes + 2*32 scale/min (per channel)
    * 16 + 32*32*16 = 2048 + 1024 + 16384 = 19456 bits = 2432 B; values: 2048 + 2*32
    (per token, one channel group) * 16 + 16384 = the same. Dequantization: 32*32 integer
    elements per tensor, one FMA each on 8 x 16 = 128 lanes: 8 cycles per tensor."""
    report = _run("kv-quantize{bits=16,2 recent=32 group=32}")
    assert report.check.ok, report.check
    kv, dq = report.details["kv_cache"], report.details["kv_dequant"]
    assert kv["bytes"] == 2 * 2432
    assert kv["dense_fp16_bytes"] == 2 * 64 * 32 * 2
    assert kv["dequantized_elements"] == 2048
    assert dq == {"instructions": 2, "cycles": 16, "ops": 2048}
    assert report.details["energy_breakdown_pj"]["kv_dequant"] == pytest.approx(2048 * 2.0)
    double = _run("kv-quantize{bits=16,2 recent=32 group=32}", "bitllm{kv_dequant_ops=2}")
    assert double.details["kv_dequant"]["cycles"] == 32
    assert double.details["energy_breakdown_pj"]["kv_dequant"] == pytest.approx(4096 * 2.0)
    # The DRAM reads: the stored cache plus Q (2 x 32 BF16), at 12.8 GB/s / 0.46 GHz.
    assert report.bytes["dram"]["read"] == 2 * 2432 + 128
    assert math.ceil(2432 / (12.8 / 0.46)) == 88


def test_evicted_cache_by_hand():
    """kv-evict{window=16 sink=4} keeps 20 of 64 fp16 tokens: 20*32*2 = 1280 B per tensor,
    nothing to dequantize; the BF16-mode products shrink from 64 to 20 keys:
    per head ceil(1/8) * ceil(20/16) * (ceil(32/8) + 4) = 16 cycles (64 keys: 32)."""
    full = _run("kv-quantize{bits=16 recent=0}")
    evict = _run("kv-evict{window=16 sink=4}")
    assert full.check.ok and evict.check.ok
    assert evict.details["kv_cache"]["bytes"] == 2 * 1280
    assert full.details["kv_cache"]["bytes"] == 2 * 64 * 32 * 2
    assert evict.details["kv_cache"]["tokens_kept"] == 40
    assert evict.details["kv_cache"]["dequantized_elements"] == 0
    # fp-mode MACs: scores 2 heads x 1 x 20 x 32 plus values 2 x 1 x 32 x 20.
    assert evict.details["fp_mode_macs"] == 2 * 20 * 32 * 2
    assert full.details["fp_mode_macs"] == 2 * 64 * 32 * 2
    assert full.cycles > evict.cycles


def test_a_policy_needs_the_same_bytes_on_both_backends():
    """The exact storage is the policy's, not the backend's."""
    pipeline = "kv-quantize{bits=16,4,2 recent=8,16 group=8},kv-evict{window=24 sink=2}"
    bitllm = _run(pipeline, cached=40)
    systolic = _run(pipeline, "systolic{rows=8 cols=8}", cached=40)
    assert bitllm.details["kv_cache"] == systolic.details["kv_cache"]


PRUNE = """
kernel k {
  in    X: bf16[4, 64] = random(seed=1)
  param W: bf16[64, 16] = random(seed=2, std=0.05)
  Y = matmul(X, W)
  out Y
}
"""


def test_runtime_activation_pruning_on_bitllm():
    """prune-runtime{threshold=0.5}: one compare per activation (4 x 64 = 256 ops, 2 cycles
    on 128 lanes); the pruned zeros leave the clustering (fewer effectual MACs)."""
    def run(pipeline):
        compiled = compile_text(PRUNE, CompileOptions(pipeline=pipeline, target="bitllm",
                                                     target_passes=True))
        return execute(compiled.module, compiled.store).reports[0]

    dense = run("")
    pruned = run("prune-runtime{threshold=0.5}")
    assert pruned.check.ok, pruned.check
    tally = pruned.details["runtime_pruning"]
    assert tally["decide_ops"] == 256 and tally["cycles"] == 2
    assert tally["pruned"] > 0
    assert pruned.macs["effectual"] == dense.macs["effectual"] - tally["pruned"] * 16
