"""tile-hot-cold: tile statistics, the cost model by hand, the heuristic, the policies, the
IR and DataStore it writes, and its refusals."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from sparsec.backends.common.spec import SpecError
from sparsec.backends.hottiles import model
from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.formats import TiledAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.passes import tile_hot_cold


def nonzeros_of(dense: np.ndarray) -> model.Nonzeros:
    return model.nonzeros(scipy.sparse.csr_matrix(dense))


# The 8x8 matrix of the hand-checked cases, in 4x4 tiles (grid 2 x 2, ids row-major):
#   tile 0 (rows 0-3, cols 0-3): (0,0) (0,1) (2,1) (3,3)
#   tile 1 (rows 0-3, cols 4-7): (1,6)
#   tile 3 (rows 4-7, cols 4-7): (5,4) (5,5)
EIGHT = np.zeros((8, 8), np.float32)
for r, c in [(0, 0), (0, 1), (2, 1), (3, 3), (1, 6), (5, 4), (5, 5)]:
    EIGHT[r, c] = 1.0 + r + c


def test_exact_stats_by_hand():
    problem = model.Problem(8, 8, n=8, value_bytes=4, out_bytes=4, tile=(4, 4))
    stats, inverse = model.exact_stats(nonzeros_of(EIGHT), problem, chunk=2)
    assert stats.ids.tolist() == [0, 1, 3]
    assert stats.nnz.tolist() == [4, 1, 2]
    # tile 0: rows {0, 2, 3}; columns {0, 1, 3}; 2-wide chunks {0, 1} -> 2 chunks, 4 B rows
    # tile 1: row {1}; column {6 - 4 = 2}: chunk 1 -> 1 chunk, 2 B rows
    # tile 3: row {5}; columns {4, 5} -> local {0, 1}: chunk 0 -> 1 chunk, 2 B rows
    assert stats.rows.tolist() == [3, 1, 1]
    assert stats.cols.tolist() == [3, 1, 2]
    assert stats.chunks.tolist() == [2, 1, 1]
    assert stats.chunk_rows.tolist() == [4, 2, 2]
    assert inverse.tolist() == [0, 0, 1, 0, 0, 2, 2]   # CSR order: row 0 (0,0)(0,1), row 1 (1,6), ...


def test_edge_tiles_are_cut_by_the_matrix():
    # 7 x 6 in 4x4 tiles: the bottom-right tile is 3 x 2 and its only chunk is 2 wide.
    dense = np.zeros((7, 6))
    dense[6, 5] = dense[4, 4] = 1.0
    problem = model.Problem(7, 6, 1, 4, 4, (4, 4))
    stats, _ = model.exact_stats(nonzeros_of(dense), problem, chunk=4)
    assert stats.ids.tolist() == [3]
    assert (stats.height.tolist(), stats.width.tolist()) == ([3], [2])
    assert stats.chunk_rows.tolist() == [2]


def test_expected_stats_by_hand():
    # A 4x4 tile with 2 nonzeros spread uniformly (eq. M1):
    # E[rows] = E[cols] = 4 (1 - (3/4)^2) = 4 * 7/16 = 1.75;
    # 2-wide chunks: 2 of them, E = 2 (1 - (1/2)^2) = 1.5, so E[B rows] = min(4, 1.5 * 2) = 3.
    problem = model.Problem(8, 8, 8, 4, 4, (4, 4))
    stats = model.expected_stats(np.array([0]), np.array([2]), problem, chunk=2)
    assert stats.rows[0] == pytest.approx(1.75)
    assert stats.cols[0] == pytest.approx(1.75)
    assert stats.chunks[0] == pytest.approx(1.5)
    assert stats.chunk_rows[0] == pytest.approx(3.0)


def test_expected_stats_of_a_full_tile_are_the_tile():
    problem = model.Problem(64, 64, 8, 4, 4, (64, 64))
    stats = model.expected_stats(np.array([0]), np.array([4096]), problem, chunk=16)
    assert stats.rows[0] == pytest.approx(64, rel=1e-6)
    assert stats.chunk_rows[0] == pytest.approx(64, rel=1e-6)


def test_tile_costs_by_hand():
    spec = HottilesSpec(hot_rows=2, hot_cols=2, cold_lanes=4)
    problem = model.Problem(8, 8, n=8, value_bytes=4, out_bytes=4, tile=(4, 4))
    stats, _ = model.exact_stats(nonzeros_of(EIGHT), problem, chunk=2)
    costs = model.tile_costs(stats, problem, spec)
    # Tile 0: nnz 4, rows 3, cols 3, chunks 2, B rows 4, 4x4, N = 8, 4-byte values/indices.
    # B1 A = 4 * (4 + 4) + (4 + 1) * 4 = 52; B2 out = 2 * 3 * 8 * 4 = 192
    # B3 hot B = 4 * 8 * 4 = 128 -> hot bytes 372
    # B4 cold B: cache rows 64 KiB / 32 B = 2048 >= 3 columns, no miss: 3 * 8 * 4 = 96 -> 340
    assert costs.hot_bytes[0] == 372 and costs.cold_bytes[0] == 340
    # T1 hot = chunks 2 * ceil(8 / 2) * (rows 3 + 2*2 + 2 - 2) = 2 * 4 * 7 = 56
    # T2 cold = 4 * ceil(8 / 4) + 3 * 1 = 11
    assert costs.hot_compute[0] == 56 and costs.cold_compute[0] == 11
    # T3/T4: hot port 64 B/cycle: ceil(372 / 64) = 6 < 56; cold port 16: ceil(340 / 16) = 22 > 11
    hot, cold = np.ones(3, bool), np.zeros(3, bool)
    assert costs.cycles(hot)[0] == 56 and costs.cycles(cold)[0] == 22
    assert costs.dram(cold)[0] == 1                      # ceil(340 / 1024)
    assert costs.hot_macs[0] == 3 * 4 * 8                # rows x B rows x N


def test_cold_cache_misses_when_the_columns_overflow_it():
    # 1 KiB cache, N = 8 f32: 1024 / 32 = 32 rows. 64 distinct columns, 200 nonzeros:
    # a repeated use hits with probability 32 / 64, so 64 + (200 - 64) * 0.5 = 132 B rows.
    spec = HottilesSpec(cold_cache_kb=1)
    problem = model.Problem(64, 64, 8, 4, 4, (64, 64))
    stats = model.TileStats(*(np.array([v], dtype=np.float64) for v in
                              (0, 200, 10, 64, 4, 64, 64, 64)))
    assert model.cold_b_rows(stats, problem, spec)[0] == pytest.approx(132)


def costs_of(hot_compute, cold_compute, bandwidth=1e9):
    zeros = np.zeros(len(hot_compute))
    return model.TileCosts(np.array(hot_compute, float), np.array(cold_compute, float), zeros,
                           zeros, zeros, 64.0, 16.0, bandwidth)


def test_split_keeps_the_k_with_least_predicted_time():
    # Ratios cold / hot = 10, 0.2, 0.2: tile 0 first. With H = C = 1 (eq. H2):
    # k=0: cold 140 -> 140; k=1: hot 10, cold 40 -> 40; k=2: hot 110 -> 110; k=3: 210.
    hot = model.split_hot_cold(costs_of([10, 100, 100], [100, 20, 20]), 1, 1)
    assert hot.tolist() == [True, False, False]


def test_split_counts_shared_dram():
    # The same tiles, but a hot tile moves 2000 bytes and a cold one 100, over 10 B/cycle:
    # k=0: max(cold 140, DRAM 300 / 10 = 30) = 140; k=1: max(hot 10, cold 40,
    # DRAM (2000 + 200) / 10 = 220) = 220; more hot tiles only add traffic: k = 0 wins.
    fast = costs_of([10, 100, 100], [100, 20, 20])
    costs = model.TileCosts(fast.hot_compute, fast.cold_compute, np.full(3, 2000.0),
                            np.full(3, 100.0), fast.hot_macs, 1e9, 1e9, 10.0)
    assert model.split_hot_cold(costs, 1, 1).tolist() == [False, False, False]


def test_split_without_one_worker_type():
    costs = costs_of([10, 100], [100, 20])
    assert model.split_hot_cold(costs, 0, 3).tolist() == [False, False]
    assert model.split_hot_cold(costs, 2, 0).tolist() == [True, True]


def test_lpt_assignment_by_hand():
    # Longest first to the least loaded: 5 -> w0, 4 -> w1, 3 -> w1 (4 < 5), 3 -> w0 (5 < 7).
    worker, position = model.assign_lpt(np.array([5.0, 4.0, 3.0, 3.0]), 2)
    assert worker.tolist() == [0, 1, 1, 0]
    assert position.tolist() == [0, 1, 2, 3]
    # Loads 8 and 7; 2048 bytes at 1024 B/cycle = 2 cycles of DRAM: the span is 8 (eq. H5).
    assert model.predicted_span(np.array([5.0, 4.0, 3.0, 3.0]), worker, 2, 2048, 1024) == 8


def test_unique_sorted_matches_numpy():
    keys = np.random.default_rng(0).integers(0, 50, 1000)
    values, inverse = model.unique_sorted(keys)
    expected, expected_inverse = np.unique(keys, return_inverse=True)
    assert np.array_equal(values, expected) and np.array_equal(inverse, expected_inverse)


def test_auto_tile_grows_until_few_enough_tiles():
    identity = model.nonzeros(scipy.sparse.identity(4096, format="csr"))
    assert model.auto_tile(identity, 4096, 4096, HottilesSpec()) == (64, 64)   # min_tile = 4 * 16
    # 64 diagonal tiles of 64; 32 of 128; 16 of 256 <= 16.
    assert model.auto_tile(identity, 4096, 4096, HottilesSpec(max_tiles=16)) == (256, 256)
    assert model.auto_tile(identity, 4096, 4096, HottilesSpec(tile_rows=100)) == (100, 64)


# -- through the compiler ------------------------------------------------------------------------


def block_matrix(n: int = 256, scattered: int = 100, seed: int = 0) -> np.ndarray:
    """A dense 64x64 block (rows and columns 0-63) plus nonzeros scattered elsewhere."""
    rng = np.random.default_rng(seed)
    a = np.zeros((n, n), np.float32)
    a[:64, :64] = rng.uniform(0.5, 1.5, (64, 64))
    rows, cols = rng.integers(64, n, scattered), rng.integers(0, n, scattered)
    a[rows, cols] = rng.uniform(0.5, 1.5, scattered)
    return a


def spec_text(a_path: Path, n_cols: int = 16, flags: str = "", role: str = "param") -> str:
    a = np.load(a_path)
    return (f"kernel k {{\n  {role} A: f32[{a.shape[0]}, {a.shape[1]}] = load(\"{a_path.name}\")\n"
            f"  in B: f32[{a.shape[1]}, {n_cols}] = random(seed=1)\n"
            f"  C = matmul(A, B{flags})\n  out C\n}}\n")


def compile_tiled(tmp_path: Path, a: np.ndarray, pipeline: str, **kw):
    np.save(tmp_path / "a.npy", a)
    text = spec_text(tmp_path / "a.npy", **kw)
    return compile_text(text, CompileOptions(pipeline=pipeline, lower=False),
                        str(tmp_path / "k.sk"))


def param_op(compiled) -> ParamOp:
    return next(op for op in compiled.module.walk() if isinstance(op, ParamOp))


def test_dense_block_goes_hot(tmp_path):
    a = block_matrix()
    compiled = compile_tiled(tmp_path, a, "tile-hot-cold{tile_rows=64 tile_cols=64}")
    store = compiled.store
    ids, kind = store.get("k.A#tile_ids"), store.get("k.A#tile_kind")
    # The block is tile 0; each scattered tile holds ~7 nonzeros, for which the hot array's
    # fill and drain (2R + C - 2 = 46 cycles per fold) cost more than a cold worker's stream.
    assert ids[kind == model.HOT].tolist() == [0]
    assert set(ids[kind == model.COLD].tolist()) == set(range(1, 16)) - {1, 2, 3}
    encoding = param_op(compiled).result.type.encoding
    assert isinstance(encoding, TiledAttr)
    assert (encoding.tile, encoding.workers, encoding.counts) == ((64, 64), (2, 24), (1, 12))
    # Lossless: the values are unchanged, and every nonzero is in exactly one tile.
    assert np.array_equal(store.get("k.A"), a)
    assert store.get("k.A#tile_nnz").sum() == np.count_nonzero(a)


def test_effect_summarizes_the_partition(tmp_path):
    compiled = compile_tiled(tmp_path, block_matrix(), "tile-hot-cold{tile_rows=64 tile_cols=64}")
    (effect,) = param_op(compiled).effect_list()
    assert effect["pass"] == "tile-hot-cold{policy=hottiles}"
    assert (effect["tiles"], effect["hot_tiles"], effect["cold_tiles"]) == (13, 1, 12)
    assert effect["hot_nnz_share"] == pytest.approx(4096 / (4096 + 100), abs=0.01)
    assert effect["predicted_cycles"] == round(float(compiled.store.get("k.A#model_cycles")[0]))
    assert "13 non-empty 64x64 tiles (hottiles): 1 hot" in effect["note"]


@pytest.mark.parametrize("policy,workers", [("hotonly", (8, 0)), ("coldonly", (0, 32))])
def test_single_type_policies_spend_the_budget_on_one_type(tmp_path, policy, workers):
    # Budget 2 * 4 + 24 * 1 = 32 area units: 8 hot workers or 32 cold ones.
    compiled = compile_tiled(tmp_path, block_matrix(),
                             f"tile-hot-cold{{tile_rows=64 tile_cols=64 policy={policy}}}")
    kind = compiled.store.get("k.A#tile_kind")
    assert param_op(compiled).result.type.encoding.workers == workers
    assert np.all(kind == (model.HOT if policy == "hotonly" else model.COLD))
    worker = compiled.store.get("k.A#tile_worker")
    assert worker.max() < max(workers)


def test_best_picks_the_faster_single_type(tmp_path):
    nz = model.nonzeros(block_matrix())
    problem = model.Problem(256, 256, 16, 4, 4, (64, 64))
    spec = HottilesSpec(tile_rows=64, tile_cols=64)
    predicted = {p: model.partition(nz, problem, HottilesSpec(tile_rows=64, tile_cols=64,
                                                              policy=p)).predicted
                 for p in ("hotonly", "coldonly")}
    best = model.partition(nz, problem, HottilesSpec(tile_rows=64, tile_cols=64, policy="best"))
    assert best.predicted == min(predicted.values())
    assert best.workers == spec.workers(min(predicted, key=predicted.__getitem__))


def test_round_robin_deals_tiles_in_grid_order(tmp_path):
    compiled = compile_tiled(tmp_path, block_matrix(),
                             "tile-hot-cold{tile_rows=64 tile_cols=64 policy=roundrobin "
                             "hot_workers=1 cold_workers=2}")
    store = compiled.store
    ids, kind, worker = (store.get(f"k.A#tile_{p}") for p in ("ids", "kind", "worker"))
    rank = np.argsort(np.argsort(ids))            # position in grid order
    dealt = rank % 3                               # worker 0 is the hot one
    assert np.array_equal(kind == model.HOT, dealt == 0)
    assert np.array_equal(worker, np.where(dealt == 0, 0, dealt - 1))


def test_random_split_is_seeded():
    nz = model.nonzeros(block_matrix())
    problem = model.Problem(256, 256, 16, 4, 4, (64, 64))

    def labels(seed: int) -> list[int]:
        spec = HottilesSpec(policy="random", seed=seed)
        part = model.partition(nz, problem, spec)
        return part.global_worker[np.argsort(part.ids)].tolist()

    assert labels(0) == labels(0)
    assert labels(0) != labels(1)


def test_partition_lists_each_workers_tiles_together():
    nz = model.nonzeros(block_matrix(scattered=2000))
    part = model.partition(nz, model.Problem(256, 256, 16, 4, 4, (32, 32)), HottilesSpec())
    g = part.global_worker
    assert np.all(np.diff(g) >= 0)           # hot 0, hot 1, cold 0, ... each contiguous
    for w in np.unique(g):                    # each worker's queue: longest tile first (LPT)
        assert np.all(np.diff(part.model_cycles[g == w]) <= 0)


def test_sparse_values_are_never_densified(tmp_path, monkeypatch):
    matrix = scipy.sparse.random(2000, 3000, density=0.001, format="csr", random_state=1,
                                 dtype=np.float32)
    monkeypatch.setattr(scipy.sparse.csr_matrix, "toarray",
                        lambda self, *a, **k: pytest.fail("A was densified"))
    nz = model.nonzeros(matrix)
    part = model.partition(nz, model.Problem(2000, 3000, 8, 4, 4, (64, 64)), HottilesSpec())
    assert part.nnz.sum() == matrix.nnz


# -- refusals -------------------------------------------------------------------------------------


def test_refuses_a_runtime_input(tmp_path):
    np.save(tmp_path / "a.npy", block_matrix())
    text = spec_text(tmp_path / "a.npy", role="in")
    with pytest.raises(CompileError, match="A is a runtime input; the partition is made at "
                       "compile time from A's nonzeros, so A must be a `param`"):
        compile_text(text, CompileOptions(pipeline="tile-hot-cold", lower=False),
                     str(tmp_path / "k.sk"))


def test_refuses_transposes(tmp_path):
    a = block_matrix()
    with pytest.raises(CompileError, match="HotTiles runs C = A . B; transpose_a / transpose_b"):
        compile_tiled(tmp_path, a, "tile-hot-cold", flags=", transpose_a=true")


def test_refuses_a_quantized_matrix(tmp_path):
    with pytest.raises(CompileError, match="A has the encoding 8-bit .* quantized; HotTiles tiles "
                       "a plain"):
        compile_tiled(tmp_path, block_matrix(), "quantize{bits=8 operand=a},tile-hot-cold")


def test_accepts_a_csr_matrix_and_retiles(tmp_path):
    compiled = compile_tiled(tmp_path, block_matrix(),
                             "sparsify{format=csr operand=a},tile-hot-cold{tile_rows=64 "
                             "tile_cols=64},tile-hot-cold{tile_rows=128 tile_cols=128}")
    assert param_op(compiled).result.type.encoding.tile == (128, 128)


def test_refuses_too_many_tiles(tmp_path, monkeypatch):
    monkeypatch.setattr(tile_hot_cold, "MAX_TILES", 4)
    with pytest.raises(CompileError, match="13 non-empty 64x64 tiles exceed 4; choose larger "
                       "tile_rows / tile_cols"):
        compile_tiled(tmp_path, block_matrix(), "tile-hot-cold{tile_rows=64 tile_cols=64}")


@pytest.mark.parametrize("options,message", [
    ("policy=greedy", "option policy must be one of hottiles, hotonly, coldonly, best, random, "
                      "roundrobin, got 'greedy'"),
    ("hot_workers=0 cold_workers=0", "option hot_workers/cold_workers must give at least one"),
    ("tile_rows=-4", "option tile_rows must be >= 0, got -4"),
    ("hot_rows=0", "option hot_rows must be >= 1"),
    ("policy=hotonly hot_workers=0 cold_workers=3", "hotonly gets no worker from an area "
                                                     "budget of 3"),
])
def test_option_validation(tmp_path, options, message):
    with pytest.raises(CompileError, match=message):
        compile_tiled(tmp_path, block_matrix(), f"tile-hot-cold{{{options}}}")


def test_best_needs_only_one_homogeneous_machine():
    spec = HottilesSpec(policy="best", hot_workers=0, cold_workers=3)
    assert spec.allowed_workers() == {(0, 3)}
    with pytest.raises(SpecError, match="hot_area must be > 0"):
        HottilesSpec(hot_area=0.0)


def test_needs_the_programs_data():
    from xdsl.utils.exceptions import PassFailedException

    from sparsec.compiler.driver import make_context

    compiled = compile_text("kernel k {\n  param A: f32[8, 8] = random(seed=1, density=0.5)\n"
                            "  in B: f32[8, 4] = random(seed=2)\n  C = matmul(A, B)\n  out C\n}\n",
                            CompileOptions(lower=False))
    with pytest.raises(PassFailedException, match="tile-hot-cold: sparsec.matmul operand A: this "
                       "pass needs the program's data: run it through `sparsec compile`"):
        tile_hot_cold.TileHotColdPass().apply(make_context(), compiled.module)
