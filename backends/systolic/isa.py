"""The systolic array's ISA: one op per unit of work the array schedules (a fold, a fill).

A GEMM C[M x N] = A[M x K] . B[K x N] lowers to:

    %acc0 = systolic.zeros : tensor<MxNxT>
    systolic.prefetch %a {operand = "ifmap", words = M*K, first_use = f} : tensor<..>
    systolic.prefetch %b {operand = "filter", words = K*N, first_use = f} : tensor<..>
    %acc1 = systolic.fold %a, %b, %acc0 {index = 0, m = array<i64: m0, m1>,
                                         n = array<i64: n0, n1>, k = array<i64: k0, k1>}
    ...                                                      // one op per fold
    %c = systolic.writeback %accF {words = W} : tensor<MxNxT> -> tensor<MxNxT>

Semantics (numpy): fold: acc[m0:m1, n0:n1] += A[m0:m1, k0:k1] @ B[k0:k1, n0:n1] with
the operands optionally transposed (`transpose_a`, `transpose_b`); writeback rounds the
accumulator to the result type. Durations come from the target spec and the fold's
shape (backends/systolic/README.md); the IR only says what is done.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
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
    var_operand_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp, ActivationPruneOp
from sparsec.backends.common.isa import KvLoadOp as CommonKvLoadOp
from sparsec.dialects.sparsec import shared_i64

OPERANDS = ("ifmap", "filter")
DATAFLOWS = ("os", "ws", "is")

Range = tuple[int, int]


def _tiles(extent: int, size: int) -> Iterator[Range]:
    for start in range(0, extent, size):
        yield start, min(extent, start + size)


def grid_tiles(m: int, n: int, k: int, rows: int, cols: int,
               dataflow: str) -> Iterator[tuple[Range, Range, Range]]:
    """(m, n, k) ranges of every fold of an m x n x k GEMM on a rows x cols array, in
    SCALE-Sim's order (column folds outer): os tiles m x n (k in time), ws tiles k x n
    (m in time), is tiles k x m (n in time)."""
    if dataflow == "os":
        for nt in _tiles(n, cols):
            for mt in _tiles(m, rows):
                yield mt, nt, (0, k)
    elif dataflow == "ws":
        for nt in _tiles(n, cols):
            for kt in _tiles(k, rows):
                yield (0, m), nt, kt
    else:
        for mt in _tiles(m, cols):
            for kt in _tiles(k, rows):
                yield mt, (0, n), kt


@functools.lru_cache(maxsize=4096)
def _range(values: tuple[int, int]) -> DenseArrayBase:
    """A fold's half-open range; cached, since folds share few distinct ranges and
    building a DenseArrayBase dominates the cost of lowering large GEMMs."""
    return DenseArrayBase.from_list(i64, values)


@functools.lru_cache(maxsize=8192)
def _bounds(attr: DenseArrayBase, what: str, op: str) -> tuple[int, int]:
    """(lo, hi) of a fold range; cached, since every fold's ranges are read by the
    verifier, the machine and the interpreter, and decoding a DenseArrayBase is slow."""
    values = tuple(attr.get_values())
    if len(values) != 2 or not 0 <= values[0] < values[1]:
        raise VerifyException(f"{op}: {what} must be array<i64: lo, hi> with 0 <= lo < hi, "
                              f"got {list(values)}")
    return values[0], values[1]  # type: ignore[return-value]


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """A zero accumulator in the array's output SRAM: `acc = 0`."""

    name = "systolic.zeros"


@irdl_op_definition
class PrefetchOp(IRDLOperation):
    """Fill an operand SRAM from DRAM before the first fold needs it.

    `words` is the operand's size in array words; `first_use` the cycle, counted from
    the first fold's start, at which the first fold first reads this operand.
    """

    name = "systolic.prefetch"
    source = operand_def(TensorType)
    operand = prop_def(StringAttr)
    words = prop_def(IntegerAttr)
    first_use = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source)"

    def __init__(self, source: SSAValue, operand: str, words: int, first_use: int):
        super().__init__(operands=[source], properties={
            "operand": StringAttr(operand),
            "words": shared_i64(words),
            "first_use": shared_i64(first_use),
        })

    def verify_(self) -> None:
        if self.operand.data not in OPERANDS:
            raise VerifyException(f"systolic.prefetch: operand must be one of {OPERANDS}, "
                                  f"got '{self.operand.data}'")
        if self.words.value.data <= 0 or self.first_use.value.data < 0:
            raise VerifyException("systolic.prefetch: words must be > 0 and first_use >= 0")


