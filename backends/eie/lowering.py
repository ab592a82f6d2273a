"""`lower-eie`: kernel-level matmuls become EIE column broadcasts.

Example: `lower-eie{pes=64 fifo_depth=8}` turns `%Y = sparsec.matmul %X, %W` (X 128 x 384
with a 16-bit fixed-point format, W 384 x 1536 as a 4-bit codebook over rcsc) into
`eie.encode %W`, `eie.zeros`, 384 `eie.column` ops (one per activation column, each
for all PEs and all 128 input vectors) and `eie.store`. Matmuls EIE cannot run are
refused with the passes that would make them runnable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.eie import isa
from sparsec.backends.eie.spec import EieSpec
from sparsec.dialects.formats import CodebookAttr, QuantizedAttr, RcscAttr, layout_of
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp, element_type_name

VALUE_TYPES = ("f64", "f32")
"""Element types that hold 16-bit fixed-point activations and their exact products."""


def operand_name(value: SSAValue, role: str) -> str:
    """The tensor's name in the kernel spec (its DataStore symbol), else its role."""
    owner = value.owner
    if isinstance(owner, (InputOp, ParamOp)):
        return owner.sym_name
    return value.name_hint or role


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"eie: {message}")


def weight_passes(spec: EieSpec) -> str:
    """The pipeline that puts a weight into EIE's format."""
    return (f"prune-magnitude{{sparsity=0.9}},share-weights{{bits={spec.weight_bits} "
            f"frac_bits=12}},sparsify{{format=rcsc pes={spec.pes} index_bits={spec.index_bits}}}")


def activation_pass(spec: EieSpec) -> str:
    return f"quantize{{bits={spec.word_bits} frac_bits=8 operand=a}}"


def check_weights(op: MatmulOp, spec: EieSpec) -> None:
    """Refuse a rhs that is not a codebook over an rcsc matching the hardware."""
    ttype = op.rhs.type
    assert isinstance(ttype, TensorType)
    name = operand_name(op.rhs, "rhs")
    where = f"operand {name} of {op.name}"
    encoding = ttype.encoding
    layout = layout_of(encoding)
    if isa.eie_layout(ttype) is None and isa.eie_layout(op.lhs.type) is not None:
        raise _fail(f"the weight of {op.name} must be its rhs W (Y = X . W, or X . W^T with "
                    "transpose_b); the lhs is the activations")
    if isinstance(encoding, CodebookAttr) and not isinstance(layout, RcscAttr):
        raise _fail(f"{where} is weight-shared but not in relative-indexed CSC; run "
                    f"sparsify{{format=rcsc pes={spec.pes} index_bits={spec.index_bits}}} first")
    if isinstance(layout, RcscAttr) and not isinstance(encoding, CodebookAttr):
        raise _fail(f"{where} is rcsc but not weight-shared (EIE decodes "
                    f"{spec.weight_bits}-bit codebook indices); run share-weights{{bits="
                    f"{spec.weight_bits} frac_bits=12}} first")
    found = isa.eie_layout(ttype)
    if found is None:
        raise _fail(f"{where} is not in EIE's format (a {spec.weight_bits}-bit codebook over "
                    f"#sparsec.rcsc); run {weight_passes(spec)} first")
    book, rcsc = found
    _check_layout_fits(where, book, rcsc, spec)


def _check_layout_fits(where: str, book: CodebookAttr, rcsc: RcscAttr, spec: EieSpec) -> None:
    if rcsc.num_pes != spec.pes:
        raise _fail(f"{where} is interleaved over {rcsc.num_pes} PEs but the target has "
                    f"{spec.pes}; run sparsify{{format=rcsc pes={spec.pes}}} (or use "
                    f"eie{{pes={rcsc.num_pes}}})")
    if rcsc.index_width != spec.index_bits:
        raise _fail(f"{where} has {rcsc.index_width}-bit relative indices but the PEs decode "
                    f"{spec.index_bits}-bit ones; run sparsify{{format=rcsc pes={spec.pes} "
                    f"index_bits={spec.index_bits}}}")
    if rcsc.ptr_width != spec.ptr_bits:
        raise _fail(f"{where} has {rcsc.ptr_width}-bit column pointers but the pointer SRAM "
                    f"holds {spec.ptr_bits}-bit ones; use eie{{ptr_bits={rcsc.ptr_width}}}")
    if book.bit_width > spec.weight_bits:
        raise _fail(f"{where} has a {book.bit_width}-bit codebook but the Spmat entries hold "
                    f"{spec.weight_bits}-bit indices; run share-weights{{bits="
                    f"{spec.weight_bits}}} instead")


