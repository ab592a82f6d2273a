"""Matrix Market at scale: loaded sparse (memory ~ nnz), run and checked without densifying."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from conftest import run_text
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.tensors.datastore import is_sparse

SUITESPARSE = Path(__file__).parents[2] / "examples" / "data" / "suitesparse"


def _spec(path: Path, rows: int, cols: int, n: int, dtype: str = "f32") -> str:
    return (f'kernel spmm {{\n  param A: {dtype}[{rows}, {cols}] = load("{path}")\n'
            f"  in B: {dtype}[{cols}, {n}] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}}\n")


def test_mtx_stays_sparse_and_the_product_equals_scipy():
    path = SUITESPARSE / "west0067.mtx.gz"
    if not path.is_file():
        pytest.skip("shared SuiteSparse data not present")
    compiled = compile_text(_spec(path, 67, 67, 8), CompileOptions(lower=False))
    a = compiled.store.get("spmm.A")
    assert is_sparse(a) and a.nnz == 294
    (out,), report = run_text(_spec(path, 67, 67, 8), "systolic{rows=8 cols=8}")
    expected = scipy.io.mmread(str(path)).tocsr() @ compiled.store.get("spmm.B")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert report.check.ok
    assert report.macs["effectual"] == 294 * 8
