"""EIE's ISA: one op per broadcast activation column, for all PEs (never one per nonzero).

A kernel `Y[T x N] = X[T x K] . W[K x N]` runs as T sparse matrix-vector products
b_t = M . a_t, where a_t is row t of X and M (N x K, (out, in)) is the weight matrix EIE
stores: W^T, or W itself when the matmul has `transpose_b` (W given as N x K). It
lowers to:

    %Wp   = eie.encode %W {in_out} : tensor<KxNxT, #codebook<rcsc>>   // into the PEs' SRAMs
    %acc0 = eie.zeros : tensor<TxNxT>                                  // destination registers
    %acc1 = eie.column %X, %Wp, %acc0 {column = 0 : i64} : (...) -> tensor<TxNxT>
    ...                                                                // one op per column k < K
    %Y    = eie.store %accK : tensor<TxNxT> -> tensor<TxNxT>

Semantics (numpy, integers exact; backends/eie/README.md has the fixed-point rules):
- encode: pack M in `#sparsec.rcsc` (rows interleaved over the PEs, 4-bit relative row
  indices with padding entries) with 4-bit codebook indices; decode every PE's entries
  from the packed buffers (column pointers, relative indices, codebook lookups).
- column k: for every input vector t whose activation a_t[k] is nonzero (the leading
  nonzero detector skips zeros), broadcast it; every PE p multiplies it by the entries
  of its slice of column k (padding included) and accumulates into its rows, saturating
  at the accumulator's range: acc[t, i] = sat(acc[t, i] + a_t[k] * M[i, k]).
- store: the accumulators as values of the result element type.
The cycles of the column ops come from simulating the PEs' activation FIFOs.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import IntegerAttr, TensorType, UnitAttr, i64
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    VarConstraint,
    base,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp
from sparsec.dialects.formats import CodebookAttr, RcscAttr


def eie_layout(ttype: Attribute) -> tuple[CodebookAttr, RcscAttr] | None:
    """(codebook, rcsc) when `ttype` is a matrix in EIE's format, else None."""
    if not isinstance(ttype, TensorType) or ttype.get_num_dims() != 2:
        return None
    encoding = ttype.encoding
    if not isinstance(encoding, CodebookAttr):
        return None
    layout = encoding.layout()
    if not isinstance(layout, RcscAttr):
        return None
    return encoding, layout


def _shape(value: SSAValue) -> tuple[int, ...]:
    return tuple(value.type.get_shape())  # type: ignore[union-attr]


@irdl_op_definition
class EncodeOp(IRDLOperation):
    """Load a weight-shared rcsc matrix into the PEs' Spmat and Ptr SRAMs (offline: no
    cycles). `in_out` says the operand is (in, out) = K x N, so the (out, in) matrix EIE
    stores is its transpose; without it the operand is already N x K."""

    name = "eie.encode"
    T: ClassVar = VarConstraint("T", base(TensorType))
    source = operand_def(T)
    result = result_def(T)
    in_out = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source)"

    def __init__(self, source: SSAValue, in_out: bool):
        properties: dict[str, Attribute] = {"in_out": UnitAttr()} if in_out else {}
        super().__init__(operands=[source], result_types=[source.type], properties=properties)

    def matrix_shape(self) -> tuple[int, int]:
        """(N, K): rows (output neurons) and columns (input activations) of M."""
        rows, cols = _shape(self.source)
        return (cols, rows) if self.in_out is not None else (rows, cols)

    def verify_(self) -> None:
        if eie_layout(self.source.type) is None:
            raise VerifyException(
                "eie.encode: operand must be a matrix with a #sparsec.codebook<bits = b, "
                f"layout = #sparsec.rcsc<...>> encoding, got {self.source.type}")


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """Cleared destination activation registers, one row per input vector: `acc = 0`."""

    name = "eie.zeros"


@irdl_op_definition
class ColumnOp(IRDLOperation):
    """Broadcast activation `column` of every input vector (where nonzero) to all PEs.

    X is T x K (rows are input vectors), or K x T with `transpose_a`; the weights are
    the result of eie.encode; acc is T x N.
    """

    name = "eie.column"
    activations = operand_def(TensorType)
    weights = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    column = prop_def(IntegerAttr)
    transpose_a = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$activations `,` $weights `,` $acc attr-dict `:` "
        "`(` type($activations) `,` type($weights) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, activations: SSAValue, weights: SSAValue, acc: SSAValue, column: int,
                 transpose_a: bool = False):
        properties: dict[str, Attribute] = {"column": IntegerAttr(column, i64)}
        if transpose_a:
            properties["transpose_a"] = UnitAttr()
        super().__init__(operands=[activations, weights, acc], result_types=[acc.type],
                         properties=properties)

    @property
    def index(self) -> int:
        return self.column.value.data

    def vectors_and_length(self) -> tuple[int, int]:
        """(T, K): input vectors and their length."""
        rows, cols = _shape(self.activations)
        return (cols, rows) if self.transpose_a is not None else (rows, cols)

    def verify_(self) -> None:
        if self.result.type != self.acc.type:
            raise VerifyException("eie.column: result type must equal the accumulator's")
        owner = self.weights.owner
        if not isinstance(owner, EncodeOp):
            raise VerifyException("eie.column: weights must be the result of eie.encode")
        vectors, length = self.vectors_and_length()
        rows, cols = owner.matrix_shape()
        if length != cols:
            raise VerifyException(f"eie.column: input vectors have {length} activations but "
                                  f"the weight matrix has {cols} columns")
        if _shape(self.acc) != (vectors, rows):
            raise VerifyException(f"eie.column: accumulator must be {vectors}x{rows} (vectors "
                                  f"x output neurons), got {self.acc.type}")
        if not 0 <= self.index < cols:
            raise VerifyException(f"eie.column: column {self.index} is out of range for "
                                  f"{cols} columns")


@irdl_op_definition
class StoreOp(IRDLOperation):
    """Write the destination registers out: result = acc in the result element type."""

    name = "eie.store"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue):
        super().__init__(operands=[acc], result_types=[acc.type])

    def verify_(self) -> None:
        if self.result.type != self.acc.type:
            raise VerifyException("eie.store: result type must equal the accumulator's")


Eie = Dialect("eie", [EncodeOp, ZerosOp, ColumnOp, StoreOp], [])
