"""`systolic.folds` (one grid instruction for a large GEMM's folds) against the unrolled
`systolic.fold` sequence it stands for: same outputs, cycles, bytes and energy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import gemm_text, run_text
from sparsec.backends.systolic import lowering
from sparsec.compiler.driver import CompileOptions, compile_text

HEADS = """kernel h {
  in Q: f32[3, 9, 8] = random(seed=1)
  in K: f32[3, 11, 8] = random(seed=2)
  in V: f32[3, 11, 5] = random(seed=3)
  O = attention(Q, K, V, scale=0.35)
  out O
}
"""


def _run(text: str, target: str, unroll: int, monkeypatch) -> tuple[list, object, str]:
    monkeypatch.setattr(lowering, "UNROLL_FOLDS", unroll)
    outputs, report = run_text(text, target)
    ir = str(compile_text(text, CompileOptions(target=target)).module)
    return outputs, report, ir


def _same(a, b) -> None:
    (out_a, rep_a, _), (out_b, rep_b, _) = a, b
    for x, y in zip(out_a, out_b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert (rep_a.cycles, rep_a.stall_cycles, rep_a.bytes, rep_a.macs) == \
        (rep_b.cycles, rep_b.stall_cycles, rep_b.bytes, rep_b.macs)
    assert rep_a.energy_pj == pytest.approx(rep_b.energy_pj, rel=1e-12)
    assert rep_a.details["compute_cycles"] == rep_b.details["compute_cycles"]


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 70),
       rows=st.integers(1, 9), cols=st.integers(1, 9),
       dataflow=st.sampled_from(["os", "ws", "is"]), mode=st.sampled_from(["calc", "user"]),
       dtype=st.sampled_from(["f32", "i8"]))
def test_grid_equals_unrolled_folds(m, n, k, rows, cols, dataflow, mode, dtype):
    """Any shape, array, dataflow and mode: the grid is the unrolled folds, exactly."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        target = f"systolic{{rows={rows} cols={cols} dataflow={dataflow} mode={mode}}}"
        text = gemm_text(m, n, k, dtype)
        unrolled = _run(text, target, 10**9, monkeypatch)
        grid = _run(text, target, 0, monkeypatch)
    assert "systolic.folds" in grid[2] and "systolic.folds" not in unrolled[2]
    assert "systolic.fold " in unrolled[2] or "systolic.fold\n" in unrolled[2]
    _same(unrolled, grid)


def test_grid_per_head_equals_unrolled(monkeypatch):
    target = "systolic{rows=4 cols=4}"
    _same(_run(HEADS, target, 10**9, monkeypatch), _run(HEADS, target, 0, monkeypatch))


def test_large_gemm_is_one_grid_instruction():
    ir = str(compile_text(gemm_text(512, 512, 512), CompileOptions(target="systolic")).module)
    assert ir.count("systolic.folds") == 1 and "systolic.fold " not in ir
    assert 'dataflow = "os"' in ir and "array_shape = array<i64: 32, 32>" in ir


def test_small_gemm_stays_unrolled():
    ir = str(compile_text(gemm_text(40, 50, 70), CompileOptions(target="systolic")).module)
    assert ir.count("systolic.fold ") == 4 and "systolic.folds" not in ir


def test_grid_ir_round_trips_through_the_parser(tmp_path):
    compiled = compile_text(gemm_text(512, 512, 512), CompileOptions(target="systolic"))
    from sparsec.compiler.driver import execute, load_program, write_program

    mlir, _ = write_program(compiled, str(tmp_path / "g.mlir"))
    module, store = load_program(mlir)
    assert execute(module, store).reports[0].check.ok


def test_grid_must_cover_the_whole_gemm():
    text = gemm_text(512, 512, 512)
    compiled = compile_text(text, CompileOptions(target="systolic"))
    grid = next(op for op in compiled.module.walk() if op.name == "systolic.folds")
    from xdsl.dialects.builtin import DenseArrayBase, StringAttr, i64
    from xdsl.utils.exceptions import VerifyException

    grid.properties["m"] = DenseArrayBase.from_list(i64, [32, 512])
    with pytest.raises(VerifyException, match="must start at 0"):
        grid.verify()
    grid.properties["m"] = DenseArrayBase.from_list(i64, [0, 512])
    grid.properties["dataflow"] = StringAttr("xs")
    with pytest.raises(VerifyException, match="dataflow must be one of os, ws, is"):
        grid.verify()
    grid.properties["dataflow"] = StringAttr("os")
    grid.properties["array_shape"] = DenseArrayBase.from_list(i64, [0, 32])
    with pytest.raises(VerifyException, match="array_shape must be"):
        grid.verify()
