"""prune-nm: n:m invariants on the data, the IR it writes, and end-to-end runs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import gemm_text, run_text
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.sparsec import ParamOp
from sparsec.passes.prune_nm import is_nm, prune_nm_values


@settings(max_examples=80, deadline=None)
@given(data=st.data(), n=st.integers(1, 4), m=st.sampled_from([2, 4, 8]),
       axis=st.integers(0, 1))
def test_every_block_keeps_its_n_largest(data, n, m, axis):
    n = min(n, m)
    blocks = data.draw(st.integers(1, 6))
    other = data.draw(st.integers(1, 6))
    shape = (blocks * m, other) if axis == 0 else (other, blocks * m)
    values = data.draw(arrays(np.float32, shape,
                              elements=st.floats(-100, 100, width=32, allow_nan=False)))
    pruned = prune_nm_values(values, n, m, axis)
    assert is_nm(pruned, n, m, axis)
    kept = pruned != 0
    assert np.array_equal(pruned[kept], values[kept])          # kept values unchanged
    moved_v = np.moveaxis(values, axis, -1).reshape(-1, m)
    moved_p = np.moveaxis(pruned, axis, -1).reshape(-1, m)
    for block_v, block_p in zip(moved_v, moved_p, strict=True):
        dropped = np.abs(block_v[block_p == 0])
        survivors = np.abs(block_p[block_p != 0])
        if dropped.size and survivors.size:
            assert dropped.max() <= survivors.min()                # the largest survive
    assert np.array_equal(prune_nm_values(pruned, n, m, axis), pruned)   # idempotent


def test_ties_keep_the_earlier_element():
    values = np.array([[1.0, -1.0, 1.0, 1.0]], dtype=np.float32)
    assert prune_nm_values(values, 2, 4, 1).tolist() == [[1.0, -1.0, 0.0, 0.0]]


def test_pass_prunes_the_weight_along_k_and_records_its_effect():
    compiled = compile_text(gemm_text(16, 12, 32), CompileOptions(pipeline="prune-nm{n=2 m=4}",
                                                                  lower=False))
    w = compiled.store.get("g.B")
    assert is_nm(w, 2, 4, axis=0)                 # B is K x N: blocks run along dim 0
    param = next(op for op in compiled.module.walk() if isinstance(op, ParamOp))
    (effect,) = param.effect_list()
    assert effect["density"] == pytest.approx(0.5)
    assert 0.5 < effect["retained_energy"] < 1.0
    assert effect["rel_error"] == pytest.approx(np.sqrt(1 - effect["retained_energy"] ** 2))
    assert param.nnz.value.data == w.size // 2


def test_transposed_weight_is_pruned_along_its_k():
    compiled = compile_text(gemm_text(8, 12, 16, transpose_b=True),
                            CompileOptions(pipeline="prune-nm{n=2 m=4}", lower=False))
    assert is_nm(compiled.store.get("g.B"), 2, 4, axis=1)   # B stored N x K


def test_run_reports_retained_energy_and_error_vs_original():
    _, report = run_text(gemm_text(32, 32, 64), "systolic{rows=8 cols=8}",
                         pipeline="prune-nm{n=2 m=4}")
    assert report.check.ok and report.check.rel_err < 1e-6     # exact vs the pruned program
    assert report.error_vs_original["rel_err"] > 0.05          # lossy vs the dense original
    (effect,) = report.passes["B"]
    assert {"density", "retained_energy", "rel_error"} <= set(effect)


def test_data_pass_under_plain_xdsl_needs_the_store():
    from xdsl.context import Context

    from sparsec.passes.prune_nm import PruneNmPass
    from sparsec.tensors.datastore import DataStoreError

    compiled = compile_text(gemm_text(4, 4, 8), CompileOptions(lower=False))
    with pytest.raises(DataStoreError, match="sparsec compile"):
        PruneNmPass().apply(Context(), compiled.module)


def test_bad_options_name_the_rule():
    with pytest.raises(CompileError, match="K=6 is not a multiple of m=4"):
        compile_text(gemm_text(4, 4, 6), CompileOptions(pipeline="prune-nm", lower=False))
