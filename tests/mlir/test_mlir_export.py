"""`--emit mlir`: exported kernels are accepted by mlir-opt-22 (plain and --sparsifier)
and, with inlined data, mlir-runner-22 prints what sparsec's systolic backend computes.

Tests that run the LLVM 22 tools skip without them (Debian: mlir-22-tools), unless
SPARSEC_REQUIRE_TOOLS=1. The text-level tests (determinism, number formatting, errors,
parsing the runner's output) need no tool.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from xdsl.dialects.builtin import FloatAttr, FunctionType, IntegerAttr, TensorType, f64, i64
from xdsl.ir import Attribute
from xdsl.rewriter import Rewriter

from conftest import gemm_text, require_tool
from sparsec.compiler.driver import Compiled, CompileOptions, compile_module, compile_text, execute
from sparsec.compiler.mlir_export import (
    MlirExportError,
    MlirToolError,
    _scalar_text,
    check_with_mlir_opt,
    export_mlir,
    lower_with_mlir_opt,
    parse_runner_output,
    run_with_mlir_runner,
)
from sparsec.dialects.formats import bitmap, codebook, quantized, rcsc
from sparsec.dialects.sparse_tensor import csc, csr, nm
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors.datastore import store_key
from sparsec.tensors.dtypes import round_to_bf16, round_to_dtype

TARGET = "systolic{rows=8 cols=8}"


# ===----------------------------------------------------------------------=== #
# Building kernels with a formatted param (what the format passes will do)
# ===----------------------------------------------------------------------=== #


def prune_nm(values: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Keep the n largest-magnitude entries of every block of m along `axis`."""
    moved = np.moveaxis(values, axis, -1)
    blocks = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m).copy()
    drop = np.argsort(-np.abs(blocks), axis=-1, kind="stable")[..., n:]
    np.put_along_axis(blocks, drop, 0, axis=-1)
    return np.moveaxis(blocks.reshape(moved.shape), -1, axis)


def kernel_ir(text: str) -> Compiled:
    return compile_text(text, CompileOptions(lower=False))


def set_param_format(compiled: Compiled, symbol: str, encoding: Attribute | None,
                     values: np.ndarray | None = None) -> None:
    """Give param `symbol` an encoding (and new values), as a format pass would."""
    (op,) = [o for o in compiled.module.walk() if isinstance(o, ParamOp) and o.sym_name == symbol]
    kernel = op.parent_op().sym_name.data  # type: ignore[union-attr]
    key = store_key(kernel, symbol)
    if values is not None:
        compiled.store.put(key, values, compiled.store.dtypes[key])
        nnz = int(np.count_nonzero(values))
        op.nnz = IntegerAttr(nnz, i64)
        op.density = FloatAttr(nnz / values.size, f64)
    old = op.result.type
    assert isinstance(old, TensorType)
    new = TensorType(old.element_type, old.get_shape(), encoding) if encoding else old
    Rewriter.replace_value_with_new_type(op.result, new)
    compiled.module.verify()


def with_nm(compiled: Compiled, symbol: str, axis: int, crd_width: int = 8) -> None:
    """Prune param `symbol` to 2:4 along `axis` and give it the matching encoding."""
    kernel = compiled.module.ops.first.sym_name.data  # type: ignore[union-attr]
    values = compiled.store.get(store_key(kernel, symbol))
    set_param_format(compiled, symbol, nm(2, 4, crd_width=crd_width, axis=axis),
                     prune_nm(values, 2, 4, axis))


def systolic_outputs(compiled: Compiled) -> list[np.ndarray]:
    """Lower the (already exported) kernel IR for the systolic array and run it."""
    lowered = compile_module(compiled.module, compiled.store, "", TARGET, CompileOptions())
    result = execute(lowered.module, lowered.store)
    (outputs,) = result.outputs.values()
    assert result.reports[0].check.ok
    return [np.asarray(v) for v in outputs]


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want)
        return
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    scale = float(np.max(np.abs(want64), initial=0.0))
    np.testing.assert_allclose(got64, want64, rtol=1e-5, atol=1e-5 * scale)


# Kernels of part (a): name -> (spec text, format step).
def _dense(c: Compiled) -> None:
    return None


def _csr_b(c: Compiled) -> None:
    set_param_format(c, "B", csr())


def _csc_b(c: Compiled) -> None:
    set_param_format(c, "B", csc())


def _nm_b_along_k(c: Compiled) -> None:
    with_nm(c, "B", axis=0)


