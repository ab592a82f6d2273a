"""ASADI's ISA: one op per batch of in-situ iterations (a band of diagonals, or of rows
in the CSR paradigm), never one per element.

Attention O = softmax(scale * Q K^T on the mask) V, heads on separate Tiles, lowers to:

    %q, %k, %v = asadi.write %Q, %K, %V : ...                 // into the ReRAM arrays
    %s0 = asadi.zeros : tensor<HxTxSxf32, #sparsec.diagonal<w = 64, diagonals = 80>>
    %s1 = asadi.sddmm %q, %k, %mask, %s0 {paradigm = "dia", first = 0 : i64,
            last = 16 : i64, scale = 0.17677669529663687 : f64} : (...) -> ...
    ...                                                       // one op per band
    %p = asadi.softmax %sN, %mask {paradigm = "dia"} : (...) -> ...
    %z0 = asadi.zeros : tensor<HxTxExf32>
    %z1 = asadi.spmm %p, %v, %mask, %z0 {paradigm = "dia", first = 0 : i64, last = 16 : i64}
    ...
    %O = asadi.read %zN : tensor<HxTxExf32> -> tensor<HxTxExf32>

`%mask` is the pattern param: with `paradigm = "dia"` its `#sparsec.diagonal` encoding
(and its layout in the DataStore) says which element each slot of diagonal k holds;
`first`/`last` select diagonals [first, last). With `paradigm = "csr"` they select rows
[first, last) of the mask, the CSR paradigm's iterations.

Semantics (numpy), r(k, j) being the row slot j of diagonal k holds:
    sddmm:   acc[h, r(k, j), j] = scale * sum_d Q[h, r(k, j), d] * K[h, j, d]
    softmax: P = masked softmax of round(scores) over the mask (the reference's)
    spmm:    for k in order: acc[h, r(k, j), :] += P[h, r(k, j), j] * V[h, j, :]
    read:    O = round(acc) to the result type
(CSR: the same values, row by row.) Durations come from the spec (README).
"""

from __future__ import annotations

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr, TensorType, f64, i64
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
    var_operand_def,
    var_result_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp
from sparsec.dialects.formats import DiagonalAttr

PARADIGMS = ("dia", "csr")


def diagonal_encoding(value: SSAValue) -> DiagonalAttr | None:
    """The `#sparsec.diagonal` encoding of a tensor value, if it has one."""
    ttype = value.type
    if isinstance(ttype, TensorType) and isinstance(ttype.encoding, DiagonalAttr):
        return ttype.encoding
    return None


def _shape(value: SSAValue, op: str, role: str) -> tuple[int, ...]:
    ttype = value.type
    if not isinstance(ttype, TensorType) or ttype.get_num_dims() not in (2, 3):
        raise VerifyException(f"{op}: {role} must be a [T, d] or [heads, T, d] tensor, got "
                              f"{ttype}")
    return tuple(ttype.get_shape())


def _mask_shape(value: SSAValue, op: str) -> tuple[int, int]:
    return _shape(value, op, "mask")[-2:]  # type: ignore[return-value]


class _BandOp(IRDLOperation):
    """Shared properties of the iteration batches: paradigm and [first, last)."""

    paradigm = prop_def(StringAttr)
    first = prop_def(IntegerAttr)
    last = prop_def(IntegerAttr)

    @property
    def band(self) -> tuple[int, int]:
        return self.first.value.data, self.last.value.data

    @property
    def is_dia(self) -> bool:
        return self.paradigm.data == "dia"

    def _verify_band(self, mask: SSAValue) -> None:
        kind = self.paradigm.data
        if kind not in PARADIGMS:
            raise VerifyException(f"{self.name}: paradigm must be dia or csr, got '{kind}'")
        first, last = self.band
        encoding = diagonal_encoding(mask)
        if kind == "dia" and encoding is None:
            raise VerifyException(f"{self.name}: the dia paradigm needs a mask with a "
                                  f"#sparsec.diagonal encoding, got {mask.type}")
        limit, what = _mask_shape(mask, self.name)[0], "rows"
        if kind == "dia" and encoding is not None:
            limit, what = encoding.count, "diagonals"
        if not 0 <= first < last <= limit:
            raise VerifyException(f"{self.name}: band [{first}, {last}) must lie in the mask's "
                                  f"{limit} {what}")


def _band_properties(paradigm: str, band: tuple[int, int]) -> dict[str, Attribute]:
    return {"paradigm": StringAttr(paradigm), "first": IntegerAttr(band[0], i64),
            "last": IntegerAttr(band[1], i64)}


@irdl_op_definition
class WriteOp(IRDLOperation):
    """Write run-time operands (Q, K, V, or scores) into the Tiles' ReRAM arrays: one
    array row (the same row of every array, one element of each dimension) per cycle.

    Semantics: results = sources (now resident in the crossbars).
    """

    name = "asadi.write"
    sources = var_operand_def(TensorType)
    results_ = var_result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$sources attr-dict `:` type($sources) `->` type($results_)"

    def __init__(self, sources: list[SSAValue]):
        super().__init__(operands=[sources], result_types=[[s.type for s in sources]])

    def verify_(self) -> None:
        if not self.sources:
            raise VerifyException("asadi.write: needs at least one operand")
        if [s.type for s in self.sources] != [r.type for r in self.results_]:
            raise VerifyException("asadi.write: result types must equal the operands' types")


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """A zero accumulator in the arrays: `acc = 0`."""

    name = "asadi.zeros"


