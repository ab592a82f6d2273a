"""SIGMA's ISA: one op per stationary iteration of the controller, plus the bitmap packing.

A GEMM C[M x N] = A[M x K] . B[K x N] lowers to:

    %acc0 = sigma.zeros : tensor<MxNxT>
    %S = sigma.pack %A {stationary = "a"} : tensor<MxKxT> -> tensor<MxKxT, #sparsec.bitmap<order = row>>
    %acc1 = sigma.iteration %S, %B, %acc0 {index = 0 : i64, stationary = "a",
              vectors = array<i64: v0, v1>, k = array<i64: k0, k1>} : (...) -> tensor<MxNxT>
    ...                                                   // one op per iteration
    %C = sigma.store %accF : tensor<MxNxT> -> tensor<MxNxT>

S is the stationary matrix as vectors x K: A itself (`stationary = "a"`, STONNE's
MK_STA_KN_STR) or B^T (`"b"`, MK_STR_KN_STA); the other operand streams. Semantics
(numpy), with T the streaming matrix as n_str x K:

    pack:      S = transpose ? src^T : src; packed = bitmap(S)   (compiler/storage.py)
    iteration: P = S[v0:v1, k0:k1] (rebuilt from the bitmap and the packed values)
               "a": acc[v0:v1, :] += P @ T[:, k0:k1]^T      "b": acc[:, v0:v1] += (P @ T[:, k0:k1]^T)^T
    store:     round(acc) to the result element type

`fold` marks an iteration continuing a vector longer than the multipliers (a partial sum
is read back). Durations come from the target and the real bitmap (README.md).
"""

from __future__ import annotations

import functools

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp
from sparsec.dialects.formats import BitmapAttr, layout_of

OPERANDS = ("a", "b")


@functools.lru_cache(maxsize=8192)
def _range(values: tuple[int, int]) -> DenseArrayBase:
    """A half-open range attribute; cached (building DenseArrayBase is slow)."""
    return DenseArrayBase.from_list(i64, values)


@functools.lru_cache(maxsize=8192)
def _bounds(attr: DenseArrayBase) -> tuple[int, ...]:
    return tuple(int(v) for v in attr.get_values())


def _checked_range(attr: DenseArrayBase, what: str, op: str) -> tuple[int, int]:
    values = _bounds(attr)
    if len(values) != 2 or not 0 <= values[0] < values[1]:
        raise VerifyException(f"{op}: {what} must be array<i64: lo, hi> with 0 <= lo < hi, "
                              f"got {list(values)}")
    return values[0], values[1]


def bitmap_type(source: TensorType, transpose: bool) -> TensorType:
    """tensor<V x K x T, #sparsec.bitmap<order = row>> for S = source (or its transpose)."""
    rows, cols = source.get_shape()
    shape = (cols, rows) if transpose else (rows, cols)
    return TensorType(source.element_type, shape, BitmapAttr("row"))


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """A zero accumulator in the global buffer: `acc = 0`."""

    name = "sigma.zeros"


@irdl_op_definition
class PackOp(IRDLOperation):
    """Compress the stationary operand into SIGMA's bitmap format, once, before the GEMM.

    Semantics: S = transpose ? source^T : source (vectors x K); result = bitmap(S) in row
    order: one bit per element, the nonzeros packed row after row.
    """

    name = "sigma.pack"
    source = operand_def(TensorType)
    result = result_def(TensorType)
    stationary = prop_def(StringAttr)
    transpose = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source) `->` type($result)"

    def __init__(self, source: SSAValue, stationary: str, transpose: bool):
        properties: dict[str, Attribute] = {"stationary": StringAttr(stationary)}
        if transpose:
            properties["transpose"] = UnitAttr()
        super().__init__(operands=[source], properties=properties,
                         result_types=[bitmap_type(source.type, transpose)])  # type: ignore[arg-type]

    def verify_(self) -> None:
        if self.stationary.data not in OPERANDS:
            raise VerifyException(f"sigma.pack: stationary must be one of {OPERANDS}, got "
                                  f"'{self.stationary.data}'")
        expected = bitmap_type(self.source.type, self.transpose is not None)  # type: ignore[arg-type]
        if self.result.type != expected:
            raise VerifyException(f"sigma.pack: result must be {expected} (the stationary "
                                  f"matrix as vectors x K in bitmap row order), got "
                                  f"{self.result.type}")