def _nm_bt_along_k(c: Compiled) -> None:
    with_nm(c, "B", axis=1)


CASES = {
    "dense_f32": (gemm_text(4, 6, 8), _dense),
    "csr_f32": (gemm_text(4, 6, 8, density=0.4), _csr_b),
    "csc_f32": (gemm_text(4, 6, 8, density=0.4), _csc_b),
    "nm24_crd8_f32": (gemm_text(4, 6, 8), _nm_b_along_k),
    "nm24_crd8_transpose_b": (gemm_text(4, 6, 8, transpose_b=True), _nm_bt_along_k),
    "csr_transpose_a": (gemm_text(4, 6, 8, transpose_a=True, density=0.5), _csr_b),
    "dense_transpose_ab": (gemm_text(4, 6, 8, transpose_a=True, transpose_b=True), _dense),
    "csr_bf16": (gemm_text(4, 6, 8, "bf16", density=0.5), _csr_b),
    "nm24_bf16": (gemm_text(4, 6, 8, "bf16"), _nm_b_along_k),
    "dense_f16": (gemm_text(4, 6, 8, "f16"), _dense),
    "csr_i8": (gemm_text(4, 6, 8, "i8", density=0.5), _csr_b),
    "dense_f64": (gemm_text(4, 6, 8, "f64"), _dense),
}


def build(case: str) -> Compiled:
    text, step = CASES[case]
    compiled = kernel_ir(text)
    step(compiled)
    return compiled


# ===----------------------------------------------------------------------=== #
# (a) mlir-opt-22 accepts the export, plain and through the sparsifier
# ===----------------------------------------------------------------------=== #


