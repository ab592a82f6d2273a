"""tile-hot-cold: tile statistics, HotTiles' cost model by hand (Table I, five tasks,
re-costing), each of the four heuristics on a case whose choice is known, the
serial/parallel choice, IUnaware, the scratchpad tile rule, the IR and DataStore it
writes, the hardware registry and its refusals."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse

from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.formats import TiledAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.passes import hardware, hotcold_model, tile_hot_cold
from sparsec.passes.hotcold_model import Problem, TileCosts
from sparsec.tensors.tiles import COLD, HOT, PARALLEL, SERIAL, nonzeros, tiles_of


def machine(options: str = "") -> hardware.HeterogeneousModel:
    return hardware.heterogeneous_model("hottiles", options)


# The 8x8 matrix of the hand-checked cases, in 4x4 tiles (grid 2 x 2, ids row-major):
#   tile 0 (rows 0-3, cols 0-3): (0,0) (0,1) (2,1) (3,3)
#   tile 1 (rows 0-3, cols 4-7): (1,6)
#   tile 3 (rows 4-7, cols 4-7): (5,4) (5,5)
EIGHT = np.zeros((8, 8), np.float32)
for r, c in [(0, 0), (0, 1), (2, 1), (3, 3), (1, 6), (5, 4), (5, 5)]:
    EIGHT[r, c] = 1.0 + r + c


def test_tiles_by_hand():
    tiles = tiles_of(nonzeros(scipy.sparse.csr_matrix(EIGHT)), (4, 4))
    assert tiles.ids.tolist() == [0, 1, 3]
    assert tiles.nnz.tolist() == [4, 1, 2]
    assert tiles.rows.tolist() == [3, 1, 1]        # tile_uniq_rids
    assert tiles.cols.tolist() == [3, 1, 2]        # tile_uniq_cids
    assert tiles.panel.tolist() == [0, 0, 1]
    assert tiles.of_nonzero.tolist() == [0, 0, 1, 0, 0, 2, 2]


def test_edge_tiles_are_cut_by_the_matrix():
    dense = np.zeros((7, 6))
    dense[6, 5] = dense[4, 4] = 1.0
    tiles = tiles_of(nonzeros(dense), (4, 4))
    assert tiles.ids.tolist() == [3]
    assert (tiles.height.tolist(), tiles.width.tolist()) == ([3], [2])


# -- Table I and the five tasks by hand ------------------------------------------------------

# K = 8 f32: a Din / Dout row is 32 bytes; COO items 4 + 4 + 4 = 12 bytes per nonzero.
HAND = ("hot_vis_lat=0.5 cold_vis_lat=1.0 hot_simd_per_cycle=2 hot_simd_lanes=8 "
        "cold_simd_lanes=4 hot_workers=1 cold_workers=1 hot_shared_port=false "
        "cold_shared_port=false")


def test_table_one_bytes_by_hand():
    tiles = tiles_of(nonzeros(EIGHT), (4, 4))
    c = hotcold_model.costs(machine(HAND), tiles, Problem(8, 4, 4))
    # hot (Sextans): A 12 nnz + Din streamed = tile width 4 rows * 32; Dout Inter-tile: 0
    assert c.bh.tolist() == [48 + 128, 12 + 128, 24 + 128]
    # cold (SPADE): A 12 nnz + Din None = one row per nonzero; Dout Inter-tile: 0
    assert c.bc.tolist() == [48 + 4 * 32, 12 + 32, 24 + 64]


def test_csr_and_demand_bytes_by_hand():
    m = machine(HAND + " hot_format=csr hot_din_reuse=demand hot_dout_reuse=demand")
    tiles = tiles_of(nonzeros(EIGHT), (4, 4))
    c = hotcold_model.costs(m, tiles, Problem(8, 4, 4))
    # CSR: (height + 1) * 4 + nnz * (4 + 4); Din demand: distinct columns; Dout demand:
    # distinct rows, read and written back.
    assert c.bh.tolist() == [20 + 32 + 3 * 32 + 2 * 3 * 32, 20 + 8 + 32 + 2 * 32,
                             20 + 16 + 2 * 32 + 2 * 32]


def test_five_tasks_overlap_or_add():
    tiles = tiles_of(nonzeros(EIGHT), (4, 4))
    problem = Problem(8, 4, 4)
    # all tasks overlapped: the longest. Tile 0 on hot: bytes 176 * 0.5 = 88 (A 24, Din 64)
    # vs MAC 2 * 8 * 4 / (2 * 2 * 8 = 32 flop/cycle) = 2: the Din task (64) is longest.
    c = hotcold_model.costs(machine(HAND), tiles, problem)
    assert c.th[0] == pytest.approx(64.0)
    # no overlap: every task adds up, 24 + 64 + 0 + 2 + 0
    serial = machine(HAND + " hot_overlap=a_din_dout_mac_wb")
    assert hotcold_model.costs(serial, tiles, problem).th[0] == pytest.approx(90.0)
    # one shared port: the memory tasks add (24 + 64), overlapped with the MAC (2)
    shared = machine(HAND.replace("hot_shared_port=false", "hot_shared_port=true"))
    assert hotcold_model.costs(shared, tiles, problem).th[0] == pytest.approx(88.0)


def test_first_tile_of_each_panel_is_recosted():
    tiles = tiles_of(nonzeros(EIGHT), (4, 4))
    hot = np.array([True, True, False])
    c = hotcold_model.recost(machine(HAND), tiles, Problem(8, 4, 4), hot)
    # hot streams Dout: tile 0 (first hot tile of panel 0) reads and writes 4 rows; tile 1
    # (second in the panel) none. Cold demands: tile 3 reads and writes its 1 distinct row.
    assert c.bh.tolist()[:2] == [176 + 2 * 4 * 32, 140]
    assert c.bc[2] == 24 + 64 + 2 * 32


# -- the four heuristics -----------------------------------------------------------------------


def hand_costs(th, tc, bh=None, bc=None) -> TileCosts:
    th, tc = np.array(th, float), np.array(tc, float)
    bh = np.zeros_like(th) if bh is None else np.array(bh, float)
    bc = np.zeros_like(th) if bc is None else np.array(bc, float)
    return TileCosts(th, tc, bh, bc)


ONE_EACH = "hot_workers=1 cold_workers=1"


def test_mintime_parallel_stops_where_the_two_types_balance():
    # sorted by th - tc (already ascending); max(hot, cold) per cutoff k:
    # k=0: 34, k=1: max(1, 24), k=2: max(3, 15), k=3: max(6, 7) = 7, k=4: 10 -> k = 3
    c = hand_costs([1, 2, 3, 4], [10, 9, 8, 7])
    hot = hotcold_model.heuristic_split("mintime-par", machine(ONE_EACH), c)
    assert hot.tolist() == [True, True, True, False]


def test_mintime_serial_takes_every_tile_faster_on_hot():
    # th + tc falls for every tile with th < tc: all four go hot
    c = hand_costs([1, 2, 3, 4], [10, 9, 8, 7])
    hot = hotcold_model.heuristic_split("mintime-ser", machine(ONE_EACH), c)
    assert hot.tolist() == [True, True, True, True]


@pytest.mark.parametrize("name", ["minbyte-par", "minbyte-ser"])
def test_minbyte_takes_the_tiles_with_fewer_hot_bytes(name):
    # bh - bc = [4, -5, 6, -7]: order 3, 1, 0, 2; b_total 18 -> 11 -> 6 -> 10: stop at k = 2
    c = hand_costs([1, 1, 1, 1], [1, 1, 1, 1], [5, 1, 8, 2], [1, 6, 2, 9])
    hot = hotcold_model.heuristic_split(name, machine(ONE_EACH), c)
    assert hot.tolist() == [False, True, False, True]


def test_cutoff_stops_at_the_first_rise():
    assert hotcold_model.cutoff(np.array([5.0, 4, 3, 3.5, 1])) == 2
    assert hotcold_model.cutoff(np.array([5.0, 4, 3])) == 2
    assert hotcold_model.cutoff(np.array([1.0, 4, 3])) == 0


def block_matrix(n: int = 256, scattered: int = 100, seed: int = 0) -> np.ndarray:
    """A dense 64x64 block (rows and columns 0-63) plus nonzeros scattered elsewhere."""
    rng = np.random.default_rng(seed)
    a = np.zeros((n, n), np.float32)
    a[:64, :64] = rng.uniform(0.5, 1.5, (64, 64))
    rows, cols = rng.integers(64, n, scattered), rng.integers(0, n, scattered)
    a[rows, cols] = rng.uniform(0.5, 1.5, scattered)
    return a


SMALL = "tile_rows=64 tile_cols=64 hot_workers=1 cold_workers=2"


@pytest.mark.parametrize("heuristic", ["mintime-par", "mintime-ser", "minbyte-par",
                                       "minbyte-ser"])
def test_each_heuristic_sends_the_dense_block_hot(heuristic):
    # The 64x64 block (4096 nonzeros) costs a streaming hot worker 64 Din rows and a cold
    # one 4096; a scattered tile (~7 nonzeros) costs hot 64 rows and cold ~7. Every
    # heuristic makes exactly the block hot.
    m = machine(f"{SMALL} heuristic={heuristic}")
    part, tiles = hotcold_model.partition(m, nonzeros(block_matrix()), Problem(16, 4, 4))
    assert part.ids[part.kind == HOT].tolist() == [0]
    assert part.heuristic == hardware.HEURISTICS.index(heuristic)
    assert part.schedule == (SERIAL if heuristic.endswith("ser") else PARALLEL)


def test_low_bandwidth_pressure_picks_mintime_parallel():
    m = machine(f"{SMALL} dram_gbps=1000000 hot_vis_lat=0.001 cold_vis_lat=0.001")
    part, _ = hotcold_model.partition(m, nonzeros(block_matrix()), Problem(16, 4, 4))
    assert hardware.HEURISTICS[part.heuristic] == "mintime-par"


def test_high_bandwidth_pressure_picks_minbyte_serial():
    # A hot worker computing far faster makes MinTime send every tile hot (th < tc), each
    # then streaming 64 Din rows; with bytes dominating, MinByte's split (only the block
    # hot) wins, and serial avoids t_merge.
    fast_hot = ("hot_vis_lat=0.0001 cold_vis_lat=0.0001 cold_simd_lanes=1 "
                "hot_simd_per_cycle=100")
    c = hotcold_model.costs(machine(f"{SMALL} {fast_hot}"),
                            tiles_of(nonzeros(block_matrix()), (64, 64)), Problem(16, 4, 4))
    assert np.all(c.th < c.tc)
    m = machine(f"{SMALL} {fast_hot} dram_gbps=0.01")
    part, _ = hotcold_model.partition(m, nonzeros(block_matrix()), Problem(16, 4, 4))
    assert hardware.HEURISTICS[part.heuristic] == "minbyte-ser"
    assert part.ids[part.kind == HOT].tolist() == [0]


def test_atomic_engine_uses_only_parallel_heuristics_and_no_merge():
    m = machine(f"{SMALL} atomic=true dram_gbps=0.01")
    part, _ = hotcold_model.partition(m, nonzeros(block_matrix()), Problem(16, 4, 4))
    assert part.schedule == PARALLEL and part.merge == 0.0


def test_merge_cost_is_three_output_buffers_over_bandwidth():
    m = machine(SMALL)
    assert hotcold_model.merge_cycles(m, 256, Problem(16, 4, 4)) == pytest.approx(
        3 * 256 * 64 / m.bandwidth)


def test_iunaware_splits_at_random_in_the_roofline_ratio():
    m = machine(f"{SMALL} policy=iunaware")
    nz = nonzeros(block_matrix(scattered=3000))
    part, tiles = hotcold_model.partition(m, nz, Problem(16, 4, 4))
    c = hotcold_model.costs(m, hotcold_model.uniform_tiles(tiles), Problem(16, 4, 4))
    ex_h = max(c.th.sum() / 1, c.bh.sum() / m.bandwidth)
    ex_c = max(c.tc.sum() / 2, c.bc.sum() / m.bandwidth)
    assert part.hot_tiles == round(ex_c / (ex_c + ex_h) * tiles.count)
    other, _ = hotcold_model.partition(machine(f"{SMALL} policy=iunaware seed=1"), nz,
                                       Problem(16, 4, 4))
    assert sorted(part.ids[part.kind == HOT]) != sorted(other.ids[other.kind == HOT])


def test_tile_width_fills_the_scratchpad_and_height_is_searched():
    m = machine("preset=spade-sextans-4")
    (height, width), candidates = hotcold_model.tile_shape(m, Problem(32, 4, 4),
                                                           (1_000_000, 1_000_000))
    assert width == 2 * 1024 * 1024 // (32 * 4) == 16384
    assert height == 0 and candidates == [256, 1024, 4096, 16384]
    (_, width8), _ = hotcold_model.tile_shape(machine("preset=spade-sextans-8"),
                                              Problem(32, 8, 8), (1_000_000, 1_000_000))
    assert width8 == 4 * 1024 * 1024 // 256


def test_row_panels_of_one_type_stay_on_one_worker():
    m = machine("tile_rows=32 tile_cols=32 hot_workers=2 cold_workers=3")
    part, tiles = hotcold_model.partition(m, nonzeros(block_matrix(scattered=3000)),
                                          Problem(16, 4, 4))
    panel = part.ids // tiles.grid[1]
    for label in (HOT, COLD):
        mine = part.kind == label
        for p in np.unique(panel[mine]):
            assert np.unique(part.worker[mine & (panel == p)]).size == 1
    assert np.all(np.diff(part.global_worker) >= 0)


# -- through the compiler ------------------------------------------------------------------


def spec_text(a_path: Path, n_cols: int = 16, flags: str = "", role: str = "param") -> str:
    a = np.load(a_path)
    return (f"kernel k {{\n  {role} A: f32[{a.shape[0]}, {a.shape[1]}] = load(\"{a_path.name}\")\n"
            f"  in B: f32[{a.shape[1]}, {n_cols}] = random(seed=1)\n"
            f"  C = matmul(A, B{flags})\n  out C\n}}\n")


def compile_tiled(tmp_path: Path, a: np.ndarray, options: str = SMALL, extra: str = "", **kw):
    np.save(tmp_path / "a.npy", a)
    text = spec_text(tmp_path / "a.npy", **kw)
    pipeline = f'{extra}tile-hot-cold{{options="{options}"}}'
    return compile_text(text, CompileOptions(pipeline=pipeline, lower=False),
                        str(tmp_path / "k.sk"))


def param_op(compiled) -> ParamOp:
    return next(op for op in compiled.module.walk() if isinstance(op, ParamOp))


def test_pass_writes_the_partition_and_the_type(tmp_path):
    a = block_matrix()
    compiled = compile_tiled(tmp_path, a)
    store = compiled.store
    ids, kind = store.get("k.A#tile_ids"), store.get("k.A#tile_kind")
    assert ids[kind == HOT].tolist() == [0]
    encoding = param_op(compiled).result.type.encoding
    assert isinstance(encoding, TiledAttr)
    assert (encoding.tile, encoding.workers, encoding.counts) == ((64, 64), (1, 2), (1, 12))
    assert np.array_equal(store.get("k.A"), a)                     # lossless
    assert store.get("k.A#tile_nnz").sum() == np.count_nonzero(a)
    (effect,) = param_op(compiled).effect_list()
    assert effect["pass"] == "tile-hot-cold{policy=hottiles}"
    assert effect["predicted_cycles"] == round(float(store.get("k.A#model")[0]))
    assert "13 non-empty tiles" in effect["note"]


@pytest.mark.parametrize("policy,workers", [("hotonly", (1, 0)), ("coldonly", (0, 2))])
def test_single_type_policies(tmp_path, policy, workers):
    compiled = compile_tiled(tmp_path, block_matrix(), f"{SMALL} policy={policy}")
    kind = compiled.store.get("k.A#tile_kind")
    assert param_op(compiled).result.type.encoding.workers == workers
    assert np.all(kind == (HOT if policy == "hotonly" else COLD))


def test_best_picks_the_faster_single_type():
    nz = nonzeros(block_matrix())
    predicted = {p: hotcold_model.partition(machine(f"{SMALL} policy={p}"), nz,
                                            Problem(16, 4, 4))[0].predicted
                 for p in ("hotonly", "coldonly")}
    best, _ = hotcold_model.partition(machine(f"{SMALL} policy=best"), nz, Problem(16, 4, 4))
    assert best.predicted == min(predicted.values())


def test_sparse_values_are_never_densified(monkeypatch):
    matrix = scipy.sparse.random(2000, 3000, density=0.001, format="csr", random_state=1,
                                 dtype=np.float32)
    monkeypatch.setattr(scipy.sparse.csr_matrix, "toarray",
                        lambda self, *a, **k: pytest.fail("A was densified"))
    part, _ = hotcold_model.partition(machine(), nonzeros(matrix), Problem(8, 4, 4))
    assert part.nnz.sum() == matrix.nnz


# -- the hardware registry ---------------------------------------------------------------------


def test_hottiles_publishes_its_model_through_the_entry_point():
    assert "hottiles" in hardware.known_models()
    m = machine("preset=piuma")
    assert (m.hot.count, m.cold.count, m.atomic) == (2, 4, True)
    assert (m.hot.sparse_format, m.hot.dout_reuse) == ("csr", "demand")


def test_a_registered_model_is_used(tmp_path):
    traits = hardware.heterogeneous_model("hottiles", SMALL)
    plain = {"hot": vars(traits.hot) | {"count": 3}, "cold": vars(traits.cold),
             "bandwidth": traits.bandwidth, "atomic": False, "index_bytes": 4,
             "tile_rows": 64, "tile_cols": 64}
    hardware.register("toy", lambda options: plain)
    np.save(tmp_path / "a.npy", block_matrix())
    compiled = compile_text(spec_text(tmp_path / "a.npy"),
                            CompileOptions(pipeline="tile-hot-cold{hardware=toy}", lower=False),
                            str(tmp_path / "k.sk"))
    assert param_op(compiled).result.type.encoding.workers == (3, 2)


def test_malformed_or_out_of_range_traits_are_refused():
    hardware.register("broken", lambda options: {"hot": {}, "cold": {}})
    with pytest.raises(hardware.HardwareModelError, match="hardware model 'broken' returned "
                       "malformed traits"):
        hardware.heterogeneous_model("broken")
    good = hardware.heterogeneous_model("hottiles", SMALL)
    hardware.register("slow", lambda options: {
        "hot": vars(good.hot), "cold": vars(good.cold) | {"din_reuse": "sometimes"},
        "bandwidth": 1.0, "atomic": False, "index_bytes": 4})
    with pytest.raises(hardware.HardwareModelError, match="cold worker: din_reuse must be one "
                       "of inter, stream, demand, none, got 'sometimes'"):
        hardware.heterogeneous_model("slow")


def test_passes_do_not_import_backends():
    root = Path(tile_hot_cold.__file__).parent
    for path in root.glob("*.py"):
        assert "sparsec.backends" not in path.read_text(), path.name


# -- refusals ------------------------------------------------------------------------------------


def test_refuses_a_runtime_input(tmp_path):
    with pytest.raises(CompileError, match="A is a runtime input; the partition is made at "
                       "compile time from A's nonzeros, so A must be a `param`"):
        compile_tiled(tmp_path, block_matrix(), role="in")


def test_refuses_transposes(tmp_path):
    with pytest.raises(CompileError, match="HotTiles runs C = A . B; transpose_a / transpose_b"):
        compile_tiled(tmp_path, block_matrix(), flags=", transpose_a=true")


def test_refuses_a_quantized_matrix(tmp_path):
    with pytest.raises(CompileError, match="A has the encoding 8-bit .* quantized; HotTiles tiles "
                       "a plain"):
        compile_tiled(tmp_path, block_matrix(), extra="quantize{bits=8 operand=a},")


def test_refuses_too_many_tiles(tmp_path, monkeypatch):
    monkeypatch.setattr(tile_hot_cold, "MAX_TILES", 4)
    with pytest.raises(CompileError, match="13 non-empty 64x64 tiles exceed 4"):
        compile_tiled(tmp_path, block_matrix())


@pytest.mark.parametrize("pipeline,message", [
    ('tile-hot-cold{options="policy=greedy"}', "option policy must be one of hottiles, "
                                               "hotonly, coldonly, best, iunaware, got 'greedy'"),
    ('tile-hot-cold{options="hot_workers=0 cold_workers=0"}',
     "option hot_workers/cold_workers must give at least one"),
    ('tile-hot-cold{options="hot_overlap=a-x"}', "option hot_overlap names tasks"),
    ("tile-hot-cold{hardware=nosuch}", "unknown hardware model 'nosuch' \\(known: .*hottiles"),
])
def test_bad_options_name_the_mistake(tmp_path, pipeline, message):
    np.save(tmp_path / "a.npy", block_matrix())
    with pytest.raises(CompileError, match=message):
        compile_text(spec_text(tmp_path / "a.npy"), CompileOptions(pipeline=pipeline, lower=False),
                     str(tmp_path / "k.sk"))


def test_needs_the_programs_data():
    from xdsl.utils.exceptions import PassFailedException

    from sparsec.compiler.driver import make_context

    compiled = compile_text("kernel k {\n  param A: f32[8, 8] = random(seed=1, density=0.5)\n"
                            "  in B: f32[8, 4] = random(seed=2)\n  C = matmul(A, B)\n  out C\n}\n",
                            CompileOptions(lower=False))
    with pytest.raises(PassFailedException, match="tile-hot-cold: sparsec.matmul operand A: this "
                       "pass needs the program's data: run it through `sparsec compile`"):
        tile_hot_cold.TileHotColdPass().apply(make_context(), compiled.module)