@irdl_op_definition
class IterationOp(IRDLOperation):
    """One stationary iteration: configure the DN and FAN for the VNs of S[v0:v1, k0:k1],
    distribute them, stream every vector of the other operand, reduce, drain."""

    name = "sigma.iteration"
    stationary_matrix = operand_def(TensorType)
    streaming = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    index = prop_def(IntegerAttr)
    stationary = prop_def(StringAttr)
    vectors = prop_def(DenseArrayBase)
    k = prop_def(DenseArrayBase)
    fold = opt_prop_def(UnitAttr)
    transpose_streaming = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$stationary_matrix `,` $streaming `,` $acc attr-dict `:` "
        "`(` type($stationary_matrix) `,` type($streaming) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, stationary_matrix: SSAValue, streaming: SSAValue, acc: SSAValue,
                 index: int, stationary: str, vectors: tuple[int, int], k: tuple[int, int],
                 fold: bool = False, transpose_streaming: bool = False):
        properties: dict[str, Attribute] = {
            "index": IntegerAttr(index, i64), "stationary": StringAttr(stationary),
            "vectors": _range(vectors), "k": _range(k),
        }
        if fold:
            properties["fold"] = UnitAttr()
        if transpose_streaming:
            properties["transpose_streaming"] = UnitAttr()
        super().__init__(operands=[stationary_matrix, streaming, acc], result_types=[acc.type],
                         properties=properties)

    def ranges(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """(vectors, k) half-open ranges of S this iteration maps."""
        return (_checked_range(self.vectors, "vectors", self.name),
                _checked_range(self.k, "k", self.name))

    def streaming_matrix_shape(self) -> tuple[int, int]:
        """(n_str, K) of the streaming matrix T as the hardware sees it."""
        rows, cols = self.streaming.type.get_shape()  # type: ignore[union-attr]
        a_stationary = self.stationary.data == "a"
        # T = B^T (B is K x N) when A is stationary, T = A (M x K) when B is.
        flip = (self.transpose_streaming is not None) != a_stationary
        return (cols, rows) if flip else (rows, cols)

    def verify_(self) -> None:
        (v0, v1), (k0, k1) = self.ranges()
        if self.stationary.data not in OPERANDS:
            raise VerifyException(f"sigma.iteration: stationary must be one of {OPERANDS}, "
                                  f"got '{self.stationary.data}'")
        if self.result.type != self.acc.type:
            raise VerifyException("sigma.iteration: result type must equal the accumulator's")
        packed = self.stationary_matrix.type
        if not isinstance(packed, TensorType) or not isinstance(layout_of(packed.encoding),
                                                                BitmapAttr):
            raise VerifyException("sigma.iteration: the stationary matrix must be "
                                  "#sparsec.bitmap-encoded (the result of sigma.pack)")
        if not isinstance(self.stationary_matrix.owner, PackOp):
            raise VerifyException("sigma.iteration: the stationary matrix must be the "
                                  "result of sigma.pack")
        vectors, width = packed.get_shape()
        if v1 > vectors or k1 > width:
            raise VerifyException(f"sigma.iteration: vectors={v0}:{v1} k={k0}:{k1} exceed "
                                  f"the stationary matrix {vectors}x{width}")
        n_str, k_str = self.streaming_matrix_shape()
        if k_str != width:
            raise VerifyException(f"sigma.iteration: the streaming operand has K={k_str}, "
                                  f"the stationary matrix K={width}")
        rows, cols = self.acc.type.get_shape()  # type: ignore[union-attr]
        expected = (vectors, n_str) if self.stationary.data == "a" else (n_str, vectors)
        if (rows, cols) != expected:
            raise VerifyException(f"sigma.iteration: accumulator {rows}x{cols} does not "
                                  f"match the GEMM ({expected[0]}x{expected[1]})")


@irdl_op_definition
class StoreOp(IRDLOperation):
    """The GEMM's output: result = round(acc) to the result element type."""

    name = "sigma.store"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue):
        super().__init__(operands=[acc], result_types=[acc.type])

    def verify_(self) -> None:
        if self.result.type != self.acc.type:
            raise VerifyException("sigma.store: result type must equal the accumulator's")


Sigma = Dialect("sigma", [ZerosOp, PackOp, IterationOp, StoreOp], [])
