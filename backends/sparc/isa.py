"""The SpARC ISA: one op per stage of one row block (a cluster batch), never per element.

Attention over a row-clustered query Q [H, T, d] (backends/sparc/clustering.py) lowers
to, per head h, three loads and, per row block [r0, r1) of n rows with k clusters:

    sparc.load %Q {head = h, slot = s} : tensor<HxTxdxf32, #rc>      // DRAM -> buffer
    %L = sparc.lowrank %Q, %K {head = h, rows = array<i64: r0, r1>,
           columns = array<i64: c...>, scale = ...} : (...) -> tensor<nxSxf32>
    %A = sparc.cluster %L {clusters = k} : tensor<nxSxf32> -> tensor<nxi32>
                                              // k = n: %A = sparc.singletons, no %L
    %C = sparc.centroids %Q, %A {head = h, rows = ..., clusters = k} : (...) -> tensor<kxdxf32>
    %S = sparc.scores %C, %K {head = h, scale = ...} : (...) -> tensor<kxSxf32>
    %P = sparc.softmax %S : tensor<kxSxf32> -> tensor<kxSxf32>
    %O = sparc.av %P, %V {head = h} : (...) -> tensor<kxexf32>
    %acc1 = sparc.expand %O, %A, %acc0 {head = h, rows = ...} : (...) -> tensor<HxTxexf32>

Semantics (numpy, the stage functions of clustering.py on head h's slices): lowrank =
round(scale * Q[h, r0:r1, c] K[h, :, c]^T); cluster = farthest-point allocation of the
rows by L1 distance (the assignment); centroids = each cluster's mean query; scores =
sddmm(C, K[h], scale); softmax = row softmax; av = P V[h]; expand: acc[h, r0 + i] =
O[A[i]]. Rank-2 operands are one head (head = 0). Durations come from the target spec
and the real cluster sizes (backends/sparc/README.md); the IR only says what is done.
"""

from __future__ import annotations

from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    TensorType,
    f64,
    i64,
)
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

ASSIGNMENT_TYPE = IntegerType(32)
"""Element type of an assignment tensor (each row's cluster)."""


def index_array(values: tuple[int, ...] | list[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, [int(v) for v in values])


def _values(attr: DenseArrayBase) -> tuple[int, ...]:
    return tuple(int(v) for v in attr.get_values())


def heads_rows_width(ttype: Attribute, role: str, op: str) -> tuple[int, int, int]:
    """(heads, rows, width) of a [rows, width] (one head) or [heads, rows, width] tensor."""
    if not isinstance(ttype, TensorType) or ttype.get_num_dims() not in (2, 3):
        raise VerifyException(f"{op}: {role} must be a [T, d] or [heads, T, d] tensor, got "
                              f"{ttype}")
    shape = tuple(ttype.get_shape())
    return (1, *shape) if len(shape) == 2 else shape  # type: ignore[return-value]


def matrix_shape(ttype: Attribute, role: str, op: str) -> tuple[int, int]:
    if not isinstance(ttype, TensorType) or ttype.get_num_dims() != 2:
        raise VerifyException(f"{op}: {role} must be a matrix, got {ttype}")
    rows, cols = ttype.get_shape()
    return rows, cols


def _check_head(op: str, head: int, heads: int) -> None:
    if not 0 <= head < heads:
        raise VerifyException(f"{op}: head {head} is out of range for {heads} head(s)")


def _rows(op: str, attr: DenseArrayBase, limit: int) -> tuple[int, int]:
    values = _values(attr)
    if len(values) != 2 or not 0 <= values[0] < values[1] <= limit:
        raise VerifyException(f"{op}: rows must be array<i64: r0, r1> with 0 <= r0 < r1 <= "
                              f"{limit} (the query's rows), got {list(values)}")
    return values[0], values[1]


def _same_element(op: str, *types: Attribute) -> None:
    elements = {t.element_type for t in types if isinstance(t, TensorType)}
    if len(elements) != 1:
        raise VerifyException(f"{op}: operands and result must share one element type, got "
                              f"{', '.join(sorted(str(e) for e in elements))}")


def _expect_shape(op: str, ttype: Attribute, shape: tuple[int, ...], what: str) -> None:
    got = tuple(ttype.get_shape()) if isinstance(ttype, TensorType) else None
    if got != shape:
        dims = "x".join(map(str, shape))
        raise VerifyException(f"{op}: {what} must be {dims}, got {ttype}")


class _HeadOp(IRDLOperation):
    """Ops that work on one head of their operands."""

    head = prop_def(IntegerAttr)

    @property
    def head_index(self) -> int:
        return self.head.value.data


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """The attention output, zeroed, in the output buffer: `acc = 0`."""

    name = "sparc.zeros"


@irdl_op_definition
class LoadOp(_HeadOp):
    """DMA one head of Q, K or V from DRAM into the global buffer (double-buffered per head:
    `slot` counts the kernel's heads, and slot s waits until head s - 2 is done)."""

    name = "sparc.load"
    source = operand_def(TensorType)
    slot = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source)"

    def __init__(self, source: SSAValue, head: int, slot: int):
        super().__init__(operands=[source], properties={
            "head": IntegerAttr(head, i64), "slot": IntegerAttr(slot, i64)})

    def verify_(self) -> None:
        heads, _, _ = heads_rows_width(self.source.type, "source", self.name)
        _check_head(self.name, self.head_index, heads)
        if self.slot.value.data < 0:
            raise VerifyException(f"{self.name}: slot must be >= 0, got {self.slot.value.data}")