@irdl_op_definition
class FoldOp(IRDLOperation):
    """One fold: the array computes acc[m, n] += A[m, k] . B[k, n] for one tile.

    Which of m, n, k are spatial depends on the dataflow (os: m x n on the array, k in
    time; ws: k x n on the array, m in time; is: k x m on the array, n in time).
    """

    name = "systolic.fold"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    index = prop_def(IntegerAttr)
    m = prop_def(DenseArrayBase)
    n = prop_def(DenseArrayBase)
    k = prop_def(DenseArrayBase)
    head = opt_prop_def(IntegerAttr)
    transpose_a = opt_prop_def(UnitAttr)
    transpose_b = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs `,` $acc attr-dict `:` "
        "`(` type($lhs) `,` type($rhs) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, acc: SSAValue, index: int,
                 m: tuple[int, int], n: tuple[int, int], k: tuple[int, int],
                 transpose_a: bool = False, transpose_b: bool = False,
                 head: int | None = None):
        properties: dict[str, Attribute] = {
            "index": shared_i64(index), "m": _range(m), "n": _range(n), "k": _range(k),
        }
        if head is not None:
            properties["head"] = shared_i64(head)
        if transpose_a:
            properties["transpose_a"] = UnitAttr()
        if transpose_b:
            properties["transpose_b"] = UnitAttr()
        super().__init__(operands=[lhs, rhs, acc], result_types=[acc.type],
                         properties=properties)

    def tile(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(m, n, k) half-open ranges of this fold."""
        return (_bounds(self.m, "m", self.name), _bounds(self.n, "n", self.name),
                _bounds(self.k, "k", self.name))

    @property
    def head_index(self) -> int | None:
        return self.head.value.data if self.head is not None else None

    @property
    def fold_index(self) -> int:
        """Position of this fold in its GEMM's fold sequence (0 = the first)."""
        return self.index.value.data

    @property
    def rhs_head_index(self) -> int | None:
        """The rhs head this fold reads: query head h reads key/value head h // group
        when the rhs has fewer heads (grouped-query attention)."""
        if self.head is None:
            return None
        heads = self.acc.type.get_shape()[0]  # type: ignore[union-attr]
        rhs_heads = self.rhs.type.get_shape()[0]  # type: ignore[union-attr]
        return self.head_index // (heads // rhs_heads)

    def verify_(self) -> None:
        _verify_fold(self)


def _verify_fold(self: FoldOp | FoldsOp) -> None:
    """The checks every fold instruction passes: tile inside the operands, heads."""
    (m0, m1), (n0, n1), (k0, k1) = self.tile()
    full_shape = self.acc.type.get_shape()  # type: ignore[union-attr]
    if self.result.type != self.acc.type:
        raise VerifyException(f"{self.name}: result type must equal the accumulator's")
    if (self.head is None) != (len(full_shape) == 2):
        raise VerifyException(f"{self.name}: rank-3 (multi-head) operands need `head`, "
                              "rank-2 ones take none")
    if self.head is not None and not 0 <= self.head_index < full_shape[0]:
        raise VerifyException(f"{self.name}: head {self.head_index} is out of range for "
                              f"{full_shape[0]} heads")
    rhs_shape = self.rhs.type.get_shape()  # type: ignore[union-attr]
    if self.head is not None and full_shape[0] % rhs_shape[0]:
        raise VerifyException(f"{self.name}: rhs heads ({rhs_shape[0]}) must divide the "
                              f"accumulator's ({full_shape[0]}) (grouped-query heads)")
    acc_shape = full_shape[-2:]
    if m1 > acc_shape[0] or n1 > acc_shape[1]:
        raise VerifyException(f"{self.name}: tile m={m0}:{m1} n={n0}:{n1} exceeds the "
                              f"accumulator {acc_shape[0]}x{acc_shape[1]}")
    a = self.lhs.type.get_shape()[-2:]  # type: ignore[union-attr]
    k_extent = a[0] if self.transpose_a else a[1]
    if k1 > k_extent:
        raise VerifyException(f"{self.name}: k={k0}:{k1} exceeds the operand's K="
                              f"{k_extent}")


class GridFold:
    """One fold of a `systolic.folds` grid, with the reading interface of `FoldOp` (its
    tile, head and operands), so the machine accounts both the same way.

    What every fold of a grid shares (operands, heads, transposes) is read from the op once
    per grid by `FoldsOp.folds`: xDSL's property lookups, made per fold, cost more than
    the accounting itself (a 2048^3 GEMM on 32x32 is 4,096 folds). Anything else is read
    from the grid op."""

    __slots__ = ("grid", "fold_index", "bounds", "lhs", "rhs", "acc", "head", "head_index",
                 "rhs_head_index", "transpose_a", "transpose_b")

    def __init__(self, grid: FoldsOp, fold_index: int, bounds: tuple[Range, Range, Range],
                 shared: dict[str, Any]):
        self.grid = grid
        self.fold_index = fold_index
        self.bounds = bounds
        for name, value in shared.items():
            setattr(self, name, value)

    def tile(self) -> tuple[Range, Range, Range]:
        return self.bounds

    def __getattr__(self, name: str):
        return getattr(self.grid, name)


@irdl_op_definition
class FoldsOp(IRDLOperation):
    """Every fold of one GEMM (one head) in SCALE-Sim's order: the same instructions as
    the `systolic.fold` ops it stands for, written as one loop instruction.

    The lowering writes `systolic.fold` ops one by one up to `lowering.UNROLL_FOLDS`
    folds and one `systolic.folds` beyond, which keeps a large GEMM's program short (a
    2048^3 GEMM on 32x32 is 4,096 folds). `array_shape` and `dataflow` fix the tile grid
    (`grid_tiles`); fold i of the grid is instruction `index + i`.
    """

    name = "systolic.folds"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    index = prop_def(IntegerAttr)
    m = prop_def(DenseArrayBase)
    n = prop_def(DenseArrayBase)
    k = prop_def(DenseArrayBase)
    array_shape = prop_def(DenseArrayBase)
    dataflow = prop_def(StringAttr)
    head = opt_prop_def(IntegerAttr)
    transpose_a = opt_prop_def(UnitAttr)
    transpose_b = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs `,` $acc attr-dict `:` "
        "`(` type($lhs) `,` type($rhs) `,` type($acc) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, acc: SSAValue, index: int,
                 m: int, n: int, k: int, rows: int, cols: int, dataflow: str,
                 transpose_a: bool = False, transpose_b: bool = False,
                 head: int | None = None):
        properties: dict[str, Attribute] = {
            "index": shared_i64(index), "m": _range((0, m)), "n": _range((0, n)),
            "k": _range((0, k)), "array_shape": _range((rows, cols)),
            "dataflow": StringAttr(dataflow),
        }
        if head is not None:
            properties["head"] = shared_i64(head)
        if transpose_a:
            properties["transpose_a"] = UnitAttr()
        if transpose_b:
            properties["transpose_b"] = UnitAttr()
        super().__init__(operands=[lhs, rhs, acc], result_types=[acc.type],
                         properties=properties)

    tile = FoldOp.tile
    """(m, n, k) ranges of the whole GEMM the grid covers."""

    def folds(self) -> Iterator[GridFold]:
        """The folds of the grid, in order, each readable like a `systolic.fold`; made
        one at a time (a 100000 x 100000 GEMM on a 32 x 32 array has ten million)."""
        (_, m), (_, n), (_, k) = self.tile()
        rows, cols = (int(v) for v in self.array_shape.get_values())
        first = self.index.value.data
        shared = {"lhs": self.lhs, "rhs": self.rhs, "acc": self.acc, "head": self.head,
                  "head_index": self.head_index, "rhs_head_index": self.rhs_head_index,
                  "transpose_a": self.transpose_a, "transpose_b": self.transpose_b}
        return (GridFold(self, first + i, bounds, shared) for i, bounds in
                enumerate(grid_tiles(m, n, k, rows, cols, self.dataflow.data)))

    head_index = FoldOp.head_index
    rhs_head_index = FoldOp.rhs_head_index

    def verify_(self) -> None:
        _verify_fold(self)
        extents = [_bounds(a, w, self.name)[0] for a, w in ((self.m, "m"), (self.n, "n"),
                                                              (self.k, "k"))]
        if any(extents):
            raise VerifyException("systolic.folds: m, n and k must start at 0 (the grid "
                                  "covers the whole GEMM)")
        array = tuple(self.array_shape.get_values())
        if len(array) != 2 or min(array) < 1:
            raise VerifyException(f"systolic.folds: array_shape must be array<i64: rows, cols> "
                                  f"with both >= 1, got {list(array)}")
        if self.dataflow.data not in DATAFLOWS:
            raise VerifyException(f"systolic.folds: dataflow must be one of "
                                  f"{', '.join(DATAFLOWS)}, got {self.dataflow.data!r}")


