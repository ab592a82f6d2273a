"""HotTiles backend: exact SpMM on the SuiteSparse matrices, hand-checked cycles and traffic,
the model's error, the baselines at equal area, options, refusals and saved programs."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from sparsec.backends.common.spec import SpecError
from sparsec.backends.hottiles import execution
from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.compiler.driver import (
    CompileError,
    CompileOptions,
    Target,
    compile_text,
    execute,
    load_program,
    write_program,
)
from sparsec.tensors.datastore import DataStoreError

SUITESPARSE = Path(__file__).parents[3] / "examples" / "data" / "suitesparse"
"""The SuiteSparse matrices the examples ship, gzip'd (`load` reads .mtx.gz)."""
LARGE = {"NotreDame_www"}
"""Matrices too large to execute in the tests (the benchmark runs them)."""


def matrices() -> list[str]:
    if not SUITESPARSE.is_dir():
        return []
    return sorted(p.name.removesuffix(".mtx.gz") for p in SUITESPARSE.glob("*.mtx.gz"))


def need_suitesparse() -> None:
    if not SUITESPARSE.is_dir():
        pytest.skip(f"SuiteSparse matrices not found at {SUITESPARSE}")


def mtx_shape(path: Path) -> tuple[int, int, int]:
    rows, cols, entries, *_ = scipy.io.mminfo(str(path))
    return rows, cols, entries


def spmm_text(path: Path | str, rows: int, cols: int, n: int = 16, dtype: str = "f32") -> str:
    return (f"kernel s {{\n  param A: {dtype}[{rows}, {cols}] = load(\"{path}\")\n"
            f"  in B: {dtype}[{cols}, {n}] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}}\n")


def run_text(text: str, target: str, *, execute_values: bool = True):
    """Compile for `target` with the passes it prepares (tile-hot-cold), run, return
    (outputs, report)."""
    compiled = compile_text(text, CompileOptions(target=target, target_passes=True,
                                                 compute_reference=execute_values))
    result = execute(compiled.module, compiled.store, execute_values=execute_values)
    (kernel,) = result.outputs
    return result.outputs[kernel], result.reports[0]


def run_npy(tmp_path: Path, a: np.ndarray, target: str, n: int = 8, dtype: str = "f32",
            pipeline: str = "", execute_values: bool = True):
    np.save(tmp_path / "a.npy", a)
    text = spmm_text("a.npy", *a.shape, n=n, dtype=dtype)
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target,
                                                 compute_reference=execute_values,
                                                 target_passes=True),
                            str(tmp_path / "k.sk"))
    result = execute(compiled.module, compiled.store, execute_values=execute_values)
    return result.outputs["s"][0], result.reports[0], compiled


# -- exact outputs on real matrices --------------------------------------------------------------


@pytest.mark.parametrize("name", [m for m in matrices() if m not in LARGE])
def test_every_small_suitesparse_matrix_is_exact(name):
    need_suitesparse()
    path = SUITESPARSE / f"{name}.mtx.gz"
    rows, cols, _ = mtx_shape(path)
    outputs, report = run_text(spmm_text(path, rows, cols), "hottiles{tile_cols=256}")
    assert report.check.ok and not report.check.skipped
    assert report.check.rel_err < 1e-5            # f32, a changed summation order
    matrix = scipy.io.mmread(str(path)).tocsr().astype(np.float32)
    matrix.eliminate_zeros()
    part = report.details["partition"]
    assert part["hot_tiles"] + part["cold_tiles"] == part["tiles"]
    assert part["hot_nnz"] + part["cold_nnz"] == matrix.nnz
    assert sum(w["nnz"] for w in report.details["workers"]) == matrix.nnz
    assert report.macs["effectual"] == matrix.nnz * 16     # B is dense (no zeros)


@pytest.mark.parametrize("policy", ["hottiles", "hotonly", "coldonly", "best", "iunaware"])
def test_every_policy_computes_the_same_product(policy):
    need_suitesparse()
    path = SUITESPARSE / "dwt_992.mtx.gz"
    rows, cols, _ = mtx_shape(path)
    _, report = run_text(spmm_text(path, rows, cols),
                         f"hottiles{{policy={policy} tile_rows=128 tile_cols=128}}")
    assert report.check.ok
    assert report.details["partition"]["policy"] == policy


