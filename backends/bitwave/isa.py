"""The BitWave ISA: one op per weight row tile, plus encoding and store.

A matmul Y[M x N] = X[M x K] . W[K x N] (W INT8 in bit columns, X INT8) lowers to:

    %acc0 = bitwave.zeros : tensor<MxNxT>
    %Wc = bitwave.encode %W : tensor<KxNxT, #q_bitcolumn>
    %acc1 = bitwave.tile %X, %Wc, %acc0 {index = 0, n = array<i64: 0, 32>,
              shape = array<i64: 8, 32, 16>, reload_act} : (...) -> tensor<MxNxT>
    ...                                               // one op per R output channels
    %Y = bitwave.store %accF {act_scale = s} : tensor<MxNxT> -> tensor<MxNxT>

Semantics (numpy): encode: the weight's codes held as a column mask per group and the
kept columns (`#sparsec.bitcolumn`); tile: for every magnitude column c = 0..6,
acc[:, n0:n1] += 2^c * (qX . (sign(W) * bit_c(|qW|))[:, n0:n1]), with qX the activation
codes and bit_c taken from the kept columns only (a dropped column is zero), i.e.
acc[:, n0:n1] = qX . qW[:, n0:n1] exactly; store: Y = act_scale * acc * w_scale[n],
rounded to the result type. Durations come from the data (backends/bitwave/model.py).
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import (
    DenseArrayBase,
    IntegerAttr,
    TensorType,
    UnitAttr,
    i64,
)
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
from sparsec.dialects.formats import BitColumnAttr, QuantizedAttr, layout_of


def bitcolumn_layout(ttype: Attribute) -> BitColumnAttr | None:
    """The bit-column layout of an 8-bit symmetric quantized matrix type, else None."""
    encoding = getattr(ttype, "encoding", None)
    if not isinstance(encoding, QuantizedAttr):
        return None
    layout = layout_of(encoding)
    return layout if isinstance(layout, BitColumnAttr) else None


def _ints(attr: DenseArrayBase) -> tuple[int, ...]:
    return tuple(int(v) for v in attr.get_values())


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """A zero accumulator (the PE columns' 24-bit accumulators, exact): `acc = 0`."""

    name = "bitwave.zeros"


@irdl_op_definition
class EncodeOp(IRDLOperation):
    """The weight in bit columns, as the weight SRAM holds it: per group of the
    `#sparsec.bitcolumn` layout an 8-bit column mask and the kept columns.

    Semantics (numpy): (col_mask, columns) = pack(codes of W); the result is the same
    tensor, now held as its bit columns.
    """

    name = "bitwave.encode"
    T: ClassVar = VarConstraint("T", base(TensorType))
    source = operand_def(T)
    result = result_def(T)
    assembly_format = "$source attr-dict `:` type($source)"

    def __init__(self, source: SSAValue):
        super().__init__(operands=[source], result_types=[source.type])

    def verify_(self) -> None:
        layout = bitcolumn_layout(self.source.type)
        if layout is None or layout.group_axis != 0:
            raise VerifyException(
                "bitwave.encode: operand must be a K x N matrix of type #sparsec.quantized<"
                "bits = 8, ..., symmetric, layout = #sparsec.bitcolumn<..., axis = 0, ...>>, "
                f"got {self.source.type}")


@irdl_op_definition
class TileOp(IRDLOperation):
    """One weight row tile on the PE array: acc[:, n0:n1] += X . W[:, n0:n1].

    `shape` = (lanes, rows, cols) of the PE array for this layer (n1 - n0 <= rows):
    rows hold the output channels n0..n1, columns the tokens in blocks of `cols`, lanes
    consecutive weights along K. `reload_act` reads the activations from DRAM again
    (they do not stay in the input SRAM). Computes with the kept columns of `weights`
    (the result of bitwave.encode), column by column.
    """

    name = "bitwave.tile"
    act = operand_def(TensorType)
    weights = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    index = prop_def(IntegerAttr)
    n = prop_def(DenseArrayBase)
    shape = prop_def(DenseArrayBase)
    reload_act = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$act `,` $weights `,` $acc attr-dict `:` "
        "`(` type($act) `,` type($weights) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, act: SSAValue, weights: SSAValue, acc: SSAValue, index: int,
                 n: tuple[int, int], shape: tuple[int, int, int], reload_act: bool):
        properties: dict[str, Attribute] = {
            "index": IntegerAttr(index, i64),
            "n": DenseArrayBase.from_list(i64, n),
            "shape": DenseArrayBase.from_list(i64, shape),
        }
        if reload_act:
            properties["reload_act"] = UnitAttr()
        super().__init__(operands=[act, weights, acc], result_types=[acc.type],
                         properties=properties)

    def channel_range(self) -> tuple[int, int]:
        values = _ints(self.n)
        if len(values) != 2 or not 0 <= values[0] < values[1]:
            raise VerifyException(f"bitwave.tile: n must be array<i64: lo, hi> with 0 <= lo "
                                  f"< hi, got {list(values)}")
        return values[0], values[1]

    def pe_shape(self) -> tuple[int, int, int]:
        values = _ints(self.shape)
        if len(values) != 3 or min(values) <= 0:
            raise VerifyException(f"bitwave.tile: shape must be array<i64: lanes, rows, "
                                  f"cols> of positive sizes, got {list(values)}")
        return values  # type: ignore[return-value]

    def verify_(self) -> None:
        n0, n1 = self.channel_range()
        _, rows, _ = self.pe_shape()
        if n1 - n0 > rows:
            raise VerifyException(f"bitwave.tile: {n1 - n0} output channels exceed the "
                                  f"{rows} PE rows")
        if self.result.type != self.acc.type:
            raise VerifyException("bitwave.tile: result type must equal the accumulator's")
        channels = self.acc.type.get_shape()[1]  # type: ignore[union-attr]
        if n1 > channels:
            raise VerifyException(f"bitwave.tile: channels {n0}:{n1} exceed the "
                                  f"accumulator's {channels}")
        if not isinstance(self.weights.owner, EncodeOp):
            raise VerifyException("bitwave.tile: weights must be the result of bitwave.encode")


@irdl_op_definition
class StoreOp(IRDLOperation):
    """Scale the exact accumulator back to values and write the result to DRAM.

    Semantics (numpy): result = round(act_scale * acc * w_scale[n]) to the result type,
    w_scale the weight's per-channel (or per-tensor) scales; `act_scale` absent means
    the activation's scale is dynamic (max |X| / 127, computed as X arrives).
    """

    name = "bitwave.store"
    acc = operand_def(TensorType)
    weights = operand_def(TensorType)
    act = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$acc `,` $weights `,` $act attr-dict `:` `(` type($acc) `,` "
                       "type($weights) `,` type($act) `)` `->` type($result)")

    def __init__(self, acc: SSAValue, weights: SSAValue, act: SSAValue, result_type: TensorType):
        super().__init__(operands=[acc, weights, act], result_types=[result_type])

    def verify_(self) -> None:
        if self.acc.type.get_shape() != self.result.type.get_shape():  # type: ignore[union-attr]
            raise VerifyException("bitwave.store: result shape must equal the accumulator's")


Bitwave = Dialect("bitwave", [ZerosOp, EncodeOp, TileOp, StoreOp], [])
