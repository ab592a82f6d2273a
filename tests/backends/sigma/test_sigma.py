"""SIGMA backend: numpy-exact outputs, hand-checked cycles, STONNE fidelity, options."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.exceptions import PassFailedException

from conftest import gemm_text, run_text
from sparsec.backends.common.spec import SpecError, parse_target_string
from sparsec.backends.sigma import stonne, timing
from sparsec.backends.sigma.lowering import LowerSigmaPass
from sparsec.backends.sigma.spec import SigmaSpec
from sparsec.compiler.driver import CompileOptions, compile_text, execute

REPO = Path(__file__).resolve().parents[3]
DEV_CSV = REPO / "tests" / "data" / "reference" / "stonne_sigma_dev.csv"
EXTRA_CSV = REPO / "tests" / "data" / "stonne_sigma_extra.csv"
SMALL = "multipliers=64 dn_bw=16 rn_bw=8"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _dev_rows() -> list[dict[str, str]]:
    return _rows(DEV_CSV)


def stonne_model_cycles(m: int, n: int, k: int, zero_pct: int, multipliers: int, dn_bw: int,
                        rn_bw: int, dataflow: str = "MK_STA_KN_STR") -> int:
    """sparsec's cycles for STONNE's own operands of `stonne -SparseGEMM` (same rand())."""
    mk, kn = stonne.sparse_gemm_operands(m, n, k, zero_pct)
    spec = SigmaSpec(multipliers=multipliers, dn_bw=dn_bw, rn_bw=rn_bw)
    a_stationary = dataflow == "MK_STA_KN_STR"
    nonzero = mk != 0 if a_stationary else (kn != 0).T
    bits = timing.stationary_bits(nonzero, spec.min_cluster)
    costs = timing.gemm_costs(bits, n if a_stationary else m, spec)
    return sum(cost.cycles for cost in costs)


def compile_and_run(text: str, target: str, pipeline: str = ""):
    """Outputs, report and the operands A, B the kernel ran on."""
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target))
    a, b = compiled.store.get("g.A"), compiled.store.get("g.B")
    result = execute(compiled.module, compiled.store)
    return result.outputs["g"][0], result.reports[0], a, b


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize("stationary", ["a", "b", "auto"])
@pytest.mark.parametrize("m,n,k,density", [(37, 29, 53, 0.3), (1, 7, 5, 1.0), (13, 1, 300, 0.1),
                                           (64, 64, 64, 1.0), (9, 31, 700, 0.9)])
def test_output_equals_numpy(stationary: str, m: int, n: int, k: int, density: float):
    out, report, a, b = compile_and_run(gemm_text(m, n, k, density=density),
                                        f"sigma{{stationary={stationary} {SMALL}}}")
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-4)
    assert report.check.ok
    assert report.macs["effectual"] == int(((a != 0).astype(int) @ (b != 0).astype(int)).sum())


@pytest.mark.parametrize("transpose_a,transpose_b", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("stationary", ["a", "b"])
def test_transposed_operands(transpose_a: bool, transpose_b: bool, stationary: str):
    text = gemm_text(21, 17, 40, density=0.4, transpose_a=transpose_a, transpose_b=transpose_b)
    out, report, a, b = compile_and_run(text, f"sigma{{stationary={stationary} {SMALL}}}")
    np.testing.assert_allclose(out, (a.T if transpose_a else a) @ (b.T if transpose_b else b),
                               rtol=1e-5, atol=1e-4)
    assert report.check.ok


@pytest.mark.parametrize("dtype", ["i8", "f16", "bf16"])
def test_other_element_types(dtype: str):
    _, report = run_text(gemm_text(19, 11, 90, dtype, density=0.5),
                         f"sigma{{stationary=b {SMALL} flex_dpe=16}}")
    assert report.check.ok, report.check


def test_bitmap_pipeline_and_folds_on_a_tiny_array():
    """Rows of 300 on 8 multipliers fold 40+ times; the partial sums still add up."""
    out, report, a, b = compile_and_run(gemm_text(3, 5, 300), "sigma{multipliers=8 dn_bw=8 "
                                        "rn_bw=8 stationary=a}", "sparsify{format=bitmap}")
    np.testing.assert_allclose(out, a @ b, rtol=1e-5, atol=1e-3)
    # 300 ones per row: 8, then 7 per folded iteration -> 1 + ceil(292 / 7) = 43 per row
    assert report.details["iterations"] == 3 * 43
    assert report.details["folded_iterations"] == 3 * 42


def test_auto_picks_the_faster_stationary_operand():
    text = gemm_text(48, 40, 64, density=0.1)  # A dense, B 90% zeros
    _, auto = run_text(text, f"sigma{{stationary=auto {SMALL}}}")
    _, on_a = run_text(text, f"sigma{{stationary=a {SMALL}}}")
    _, on_b = run_text(text, f"sigma{{stationary=b {SMALL}}}")
    assert auto.cycles == min(on_a.cycles, on_b.cycles) == on_b.cycles < on_a.cycles


# -- hand-checked cycles ---------------------------------------------------------------
# C = A (2x4, all nonzero) . B (4x3) on 8 multipliers, A stationary, min_cluster 1: one
# iteration, VN0 on multipliers 0-3, VN1 on 4-7. Cycle c0 = 1 configures, c0+1 sends the
# weights; a package leaves port p at c0 + w_p + (t-1) d_p + rank (w_p weights, d_p
# packages per streamed vector, rank of its column in the port); each FAN level adds 1;
# the collection bus adds 1 and the write FIFO (pops ceil(size/2) a cycle) stores it a
# cycle later. STONNE (`-M=2 -N=3 -K=4 -MK_sparsity=0`, no zero drawn) gives the same.


def _hand_cycles(dn_bw: int, rn_bw: int) -> int:
    spec = SigmaSpec(multipliers=8, dn_bw=dn_bw, rn_bw=rn_bw, min_cluster=1)
    return timing.iteration_cost(np.ones((2, 4), dtype=bool), False, 3, spec).cycles


def test_hand_checked_full_bandwidth():
    # dn_bw 8: one multiplier per port, w = d = rank = 1: vector t leaves at c0+t+1, t=3
    # at c0+4 and is multiplied there; leaves (level 2) c0+5, level 1 (one node per VN)
    # c0+6; bus c0+7; stored c0+8 (VN0 and VN1 on lines 3 and 4). The FIFO holds 1 after
    # each pair of arrivals: c0+8 pops 2 of 3, c0+9 pops the last -> 9 + 1 = 10 cycles.
    assert _hand_cycles(8, 8) == 10
    _, report = run_text("kernel g {\n in A: f32[2, 4] = random(seed=1)\n"
                         " param B: f32[4, 3] = random(seed=2)\n C = matmul(A, B)\n out C\n}\n",
                         "sigma{multipliers=8 dn_bw=8 rn_bw=8 min_cluster=1 stationary=a}")
    assert report.cycles == 10


def test_hand_checked_distribution_bound():
    # dn_bw 2: 4 multipliers per port, w = 4, d = 4 columns: the last package (t=3,
    # rank 4) leaves at c0 + 4 + 2*4 + 4 = c0+16, crosses the Benes subtree (+1): c0+17;
    # two FAN levels: c0+19; bus c0+20; stored c0+21 with its twin; pops 1 then 1:
    # drained at c0+22 -> 23 cycles.
    assert _hand_cycles(2, 2) == 23


def test_hand_checked_collection_bus_bound():
    # rn_bw 1: both VNs share the one bus line: first outputs leave the FAN at c0+4, the
    # line then sends 2 VNs x 3 vectors one per cycle: last at c0+4+6 = c0+10, stored
    # c0+11, alone in the FIFO -> 12 cycles (full DN bandwidth).
    assert _hand_cycles(8, 1) == 12


def test_hand_checked_cases_are_what_stonne_measured():
    rows = [r for r in _rows(EXTRA_CSV) if r["M"] == "2"]
    measured = {(int(r["dn_bw"]), int(r["rn_bw"])): int(r["stonne_cycles"]) for r in rows}
    assert measured == {(8, 8): 10, (2, 2): 23, (8, 1): 12, (1, 1): 27}
    assert all(_hand_cycles(dn, rn) == cycles for (dn, rn), cycles in measured.items())


# -- fidelity against STONNE -------------------------------------------------------------


def test_stonne_operands_replay_glibc_rand():
    assert glibc_head() == [1804289383, 846930886, 1681692777, 1714636915]
    mk, _ = stonne.sparse_gemm_operands(64, 64, 64, 0)
    assert int((mk == 0).sum()) == 44  # STONNE's own MK for this command has 44 zeros


def glibc_head() -> list[int]:
    return [int(v) for v in stonne.glibc_rand(4)]


@pytest.mark.parametrize("row", range(13))
def test_dev_case_within_ten_percent(row: int):
    case = _dev_rows()[row]
    m, n, k = int(case["M"]), int(case["N"]), int(case["K"])
    bw = int(case["dn_bw_rn_bw"])
    ours = stonne_model_cycles(m, n, k, int(case["mk_zero_pct"]), int(case["num_ms"]), bw, bw)
    reference = int(case["cycles"])
    assert abs(ours - reference) <= 0.10 * reference, (case, ours)


def test_extra_stonne_cases_within_ten_percent():
    rows = [r for r in _rows(EXTRA_CSV) if r["M"] != "2"]
    assert len(rows) >= 10
    errors = []
    for r in rows:
        ours = stonne_model_cycles(int(r["M"]), int(r["N"]), int(r["K"]), int(r["mk_zero_pct"]),
                                   int(r["num_ms"]), int(r["dn_bw"]), int(r["rn_bw"]),
                                   r["dataflow"])
        errors.append(abs(ours - int(r["stonne_cycles"])) / int(r["stonne_cycles"]))
        assert errors[-1] <= 0.10, (r, ours)
    assert sum(errors) / len(errors) < 0.01


# -- options ------------------------------------------------------------------------------


@pytest.mark.parametrize("target,message", [
    ("sigma{multipliers=1000}", "multipliers must be a power of two"),
    ("sigma{multipliers=64}", "dn_bw must be a power of two <= multipliers (64)"),
    ("sigma{rn_bw=3}", "rn_bw must be a power of two"),
    ("sigma{stationary=c}", "stationary must be one of a, b, auto"),
    ("sigma{flex_dpe=100}", "flex_dpe must be 0 (one FAN) or a power of two"),
    ("sigma{min_cluster=0}", "min_cluster must be >= 1"),
    ("sigma{lanes=4}", "unknown option 'lanes'"),
    ("sigma{preset=tpu}", "unknown preset 'tpu'"),
    ("sigma{multipliers=yes}", "option multipliers must be int"),
])
def test_option_validation(target: str, message: str):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SigmaSpec.from_spec(parse_target_string(target))


def test_presets():
    paper = SigmaSpec.from_spec(parse_target_string("sigma{preset=paper}"))
    assert (paper.multipliers, paper.flex_dpe, paper.dpe_size) == (16384, 128, 128)
    assert SigmaSpec.from_spec(parse_target_string("sigma{preset=stonne}")).multipliers == 1024
    tuned = SigmaSpec.from_spec(parse_target_string("sigma{preset=paper rn_bw=128}"))
    assert (tuned.multipliers, tuned.rn_bw) == (16384, 128)


def test_lowering_without_data_says_what_to_do():
    from sparsec.compiler.builder import build_module
    from sparsec.compiler.spec import parse_spec
    from sparsec.tensors.datastore import DataStore

    module: ModuleOp = build_module(parse_spec(gemm_text(4, 4, 4), "<t>"), DataStore())
    with pytest.raises(PassFailedException, match="needs the program's data"):
        LowerSigmaPass().apply(Context(), module)


def test_report_fields():
    _, report = run_text(gemm_text(40, 24, 96, density=0.2), f"sigma{{stationary=b {SMALL}}}")
    assert report.cycles == report.units["reduction"]["busy"] + report.details["iterations"]
    assert 0 < report.details["multiplier_utilization"] <= 1
    assert report.bytes["global_buffer"]["write"] == 4 * 40 * 24
    assert report.macs["executed"] >= report.macs["effectual"]