@irdl_op_definition
class LowrankOp(_HeadOp):
    """Low-rank scores of one row block on the matrix unit:
    L = round(scale * Q[head, r0:r1, columns] K[head, :, columns]^T), [n x S]."""

    name = "sparc.lowrank"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    result = result_def(TensorType)
    rows = prop_def(DenseArrayBase)
    columns = prop_def(DenseArrayBase)
    scale = prop_def(FloatAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$query `,` $key attr-dict `:` `(` type($query) `,` type($key) `)` "
                       "`->` type($result)")

    def __init__(self, query: SSAValue, key: SSAValue, head: int, rows: tuple[int, int],
                 columns: tuple[int, ...], scale: float, result_type: TensorType):
        super().__init__(operands=[query, key], result_types=[result_type], properties={
            "head": IntegerAttr(head, i64), "rows": index_array(rows),
            "columns": index_array(columns), "scale": FloatAttr(scale, f64)})

    def row_range(self) -> tuple[int, int]:
        return _rows(self.name, self.rows, heads_rows_width(self.query.type, "query",
                                                            self.name)[1])

    def column_list(self) -> tuple[int, ...]:
        return _values(self.columns)

    def verify_(self) -> None:
        heads, _, d = heads_rows_width(self.query.type, "query", self.name)
        key_heads, keys, dk = heads_rows_width(self.key.type, "key", self.name)
        if key_heads != heads or dk != d:
            raise VerifyException(f"{self.name}: query and key must agree in heads and their "
                                  "last dimension")
        _check_head(self.name, self.head_index, heads)
        r0, r1 = self.row_range()
        columns = self.column_list()
        if not columns or len(set(columns)) != len(columns) or not all(0 <= c < d for c in columns):
            raise VerifyException(f"{self.name}: columns must be distinct key columns in "
                                  f"[0, {d}), got {list(columns)}")
        _same_element(self.name, self.query.type, self.key.type, self.result.type)
        _expect_shape(self.name, self.result.type, (r1 - r0, keys), "result (rows x keys)")