def test_notredame_partitions_without_densifying(monkeypatch):
    """325729 x 325729, 930k nonzeros: cycles only (the benchmark executes it)."""
    need_suitesparse()
    path = SUITESPARSE / "NotreDame_www.mtx.gz"
    if not path.is_file():
        pytest.skip("NotreDame_www.mtx not found")
    for cls in (scipy.sparse.csr_matrix, scipy.sparse.coo_matrix):
        monkeypatch.setattr(cls, "toarray", lambda self, *a, **k: pytest.fail("densified"))
    _, report = run_text(spmm_text(path, 325729, 325729), "hottiles", execute_values=False)
    part = report.details["partition"]
    assert part["hot_nnz"] + part["cold_nnz"] == 929849
    assert report.cycles > 0 and report.check.skipped


def test_arrow_runs_without_densifying(monkeypatch):
    need_suitesparse()
    path = SUITESPARSE / "arrow.mtx.gz"
    rows, cols, _ = mtx_shape(path)
    for cls in (scipy.sparse.csr_matrix, scipy.sparse.coo_matrix):
        monkeypatch.setattr(cls, "toarray", lambda self, *a, **k: pytest.fail("densified"))
    _, report = run_text(spmm_text(path, rows, cols, dtype="f64"), "hottiles")
    assert report.check.ok and report.check.rel_err < 1e-12


def test_integer_products_are_exact(tmp_path):
    rng = np.random.default_rng(3)
    a = (rng.integers(-100, 100, (96, 80)) * (rng.random((96, 80)) < 0.2)).astype(np.int8)
    outputs, report, compiled = run_npy(tmp_path, a, "hottiles{tile_rows=32 tile_cols=32}",
                                        dtype="i8")
    b = compiled.store.get("s.B").astype(np.int64)
    assert np.array_equal(outputs, (a.astype(np.int64) @ b).astype(np.int32))
    assert report.check.rel_err == 0.0


# -- the execution model by hand ------------------------------------------------------------------

# The 4x4 tile of the hand-checked cases: nonzeros (0,0) (0,1) (2,1) (3,3) (CSR order):
# nnz 4, distinct rows 3, distinct columns 3; B is 4 x 8 f32 (K = 8): a row is 32 bytes.
TILE = np.zeros((4, 4), np.float32)
for r, c in [(0, 0), (0, 1), (2, 1), (3, 3)]:
    TILE[r, c] = 1.0 + r + c

# 32-byte lines, DRAM 16 GB/s at 0.8 GHz = 20 B/cycle, latency 40 ns = 32 cycles.
HAND = ("tile_rows=4 tile_cols=4 line_bytes=32 dram_gbps=16 dram_efficiency=1 "
        "dram_latency_ns=40")


def test_one_cold_tile_by_hand(tmp_path):
    # A: 4 nnz * 12 B = 48 -> 2 lines = 64; Din (no reuse, L1 off): 4 rows = 128; Dout
    # Inter-tile, on demand: the 3 rows the worker touches, read (96) and written (96).
    # 384 bytes through a port of 4 lines * 32 B / 32 cycles = 4 B/cycle: 96 cycles;
    # compute 4 nnz * ceil(8 / 4) = 8; DRAM ceil(384 / 20) = 20.
    _, report, _ = run_npy(tmp_path, TILE, f"hottiles{{{HAND} policy=coldonly cold_workers=1 "
                                           "cold_simd_lanes=4 cold_mlp=4 cold_l1_kb=0}")
    assert report.cycles == 96
    assert report.units["cold0"]["busy"] == 96 and report.units["dram"]["busy"] == 20
    assert report.bytes["dram"] == {"read": 288, "write": 96, "total": 384}
    assert report.check.ok


def test_l1_hits_save_din_rows(tmp_path):
    # Column 1 is used by (0,1) then (2,1), one access apart: with an L1 of 32 rows the
    # second use hits, so 3 Din rows are fetched instead of 4.
    _, report, _ = run_npy(tmp_path, TILE, f"hottiles{{{HAND} policy=coldonly cold_workers=1 "
                                           "cold_l1_kb=1}")
    traffic = report.details["traffic"]
    assert (traffic["l1_hits"], traffic["din_rows"]) == (1, 3)
    assert report.bytes["dram"]["read"] == 288 - 32


