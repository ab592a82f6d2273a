"""The systolic array's vector unit: hand-checked cycles and energy of the block ops,
grouped-query attention's folds, KV-cache traffic and the ordering of dependent ops."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import run_text
from sparsec.backends.systolic import vector

TARGET = "systolic{rows=4 cols=4 vector_lanes=4}"


def _one_op(call: str, decls: str) -> str:
    return f"kernel k {{\n{decls}  Y = {call}\n  out Y\n}}\n"


X16 = "  in X: f32[4, 16] = random(seed=1)\n  param G: f32[16] = random(seed=2)\n"


@pytest.mark.parametrize("call,decls,cycles", [
    # 64 elements, 4 rows, 4 lanes, ALU 1 cycle, SFU 4 cycles, tree log2(4) = 2:
    # rmsnorm: ALU 3 * 64 / 4 = 48; rsqrt per row 4 * ceil(4 / 4) = 4; one reduction 2.
    ("rmsnorm(X, G, eps=1e-5)", X16, 48 + 4 + 2),
    # layernorm: ALU (6 * 64 + 2 * 4) / 4 = 98; rsqrt per row 4; two reductions 4.
    ("layernorm(X, G, G, eps=1e-5)", X16, 98 + 4 + 4),
    # silu: ALU 2 * 64 / 4 = 32; SFU (exp, reciprocal) 4 * 128 / 4 = 128.
    ("silu(X)", X16, 32 + 128),
    # gelu (erf): ALU 4 * 64 / 4 = 64; SFU 4 * 64 / 4 = 64. tanh form: ALU 8 * 64 / 4.
    ("gelu(X)", X16, 64 + 64),
    ("gelu(X, approximate=tanh)", X16, 128 + 64),
    ("exp(X)", X16, 64),
    ("add(X, G)", X16, 16),
    ("mul(X, X)", X16, 16),
    # rope on [2, 4, 8]: 64 elements, 4 x 4 angles shared by both heads:
    # ALU (3 * 64 + 16) / 4 = 52; sin and cos 4 * 32 / 4 = 32.
    ("rope(H, base=10000)", "  in H: f32[2, 4, 8] = random(seed=1)\n", 52 + 32),
])
def test_vector_instruction_cycles_by_hand(call, decls, cycles):
    (out,), report = run_text(_one_op(call, decls), TARGET)
    assert report.check.ok
    assert report.units["vector"]["busy"] == cycles
    kind = call.split("(")[0]
    assert report.details["vector_unit"][kind]["cycles"] == cycles
    # Nothing but the vector unit runs: the program's span is the instruction.
    assert report.cycles == cycles - 1


def test_vector_options_change_cycles_and_energy():
    text = _one_op("silu(X)", X16)
    _, slow = run_text(text, "systolic{rows=4 cols=4 vector_lanes=4 vector_sfu_cycles=8}")
    assert slow.units["vector"]["busy"] == 32 + 8 * 32
    _, wide = run_text(_one_op("rmsnorm(X, G, eps=1e-5)", X16),
                       "systolic{rows=4 cols=4 vector_lanes=8}")
    assert wide.units["vector"]["busy"] == 24 + 4 * 1 + 3  # log2(8) = 3 tree levels
    _, report = run_text(text, "systolic{rows=4 cols=4 vector_lanes=4 vector_alu_pj=1.0 "
                               "vector_sfu_pj=10.0}")
    assert report.details["energy_breakdown_pj"]["vector"] == pytest.approx(128 * 1.0 + 128 * 10.0)


def test_work_counts_follow_the_shape_not_a_constant():
    small, big = vector.work("softmax", (2, 3, 5), {}), vector.work("softmax", (2, 3, 50), {})
    assert (small.alu_ops, small.sfu_ops) == (4 * 30, 30 + 6)
    assert (big.alu_ops, big.sfu_ops) == (4 * 300, 300 + 6)
    with pytest.raises(ValueError, match="no 'softplus' instruction"):
        vector.work("softplus", (2, 2), {})


GQA = """kernel k {
  in Q: f32[2, 4, 4] = random(seed=1)
  in K: f32[1, 7, 4] = random(seed=2)
  in V: f32[1, 7, 4] = random(seed=3)
  Y = attention(Q, K, V, scale=0.5, mask=causal, start=3)
  out Y
}
"""


def test_grouped_query_attention_cycles_by_hand():
    # 4x4 os array, two query heads sharing one key/value head, T = 4, S = 7, d = 4.
    # Q K^T per head: M = 4, N = 7 -> 2 folds of L = 4 + 4 + 4 - 2 = 10: 4 folds, 40 cycles.
    # P V per head: M = 4, N = 4, K = 7 -> 1 fold of L = 7 + 4 + 4 - 2 = 13: 26 cycles.
    # Vector unit: epilogue 56 / 4 = 14; softmax on 56 scores in 8 rows:
    #   ALU 4 * 56 / 4 = 56, SFU 4 * ceil((56 + 8) / 4) = 64, two reductions 4 -> 124.
    (out,), report = run_text(GQA, TARGET)
    assert report.check.ok
    assert report.details["folds"] == 6
    assert report.units["array"]["busy"] == 40 + 26
    assert report.units["vector"]["busy"] == 14 + 124
    # The key and value operands are one head: 28 words each, read once per GEMM.
    assert report.macs["dense"] == 2 * (4 * 7 * 4) + 2 * (4 * 4 * 7)


def test_grouped_heads_read_their_own_tiles_from_dram():
    # A tile is fetched unless the previous fold left the same tile of the same head.
    # Q K^T: head 0 reads Q[0] (16 words) and K columns 0-3, 4-6 (16 + 12); head 1 reads
    #   Q[1] (16) and again both K tiles (the last resident was columns 4-6): 16 + 12.
    # P V: head 0 reads P[0] (28) and V (28); head 1 reads P[1] (28) and reuses V.
    _, report = run_text(GQA, TARGET)
    assert report.bytes["dram"]["read"] == (16 + 28) * 2 + 28 * 3


def test_kv_cache_append_writes_only_the_new_rows():
    text = """kernel k {
  param C: f32[2, 5, 8] = random(seed=1)
  in N: f32[2, 1, 8] = random(seed=2)
  Y = concat(C, N, axis=1)
  out Y
}
"""
    (out,), report = run_text(text, TARGET)
    assert report.check.ok and out.shape == (2, 6, 8)
    assert report.bytes["dram"]["write"] == 2 * 1 * 8  # word_bytes = 1
    assert report.units["vector"]["busy"] == 0


def test_a_vector_op_waits_for_the_gemm_it_reads():
    gemm = """kernel k {
  in X: f32[8, 8] = random(seed=1)
  param W: f32[8, 8] = random(seed=2)
  Y = matmul(X, W)
  out Y
}
"""
    then_silu = gemm.replace("  out Y", "  Z = silu(Y)\n  out Z")
    _, alone = run_text(gemm, TARGET)
    (out,), chained = run_text(then_silu, TARGET)
    silu_cycles = 2 * 64 // 4 + 4 * 2 * 64 // 4
    assert chained.cycles == alone.cycles + silu_cycles
    assert chained.check.ok and np.all(np.isfinite(out))


def test_block_ops_run_under_bandwidth_limited_mode_in_order():
    text = """kernel k {
  in X: f32[8, 8] = random(seed=1)
  param G: f32[8] = random(seed=2)
  param W: f32[8, 8] = random(seed=3)
  N = rmsnorm(X, G, eps=1e-5)
  Y = matmul(N, W)
  out Y
}
"""
    _, report = run_text(text, "systolic{rows=4 cols=4 mode=user bandwidth=4}")
    assert report.check.ok
    # The GEMM's first fold cannot start before the rmsnorm it reads has finished.
    assert report.units["array"]["waiting"] >= report.units["vector"]["busy"]


def test_no_execute_accounts_the_same_cycles_from_shapes():
    text = GQA.replace("  Y = attention", "  N = rope(Q, base=10000, start=3)\n  Y = attention") \
        .replace("attention(Q,", "attention(N,")
    _, executed = run_text(text, TARGET)
    _, counted = run_text(text, TARGET, execute_values=False)
    assert counted.cycles == executed.cycles
    assert counted.units["vector"]["busy"] == executed.units["vector"]["busy"]
    # The scores' values are unknown without execution: every product counts as useful.
    assert counted.macs["effectual"] == counted.macs["dense"]