@irdl_op_definition
class ClusterOp(IRDLOperation):
    """Cluster a block's rows on the L1-distance and cluster units: farthest-point
    centroids and allocation to the nearest (L1) centroid; the result is each row's
    cluster."""

    name = "sparc.cluster"
    scores = operand_def(TensorType)
    result = result_def(TensorType)
    clusters = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$scores attr-dict `:` type($scores) `->` type($result)"

    def __init__(self, scores: SSAValue, clusters: int):
        rows = scores.type.get_shape()[0]  # type: ignore[union-attr]
        super().__init__(operands=[scores], result_types=[TensorType(ASSIGNMENT_TYPE, [rows])],
                         properties={"clusters": IntegerAttr(clusters, i64)})

    @property
    def count(self) -> int:
        return self.clusters.value.data

    def verify_(self) -> None:
        rows, _ = matrix_shape(self.scores.type, "scores", self.name)
        if not 1 <= self.count <= rows:
            raise VerifyException(f"{self.name}: clusters must lie in [1, {rows}] (the "
                                  f"block's rows), got {self.count}")
        result = self.result.type
        if not isinstance(result, TensorType) or result.element_type != ASSIGNMENT_TYPE:
            raise VerifyException(f"{self.name}: result must be tensor<{rows}xi32>, got {result}")
        _expect_shape(self.name, result, (rows,), "result (one cluster per row)")


@irdl_op_definition
class SingletonsOp(IRDLOperation):
    """The assignment of a block kept exact (as many clusters as rows): every row its own
    cluster, in row order. No low-rank scores, no clustering, no cycles."""

    name = "sparc.singletons"
    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, rows: int):
        super().__init__(result_types=[TensorType(ASSIGNMENT_TYPE, [rows])])

    def verify_(self) -> None:
        result = self.result.type
        if (not isinstance(result, TensorType) or result.get_num_dims() != 1
                or result.element_type != ASSIGNMENT_TYPE):
            raise VerifyException(f"{self.name}: result must be tensor<nxi32>, got {result}")


@irdl_op_definition
class CentroidsOp(_HeadOp):
    """Each cluster's representative query, the mean of its rows: members accumulated in
    the centroid cache (token order), divided by the member count on the divider."""

    name = "sparc.centroids"
    query = operand_def(TensorType)
    assignment = operand_def(TensorType)
    result = result_def(TensorType)
    rows = prop_def(DenseArrayBase)
    clusters = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$query `,` $assignment attr-dict `:` `(` type($query) `,` "
                       "type($assignment) `)` `->` type($result)")

    def __init__(self, query: SSAValue, assignment: SSAValue, head: int,
                 rows: tuple[int, int], clusters: int, result_type: TensorType):
        super().__init__(operands=[query, assignment], result_types=[result_type], properties={
            "head": IntegerAttr(head, i64), "rows": index_array(rows),
            "clusters": IntegerAttr(clusters, i64)})

    @property
    def count(self) -> int:
        return self.clusters.value.data

    def row_range(self) -> tuple[int, int]:
        return _rows(self.name, self.rows, heads_rows_width(self.query.type, "query",
                                                            self.name)[1])

    def verify_(self) -> None:
        heads, _, d = heads_rows_width(self.query.type, "query", self.name)
        _check_head(self.name, self.head_index, heads)
        r0, r1 = self.row_range()
        _expect_shape(self.name, self.assignment.type, (r1 - r0,), "assignment (one per row)")
        if not 1 <= self.count <= r1 - r0:
            raise VerifyException(f"{self.name}: clusters must lie in [1, {r1 - r0}], got "
                                  f"{self.count}")
        _same_element(self.name, self.query.type, self.result.type)
        _expect_shape(self.name, self.result.type, (self.count, d), "result (clusters x d)")


@irdl_op_definition
class ScoresOp(_HeadOp):
    """The clusters' attention scores on the matrix unit: scale * C K[head]^T, [k x S]."""

    name = "sparc.scores"
    centroids = operand_def(TensorType)
    key = operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(FloatAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$centroids `,` $key attr-dict `:` `(` type($centroids) `,` "
                       "type($key) `)` `->` type($result)")

    def __init__(self, centroids: SSAValue, key: SSAValue, head: int, scale: float,
                 result_type: TensorType):
        super().__init__(operands=[centroids, key], result_types=[result_type], properties={
            "head": IntegerAttr(head, i64), "scale": FloatAttr(scale, f64)})

    def verify_(self) -> None:
        k, d = matrix_shape(self.centroids.type, "centroids", self.name)
        heads, keys, dk = heads_rows_width(self.key.type, "key", self.name)
        _check_head(self.name, self.head_index, heads)
        if dk != d:
            raise VerifyException(f"{self.name}: centroids have d = {d} but keys d = {dk}")
        _same_element(self.name, self.centroids.type, self.key.type, self.result.type)
        _expect_shape(self.name, self.result.type, (k, keys), "result (clusters x keys)")


