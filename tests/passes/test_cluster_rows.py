"""cluster-rows: key-column choice and per-block cluster counts (by hand and against an
independent KL), what it records (format, DataStore, effect), the format's text,
option validation and refusals, and the reference semantics of the formatted op."""

from __future__ import annotations

import math

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError

from sparsec.backends.common.backend import run_reference
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.formats import RowClusteredAttr, describe, layout_of
from sparsec.dialects.sparsec import InputOp, Sparsec
from sparsec.passes.cluster_rows import (
    BlockKl,
    ClusteredBertAttention,
    calibrate,
    key_columns,
    log_softmax,
)
from sparsec.tensors import attention
from sparsec.tensors import row_clustering as clustering

SPEC = """kernel att {{
  in Q: f32[{shape_q}] = random(seed=1)
  in K: f32[{shape_k}] = random(seed=2)
  in V: f32[{shape_v}] = random(seed=3)
  O = attention(Q, K, V{extra})
  out O
}}
"""


def spec(heads: int = 2, t: int = 10, s: int = 12, d: int = 8, e: int = 4, extra: str = "") -> str:
    lead = f"{heads}, " if heads else ""
    return SPEC.format(shape_q=f"{lead}{t}, {d}", shape_k=f"{lead}{s}, {d}",
                       shape_v=f"{lead}{s}, {e}", extra=extra)


def compile_kernel(pipeline: str, text: str | None = None):
    return compile_text(text or spec(), CompileOptions(pipeline=pipeline, lower=False))


def query_op(compiled) -> InputOp:
    return next(op for op in compiled.module.walk() if isinstance(op, InputOp) and op.sym_name == "Q")


# -- the offline choices ------------------------------------------------------------------------