@irdl_op_definition
class WritebackOp(IRDLOperation):
    """Drain the output SRAM to DRAM: result = round(acc) in the result element type.

    `words` counts every word the array wrote to the output SRAM (partial sums of
    each K fold included), which is what the write buffer drains.
    """

    name = "systolic.writeback"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    words = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue, words: int):
        super().__init__(operands=[acc], result_types=[acc.type],
                         properties={"words": shared_i64(words)})

    def verify_(self) -> None:
        if self.result.type != self.acc.type:
            raise VerifyException("systolic.writeback: result type must equal the "
                                  "accumulator's")


class _VectorOp(IRDLOperation):
    """Shared mask properties of the ops the vector unit runs on attention scores;
    `start` places the query rows of a causal mask (decoder attention over a KV cache)."""

    mask = opt_prop_def(StringAttr)
    window = opt_prop_def(IntegerAttr)
    start = opt_prop_def(IntegerAttr)

    @property
    def start_position(self) -> int | None:
        return self.start.value.data if self.start is not None else None

    @property
    def mask_kind(self) -> str:
        return self.mask.data if self.mask is not None else "none"

    @property
    def window_size(self) -> int | None:
        return self.window.value.data if self.window is not None else None


def _mask_props(mask: str, window: int | None, start: int | None = None
                ) -> dict[str, Attribute]:
    props: dict[str, Attribute] = {}
    if mask != "none":
        props["mask"] = StringAttr(mask)
    if window is not None:
        props["window"] = shared_i64(window)
    if start is not None:
        props["start"] = shared_i64(start)
    return props