@pytest.mark.parametrize("inline_data", [False, True], ids=["arguments", "inline"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_mlir_opt_accepts_export(case: str, inline_data: bool) -> None:
    require_tool("mlir-opt-22")
    compiled = build(case)
    text = export_mlir(compiled.module, compiled.store, inline_data=inline_data)
    printed = check_with_mlir_opt(text)
    assert "func.func @g(" in printed
    assert "linalg.matmul" in printed
    lowered = lower_with_mlir_opt(text)
    assert "llvm.func @g(" in lowered or "llvm.func @_mlir_ciface_g" in lowered
    assert "linalg." not in lowered and "sparse_tensor." not in lowered


def test_export_keeps_the_encoding_and_declaration_order() -> None:
    compiled = build("nm24_crd8_f32")
    text = export_mlir(compiled.module, compiled.store, source="examples/tiny.sk")
    assert text.startswith("// sparsec export of g (examples/tiny.sk)\n")
    encoding = str(nm(2, 4, crd_width=8, axis=0))
    assert f"#NM_2_4 = {encoding}\n" in text
    assert ("func.func @g(%A: tensor<4x8xf32>, %B: tensor<8x6xf32, #NM_2_4>) "
            "-> tensor<4x6xf32> {") in text
    assert "arith.constant dense" not in text  # arguments mode carries no data


def test_mlir_opt_prints_the_encoding_back() -> None:
    require_tool("mlir-opt-22")
    compiled = build("nm24_crd8_transpose_b")
    printed = check_with_mlir_opt(export_mlir(compiled.module, compiled.store))
    assert str(nm(2, 4, crd_width=8, axis=1)) in printed


def test_transposes_are_matmul_indexing_maps() -> None:
    compiled = build("dense_transpose_ab")
    text = export_mlir(compiled.module, compiled.store)
    assert ("linalg.matmul indexing_maps = [affine_map<(m, n, k) -> (k, m)>, "
            "affine_map<(m, n, k) -> (n, k)>, affine_map<(m, n, k) -> (m, n)>]") in text


def test_bf16_accumulates_in_f32_and_rounds_once() -> None:
    compiled = build("csr_bf16")
    text = export_mlir(compiled.module, compiled.store)
    assert "outs(%C_init : tensor<4x6xf32>) -> tensor<4x6xf32>" in text
    assert ("%C = linalg.map { arith.truncf } ins(%C_acc : tensor<4x6xf32>) "
            "outs(%C_bf16_empty : tensor<4x6xbf16>)") in text


def test_i8_accumulates_in_i32() -> None:
    compiled = build("csr_i8")
    text = export_mlir(compiled.module, compiled.store)
    assert ("linalg.matmul ins(%A, %B : tensor<4x8xi8>, tensor<8x6xi8, #CSR>) "
            "outs(%C_init : tensor<4x6xi32>) -> tensor<4x6xi32>") in text


def test_export_is_deterministic() -> None:
    first = build("nm24_bf16")
    second = build("nm24_bf16")
    assert (export_mlir(first.module, first.store, inline_data=True)
            == export_mlir(second.module, second.store, inline_data=True))


SPECIAL_VALUES = [0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3.0, 6.1e-05, 5.9604645e-08, 1e-40,
                  3.4e38, 65504.0, -2.5, math.inf, -math.inf, math.nan]


@pytest.mark.parametrize("element", ["f32", "f16", "bf16", "f64"])
def test_mlir_opt_reads_constants_bit_exactly(element: str) -> None:
    """mlir-opt-22 re-prints every inlined constant as a hex blob: it must hold the
    very bytes the DataStore holds (zeros' signs, subnormals, inf and NaN included)."""
    require_tool("mlir-opt-22")
    compiled = kernel_ir(gemm_text(4, 6, 8, element))
    rng = np.random.default_rng(7)
    raw = np.concatenate([SPECIAL_VALUES, rng.standard_normal(48 - len(SPECIAL_VALUES))])
    values = round_to_dtype(raw.reshape(8, 6), element)
    set_param_format(compiled, "B", None, values)
    text = export_mlir(compiled.module, compiled.store, inline_data=True)
    printed = check_with_mlir_opt(text, "--mlir-print-elementsattrs-with-hex-if-larger=1")
    blob = re.search(rf'dense<"0x([0-9A-F]+)"> : tensor<8x6x{element}>', printed)
    assert blob is not None, printed
    if element == "bf16":
        expected = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    else:
        expected = values.astype(values.dtype.newbyteorder("<")).tobytes()
    assert blob[1] == expected.hex().upper()


def test_tool_failure_carries_stderr() -> None:
    require_tool("mlir-opt-22")
    with pytest.raises(MlirToolError, match=r"mlir-opt-22.*failed.*\n.*error:"):
        check_with_mlir_opt("func.func @f() { %x = arith.constant 1 : f32\n return }\n")


# ===----------------------------------------------------------------------=== #
# (b) mlir-runner-22 prints what the systolic backend computes
# ===----------------------------------------------------------------------=== #


RUN_CASES = ["dense_f32", "csr_f32", "nm24_crd8_f32", "nm24_crd8_transpose_b",
             "csr_transpose_a", "csc_f32", "csr_bf16", "nm24_bf16", "dense_f16", "csr_i8",
             "dense_f64"]


@pytest.mark.parametrize("print_bits", [False, True], ids=["decimal", "bits"])
@pytest.mark.parametrize("case", RUN_CASES)
def test_mlir_runner_matches_systolic(case: str, print_bits: bool) -> None:
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = build(case)
    text = export_mlir(compiled.module, compiled.store, inline_data=True,
                       print_bits=print_bits)
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    (want,) = systolic_outputs(compiled)
    assert got.dtype == want.dtype
    assert_close(got, want)


def test_nm_blocks_with_fewer_nonzeros_are_padded() -> None:
    """Zero rows and a 1-of-4 block: 2:4 storage needs explicit zeros to stay aligned."""
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = kernel_ir(gemm_text(3, 4, 8))
    values = prune_nm(compiled.store.get("g.B"), 2, 4, axis=0)
    values[:, 1] = 0.0
    values[4:, 2] = 0.0
    values[5, 2] = 3.5
    set_param_format(compiled, "B", nm(2, 4, crd_width=8, axis=0), values)
    text = export_mlir(compiled.module, compiled.store, inline_data=True, print_bits=True)
    assert "sparse_tensor.reinterpret_map" in text
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


def test_prune_nm_pass_output_runs() -> None:
    """The real `prune-nm` pass's kernel IR exports and runs like sparsec."""
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = compile_text(gemm_text(4, 8, 16), CompileOptions(
        pipeline="prune-nm{n=2 m=4 crd_width=8}", lower=False))
    text = export_mlir(compiled.module, compiled.store, inline_data=True, print_bits=True)
    assert "structured[2, 4]" in text
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


def test_sparse_input_is_converted_in_main() -> None:
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = kernel_ir(gemm_text(4, 6, 8, density=0.5))
    (op,) = [o for o in compiled.module.walk() if o.name == "sparsec.input"]
    old = op.results[0].type
    Rewriter.replace_value_with_new_type(
        op.results[0], TensorType(old.element_type, old.get_shape(), csr()))  # type: ignore[attr-defined]
    text = export_mlir(compiled.module, compiled.store, inline_data=True, print_bits=True)
    assert "func.func @g(%A: tensor<4x8xf32, #CSR>)" in text
    assert "%g_A = sparse_tensor.convert %g_A_dense" in text
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


def mlp_text(k2: int) -> str:
    """X (2x8) -> H = X.W1 (2 x k2) -> Y = H.W2^T (2x4): a dense input, a CSR and an
    n:m weight in one kernel, two outputs."""
    return (f"kernel mlp {{\n"
            f"  in    X: f32[2, 8] = random(seed=1)\n"
            f"  param W1: f32[8, {k2}] = random(seed=2, density=0.5)\n"
            f"  param W2: f32[4, {k2}] = random(seed=3)\n"
            f"  H = matmul(X, W1)\n"
            f"  Y = matmul(H, W2, transpose_b=true)\n"
            f"  out H\n  out Y\n}}\n")


def mlp(k2: int) -> Compiled:
    compiled = kernel_ir(mlp_text(k2))
    set_param_format(compiled, "W1", csr())
    w2 = compiled.store.get("mlp.W2")
    set_param_format(compiled, "W2", nm(2, 4, crd_width=8, axis=1), prune_nm(w2, 2, 4, 1))
    return compiled


@pytest.mark.parametrize("k2", [8, 4])
def test_dense_csr_nm_chain_runs_like_systolic(k2: int) -> None:
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = mlp(k2)
    for inline_data in (False, True):
        text = export_mlir(compiled.module, compiled.store, inline_data=inline_data)
        check_with_mlir_opt(text)
        lowered = lower_with_mlir_opt(text)
    folded = "folded away" in text
    assert folded == (k2 == 4)
    outputs = run_with_mlir_runner(lowered)
    assert [o.shape for o in outputs] == [(2, k2), (2, 4)]
    for got, want in zip(outputs, systolic_outputs(compiled), strict=True):
        assert_close(got, want)


def test_nm_over_exactly_m_elements_is_folded() -> None:
    """LLVM 22 cannot sparsify `k floordiv 4` over K = 4; the export drops that level."""
    compiled = mlp(4)
    text = export_mlir(compiled.module, compiled.store)
    assert ("#NM_2_4 = #sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, "
            "d1 : structured[2, 4]), crdWidth = 8 }>") in text
    k_axis_0 = kernel_ir(gemm_text(2, 3, 4))
    with_nm(k_axis_0, "B", axis=0)
    assert "map = (d0, d1) -> (d1 : dense, d0 : structured[2, 4])" in export_mlir(
        k_axis_0.module, k_axis_0.store)


def test_nm_axis0_over_exactly_m_elements_runs() -> None:
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = kernel_ir(gemm_text(2, 3, 4))
    with_nm(compiled, "B", axis=0)
    text = export_mlir(compiled.module, compiled.store, inline_data=True, print_bits=True)
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


@pytest.mark.parametrize("element", ["f32", "bf16"])
def test_sparse_result_is_converted(element: str) -> None:
    """A matmul whose result type is CSR: dense product, then sparse_tensor.convert;
    @main converts back to dense to print it."""
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    compiled = kernel_ir(gemm_text(4, 6, 8, element, density=0.5))
    (op,) = [o for o in compiled.module.walk() if o.name == "sparsec.matmul"]
    old = op.results[0].type
    assert isinstance(old, TensorType)
    new = TensorType(old.element_type, old.get_shape(), csr())
    Rewriter.replace_value_with_new_type(op.results[0], new)
    function = compiled.module.ops.first
    function.function_type = FunctionType.from_lists([], [new])  # type: ignore[union-attr]
    compiled.module.verify()
    text = export_mlir(compiled.module, compiled.store, inline_data=True, print_bits=True)
    assert f"-> tensor<4x6x{element}, #CSR> {{" in text
    assert f"%g_C_dense = sparse_tensor.convert %g_C : tensor<4x6x{element}, #CSR>" in text
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


def test_two_kernels_print_in_order() -> None:
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    text = gemm_text(2, 3, 4, name="first") + gemm_text(3, 2, 4, "bf16", name="second")
    compiled = kernel_ir(text)
    exported = export_mlir(compiled.module, compiled.store, inline_data=True)
    outputs = run_with_mlir_runner(lower_with_mlir_opt(exported))
    assert [o.shape for o in outputs] == [(2, 3), (3, 2)]
    for got, kernel in zip(outputs, ("first", "second"), strict=True):
        assert_close(got, compiled.store.get(f"{kernel}.C#reference"))


# ===----------------------------------------------------------------------=== #
# Text-level behaviour (no tool needed)
# ===----------------------------------------------------------------------=== #


SPARSEC_FORMATS = {
    "bitmap": (bitmap(), "#CSR", "bitmap exported as CSR"),
    "bitmap_col": (bitmap("col"), "#CSC", "bitmap exported as CSC"),
    "rcsc": (rcsc(pes=2), "#CSC", "rcsc exported as CSC"),
    "codebook_csr": (codebook(4, csr()), "#CSR", "4-bit codebook over CSR: values exported "
                     "dequantized"),
    "codebook_nm": (codebook(4, nm(2, 4, axis=0)), "#NM_2_4", "values exported dequantized"),
    "quantized_dense": (quantized(8, scale=0.01), "tensor<8x6xf32> (constant",
                        "quantized: values exported dequantized"),
    "quantized_rcsc": (quantized(8, scale=0.01, layout=rcsc(pes=2)), "#CSC",
                       "dropped; rcsc exported as CSC"),
}


@pytest.mark.parametrize("name", sorted(SPARSEC_FORMATS))
def test_sparsec_formats_export_as_nearest_mlir_layout(name: str) -> None:
    """bitmap -> CSR/CSC, rcsc -> CSC, codebook/quantized -> their layout, dequantized;
    the comment names what was dropped, and the numbers still match sparsec."""
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    encoding, exported_as, note = SPARSEC_FORMATS[name]
    compiled = kernel_ir(gemm_text(4, 6, 8, density=0.5))
    values = compiled.store.get("g.B")
    if "nm" in name:
        values = prune_nm(values, 2, 4, axis=0)
    set_param_format(compiled, "B", encoding, values)
    text = export_mlir(compiled.module, compiled.store, inline_data=True, print_bits=True)
    assert "#sparsec" not in text.replace("// sparsec", "")
    comment = next(line for line in text.splitlines() if line.startswith("//   param B:"))
    assert exported_as in comment
    assert note in text
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


def test_nm_argument_comment_says_how_to_store_it() -> None:
    compiled = build("nm24_crd8_f32")
    text = export_mlir(compiled.module, compiled.store)
    assert "//     n:m argument: store exactly n entries per block" in text


def test_not_nm_data_is_refused_with_the_block() -> None:
    compiled = kernel_ir(gemm_text(4, 6, 8))
    set_param_format(compiled, "B", nm(2, 4, axis=0))  # values not pruned
    with pytest.raises(MlirExportError, match=r"B is not 2:4: .* holds 4 nonzeros; prune it"):
        export_mlir(compiled.module, compiled.store, inline_data=True)


def test_kernel_named_main_is_refused_with_inline_data() -> None:
    compiled = kernel_ir(gemm_text(2, 2, 2, name="main"))
    export_mlir(compiled.module, compiled.store)  # fine without a driver
    with pytest.raises(MlirExportError, match="named 'main'"):
        export_mlir(compiled.module, compiled.store, inline_data=True)


def test_lowered_module_is_refused() -> None:
    compiled = compile_text(gemm_text(2, 2, 2), CompileOptions(target=TARGET))
    with pytest.raises(MlirExportError, match="before lowering"):
        export_mlir(compiled.module, compiled.store)


def test_large_constants_are_hex_blobs(monkeypatch: pytest.MonkeyPatch) -> None:
    import sparsec.compiler.mlir_export as mlir_export

    monkeypatch.setattr(mlir_export, "DECIMAL_LIMIT", 8)
    compiled = kernel_ir(gemm_text(2, 3, 4, "bf16"))
    text = export_mlir(compiled.module, compiled.store, inline_data=True)
    bits = (compiled.store.get("g.B").view(np.uint32) >> 16).astype("<u2")
    assert f'dense<"0x{bits.tobytes().hex().upper()}"> : tensor<4x3xbf16>' in text


@pytest.mark.parametrize("case", ["nm24_bf16", "csr_i8", "dense_f16"])
def test_hex_blob_constants_run(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sparsec.compiler.mlir_export as mlir_export

    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    monkeypatch.setattr(mlir_export, "DECIMAL_LIMIT", 4)
    compiled = build(case)
    text = export_mlir(compiled.module, compiled.store, inline_data=True)
    assert 'dense<"0x' in text
    (got,) = run_with_mlir_runner(lower_with_mlir_opt(text))
    assert_close(got, systolic_outputs(compiled)[0])


def _reads_back_in_mlir_ways(text: str, value: float, element: str) -> bool:
    """Both MLIR parse paths: decimal -> f64 -> element, and exact decimal -> element
    (checked with the f64's neighbours, which bracket the exact decimal value)."""
    from fractions import Fraction

    exact = Fraction(text)
    d = float(text)
    lo, hi = np.nextafter(d, -math.inf), np.nextafter(d, math.inf)
    assert Fraction(lo) <= exact <= Fraction(hi)
    rounders = {"f32": np.float32, "f16": np.float16}
    if element == "bf16":
        return all(float(round_to_bf16(np.float64(v))) == value for v in (d, lo, hi))
    return all(float(rounders[element](v)) == value for v in (d, lo, hi))


@settings(max_examples=300, deadline=None)
@example(0x7F800001)  # a signalling NaN keeps its payload
@example(0xFF800000)  # -inf
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_f32_text_reads_back_exactly(bits: int) -> None:
    carried = np.array(bits, dtype=np.uint32).view(np.float32)
    value = float(carried)
    text = _scalar_text(carried, "f32")
    if not math.isfinite(value):
        assert text == f"0x{bits:08X}"
        return
    assert "." in text
    assert _reads_back_in_mlir_ways(text, value, "f32")
    significant = text.split("e")[0].replace("-", "").replace(".", "").strip("0")
    assert len(significant) <= 9  # shortest: 9 significant digits identify any f32


@settings(max_examples=300, deadline=None)
@example(0x7F81, "bf16")
@example(0x7C01, "f16")
@example(0x0001, "f16")  # the smallest subnormal
@given(st.integers(min_value=0, max_value=2**16 - 1), st.sampled_from(["f16", "bf16"]))
def test_half_text_reads_back_exactly(bits: int, element: str) -> None:
    if element == "f16":
        carried = np.array(bits, dtype=np.uint16).view(np.float16)
    else:
        carried = np.array(bits << 16, dtype=np.uint32).view(np.float32)
    value = float(carried)
    text = _scalar_text(carried, element)
    if not math.isfinite(value):
        assert text == f"0x{bits:04X}"
        return
    assert _reads_back_in_mlir_ways(text, value, element)


def test_negative_zero_and_splats() -> None:
    assert _scalar_text(np.float32(-0.0), "f32") == "-0.0"
    assert _scalar_text(np.float32(0.1), "f32") == "0.1"
    assert _scalar_text(np.float32(1e-5), "f32") == "1.0e-05"
    assert _scalar_text(np.float32(round_to_bf16(np.float32(0.1))), "bf16") == "0.1"


RUNNER_OUTPUT = """\
# sparsec output g.C : tensor<2x3xf32>
Unranked Memref base@ = 0x55e3d6fd31c0 rank = 2 offset = 0 sizes = [2, 3] strides = [3, 1] data =
[[47.3333,   16,   -1.5e-07],
 [10,   inf,   -nan]]
# sparsec output h.D : tensor<1x2xf32> as i32 bits
Unranked Memref base@ = 0x55e3d6fd31c0 rank = 2 offset = 0 sizes = [1, 2] strides = [2, 1] data =
[[1065353216,   -1082130432]]
# sparsec output h.E : tensor<1x2xi32>
Unranked Memref base@ = 0x55e3d6fd31c0 rank = 2 offset = 0 sizes = [1, 2] strides = [2, 1] data =
[[-7,   12]]
"""


def test_parse_runner_output() -> None:
    printed = RUNNER_OUTPUT.replace("data =", "data = ").replace(",\n", ", \n")  # as printed
    c, d, e = parse_runner_output(printed)
    assert c.dtype == np.float32 and c.shape == (2, 3)
    assert c[0, 0] == np.float32(47.3333) and c[0, 2] == np.float32(-1.5e-07)
    assert np.isinf(c[1, 1]) and np.isnan(c[1, 2])
    np.testing.assert_array_equal(d, np.array([[1.0, -1.0]], dtype=np.float32))
    np.testing.assert_array_equal(e, np.array([[-7, 12]], dtype=np.int32))


def test_truncated_runner_output_is_an_error() -> None:
    with pytest.raises(MlirToolError, match="6 values expected, 3 printed"):
        parse_runner_output(RUNNER_OUTPUT.split("\n [10")[0])