def test_hand_checked_key_columns():
    # One head, T = S = 2, d = 4. ||Q_c||: [1, 2, 3, 0.5]; K columns minus their mean over
    # the keys: col 0 [1, 3] -> [-1, 1], norm sqrt 2; col 1 [5, 5] -> 0 (a constant, which
    # softmax ignores); col 2 [0, 2] -> [-1, 1], sqrt 2; col 3 [0, 8] -> [-4, 4], sqrt 32.
    # Products: [1.41, 0, 4.24, 2.83] -> the top 2 are columns 2 and 3.
    q = np.array([[1.0, 2.0, 3.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
    k = np.array([[1.0, 5.0, 0.0, 0.0], [3.0, 5.0, 2.0, 8.0]])
    assert key_columns(q, k, 0.5).tolist() == [[2, 3]]
    # rank 0.15 of d = 32 keeps ceil(4.8) = 5 columns; of d = 4, ceil(0.6) = 1.
    assert key_columns(np.ones((3, 2, 32)), np.ones((3, 2, 32)), 0.15).shape == (3, 5)
    assert key_columns(q, k, 0.15).tolist() == [[2]]


def _kl(q_rows, k_head, scale, assignment, clusters):
    """Mean KL(dense || clustered) of a block, float64, textbook."""
    dense = np.exp(log_softmax(scale * q_rows @ k_head.T))
    total = 0.0
    for i in range(q_rows.shape[0]):
        rep = q_rows[assignment == assignment[i]].mean(axis=0)
        approx = log_softmax((scale * k_head @ rep)[None])[0]
        total += float(np.sum(dense[i] * (np.log(dense[i]) - approx)))
    return total / q_rows.shape[0]


def test_block_kl_matches_a_textbook_kl_for_every_k():
    rng = np.random.default_rng(5)
    q, k = rng.normal(size=(9, 6)), rng.normal(size=(11, 6))
    scores = clustering.lowrank_scores(q, k, (0, 4), 0.5, "f64")
    tracker = BlockKl(q, k, np.ascontiguousarray(k.T), 0.5)
    for count, step in enumerate(clustering.allocation_steps(scores, 9), start=1):
        want = _kl(q, k, 0.5, step.assignment, count)
        assert tracker.kl(step.assignment) == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert want == pytest.approx(0.0, abs=1e-12)     # every row its own cluster


def test_threshold_picks_the_smallest_count_within_budget():
    rng = np.random.default_rng(11)
    q, k, v = (rng.normal(size=(1, 12, 6)) for _ in range(3))
    threshold = 0.05
    result = calibrate(q, k, v, 0.5, "f64", block=6, rank=0.5, threshold=threshold)
    for index, blk in enumerate(clustering.blocks(result.fmt, 12)):
        q_rows = q[0, blk.rows[0]:blk.rows[1]]
        scores = clustering.lowrank_scores(q_rows, k[0], blk.columns, 0.5, "f64")
        kls = [_kl(q_rows, k[0], 0.5, step.assignment, count) for count, step in
               enumerate(clustering.allocation_steps(scores, 6), start=1)]
        smallest = next(count for count, kl in enumerate(kls, start=1) if kl <= threshold)
        assert result.clusters[0, index] == smallest
        assert result.kl[0, index] == pytest.approx(kls[smallest - 1], rel=1e-9)
    assert 0 < result.rel_error < 1


def test_fixed_clusters_are_capped_by_short_blocks():
    rng = np.random.default_rng(2)
    q, k, v = (rng.normal(size=(2, 10, 4)) for _ in range(3))
    result = calibrate(q, k, v, 0.5, "f32", block=4, rank=0.25, clusters=3)
    assert result.clusters.tolist() == [[3, 3, 2], [3, 3, 2]]       # rows 8:10 hold 2
    assert result.fmt.cluster_lists == ((3, 3, 2), (3, 3, 2))
    assert result.map_sparsity == pytest.approx(1 - 16 / 20)


# -- what the pass records ----------------------------------------------------------------------

def test_pass_sets_the_format_and_records_in_store_and_ir():
    compiled = compile_kernel("cluster-rows{clusters=2 rank=0.25 block=4}")
    q = query_op(compiled)
    fmt = q.result.type.encoding
    assert isinstance(fmt, RowClusteredAttr)
    assert fmt.block_rows == 4 and fmt.cluster_lists == ((2, 2, 2), (2, 2, 2))
    store = compiled.store
    np.testing.assert_array_equal(store.get("att.Q#columns"), np.array(fmt.column_lists))
    np.testing.assert_array_equal(store.get("att.Q#clusters"), np.array(fmt.cluster_lists))
    assert store.get("att.Q#kl").shape == (2, 3)
    (effect,) = q.effect_list()
    assert effect["pass"] == "cluster-rows{clusters=2 rank=0.25 block=4}"
    assert effect["clusters"] == 12 and effect["map_sparsity"] == pytest.approx(1 - 12 / 20)
    assert effect["kl"] == pytest.approx(float(store.get("att.Q#kl").mean()))
    # The values are untouched: Q is a runtime input.
    np.testing.assert_array_equal(store.get("att.Q"), compile_kernel("").store.get("att.Q"))


def test_reference_of_the_formatted_op_is_clustered_attention():
    compiled = compile_kernel("cluster-rows{clusters=2 rank=0.25 block=4}")
    fmt = query_op(compiled).result.type.encoding
    q, k, v = (compiled.store.get(f"att.{n}") for n in "QKV")
    (out,) = run_reference(compiled.module, compiled.store)["att"]
    want = clustering.clustered_attention(fmt, q, k, v, 1 / math.sqrt(8), None, "f32")
    np.testing.assert_array_equal(out, want)
    dense = attention.attention(q, k, v, 1 / math.sqrt(8), None, "f32")
    np.testing.assert_array_equal(compiled.store.get("att.O#original"), dense)
    np.testing.assert_array_equal(compiled.store.get("att.O#reference"), want)
    assert not np.array_equal(want, dense)


# -- the format's text --------------------------------------------------------------------------

def _parse_type(text: str):
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Sparsec)
    return Parser(ctx, text).parse_type()


def test_format_text_round_trips():
    fmt = RowClusteredAttr(4, [[0, 3], [1, 2]], [[2, 1], [3, 2]])
    text = "tensor<2x6x4xf32, #sparsec.row_clustered<block = 4, columns = [[0, 3], [1, 2]], clusters = [[2, 1], [3, 2]]>>"
    ttype = _parse_type(text)
    assert ttype.encoding == fmt and str(ttype) == text
    assert describe(fmt) == ("row-clustered: 8 clusters over 4 blocks of 4 rows, low-rank "
                             "scores over 2 key columns")
    assert layout_of(fmt) is None                 # stored densely


def test_format_needs_every_key():
    with pytest.raises(ParseError, match="'clusters' is required"):
        _parse_type("tensor<8x4xf32, #sparsec.row_clustered<block = 4, columns = [[0]]>>")


# -- options and refusals -------------------------------------------------------------------------

@pytest.mark.parametrize("pipeline,message", [
    ("cluster-rows", "give threshold=<mean KL per block, nats> or clusters=<per block>, exactly one"),
    ("cluster-rows{threshold=0.1 clusters=2}", "exactly one (got threshold=0.1, clusters=2)"),
    ("cluster-rows{clusters=2 rank=1.5}", "rank must lie in (0, 1]"),
    ("cluster-rows{clusters=2 block=0}", "block must be >= 1 row, got 0"),
    ("cluster-rows{clusters=9 block=8}", "clusters=9 exceeds the 8 rows of a block"),
])
def test_bad_options_are_named(pipeline, message):
    with pytest.raises(CompileError) as err:
        compile_kernel(pipeline)
    assert message in str(err.value)


def test_masked_attention_is_refused():
    with pytest.raises(CompileError, match="mask=window: a cluster shares one attention row"):
        compile_kernel("cluster-rows{clusters=2}", spec(extra=", mask=window(2)"))


def test_computed_queries_are_refused():
    text = """kernel att {
  in X: f32[10, 8] = random(seed=1)
  param W: f32[8, 8] = random(seed=2)
  in K: f32[12, 8] = random(seed=3)
  in V: f32[12, 4] = random(seed=4)
  Q = matmul(X, W)
  O = attention(Q, K, V)
  out O
}
"""
    with pytest.raises(CompileError, match="Q, K and V must be `in` or `param` tensors"):
        compile_kernel("cluster-rows{clusters=2}", text)


def test_running_twice_is_refused():
    with pytest.raises(CompileError, match="Q already has the format #sparsec.row_clustered"):
        compile_kernel("cluster-rows{clusters=2},cluster-rows{clusters=3}")


def test_a_kernel_without_attention_is_refused():
    text = ("kernel g {\n  in A: f32[4, 4] = random(seed=1)\n"
            "  param B: f32[4, 4] = random(seed=2)\n  C = matmul(A, B)\n  out C\n}\n")
    with pytest.raises(CompileError, match="no sparsec.attention to row-cluster"):
        compile_kernel("cluster-rows{clusters=2}", text)


# -- the BERT hook --------------------------------------------------------------------------------

def test_bert_hook_uses_given_formats_and_checks_their_shape():
    rng = np.random.default_rng(4)
    q, k, v = (rng.normal(size=(2, 8, 4)).astype(np.float32) for _ in range(3))
    fmt = RowClusteredAttr(4, [[0], [1]], [[1, 2], [2, 2]])
    hook = ClusteredBertAttention(formats={0: fmt})
    probs, out = hook(0, q, k, v)
    np.testing.assert_array_equal(out, clustering.clustered_attention(fmt, q, k, v, 0.5, None, "f32"))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    assert len({tuple(row) for row in probs[0, :4]}) == 1        # one cluster: one row
    hook(0, q[:, :6], k, v)             # 4 + 2 rows still hold [1, 2] and [2, 2] clusters
    with pytest.raises(ValueError, match="block 1 of head 0 has 1 rows but 2 clusters"):
        hook(0, q[:, :5], k, v)
    with pytest.raises(ValueError, match="12 rows in blocks of 4 make 3 blocks"):
        hook(0, np.concatenate([q, q[:, :4]], axis=1), k, v)
    calibrated = ClusteredBertAttention(threshold=None, clusters=2, block=4)
    calibrated(3, q, k, v)
    assert calibrated.used[3].cluster_lists == ((2, 2), (2, 2)) and 3 in calibrated.calibrations
