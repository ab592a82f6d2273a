"""kv-quantize, kv-evict and prune-runtime through the systolic machine: outputs equal the
reference of the compressed program, and the KV bytes it moves are the exact storage."""

from __future__ import annotations

import pytest

from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.tensors.kv_cache import (
    KVPolicy,
    policy_dequantized_elements,
    policy_storage_bits,
    policy_storage_bits_one,
)

SPEC = """
kernel kvd {{
  in    Q: f32[6, 1, 32] = random(seed=1)
  in    Kc: f32[2, {cached}, 32] = random(seed=12)
  in    Vc: f32[2, {cached}, 32] = random(seed=13)
  in    Kn: f32[2, 1, 32] = random(seed=14)
  in    Vn: f32[2, 1, 32] = random(seed=15)
  K = concat(Kc, Kn, axis=1)
  V = concat(Vc, Vn, axis=1)
  C = attention(Q, K, V, scale=0.2, mask=causal, start={cached})
  out C
}}
"""


@pytest.mark.parametrize("cached,bits,recent,group,window,sink,mode", [
    (40, "16,4,2", "8,16", 8, 0, 0, "calc"),
    (33, "4", "0", 32, 20, 3, "user"),
    (70, "16,2", "16", 16, 48, 4, "calc"),
])
def test_systolic_runs_the_policy_and_moves_the_exact_bytes(cached, bits, recent, group, window,
                                                             sink, mode):
    pipeline = f"kv-quantize{{bits={bits} recent={recent} group={group}}}"
    if window:
        pipeline += f",kv-evict{{window={window} sink={sink}}}"
    compiled = compile_text(SPEC.format(cached=cached), CompileOptions(
        pipeline=pipeline, target=f"systolic{{rows=8 cols=8 mode={mode}}}"))
    report = execute(compiled.module, compiled.store).reports[0]
    assert report.check.ok
    widths = tuple(int(b) for b in bits.split(","))
    tiers = () if recent == "0" else tuple(int(r) for r in recent.split(","))
    policy = KVPolicy(bits=widths, tiers=tiers, group=group, sink=sink, window=window)
    length = cached + 1
    key_bits = policy_storage_bits_one(policy, "key", 2, length, 32)
    value_bits = policy_storage_bits_one(policy, "value", 2, length, 32)
    assert key_bits + value_bits == policy_storage_bits(policy, 2, length, 32, 32)
    kv = report.details["kv_cache"]
    assert kv["bytes"] == -(-key_bits // 8) + -(-value_bits // 8)  # each rounded to bytes
    assert kv["dequantized_elements"] == 2 * policy_dequantized_elements(policy, 2, length, 32)
    alu = report.details["vector_unit"]["kv_dequant"]["alu_ops"]
    assert alu == 2 * kv["dequantized_elements"]


def test_fewer_bits_move_fewer_bytes_and_evicted_tokens_no_macs():
    def run(pipeline):
        compiled = compile_text(SPEC.format(cached=63), CompileOptions(
            pipeline=pipeline, target="systolic{rows=8 cols=8}"))
        return execute(compiled.module, compiled.store).reports[0]

    fp16 = run("kv-quantize{bits=16 recent=0}")
    kivi = run("kv-quantize{bits=16,2 recent=16}")
    evict = run("kv-quantize{bits=16 recent=0},kv-evict{window=16 sink=0}")
    assert kivi.details["kv_cache"]["bytes"] < fp16.details["kv_cache"]["bytes"]
    assert fp16.details["kv_cache"]["bytes"] == 2 * 2 * 64 * 32 * 2
    assert evict.macs["dense"] * 4 == fp16.macs["dense"]
    assert all(r.check.ok for r in (fp16, kivi, evict))