@irdl_op_definition
class EpilogueOp(_VectorOp):
    """The vector unit scales and masks the accumulated scores before they drain:
    acc = scale * acc where mask(i, j), 0 elsewhere (SDDMM's sampling)."""

    name = "systolic.epilogue"
    acc = operand_def(TensorType)
    pattern = var_operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(FloatAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$acc (`pattern` $pattern^)? attr-dict `:` `(` type($acc) "
                       "(`,` type($pattern)^)? `)` `->` type($result)")

    def __init__(self, acc: SSAValue, scale: float, mask: str, window: int | None,
                 pattern: SSAValue | None, start: int | None = None):
        super().__init__(operands=[acc, [pattern] if pattern is not None else []],
                         result_types=[acc.type],
                         properties={"scale": FloatAttr(scale, f64),
                                     **_mask_props(mask, window, start)})


@irdl_op_definition
class SoftmaxOp(_VectorOp):
    """The vector unit's masked row softmax (max, exp and sum, normalize: 3 passes)."""

    name = "systolic.softmax"
    input = operand_def(TensorType)
    pattern = var_operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input (`pattern` $pattern^)? attr-dict `:` `(` type($input) "
                       "(`,` type($pattern)^)? `)` `->` type($result)")

    def __init__(self, value: SSAValue, mask: str, window: int | None,
                 pattern: SSAValue | None, start: int | None = None):
        super().__init__(operands=[value, [pattern] if pattern is not None else []],
                         result_types=[value.type],
                         properties=_mask_props(mask, window, start))


VECTOR_KINDS = ("rmsnorm", "layernorm", "silu", "gelu", "exp", "add", "mul", "rope")
VECTOR_ARITY = {"rmsnorm": 2, "layernorm": 3, "add": 2, "mul": 2}
"""Inputs of each vector instruction (1 unless listed)."""


