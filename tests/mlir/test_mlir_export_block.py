"""Upstream-MLIR export of the elementwise and normalization block ops (linalg.generic
with arith and math): mlir-opt-22 accepts it, and mlir-runner-22 prints what sparsec's
reference computes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_tool
from sparsec.backends.common.backend import run_reference
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.compiler.mlir_export import MlirExportError, export_mlir, run_exported

CASES = {
    "add_broadcast_row": ("f32", "A: [4, 6]", "B: [6]", "add(A, B)"),
    "mul_broadcast_column": ("f32", "A: [4, 1]", "B: [4, 6]", "mul(A, B)"),
    "add_both_broadcast": ("f64", "A: [2, 1, 5]", "B: [3, 1]", "add(A, B)"),
    "exp": ("f32", "A: [3, 5]", None, "exp(A)"),
    "silu": ("f64", "A: [3, 5]", None, "silu(A)"),
    "gelu": ("f32", "A: [3, 5]", None, "gelu(A)"),
    "gelu_tanh": ("f32", "A: [2, 3, 5]", None, "gelu(A, approximate=tanh)"),
    "rmsnorm": ("f32", "A: [3, 40]", "B: [40]", "rmsnorm(A, B, eps=1e-5)"),
    "rmsnorm_rank3": ("f64", "A: [2, 3, 8]", "B: [8]", "rmsnorm(A, B, eps=1e-2)"),
}


def _spec(dtype: str, a: str, b: str | None, call: str) -> str:
    decls = [a] + ([b] if b else [])
    lines = [f"  in {d.split(':')[0]}: {dtype}{d.split(':')[1].strip()} = random(seed={i + 1})"
             for i, d in enumerate(decls)]
    return "kernel k {\n" + "\n".join(lines) + f"\n  Y = {call}\n  out Y\n}}\n"


@pytest.mark.parametrize("case", list(CASES))
def test_runner_prints_the_reference(case: str) -> None:
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = compile_text(_spec(*CASES[case]), CompileOptions(lower=False))
    text = export_mlir(compiled.module, compiled.store, inline_data=True)
    assert "linalg.generic" in text
    (got,) = run_exported(text)
    (want,) = run_reference(compiled.module, compiled.store)["k"]
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = float(np.max(np.abs(want)))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


def test_broadcast_reads_index_zero_of_size_one_dimensions() -> None:
    compiled = compile_text(_spec("f32", "A: [4, 1]", "B: [6]", "add(A, B)"),
                            CompileOptions(lower=False))
    text = export_mlir(compiled.module, compiled.store)
    assert ("indexing_maps = [affine_map<(d0, d1) -> (d0, 0)>, affine_map<(d0, d1) -> (d1)>, "
            "affine_map<(d0, d1) -> (d0, d1)>]") in text


@pytest.mark.parametrize("dtype,call,message", [
    ("f16", "silu(A)", "sparsec.silu exports for dense f32 and f64 tensors only"),
    ("f32", "rope(A, base=10000)", "sparsec.rope has no upstream-MLIR export"),
])
def test_ops_without_an_export_are_refused_by_name(dtype: str, call: str, message: str) -> None:
    compiled = compile_text(_spec(dtype, "A: [3, 4]", None, call), CompileOptions(lower=False))
    with pytest.raises(MlirExportError, match=message):
        export_mlir(compiled.module, compiled.store)