def test_one_hot_tile_by_hand(tmp_path):
    # Sextans streams the full 4-row width of Din (128) and the panel's 4 Dout rows (128
    # read, 128 written) + A 64 = 448 bytes; its port is capped at the DRAM's 20 B/cycle:
    # 23 cycles; compute 4 nnz * ceil(8 / 1) = 32 SIMD MACs at 1 per cycle: 32 cycles.
    _, report, _ = run_npy(tmp_path, TILE, f"hottiles{{{HAND} policy=hotonly hot_workers=1 "
                                           "hot_simd_per_cycle=1 hot_simd_lanes=1 hot_mlp=64}")
    assert report.cycles == 32
    assert report.bytes["dram"] == {"read": 320, "write": 128, "total": 448}
    assert report.details["performed_macs"] == 4 * 8
    assert report.macs == {"effectual": 4 * 8, "dense": 4 * 4 * 8}


def test_shared_dram_is_split_between_the_workers(tmp_path):
    # Two copies of the tile on the diagonal: two row panels, one per cold worker, 384
    # bytes each (as by hand above). With DRAM at 4.8 GB/s = 6 B/cycle, below the two
    # ports' 4 + 4, each stream gets half: 3 B/cycle, 128 cycles; both end at 128.
    a = np.zeros((8, 8), np.float32)
    a[:4, :4] = a[4:, 4:] = TILE
    hand = HAND.replace("dram_gbps=16", "dram_gbps=4.8")
    _, report, _ = run_npy(tmp_path, a, f"hottiles{{{hand} policy=coldonly cold_workers=2 "
                                        "cold_simd_lanes=4 cold_mlp=4 cold_l1_kb=0}")
    assert report.cycles == 128
    assert report.units["cold0"]["busy"] == report.units["cold1"]["busy"] == 128
    assert report.units["dram"]["busy"] == 128
    model = report.details["model"]
    assert model["span_error"] == pytest.approx((model["predicted_cycles"] - 128) / 128)


def test_fair_rates_fill_the_bandwidth_water_level():
    # caps 1 and 10 sharing 6: the capped stream takes 1, the other the remaining 5
    assert execution.fair_rates(np.array([1.0, 10.0]), 6.0).tolist() == [1.0, 5.0]
    assert execution.fair_rates(np.array([4.0, 4.0]), 20.0).tolist() == [4.0, 4.0]


def test_fluid_replay_by_hand():
    # worker 0: tiles 0 then 1 (60 and 30 bytes), worker 1: tile 2 (60 bytes, compute 50);
    # ports 10 B/cycle, DRAM 10: both stream at 5 until t = 12 (60 bytes each); tile 2
    # then computes until 50. Tile 1 streams alone at 10: 12 -> 15.
    begin, end = execution.fluid_replay({0: np.array([0, 1]), 1: np.array([2])},
                                        np.array([60.0, 30.0, 60.0]), np.array([0, 0, 50.0]),
                                        np.full(3, 10.0), 10.0, 0.0)
    assert begin.tolist() == [0, 12, 0]
    assert end.tolist() == pytest.approx([12, 15, 50])


def test_empty_matrix(tmp_path):
    outputs, report, _ = run_npy(tmp_path, np.zeros((8, 8), np.float32), "hottiles")
    assert report.cycles == 0 and report.details["partition"]["tiles"] == 0
    assert not outputs.any() and report.check.ok


# -- schedules, merge and the baselines -------------------------------------------------------------


def imh_matrix(seed: int = 0) -> np.ndarray:
    """Intra-matrix heterogeneity: a dense 64x64 block plus 400 nonzeros scattered."""
    rng = np.random.default_rng(seed)
    a = np.zeros((512, 512), np.float32)
    a[:64, :64] = rng.uniform(0.5, 1.5, (64, 64))
    a[rng.integers(64, 512, 400), rng.integers(0, 512, 400)] = 1.0
    return a


SMALL = "tile_rows=64 tile_cols=64 hot_workers=1 cold_workers=4"


