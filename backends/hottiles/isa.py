"""The HotTiles machine's ISA: one op per worker (its batch of tiles), never per nonzero.

An SpMM C[M x N] = A[M x K] . B[K x N], A carrying a `#sparsec.tiled` partition for H hot
and C cold workers, lowers to:

    %acc0 = hottiles.zeros : tensor<MxNxT>
    %acc1 = hottiles.worker %A, %B, %acc0 {kind = "hot", index = 0 : i64} : (...) -> tensor<MxNxT>
    ...                                           // hot workers 0..H-1, cold workers 0..C-1
    %C    = hottiles.drain %accL : tensor<MxNxT> -> tensor<MxNxT>

Semantics (numpy / scipy):
- worker {kind, index}: the tiles the partition gives this worker (the DataStore's
  `<kernel>.<A>#tile_kind` / `#tile_worker`, in that order): acc += A_w . B, where A_w
  holds A's nonzeros in those tiles (a scipy CSR product, exact in the accumulator type).
- drain: every worker has run its tiles, concurrently, sharing DRAM: result = acc
  rounded to the result type. Its cycles are the workers' tile streams replayed on the
  Timeline (backends/hottiles/README.md); the worker ops only say what is done.
The program has H + C + 2 ops per SpMM whatever the tile count: a worker's tiles are
batched into its one instruction (NotreDame_www has thousands of non-empty tiles).
"""

from __future__ import annotations

from xdsl.dialects.builtin import IntegerAttr, StringAttr, TensorType, i64
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    prop_def,
    result_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp
from sparsec.dialects.formats import TiledAttr

KINDS = ("hot", "cold")


def tiled_encoding(value_type: Attribute) -> TiledAttr | None:
    """The `#sparsec.tiled` partition of a matrix type, None if it has none."""
    if not isinstance(value_type, TensorType) or value_type.get_num_dims() != 2:
        return None
    encoding = value_type.encoding
    return encoding if isinstance(encoding, TiledAttr) else None


def _shape(value: SSAValue) -> tuple[int, ...]:
    return tuple(value.type.get_shape())  # type: ignore[union-attr]


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """The output C, zero, in main memory: `acc = 0` (workers add partial rows to it)."""

    name = "hottiles.zeros"


@irdl_op_definition
class WorkerOp(IRDLOperation):
    """One worker runs its batch of tiles: acc += A_w . B (A_w: A's nonzeros in its tiles).

    `kind` is hot (a systolic array streaming each tile's non-empty rows as dense rows)
    or cold (a streaming CSR engine); `index` numbers the workers of that kind.
    """

    name = "hottiles.worker"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    kind = prop_def(StringAttr)
    index = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs `,` $acc attr-dict `:` "
        "`(` type($lhs) `,` type($rhs) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, acc: SSAValue, kind: str, index: int):
        super().__init__(operands=[lhs, rhs, acc], result_types=[acc.type],
                         properties={"kind": StringAttr(kind), "index": IntegerAttr(index, i64)})

    @property
    def kind_name(self) -> str:
        return self.kind.data

    @property
    def worker_index(self) -> int:
        return self.index.value.data

    @property
    def is_hot(self) -> bool:
        return self.kind_name == "hot"

    def verify_(self) -> None:
        if self.kind_name not in KINDS:
            raise VerifyException(f"hottiles.worker: kind must be hot or cold, got "
                                  f"'{self.kind_name}'")
        tiled = tiled_encoding(self.lhs.type)
        if tiled is None:
            raise VerifyException("hottiles.worker: lhs must be a matrix with a "
                                  f"#sparsec.tiled partition (run tile-hot-cold), got {self.lhs.type}")
        count = tiled.workers[0 if self.is_hot else 1]
        if not 0 <= self.worker_index < count:
            raise VerifyException(f"hottiles.worker: {self.kind_name} worker {self.worker_index} "
                                  f"does not exist: the partition of lhs is for {count} "
                                  f"{self.kind_name} workers")
        self._verify_shapes()

    def _verify_shapes(self) -> None:
        m, k = _shape(self.lhs)
        rhs = _shape(self.rhs)
        if len(rhs) != 2 or rhs[0] != k:
            raise VerifyException(f"hottiles.worker: rhs must be a {k}xN matrix (K = {k}), got "
                                  f"{self.rhs.type}")
        if self.lhs.type.element_type != self.rhs.type.element_type:  # type: ignore[union-attr]
            raise VerifyException("hottiles.worker: lhs and rhs must have one element type")
        if _shape(self.acc) != (m, rhs[1]):
            raise VerifyException(f"hottiles.worker: accumulator must be {m}x{rhs[1]} (M x N), "
                                  f"got {self.acc.type}")
        if self.result.type != self.acc.type:
            raise VerifyException("hottiles.worker: result type must equal the accumulator's")


@irdl_op_definition
class DrainOp(IRDLOperation):
    """Wait for every worker, then hand C over: result = acc in the result element type."""

    name = "hottiles.drain"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue):
        super().__init__(operands=[acc], result_types=[acc.type])

    def verify_(self) -> None:
        if self.result.type != self.acc.type:
            raise VerifyException("hottiles.drain: result type must equal the accumulator's")


Hottiles = Dialect("hottiles", [ZerosOp, WorkerOp, DrainOp], [])