def check_activations(op: MatmulOp, spec: EieSpec) -> None:
    """Refuse a lhs whose values are not symmetric per-tensor fixed-point integers."""
    ttype = op.lhs.type
    assert isinstance(ttype, TensorType)
    name = operand_name(op.lhs, "lhs")
    where = f"operand {name} of {op.name}"
    dtype = element_type_name(ttype.element_type)
    if dtype not in VALUE_TYPES:
        raise _fail(f"{op.name} has {dtype} operands; {spec.word_bits}-bit fixed-point "
                    f"values and their products need f64 (bit-exact) or f32 elements")
    encoding = ttype.encoding
    if not isinstance(encoding, QuantizedAttr):
        raise _fail(f"{where} is not {spec.word_bits}-bit fixed point (EIE's activations "
                    f"are); run {activation_pass(spec)} first")
    if encoding.is_per_channel or not encoding.is_symmetric:
        raise _fail(f"{where} must be quantized per tensor and symmetric (zero must stay "
                    f"zero for the nonzero detector); run {activation_pass(spec)} instead")
    if encoding.bit_width > spec.word_bits:
        raise _fail(f"{where} has {encoding.bit_width}-bit codes but the datapath is "
                    f"{spec.word_bits}-bit; run {activation_pass(spec)} instead")


def check_capacity(op: MatmulOp, spec: EieSpec, rows: int, cols: int) -> None:
    """Refuse layers larger than the activation register files and SRAM hold."""
    rows_per_pe = math.ceil(rows / spec.pes)
    if rows_per_pe > spec.act_regs:
        raise _fail(f"{op.name} has {rows} output neurons, {rows_per_pe} per PE, but the "
                    f"destination register file holds {spec.act_regs}; EIE would run it in "
                    f"batches of {spec.pes * spec.act_regs} outputs, which this model does "
                    "not: split the matmul along N")
    words = spec.act_sram_words()
    if math.ceil(cols / spec.pes) > words:
        raise _fail(f"{op.name} has {cols} input activations, more than the {spec.pes} "
                    f"activation SRAMs hold ({words} each)")


def lower_matmul(op: MatmulOp, spec: EieSpec) -> list[Operation]:
    """The EIE ops computing one matmul; refuses what EIE cannot run."""
    check_weights(op, spec)
    check_activations(op, spec)
    in_out = op.transpose_b is None
    encode = isa.EncodeOp(op.rhs, in_out)
    rows, cols = encode.matrix_shape()
    check_capacity(op, spec, rows, cols)
    zeros = isa.ZerosOp(op.result.type)  # type: ignore[arg-type]
    ops: list[Operation] = [encode, zeros]
    acc = zeros.result
    transpose_a = op.transpose_a is not None
    for column in range(cols):
        broadcast = isa.ColumnOp(op.lhs, encode.result, acc, column, transpose_a)
        ops.append(broadcast)
        acc = broadcast.result
    ops.append(isa.StoreOp(acc))
    return ops


@dataclass
class LowerMatmul(RewritePattern):
    spec: EieSpec

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        ops = lower_matmul(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerEiePass(EieSpec, ModulePass):
    """Lower every sparsec.matmul to EIE column broadcasts; options are the chip's spec.

    Example: `lower-eie{pes=64 fifo_depth=8}`.
    """

    name: ClassVar[str] = "lower-eie"

    def hardware(self) -> EieSpec:
        return EieSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(LowerMatmul(spec), apply_recursively=False).rewrite_module(op)