@irdl_op_definition
class SoftmaxOp(IRDLOperation):
    """Row softmax of the cluster scores: exponentials on the Taylor exponent unit, the
    normalisation on the divider."""

    name = "sparc.softmax"
    scores = operand_def(TensorType)
    result = result_def(TensorType)
    assembly_format = "$scores attr-dict `:` type($scores) `->` type($result)"

    def __init__(self, scores: SSAValue):
        super().__init__(operands=[scores], result_types=[scores.type])

    def verify_(self) -> None:
        matrix_shape(self.scores.type, "scores", self.name)
        if self.result.type != self.scores.type:
            raise VerifyException(f"{self.name}: result type must equal the scores' type")


@irdl_op_definition
class AvOp(_HeadOp):
    """The clusters' attention outputs on the matrix unit: A_c V[head], [k x e], written to
    the clusters' centroid-cache lines."""

    name = "sparc.av"
    probs = operand_def(TensorType)
    value = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$probs `,` $value attr-dict `:` `(` type($probs) `,` type($value) `)` "
                       "`->` type($result)")

    def __init__(self, probs: SSAValue, value: SSAValue, head: int, result_type: TensorType):
        super().__init__(operands=[probs, value], result_types=[result_type],
                         properties={"head": IntegerAttr(head, i64)})

    def verify_(self) -> None:
        k, keys = matrix_shape(self.probs.type, "probs", self.name)
        heads, value_rows, e = heads_rows_width(self.value.type, "value", self.name)
        _check_head(self.name, self.head_index, heads)
        if value_rows != keys:
            raise VerifyException(f"{self.name}: probs have {keys} keys but value has "
                                  f"{value_rows} rows")
        _same_element(self.name, self.probs.type, self.value.type, self.result.type)
        _expect_shape(self.name, self.result.type, (k, e), "result (clusters x e)")


@irdl_op_definition
class ExpandOp(_HeadOp):
    """Write every row of the block: acc[head, r0 + i] = O[assignment[i]] (the cluster
    outputs read back from the centroid cache in token order), then to DRAM."""

    name = "sparc.expand"
    outputs = operand_def(TensorType)
    assignment = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    rows = prop_def(DenseArrayBase)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$outputs `,` $assignment `,` $acc attr-dict `:` `(` type($outputs) "
                       "`,` type($assignment) `,` type($acc) `)` `->` type($result)")

    def __init__(self, outputs: SSAValue, assignment: SSAValue, acc: SSAValue, head: int,
                 rows: tuple[int, int]):
        super().__init__(operands=[outputs, assignment, acc], result_types=[acc.type],
                         properties={"head": IntegerAttr(head, i64), "rows": index_array(rows)})

    def row_range(self) -> tuple[int, int]:
        return _rows(self.name, self.rows, heads_rows_width(self.acc.type, "acc", self.name)[1])

    def verify_(self) -> None:
        if self.result.type != self.acc.type:
            raise VerifyException(f"{self.name}: result type must equal the accumulator's")
        heads, _, e = heads_rows_width(self.acc.type, "acc", self.name)
        _check_head(self.name, self.head_index, heads)
        r0, r1 = self.row_range()
        _, width = matrix_shape(self.outputs.type, "outputs", self.name)
        if width != e:
            raise VerifyException(f"{self.name}: outputs have {width} columns but the "
                                  f"accumulator has e = {e}")
        _expect_shape(self.name, self.assignment.type, (r1 - r0,), "assignment (one per row)")
        _same_element(self.name, self.outputs.type, self.acc.type)


Sparc = Dialect("sparc", [ZerosOp, LoadOp, LowrankOp, ClusterOp, SingletonsOp, CentroidsOp,
                          ScoresOp, SoftmaxOp, AvOp, ExpandOp], [])