def test_parallel_run_merges_the_private_outputs(tmp_path):
    a = imh_matrix()
    _, report, compiled = run_npy(tmp_path, a, f"hottiles{{{SMALL} heuristic=minbyte-par}}")
    assert report.details["partition"]["schedule"] == "parallel"
    kind = compiled.store.get("s.A#tile_kind")
    ids = compiled.store.get("s.A#tile_ids")
    hot_tiles = set(ids[kind == 1].tolist())
    rows, cols = np.nonzero(a)
    tile = (rows // 64) * 8 + cols // 64
    on_hot = np.isin(tile, list(hot_tiles))
    hot_rows, cold_rows = set(rows[on_hot]), set(rows[~on_hot])
    expected = (len(hot_rows) + len(cold_rows) + len(hot_rows | cold_rows)) * 64
    assert report.details["traffic"]["merge_bytes"] == expected
    assert "merger" in report.units


def test_serial_run_needs_no_merge_and_runs_cold_after_hot(tmp_path):
    _, serial, _ = run_npy(tmp_path, imh_matrix(), f"hottiles{{{SMALL} heuristic=minbyte-ser}}")
    assert serial.details["partition"]["schedule"] == "serial"
    assert serial.details["traffic"]["merge_bytes"] == 0 and "merger" not in serial.units
    hot_busy = serial.units["hot0"]["busy"]
    assert serial.cycles >= hot_busy + max(serial.units[f"cold{i}"]["busy"] for i in range(4))


def test_hottiles_beats_the_baselines_on_a_dense_block(tmp_path):
    a = imh_matrix()
    cycles = {}
    for policy in ("hottiles", "hotonly", "coldonly", "iunaware"):
        _, report, _ = run_npy(tmp_path, a, f"hottiles{{{SMALL} policy={policy}}}", n=32)
        assert report.check.ok
        cycles[policy] = report.cycles
    assert cycles["hottiles"] < min(cycles["hotonly"], cycles["coldonly"], cycles["iunaware"])


def test_best_runs_the_faster_homogeneous_partition(tmp_path):
    a = imh_matrix()
    _, best, _ = run_npy(tmp_path, a, f"hottiles{{{SMALL} policy=best}}", n=16)
    assert best.details["partition"]["workers"] in ([1, 0], [0, 4])


def test_report_details(tmp_path):
    _, report, _ = run_npy(tmp_path, imh_matrix(), f"hottiles{{{SMALL}}}", n=16)
    part = report.details["partition"]
    assert part["tile"] == [64, 64] and part["grid"] == [8, 8]
    assert part["heuristic"] in ("mintime-par", "mintime-ser", "minbyte-par", "minbyte-ser")
    workers = report.details["workers"]
    assert [w["unit"] for w in workers][:2] == ["hot0", "cold0"]
    assert sum(w["tiles"] for w in workers) == part["tiles"]
    for w in workers:
        assert w["busy"] == report.units[w["unit"]]["busy"]
        assert 0.0 <= w["utilization"] <= 1.0
    assert set(report.details["model"]) >= {"predicted_cycles", "span_error", "bytes_error"}
    assert report.energy_pj == pytest.approx(sum(report.details["energy_breakdown_pj"].values()))


def test_two_spmms_in_one_kernel(tmp_path):
    rng = np.random.default_rng(5)
    for name in ("a1", "a2"):
        np.save(tmp_path / f"{name}.npy", (rng.random((64, 64)) < 0.1).astype(np.float32))
    text = ("kernel s {\n  param A1: f32[64, 64] = load(\"a1.npy\")\n"
            "  param A2: f32[64, 64] = load(\"a2.npy\")\n  in B: f32[64, 8] = random(seed=1)\n"
            "  C1 = matmul(A1, B)\n  C2 = matmul(A2, C1)\n  out C2\n}\n")
    compiled = compile_text(text, CompileOptions(target="hottiles", target_passes=True), str(tmp_path / "k.sk"))
    result = execute(compiled.module, compiled.store)
    report = result.reports[0]
    assert report.check.ok
    first, second = report.details["spmms"]
    assert (first["operand"], second["operand"]) == ("A1", "A2")
    assert report.cycles == first["model"]["cycles"] + second["model"]["cycles"]


# -- presets, programs, options, refusals ----------------------------------------------------------


@pytest.mark.parametrize("preset,cold,hot_simd,spad_kb", [
    ("spade-sextans-1", 4, 5, 512), ("spade-sextans-2", 8, 10, 1024),
    ("spade-sextans-4", 16, 20, 2048), ("spade-sextans-8", 32, 40, 4096)])
def test_spade_sextans_presets_follow_table_four(preset, cold, hot_simd, spad_kb):
    spec = Target.parse(f"hottiles{{preset={preset}}}").spec
    assert (spec.cold_workers, spec.hot_workers, spec.hot_simd_per_cycle, spec.hot_spad_kb) == (
        cold, 1, hot_simd, spad_kb)
    assert (spec.clock_ghz, spec.dram_gbps, spec.cold_l1_kb) == (0.8, 205.0, 32)


def test_piuma_preset_runs_parallel_without_merge(tmp_path):
    _, report, _ = run_npy(tmp_path, imh_matrix(), "hottiles{preset=piuma tile_rows=64 "
                                                   "tile_cols=64}", dtype="f64", n=8)
    assert report.check.ok
    assert report.details["partition"]["schedule"] == "parallel"
    assert report.details["traffic"]["merge_bytes"] == 0


def test_saved_program_runs_the_same(tmp_path):
    np.save(tmp_path / "a.npy", imh_matrix())
    text = spmm_text("a.npy", 512, 512)
    compiled = compile_text(text, CompileOptions(target=f"hottiles{{{SMALL} policy=iunaware "
                                                        "seed=3}", target_passes=True),
                            str(tmp_path / "k.sk"))
    first = execute(compiled.module, compiled.store)
    mlir, _ = write_program(compiled, tmp_path / "prog.mlir")
    module, store = load_program(mlir)
    again = execute(module, store)
    assert again.reports[0].cycles == first.reports[0].cycles
    assert np.array_equal(again.outputs["s"][0], first.outputs["s"][0])
    assert again.reports[0].details["partition"]["policy"] == "iunaware"


def test_stale_partition_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", imh_matrix())
    compiled = compile_text(spmm_text("a.npy", 512, 512), CompileOptions(target="hottiles", target_passes=True),
                            str(tmp_path / "k.sk"))
    values = compiled.store.get("s.A").copy()
    values[500, 500] = 7.0
    compiled.store.put("s.A", values, "f32")
    with pytest.raises(DataStoreError, match="the partition of s.A does not match its nonzeros"):
        execute(compiled.module, compiled.store)


def test_partition_for_another_machine_is_refused(tmp_path):
    with pytest.raises(CompileError, match="operand A of sparsec.matmul is partitioned for 1 hot "
                       r"\+ 2 cold workers but the target \(hottiles\) has 1 hot \+ 16 cold"):
        run_npy(tmp_path, TILE, "hottiles",
                pipeline='tile-hot-cold{options="hot_workers=1 cold_workers=2"}')


def test_target_prepares_the_partition_with_its_options(tmp_path):
    assert HottilesSpec().prepare() == 'tile-hot-cold{hardware="hottiles" options=""}'
    spec = Target.parse("hottiles{policy=coldonly tile_rows=128}").spec
    assert spec.prepare() == ('tile-hot-cold{hardware="hottiles" options="policy=coldonly '
                              'tile_rows=128"}')
    _, report, _ = run_npy(tmp_path, imh_matrix(), "hottiles{policy=coldonly tile_rows=128 "
                                                   "tile_cols=128}")
    assert report.details["partition"]["tile"] == [128, 128]
    assert report.details["partition"]["workers"] == [0, 16]
    (effect,) = report.passes["A"]
    assert effect["pass"] == "tile-hot-cold{policy=coldonly}"


@pytest.mark.parametrize("target,message", [
    ("hottiles{policy=fastest}", "option policy must be one of"),
    ("hottiles{hot_workers=0 cold_workers=0}", "must give at least one worker"),
    ("hottiles{dram_gbps=0}", "option dram_gbps must be > 0"),
    ("hottiles{cold_simd_lanes=0}", "option cold_simd_lanes must be >= 1"),
    ("hottiles{policy=hotonly hot_workers=0}", "option hot_workers must be >= 1 for hotonly"),
    ("hottiles{hot_din_reuse=some}", "option hot_din_reuse must be one of inter, stream"),
    ("hottiles{heuristic=fast}", "option heuristic must be one of auto"),
    ("hottiles{preset=spade}", "unknown preset 'spade'"),
    ("hottiles{hot_workers=2.5}", "option hot_workers must be int"),
])
def test_option_validation(target, message):
    with pytest.raises(SpecError, match=message):
        Target.parse(target)


def test_refuses_attention():
    text = ("kernel a {\n  in Q: f32[16, 8] = random(seed=1)\n  in K: f32[16, 8] = random(seed=2)\n"
            "  in V: f32[16, 8] = random(seed=3)\n  O = attention(Q, K, V)\n  out O\n}\n")
    with pytest.raises(CompileError, match="hottiles cannot run sparsec.attention"):
        compile_text(text, CompileOptions(target="hottiles"))
