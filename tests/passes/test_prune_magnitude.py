"""prune-magnitude: exact sparsity, threshold form, invariants and IR effects."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import gemm_text, run_text
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.sparsec import InputOp, ParamOp
from sparsec.passes.prune_magnitude import prune_below, prune_to_sparsity


@settings(max_examples=60, deadline=None)
@given(values=arrays(np.float32, st.tuples(st.integers(1, 20), st.integers(1, 20)),
                     elements=st.floats(-10, 10, width=32)),
       sparsity=st.floats(0, 1))
def test_sparsity_target_is_met_and_the_largest_survive(values, sparsity):
    pruned = prune_to_sparsity(values, sparsity)
    dropped_positions = np.argsort(np.abs(values), axis=None, kind="stable")[
        :round(sparsity * values.size)]
    assert np.count_nonzero(pruned.reshape(-1)[dropped_positions]) == 0
    kept = pruned != 0
    assert np.array_equal(pruned[kept], values[kept])
    if kept.any() and (~kept).any():
        assert np.abs(values[~kept]).max() <= np.abs(values[kept]).min()


def test_threshold_form():
    values = np.array([[0.01, -0.2, 0.05], [-0.049, 1.0, 0.0]], dtype=np.float32)
    expected = np.array([[0.0, -0.2, 0.05], [0.0, 1.0, 0.0]], dtype=np.float32)
    np.testing.assert_array_equal(prune_below(values, 0.05), expected)


@pytest.mark.parametrize("pipeline,density", [("prune-magnitude{sparsity=0.9}", 0.1),
                                              ("prune-magnitude{sparsity=0.75}", 0.25)])
def test_pass_sets_density_and_runs(pipeline, density):
    compiled = compile_text(gemm_text(20, 30, 40), CompileOptions(pipeline=pipeline, lower=False))
    param = next(op for op in compiled.module.walk() if isinstance(op, ParamOp))
    assert param.density.value.data == pytest.approx(density, abs=1e-3)
    assert np.count_nonzero(compiled.store.get("g.B")) == round(density * 1200)
    _, report = run_text(gemm_text(20, 30, 40), "systolic{rows=8 cols=8}", pipeline=pipeline)
    assert report.check.ok
    assert report.macs["effectual"] < report.macs["dense"]


def test_input_operand_is_noted_not_pruned():
    compiled = compile_text(gemm_text(8, 8, 8),
                            CompileOptions(pipeline="prune-magnitude{operand=a}", lower=False))
    inp = next(op for op in compiled.module.walk() if isinstance(op, InputOp))
    assert inp.effect_list()[0]["note"] == "runtime input: not pruned"


def test_bad_sparsity_is_refused():
    with pytest.raises(CompileError, match=r"sparsity must lie in \[0, 1\], got 1.5"):
        compile_text(gemm_text(4, 4, 4), CompileOptions(pipeline="prune-magnitude{sparsity=1.5}",
                                                        lower=False))
