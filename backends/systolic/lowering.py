"""`lower-systolic`: kernel-level matmuls become folds of a rows x cols systolic array.

Example: `lower-systolic{rows=32 cols=32 dataflow=os}` turns
`%Y = sparsec.matmul %X, %W` (64x64 by 64x64) into two prefetches, four
`systolic.fold`s (2 row folds x 2 column folds, K in time) and a `systolic.writeback`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from sparsec.backends.systolic import isa
from sparsec.backends.systolic.spec import SystolicSpec
from sparsec.dialects.sparsec import MatmulOp

Range = tuple[int, int]


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def spatial_temporal(m: int, n: int, k: int, dataflow: str) -> tuple[int, int, int]:
    """(Sr, Sc, T): the extents mapped on array rows, array columns and time.

    os keeps outputs stationary (M on rows, N on columns, K streamed); ws keeps weights
    stationary (K on rows, N on columns, M streamed); is keeps inputs stationary (K on
    rows, M on columns, N streamed). These are SCALE-Sim's mappings.
    """
    return {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]


def _tiles(extent: int, size: int) -> Iterator[Range]:
    for start in range(0, extent, size):
        yield start, min(extent, start + size)


def fold_tiles(m: int, n: int, k: int, spec: SystolicSpec) -> Iterator[tuple[Range, Range, Range]]:
    """(m, n, k) ranges of every fold, in SCALE-Sim's order (column folds outer)."""
    r, c = spec.rows, spec.cols
    if spec.dataflow == "os":
        for nt in _tiles(n, c):
            for mt in _tiles(m, r):
                yield mt, nt, (0, k)
    elif spec.dataflow == "ws":
        for nt in _tiles(n, c):
            for kt in _tiles(k, r):
                yield (0, m), nt, kt
    else:
        for mt in _tiles(m, c):
            for kt in _tiles(k, r):
                yield mt, (0, n), kt


def first_use(operand: str, k: int, spec: SystolicSpec) -> int:
    """Cycle of a fold at which it first reads `operand` (SCALE-Sim's demand skew).

    A stationary operand is read in the fold's first R cycles, bottom row first, so a
    fold with fewer than R rows of it starts reading at R - rows_used; the streamed
    operand starts after the R-cycle stationary load.
    """
    r = spec.rows
    if spec.dataflow == "os":
        return 0
    stationary = "filter" if spec.dataflow == "ws" else "ifmap"
    return r - min(r, k) if operand == stationary else r


def ofmap_words(m: int, n: int, k: int, spec: SystolicSpec) -> int:
    """Words the array writes to the output SRAM: ws/is re-write partial sums per K fold."""
    if spec.dataflow == "os":
        return m * n
    return m * n * cdiv(k, spec.rows)


def lower_matmul(op: MatmulOp, spec: SystolicSpec) -> list[Operation]:
    """The ISA ops computing one matmul on the array described by `spec`."""
    m, n, k = op.problem_shape()
    zeros = isa.ZerosOp(op.result.type)  # type: ignore[arg-type]
    ops: list[Operation] = [
        zeros,
        isa.PrefetchOp(op.lhs, "ifmap", m * k, first_use("ifmap", k, spec)),
        isa.PrefetchOp(op.rhs, "filter", k * n, first_use("filter", k, spec)),
    ]
    acc = zeros.result
    for index, (mt, nt, kt) in enumerate(fold_tiles(m, n, k, spec)):
        fold = isa.FoldOp(op.lhs, op.rhs, acc, index, mt, nt, kt,
                          transpose_a=op.transpose_a is not None,
                          transpose_b=op.transpose_b is not None)
        ops.append(fold)
        acc = fold.result
    ops.append(isa.WritebackOp(acc, ofmap_words(m, n, k, spec)))
    return ops


@dataclass
class LowerMatmul(RewritePattern):
    spec: SystolicSpec

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        ops = lower_matmul(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerSystolicPass(SystolicSpec, ModulePass):
    """Lower every sparsec.matmul to systolic folds; options are the array's spec.

    Example: `lower-systolic{rows=16 cols=16 dataflow=ws}`.
    """

    name: ClassVar[str] = "lower-systolic"

    def hardware(self) -> SystolicSpec:
        return SystolicSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(LowerMatmul(spec), apply_recursively=False).rewrite_module(op)
