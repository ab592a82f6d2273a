"""HotTiles backend: exact SpMM on the SuiteSparse matrices, hand-checked cycles and traffic,
the model's error, the baselines at equal area, options, refusals and saved programs."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from conftest import run_text
from sparsec.backends.common.spec import SpecError
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


def run_npy(tmp_path: Path, a: np.ndarray, target: str, n: int = 8, dtype: str = "f32",
            pipeline: str = "", execute_values: bool = True):
    np.save(tmp_path / "a.npy", a)
    text = spmm_text("a.npy", *a.shape, n=n, dtype=dtype)
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target,
                                                 compute_reference=execute_values),
                            str(tmp_path / "k.sk"))
    result = execute(compiled.module, compiled.store, execute_values=execute_values)
    return result.outputs["s"][0], result.reports[0], compiled


# -- exact outputs on real matrices --------------------------------------------------------------


@pytest.mark.parametrize("name", [m for m in matrices() if m not in LARGE])
def test_every_small_suitesparse_matrix_is_exact(name):
    need_suitesparse()
    path = SUITESPARSE / f"{name}.mtx.gz"
    rows, cols, _ = mtx_shape(path)
    outputs, report = run_text(spmm_text(path, rows, cols), "hottiles")
    assert report.check.ok and not report.check.skipped
    assert report.check.rel_err < 1e-5            # f32, a changed summation order
    matrix = scipy.io.mmread(str(path)).tocsr().astype(np.float32)
    matrix.eliminate_zeros()
    part = report.details["partition"]
    assert part["hot_tiles"] + part["cold_tiles"] == part["tiles"]
    assert part["hot_nnz"] + part["cold_nnz"] == matrix.nnz
    assert sum(w["nnz"] for w in report.details["workers"]) == matrix.nnz
    assert report.macs["effectual"] == matrix.nnz * 16     # B is dense (no zeros)


@pytest.mark.parametrize("policy", ["hottiles", "hotonly", "coldonly", "best", "random",
                                    "roundrobin"])
def test_every_policy_computes_the_same_product(policy):
    need_suitesparse()
    path = SUITESPARSE / "dwt_992.mtx.gz"
    rows, cols, _ = mtx_shape(path)
    _, report = run_text(spmm_text(path, rows, cols), f"hottiles{{policy={policy}}}")
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
    assert part["tiles"] <= HottilesSpec().max_tiles
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


# -- cycles and traffic by hand ------------------------------------------------------------------

# The 4x4 tile of the hand-checked cases: nonzeros (0,0) (0,1) (2,1) (3,3): nnz 4, rows 3,
# columns 3; B is 4 x 8 f32 (N = 8), indices 4 bytes.
TILE = np.zeros((4, 4), np.float32)
for r, c in [(0, 0), (0, 1), (2, 1), (3, 3)]:
    TILE[r, c] = 1.0 + r + c


def test_one_cold_tile_by_hand(tmp_path):
    # A = 4 * (4 + 4) + 5 * 4 = 52, out = 2 * 3 * 8 * 4 = 192, B = 3 rows * 32 = 96: 340 bytes.
    # Cold compute = 4 * ceil(8 / 4) + 3 * 1 = 11; port 16 B/cycle: ceil(340 / 16) = 22.
    # DRAM (1024 B/cycle) serves it in 1 cycle from t = 0; the worker streams for 22.
    _, report, _ = run_npy(tmp_path, TILE, "hottiles{hot_workers=0 cold_workers=1 cold_lanes=4 "
                                           "tile_rows=4 tile_cols=4}")
    assert report.cycles == 22
    assert report.units["cold0"]["busy"] == 22 and report.units["dram"]["busy"] == 1
    # Writes: the 3 partial output rows, 3 * 8 * 4 = 96; reads: the rest, 340 - 96 = 244.
    assert report.bytes["dram"] == {"read": 244, "write": 96, "total": 340}
    assert report.check.ok


def test_one_hot_tile_by_hand(tmp_path):
    # 2x2 array: chunks of 2 columns: {0, 1} and {3} -> 2 chunks, B rows 2 + 2 = 4.
    # Hot compute = 2 chunks * ceil(8 / 2) * (3 rows + 2*2 + 2 - 2) = 2 * 4 * 7 = 56.
    # Bytes 52 + 192 + 4 * 32 = 372: ceil(372 / 64) = 6 < 56 through the hot port.
    _, report, _ = run_npy(tmp_path, TILE, "hottiles{hot_workers=1 cold_workers=0 hot_rows=2 "
                                           "hot_cols=2 tile_rows=4 tile_cols=4}")
    assert report.cycles == 56
    assert report.details["performed_macs"] == 3 * 4 * 8      # rows x B rows x N
    assert report.macs == {"effectual": 4 * 8, "dense": 4 * 4 * 8}


def test_shared_dram_delays_the_second_worker(tmp_path):
    # Two identical 4x4 tiles side by side, one per cold worker, DRAM at 20 B/cycle:
    # each tile is 340 bytes: 17 cycles of DRAM, 22 cycles of work (port 16 B/cycle).
    # Worker 0: DRAM 0-17, works 0-22. Worker 1: DRAM 17-34, works 17-39. Span 39.
    # The model's bytes are 314.5 a tile (test_model_error_per_tile_by_hand): it predicted
    # max(20 per worker, ceil(629 / 20) = 32) = 32, an error of (32 - 39) / 39.
    a = np.hstack([TILE, TILE])
    _, report, _ = run_npy(tmp_path, a, "hottiles{hot_workers=0 cold_workers=2 cold_lanes=4 "
                                        "tile_rows=4 tile_cols=4 dram_bytes_per_cycle=20}")
    assert report.cycles == 39
    assert report.units["dram"]["busy"] == 34
    assert report.units["cold1"]["waiting"] == 17
    model_figures = report.details["model"]
    assert model_figures["predicted_cycles"] == 32
    assert model_figures["span_error"] == pytest.approx(-7 / 39)


def test_model_error_per_tile_by_hand(tmp_path):
    # The model knows only nnz = 4 of the 4x4 tile: E[rows] = E[cols] = 4 (1 - (3/4)^4)
    # = 2.734375. Bytes 52 + 2 * 2.734375 * 32 + 2.734375 * 32 = 314.5: ceil(314.5 / 16) = 20
    # cycles (compute 8 + 2.73 < 20). Exact: 22 (above). Error |20 - 22| / 22 = 1 / 11.
    _, report, _ = run_npy(tmp_path, TILE, "hottiles{hot_workers=0 cold_workers=1 cold_lanes=4 "
                                           "tile_rows=4 tile_cols=4}")
    figures = report.details["model"]
    assert figures["tile_error_mean"] == pytest.approx(1 / 11)
    assert figures["cold_tile_error_weighted"] == pytest.approx(1 / 11)
    assert figures["bytes_error_weighted"] == pytest.approx((340 - 314.5) / 340)


def test_empty_matrix(tmp_path):
    outputs, report, _ = run_npy(tmp_path, np.zeros((8, 8), np.float32), "hottiles")
    assert report.cycles == 0 and report.details["partition"]["tiles"] == 0
    assert not outputs.any() and report.check.ok


# -- the heuristic and the baselines ---------------------------------------------------------------


def imh_matrix(seed: int = 0) -> np.ndarray:
    """Intra-matrix heterogeneity: a dense 64x64 block plus 400 nonzeros scattered."""
    rng = np.random.default_rng(seed)
    a = np.zeros((512, 512), np.float32)
    a[:64, :64] = rng.uniform(0.5, 1.5, (64, 64))
    a[rng.integers(64, 512, 400), rng.integers(0, 512, 400)] = 1.0
    return a


def test_hottiles_beats_every_baseline_on_a_dense_block(tmp_path):
    a = imh_matrix()
    cycles = {}
    for policy in ("hottiles", "hotonly", "coldonly", "random", "roundrobin"):
        _, report, _ = run_npy(tmp_path, a, f"hottiles{{policy={policy}}}", n=16)
        assert report.check.ok
        cycles[policy] = report.cycles
        units = {u for u, s in report.units.items() if u != "dram"}
        if policy == "hotonly":
            assert units == {f"hot{i}" for i in range(8)}      # budget 32 / hot area 4
        if policy == "coldonly":
            assert units == {f"cold{i}" for i in range(32)}
    # The block's tile alone keeps a cold worker busy 4096 * 2 + 64 = 8256 cycles; a hot
    # worker does it in 4 chunks * (64 + 46) = 440. The 56 scattered tiles cost a hot
    # worker 46+ cycles of fill per chunk, more than the ~100 a cold worker streams them in.
    assert cycles["hottiles"] < min(v for k, v in cycles.items() if k != "hottiles")
    assert cycles["coldonly"] >= 8256 > 4 * cycles["hottiles"]


def test_best_runs_the_faster_homogeneous_machine(tmp_path):
    a = imh_matrix()
    _, best, _ = run_npy(tmp_path, a, "hottiles{policy=best}", n=16)
    _, hot, _ = run_npy(tmp_path, a, "hottiles{policy=hotonly}", n=16)
    _, cold, _ = run_npy(tmp_path, a, "hottiles{policy=coldonly}", n=16)
    assert best.details["partition"]["workers"] in ([8, 0], [0, 32])
    assert best.cycles == (hot if best.details["partition"]["workers"] == [8, 0] else cold).cycles


def test_report_details(tmp_path):
    _, report, _ = run_npy(tmp_path, imh_matrix(), "hottiles", n=16)
    part = report.details["partition"]
    assert part["area"] == part["area_budget"] == 2 * 4.0 + 24 * 1.0
    assert part["tile"] == [64, 64] and part["grid"] == [8, 8]
    workers = report.details["workers"]
    assert [w["unit"] for w in workers][:3] == ["hot0", "hot1", "cold0"]
    assert sum(w["tiles"] for w in workers) == part["tiles"]
    assert sum(w["dram_bytes"] for w in workers) == pytest.approx(
        report.bytes["dram"]["total"], abs=len(workers))
    for w in workers:
        assert w["busy"] == report.units[w["unit"]]["busy"]
        assert 0.0 <= w["utilization"] <= 1.0
    assert set(report.details["model"]) >= {"predicted_cycles", "span_error",
                                            "tile_error_mean", "tile_error_weighted"}
    assert report.energy_pj == pytest.approx(sum(report.details["energy_breakdown_pj"].values()))


def test_two_spmms_in_one_kernel(tmp_path):
    rng = np.random.default_rng(5)
    for name in ("a1", "a2"):
        np.save(tmp_path / f"{name}.npy", (rng.random((64, 64)) < 0.1).astype(np.float32))
    text = ("kernel s {\n  param A1: f32[64, 64] = load(\"a1.npy\")\n"
            "  param A2: f32[64, 64] = load(\"a2.npy\")\n  in B: f32[64, 8] = random(seed=1)\n"
            "  C1 = matmul(A1, B)\n  C2 = matmul(A2, C1)\n  out C2\n}\n")
    compiled = compile_text(text, CompileOptions(target="hottiles"), str(tmp_path / "k.sk"))
    result = execute(compiled.module, compiled.store)
    report = result.reports[0]
    assert report.check.ok
    first, second = report.details["spmms"]
    assert (first["operand"], second["operand"]) == ("A1", "A2")
    assert report.cycles == first["model"]["cycles"] + second["model"]["cycles"]


# -- programs, options, refusals -------------------------------------------------------------------


def test_saved_program_runs_the_same(tmp_path):
    np.save(tmp_path / "a.npy", imh_matrix())
    text = spmm_text("a.npy", 512, 512)
    compiled = compile_text(text, CompileOptions(target="hottiles{policy=random seed=3}"),
                            str(tmp_path / "k.sk"))
    first = execute(compiled.module, compiled.store)
    mlir, _ = write_program(compiled, tmp_path / "prog.mlir")
    module, store = load_program(mlir)
    again = execute(module, store)
    assert again.reports[0].cycles == first.reports[0].cycles
    assert np.array_equal(again.outputs["s"][0], first.outputs["s"][0])
    assert again.reports[0].details["partition"]["policy"] == "random"


def test_stale_partition_is_refused(tmp_path):
    np.save(tmp_path / "a.npy", imh_matrix())
    compiled = compile_text(spmm_text("a.npy", 512, 512), CompileOptions(target="hottiles"),
                            str(tmp_path / "k.sk"))
    values = compiled.store.get("s.A").copy()
    values[500, 500] = 7.0
    compiled.store.put("s.A", values, "f32")
    with pytest.raises(DataStoreError, match="the partition of s.A does not match its nonzeros"):
        execute(compiled.module, compiled.store)


def test_partition_for_another_machine_is_refused(tmp_path):
    with pytest.raises(CompileError, match="operand A of sparsec.matmul is partitioned for 1 hot "
                       r"\+ 2 cold workers but the target \(hottiles\) has 2 hot \+ 24 cold"):
        run_npy(tmp_path, TILE, "hottiles", pipeline="tile-hot-cold{hot_workers=1 cold_workers=2}")


def test_target_tiles_with_its_own_options(tmp_path):
    _, report, compiled = run_npy(tmp_path, imh_matrix(), "hottiles{policy=coldonly tile_rows=128 "
                                                          "tile_cols=128}")
    assert report.details["partition"]["tile"] == [128, 128]
    assert report.details["partition"]["workers"] == [0, 32]
    (effect,) = report.passes["A"]
    assert effect["pass"] == "tile-hot-cold{policy=coldonly}"


def test_prepare_names_the_partition_pass():
    assert HottilesSpec().prepare() == "tile-hot-cold"
    assert Target.parse("hottiles{policy=coldonly}").spec.prepare() == \
        'tile-hot-cold{policy="coldonly"}'


@pytest.mark.parametrize("target,message", [
    ("hottiles{policy=fastest}", "option policy must be one of"),
    ("hottiles{hot_workers=0 cold_workers=0}", "must give at least one worker"),
    ("hottiles{cold_bytes_per_cycle=0}", "option cold_bytes_per_cycle must be > 0"),
    ("hottiles{cold_lanes=0}", "option cold_lanes must be >= 1"),
    ("hottiles{policy=hotonly hot_workers=0 hot_area=100}",
     "hotonly gets no worker from an area budget of 24"),
    ("hottiles{hot_workers=2.5}", "option hot_workers must be int"),
])
def test_option_validation(target, message):
    with pytest.raises(SpecError, match=message):
        Target.parse(target)


def test_equal_area_machines():
    spec = HottilesSpec()
    assert spec.area_budget == 32.0
    assert spec.workers("hottiles") == spec.workers("random") == (2, 24)
    assert spec.workers("hotonly") == (8, 0) and spec.workers("coldonly") == (0, 32)
    assert HottilesSpec(policy="best").allowed_workers() == {(8, 0), (0, 32)}


def test_refuses_attention():
    text = ("kernel a {\n  in Q: f32[16, 8] = random(seed=1)\n  in K: f32[16, 8] = random(seed=2)\n"
            "  in V: f32[16, 8] = random(seed=3)\n  O = attention(Q, K, V)\n  out O\n}\n")
    with pytest.raises(CompileError, match="hottiles cannot run sparsec.attention"):
        compile_text(text, CompileOptions(target="hottiles"))
