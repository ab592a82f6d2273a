"""Tests of `sparsec.dialects.formats`: text round trips inside tensor types, one
invalid case per verifier rule, the convenience constructors and the
describe / layout_of protocol."""

from __future__ import annotations

import pytest
from xdsl.dialects.builtin import Float32Type, ModuleOp, TensorType
from xdsl.ir import Attribute
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from sparsec.compiler.driver import make_context
from sparsec.dialects import sparse_tensor as st
from sparsec.dialects.formats import (
    BitmapAttr,
    CodebookAttr,
    QuantizedAttr,
    RcscAttr,
    bitmap,
    codebook,
    describe,
    format_float,
    layout_of,
    quantized,
    rcsc,
)
from sparsec.dialects.sparsec import Sparsec

CTX = make_context()

NM24 = (
    "#sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 floordiv 4 : dense, "
    "d1 mod 4 : structured[2, 4]) }>"
)
CSR = "#sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>"


def parse_type(text: str) -> TensorType[Attribute]:
    tensor_type = Parser(CTX, text).parse_type()
    assert isinstance(tensor_type, TensorType)
    return tensor_type


def tensor(encoding: str, shape: str = "64x32", element: str = "f32") -> str:
    return f"tensor<{shape}x{element}, {encoding}>"


# (what we write, what prints back): canonical keys order, defaults filled in.
ROUND_TRIPS: dict[str, tuple[str, str]] = {
    "bitmap_row": ("#sparsec.bitmap<order = row>", "#sparsec.bitmap<order = row>"),
    "bitmap_col": ("#sparsec.bitmap<order = col>", "#sparsec.bitmap<order = col>"),
    "bitmap_default": ("#sparsec.bitmap<>", "#sparsec.bitmap<order = row>"),
    "rcsc": (
        "#sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>",
        "#sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>",
    ),
    "rcsc_reordered": (
        "#sparsec.rcsc<ptr_bits = 8, pes = 4>",
        "#sparsec.rcsc<pes = 4, index_bits = 4, ptr_bits = 8>",
    ),
    "codebook": ("#sparsec.codebook<bits = 4>", "#sparsec.codebook<bits = 4>"),
    "codebook_rcsc": (
        "#sparsec.codebook<layout = #sparsec.rcsc<pes = 8>, bits = 4>",
        "#sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 8, index_bits = 4, ptr_bits = 16>>",
    ),
    "codebook_csr": (
        "#sparsec.codebook<bits = 2, layout = #sparse_tensor.encoding<{ map = (i, j) -> (i : dense, j : compressed) }>>",
        f"#sparsec.codebook<bits = 2, layout = {CSR}>",
    ),
    "quantized_tensor": (
        "#sparsec.quantized<bits = 8, scale = 1.0e-02, zero_point = 0>",
        "#sparsec.quantized<bits = 8, scale = 1.000000e-02, zero_point = 0>",
    ),
    "quantized_default_zero_point": (
        "#sparsec.quantized<bits = 8, scale = 0.5>",
        "#sparsec.quantized<bits = 8, scale = 5.000000e-01, zero_point = 0>",
    ),
    "quantized_full_precision_scale": (
        "#sparsec.quantized<symmetric, bits = 4, scale = 0.0123456789>",
        "#sparsec.quantized<bits = 4, scale = 0.0123456789, symmetric>",
    ),
    "quantized_channel": (
        "#sparsec.quantized<bits = 8, axis = 1>",
        "#sparsec.quantized<bits = 8, axis = 1>",
    ),
    "quantized_channel_nm": (
        f"#sparsec.quantized<bits = 8, axis = 0, symmetric, layout = {NM24}>",
        f"#sparsec.quantized<bits = 8, axis = 0, symmetric, layout = {NM24}>",
    ),
    "quantized_bitmap": (
        "#sparsec.quantized<layout = #sparsec.bitmap<order = col>, zero_point = 128, scale = 0.25, bits = 8>",
        "#sparsec.quantized<bits = 8, scale = 2.500000e-01, zero_point = 128, layout = #sparsec.bitmap<order = col>>",
    ),
    "quantized_rcsc": (
        "#sparsec.quantized<bits = 4, axis = 1, layout = #sparsec.rcsc<pes = 2, index_bits = 2, ptr_bits = 8>>",
        "#sparsec.quantized<bits = 4, axis = 1, layout = #sparsec.rcsc<pes = 2, index_bits = 2, ptr_bits = 8>>",
    ),
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_round_trip_inside_a_tensor_type(name: str) -> None:
    written, printed = ROUND_TRIPS[name]
    tensor_type = parse_type(tensor(written))
    assert str(tensor_type) == tensor(printed)
    assert parse_type(str(tensor_type)) == tensor_type
    tensor_type.encoding.verify_tensor_type(tensor_type)  # type: ignore[attr-defined]


def test_round_trip_inside_a_module_with_ops() -> None:
    source = f"""
func.func @k() -> tensor<4x6xf32> {{
  %X = sparsec.input @X : tensor<4x8xf32, #sparsec.bitmap<order = row>>
  %W = sparsec.param @W : tensor<8x6xf32, #sparsec.quantized<bits = 8, axis = 1, layout = {CSR}>>
  %Y = sparsec.matmul %X, %W : (tensor<4x8xf32, #sparsec.bitmap<order = row>>, tensor<8x6xf32, #sparsec.quantized<bits = 8, axis = 1, layout = {CSR}>>) -> tensor<4x6xf32>
  func.return %Y : tensor<4x6xf32>
}}
"""
    module = Parser(CTX, source).parse_module()
    assert isinstance(module, ModuleOp)
    module.verify()
    printed = str(module)
    assert str(Parser(CTX, printed).parse_module()) == printed


def test_attributes_are_registered_in_the_sparsec_dialect() -> None:
    names = {attr.name for attr in Sparsec.attributes}
    assert {"sparsec.bitmap", "sparsec.rcsc", "sparsec.codebook", "sparsec.quantized"} <= names


# ----------------------------------------------------------------------------
# Verifier rules: one case each; the message names the rule.
# ----------------------------------------------------------------------------

ATTRIBUTE_RULES: list[tuple[str, str]] = [
    ("#sparsec.bitmap<order = diagonal>", "sparsec.bitmap: order must be row or col, got 'diagonal'"),
    ("#sparsec.rcsc<pes = 0>", "sparsec.rcsc: pes must be >= 1, got 0"),
    ("#sparsec.rcsc<index_bits = 17>", r"sparsec.rcsc: index_bits must lie in \[1, 16\], got 17"),
    ("#sparsec.rcsc<ptr_bits = 0>", r"sparsec.rcsc: ptr_bits must lie in \[1, 64\], got 0"),
    ("#sparsec.codebook<bits = 0>", r"sparsec.codebook: bits must lie in \[1, 16\], got 0"),
    (
        "#sparsec.codebook<bits = 4, layout = #sparsec.codebook<bits = 2>>",
        "sparsec.codebook: layout must be a #sparse_tensor.encoding, #sparsec.bitmap or #sparsec.rcsc",
    ),
    ("#sparsec.quantized<bits = 33, axis = 0>", r"sparsec.quantized: bits must lie in \[1, 32\], got 33"),
    (
        "#sparsec.quantized<bits = 8, scale = 1.0, axis = 1>",
        r"sparsec.quantized: scale \(per-tensor\) and axis \(per-channel\) exclude each other",
    ),
    ("#sparsec.quantized<bits = 8, scale = 0.0>", "sparsec.quantized: scale must be positive and finite, got 0.0"),
    ("#sparsec.quantized<bits = 8, axis = -2>", "sparsec.quantized: axis must be >= 0, got -2"),
    (
        "#sparsec.quantized<bits = 8, axis = 0, zero_point = 1>",
        "sparsec.quantized: a per-channel encoding takes no zero_point",
    ),
    (
        "#sparsec.quantized<bits = 8, scale = 1.0, zero_point = 1, symmetric>",
        "sparsec.quantized: symmetric quantization has zero_point 0, got 1",
    ),
    (
        "#sparsec.quantized<bits = 4, scale = 1.0, zero_point = 16>",
        r"sparsec.quantized: zero_point of 4-bit codes must lie in \[0, 15\], got 16",
    ),
    (
        "#sparsec.quantized<bits = 8, axis = 0, layout = #sparsec.codebook<bits = 4>>",
        "sparsec.quantized: layout must be a #sparse_tensor.encoding, #sparsec.bitmap or #sparsec.rcsc",
    ),
]


@pytest.mark.parametrize("text,message", ATTRIBUTE_RULES, ids=[m[:40] for _, m in ATTRIBUTE_RULES])
def test_attribute_rule(text: str, message: str) -> None:
    with pytest.raises(VerifyException, match=message):
        Parser(CTX, text).parse_attribute()


TENSOR_RULES: list[tuple[str, str]] = [
    (
        "tensor<f32, #sparsec.bitmap<order = row>>",
        r"sparsec.bitmap: expected a tensor of rank >= 1 \(one bit per element\), got a scalar",
    ),
    (
        "tensor<2x8x8xf32, #sparsec.rcsc<pes = 4>>",
        r"sparsec.rcsc: expected a rank-2 tensor \(rows x cols, weights in \(out, in\) layout\), got rank 3 \(2x8x8\)",
    ),
    (
        "tensor<2x8x8xf32, #sparsec.codebook<bits = 4, layout = #sparsec.rcsc<pes = 4>>>",
        "sparsec.rcsc: expected a rank-2 tensor",
    ),
    (
        f"tensor<8xf32, #sparsec.codebook<bits = 4, layout = {CSR}>>",
        "dimension-rank mismatch between encoding and tensor shape: 2 != 1",
    ),
    (
        "tensor<8x8xi8, #sparsec.quantized<bits = 8, scale = 1.0>>",
        "sparsec.quantized: the element type is that of the dequantized values and must be a float type, got i8",
    ),
    (
        "tensor<8x8xf32, #sparsec.quantized<bits = 8, axis = 2>>",
        "sparsec.quantized: axis 2 is out of range for a rank-2 tensor",
    ),
    (
        "tensor<8x8x8xf32, #sparsec.quantized<bits = 8, axis = 0, layout = #sparsec.rcsc<pes = 2>>>",
        "sparsec.rcsc: expected a rank-2 tensor",
    ),
]


@pytest.mark.parametrize("text,message", TENSOR_RULES, ids=[m[:40] for _, m in TENSOR_RULES])
def test_tensor_type_rule(text: str, message: str) -> None:
    tensor_type = parse_type(text)
    with pytest.raises(VerifyException, match=message):
        tensor_type.encoding.verify_tensor_type(tensor_type)  # type: ignore[attr-defined]


def test_kernel_op_verifier_runs_the_format_rules() -> None:
    source = "%a = sparsec.param @A : tensor<2x8x8xf32, #sparsec.rcsc<pes = 4>>"
    module = Parser(CTX, source).parse_module()
    with pytest.raises(VerifyException, match="sparsec.rcsc: expected a rank-2 tensor"):
        module.verify()


PARSE_ERRORS: list[tuple[str, str]] = [
    ("#sparsec.rcsc<pes = 4, lanes = 2>", r"sparsec.rcsc: unknown key 'lanes' \(accepted: pes, index_bits, ptr_bits\)"),
    ("#sparsec.bitmap<order = row, order = col>", "sparsec.bitmap: 'order' is given twice"),
    ("#sparsec.codebook<layout = #sparsec.bitmap<>>", "#sparsec.codebook: 'bits' is required"),
    ("#sparsec.quantized<axis = 0>", "#sparsec.quantized: 'bits' is required"),
    ("#sparsec.bitmap", "Expected '<' to open sparsec.bitmap"),
]


@pytest.mark.parametrize("text,message", PARSE_ERRORS, ids=[m[:40] for _, m in PARSE_ERRORS])
def test_parse_error(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        Parser(CTX, text).parse_attribute()


# ----------------------------------------------------------------------------
# Python API: constructors, queries, describe, layout_of
# ----------------------------------------------------------------------------


def test_constructors_print_like_the_parser() -> None:
    assert str(bitmap()) == "#sparsec.bitmap<order = row>"
    assert str(rcsc()) == "#sparsec.rcsc<pes = 64, index_bits = 4, ptr_bits = 16>"
    assert str(codebook(4, rcsc(8))) == ROUND_TRIPS["codebook_rcsc"][1]
    assert str(quantized(8, scale=0.01)) == ROUND_TRIPS["quantized_tensor"][1]
    assert str(quantized(8, axis=1)) == "#sparsec.quantized<bits = 8, axis = 1>"
    for _, printed in ROUND_TRIPS.values():
        assert str(Parser(CTX, printed).parse_attribute()) == printed


def test_constructors_verify() -> None:
    with pytest.raises(VerifyException, match="sparsec.rcsc: pes must be >= 1"):
        rcsc(0)
    assert str(quantized(8, symmetric=True)) == "#sparsec.quantized<bits = 8, symmetric>"  # dynamic


def test_queries() -> None:
    eie = rcsc(64, 4, 16)
    assert (eie.num_pes, eie.index_width, eie.ptr_width, eie.max_run) == (64, 4, 16, 15)
    assert codebook(4).size == 16
    sym = quantized(4, scale=0.5, symmetric=True)
    assert sym.code_range == (-8, 7)
    assert sym.zero_point_value == 0 and not sym.is_per_channel
    asym = quantized(8, axis=1, layout=st.csr())
    assert asym.code_range == (0, 255)
    assert asym.is_per_channel and asym.channel_axis == 1 and asym.zero_point_value is None
    assert asym.layout() == st.csr()


def test_format_float_is_exact() -> None:
    assert format_float(0.01) == "1.000000e-02"
    assert float(format_float(0.0123456789)) == 0.0123456789


@pytest.mark.parametrize(
    "encoding,text",
    [
        (None, "dense"),
        (st.csr(32, 16), "CSR"),
        (st.csc(), "CSC"),
        (st.dcsr(), "DCSR"),
        (st.dcsc(), "DCSC"),
        (st.coo(), "COO"),
        (st.coo(3, soa=True), "COO (SoA)"),
        (st.coo(1), "sparse vector"),
        (st.bsr(2, 3), "BSR 2x3"),
        (st.nm(2, 4), "2:4 structured along dim 1"),
        (st.SparseTensorEncodingAttr(["dense", "dense"]), "dense"),
        (
            st.SparseTensorEncodingAttr(["dense", "loose_compressed"]),
            "sparse_tensor (d0, d1) -> (d0 : dense, d1 : loose_compressed)",
        ),
        (bitmap(), "bitmap"),
        (bitmap("col"), "bitmap (column order)"),
        (rcsc(64, 4, 16), "relative-indexed CSC over 64 PEs (4-bit indices, 16-bit pointers)"),
        (codebook(4), "4-bit codebook"),
        (codebook(4, st.csc()), "4-bit codebook over CSC"),
        (quantized(8, scale=0.01), "8-bit per-tensor (scale 0.01, zero point 0) quantized"),
        (
            quantized(4, axis=0, symmetric=True, layout=st.nm(2, 4)),
            "4-bit symmetric per-channel (axis 0) quantized over 2:4 structured along dim 1",
        ),
    ],
)
def test_describe(encoding: Attribute | None, text: str) -> None:
    assert describe(encoding) == text


def test_layout_of() -> None:
    assert layout_of(None) is None
    assert layout_of(st.csr()) == st.csr()
    assert layout_of(bitmap()) == bitmap()
    assert layout_of(rcsc(4)) == rcsc(4)
    assert layout_of(codebook(4)) is None
    assert layout_of(codebook(4, rcsc(4))) == rcsc(4)
    assert layout_of(quantized(8, scale=1.0)) is None
    assert layout_of(quantized(8, axis=0, layout=bitmap("col"))) == bitmap("col")


def test_attribute_classes() -> None:
    assert isinstance(bitmap(), BitmapAttr)
    assert isinstance(rcsc(), RcscAttr)
    assert isinstance(codebook(), CodebookAttr)
    assert isinstance(quantized(8, axis=0), QuantizedAttr)
    assert TensorType(Float32Type(), [4, 4], bitmap()).encoding == bitmap()