@irdl_op_definition
class VectorOp(IRDLOperation):
    """One elementwise or normalization instruction on the vector unit:
    `%y = systolic.vector "rmsnorm" %x, %g {eps = 1.0e-05 : f64} : (...) -> T`.

    Semantics: those of the kernel op `sparsec.<kind>` with the same properties (eps,
    base, start, approximate, convention), computed by backends/common/block_reference.py; its cycles
    and energy come from the operation counts of backends/systolic/vector.py.
    """

    name = "systolic.vector"
    kind = prop_def(StringAttr)
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    eps = opt_prop_def(FloatAttr)
    base = opt_prop_def(FloatAttr)
    start = opt_prop_def(IntegerAttr)
    approximate = opt_prop_def(StringAttr)
    convention = opt_prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$kind $inputs attr-dict `:` `(` type($inputs) `)` `->` "
                       "type($result)")

    def __init__(self, kind: str, inputs: list[SSAValue], result_type: Attribute,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[inputs], result_types=[result_type],
                         properties={"kind": StringAttr(kind), **properties})

    def verify_(self) -> None:
        kind = self.kind.data
        if kind not in VECTOR_KINDS:
            raise VerifyException(f"systolic.vector: kind must be one of "
                                  f"{', '.join(VECTOR_KINDS)}, got '{kind}'")
        arity = VECTOR_ARITY.get(kind, 1)
        if len(self.inputs) != arity:
            raise VerifyException(f"systolic.vector: '{kind}' takes {arity} input(s), got "
                                  f"{len(self.inputs)}")
        needs = {"rmsnorm": "eps", "layernorm": "eps", "rope": "base"}.get(kind)
        if needs is not None and getattr(self, needs) is None:
            raise VerifyException(f"systolic.vector: '{kind}' needs `{needs}`")


MOVE_KINDS = ("heads", "merge_heads", "concat")


@irdl_op_definition
class MoveOp(IRDLOperation):
    """Data movement without arithmetic: split columns into heads, merge heads, or append
    rows to a KV cache (`concat`). Semantics: those of `sparsec.<kind>`. The output
    SRAM's address generator writes rows where the next instruction reads them, so a
    move takes no cycles; `concat` writes its second operand (the new rows) to the cache
    in DRAM.
    """

    name = "systolic.move"
    kind = prop_def(StringAttr)
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    heads = opt_prop_def(IntegerAttr)
    axis = opt_prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$kind $inputs attr-dict `:` `(` type($inputs) `)` `->` "
                       "type($result)")

    def __init__(self, kind: str, inputs: list[SSAValue], result_type: Attribute,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[inputs], result_types=[result_type],
                         properties={"kind": StringAttr(kind), **properties})

    def verify_(self) -> None:
        kind = self.kind.data
        if kind not in MOVE_KINDS:
            raise VerifyException(f"systolic.move: kind must be one of "
                                  f"{', '.join(MOVE_KINDS)}, got '{kind}'")
        arity = 2 if kind == "concat" else 1
        if len(self.inputs) != arity:
            raise VerifyException(f"systolic.move: '{kind}' takes {arity} input(s), got "
                                  f"{len(self.inputs)}")


@irdl_op_definition
class KvLoadOp(CommonKvLoadOp):
    """Read a KV-cache tensor as its policy stores it and dequantize it on the vector unit:
    `%k = systolic.kv_load %K {role = "key", bits = [16, 4, 2], ...} : T -> T'`.

    Semantics: those of `sparsec.kv_compress` with the same properties
    (tensors/kv_cache.py `compress`). Cost: the exact stored bits cross DRAM into the
    filter SRAM; each quantized element costs a multiply and an add on the vector unit
    (q * scale + min). The result stays on chip for the folds that read it.
    """

    name = "systolic.kv_load"


@irdl_op_definition
class PruneOp(ActivationPruneOp):
    """Runtime activation pruning on the vector unit:
    `%y = systolic.prune %x [weight %w] {threshold = .., estimate = "abs"} : T [, W] -> T`.

    Semantics: those of `sparsec.prune_activations` with the same properties. Cost: its
    deciding operations (a compare per activation; a multiply by the offline row
    magnitude for abs_w; a max pass when relative) on the vector unit's ALUs; the zeros it
    makes are products the array's MACs then gate (effectual MACs drop, cycles do not:
    a dense array cannot skip them).
    """

    name = "systolic.prune"


Systolic = Dialect("systolic", [ZerosOp, PrefetchOp, FoldOp, FoldsOp, WritebackOp, EpilogueOp,
                                SoftmaxOp, VectorOp, MoveOp, KvLoadOp, PruneOp], [])