@irdl_op_definition
class SddmmOp(_BandOp):
    """Iterations [first, last) of the in-situ Q K^T (ASADI Alg. 2, or Fig. 11(b) for
    CSR): per diagonal (row), every Q/K array multiplies its dimension of Q (shifted by
    the diagonal's offset, moved rows copied in) with K; the slices of the band go to
    accumulating arrays, are summed over the dimensions and scaled."""

    name = "asadi.sddmm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    mask = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(FloatAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs `,` $mask `,` $acc attr-dict `:` `(` type($lhs) `,` type($rhs) `,` "
        "type($mask) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, mask: SSAValue, acc: SSAValue,
                 paradigm: str, band: tuple[int, int], scale: float):
        super().__init__(operands=[lhs, rhs, mask, acc], result_types=[acc.type],
                         properties={**_band_properties(paradigm, band),
                                     "scale": FloatAttr(scale, f64)})

    def verify_(self) -> None:
        q = _shape(self.lhs, self.name, "lhs")
        k = _shape(self.rhs, self.name, "rhs")
        acc = _shape(self.acc, self.name, "accumulator")
        t, s = _mask_shape(self.mask, self.name)
        if self.result.type != self.acc.type:
            raise VerifyException("asadi.sddmm: result type must equal the accumulator's")
        if q[:-2] != k[:-2] or q[-1] != k[-1] or acc != (*q[:-2], q[-2], k[-2]):
            raise VerifyException(f"asadi.sddmm: Q {list(q)} and K {list(k)} must agree in "
                                  f"heads and d, the accumulator be {[*q[:-2], q[-2], k[-2]]}")
        if (t, s) != acc[-2:]:
            raise VerifyException(f"asadi.sddmm: mask {t}x{s} must match the scores "
                                  f"{acc[-2]}x{acc[-1]}")
        self._verify_band(self.mask)


@irdl_op_definition
class SoftmaxOp(IRDLOperation):
    """In-situ softmax of the scores on the mask (ASADI Sec. IV-D): row maximum, x - max,
    times log2 e, 2^x, row sum and division, on every diagonal (row) vector at once."""

    name = "asadi.softmax"
    input = operand_def(TensorType)
    mask = operand_def(TensorType)
    result = result_def(TensorType)
    paradigm = prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$input `,` $mask attr-dict `:` `(` type($input) `,` type($mask) `)` `->` "
        "type($result)"
    )

    def __init__(self, value: SSAValue, mask: SSAValue, paradigm: str):
        super().__init__(operands=[value, mask], result_types=[value.type],
                         properties={"paradigm": StringAttr(paradigm)})

    @property
    def is_dia(self) -> bool:
        return self.paradigm.data == "dia"

    def verify_(self) -> None:
        if self.paradigm.data not in PARADIGMS:
            raise VerifyException(f"asadi.softmax: paradigm must be dia or csr, got "
                                  f"'{self.paradigm.data}'")
        scores = _shape(self.input, self.name, "input")
        if _mask_shape(self.mask, self.name) != scores[-2:]:
            raise VerifyException(f"asadi.softmax: mask must be {scores[-2]}x{scores[-1]} "
                                  "(the scores' T x S)")
        if self.is_dia and diagonal_encoding(self.mask) is None:
            raise VerifyException("asadi.softmax: the dia paradigm needs a mask with a "
                                  f"#sparsec.diagonal encoding, got {self.mask.type}")
        if self.result.type != self.input.type:
            raise VerifyException("asadi.softmax: result type must equal the input's")


@irdl_op_definition
class SpmmOp(_BandOp):
    """Iterations [first, last) of the in-situ P V (ASADI Alg. 1, or Fig. 9(b) for CSR):
    per diagonal, every V array multiplies its column of V with the diagonal's vector
    (a column of P aligned with a row of V), moves the products to their rows
    (decompression) and adds them to its column of the output."""

    name = "asadi.spmm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    mask = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs `,` $mask `,` $acc attr-dict `:` `(` type($lhs) `,` type($rhs) `,` "
        "type($mask) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, mask: SSAValue, acc: SSAValue,
                 paradigm: str, band: tuple[int, int]):
        super().__init__(operands=[lhs, rhs, mask, acc], result_types=[acc.type],
                         properties=_band_properties(paradigm, band))

    def verify_(self) -> None:
        p = _shape(self.lhs, self.name, "lhs")
        v = _shape(self.rhs, self.name, "rhs")
        acc = _shape(self.acc, self.name, "accumulator")
        if self.result.type != self.acc.type:
            raise VerifyException("asadi.spmm: result type must equal the accumulator's")
        if p[:-2] != v[:-2] or p[-1] != v[-2] or acc != (*p[:-1], v[-1]):
            raise VerifyException(f"asadi.spmm: P {list(p)} and V {list(v)} must agree in "
                                  f"heads and S, the accumulator be {[*p[:-1], v[-1]]}")
        if _mask_shape(self.mask, self.name) != p[-2:]:
            raise VerifyException(f"asadi.spmm: mask must be {p[-2]}x{p[-1]} (P's T x S)")
        self._verify_band(self.mask)


@irdl_op_definition
class ReadOp(IRDLOperation):
    """Read the output out of the arrays, one row per cycle: result = round(acc) to the
    result element type."""

    name = "asadi.read"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue, result_type: TensorType):
        super().__init__(operands=[acc], result_types=[result_type])

    def verify_(self) -> None:
        acc, result = self.acc.type, self.result.type
        assert isinstance(acc, TensorType) and isinstance(result, TensorType)
        if acc.get_shape() != result.get_shape() or acc.element_type != result.element_type:
            raise VerifyException("asadi.read: result must have the accumulator's shape and "
                                  "element type")


Asadi = Dialect("asadi", [WriteOp, ZerosOp, SddmmOp, SoftmaxOp, SpmmOp, ReadOp], [])
