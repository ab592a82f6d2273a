"""`lower-systolic`: kernel-level matmuls become folds of a rows x cols systolic array.

Example: `lower-systolic{rows=32 cols=32 dataflow=os}` turns
`%Y = sparsec.matmul %X, %W` (64x64 by 64x64) into two prefetches, four
`systolic.fold`s (2 row folds x 2 column folds, K in time) and a `systolic.writeback`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.systolic import isa
from sparsec.backends.systolic.spec import SystolicSpec
from sparsec.dialects import block
from sparsec.dialects.kv import KvCompressOp, PruneActivationsOp
from sparsec.dialects.rewrites import DecomposeAttention
from sparsec.dialects.sparsec import AttentionOp, MatmulOp, SddmmOp, SoftmaxOp, SpmmOp

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


def fold_tiles(m: int, n: int, k: int, spec: SystolicSpec) -> Iterator[tuple[Range, Range, Range]]:
    """(m, n, k) ranges of every fold, in SCALE-Sim's order (column folds outer)."""
    return isa.grid_tiles(m, n, k, spec.rows, spec.cols, spec.dataflow)


def fold_count(m: int, n: int, k: int, spec: SystolicSpec) -> int:
    """Number of folds `fold_tiles` yields."""
    r, c = spec.rows, spec.cols
    return {"os": cdiv(n, c) * cdiv(m, r), "ws": cdiv(n, c) * cdiv(k, r),
            "is": cdiv(m, c) * cdiv(k, r)}[spec.dataflow]


UNROLL_FOLDS = 64
"""A GEMM (per head) of at most this many folds is written one `systolic.fold` per fold,
to read stage by stage; a larger one as one `systolic.folds` grid instruction (same
accounting and numerics, a program thousands of instructions shorter)."""


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


def lower_gemm(lhs: SSAValue, rhs: SSAValue, result_type: TensorType, spec: SystolicSpec, *,
               transpose_a: bool = False, transpose_b: bool = False,
               epilogue: Callable[[SSAValue], Operation] | None = None) -> list[Operation]:
    """The ISA ops computing lhs . rhs (per head for rank-3 operands) on the array.

    One prefetch per operand, the folds of every head in turn, an optional vector-unit
    epilogue on the accumulator (SDDMM's scale and mask), then the write-back.
    """
    shape = result_type.get_shape()
    heads = shape[0] if len(shape) == 3 else None
    a = lhs.type.get_shape()[-2:]  # type: ignore[union-attr]
    m, n = shape[-2], shape[-1]
    k = a[0] if transpose_a else a[1]
    count = heads or 1
    rhs_shape = rhs.type.get_shape()  # type: ignore[union-attr]
    rhs_count = rhs_shape[0] if len(rhs_shape) == 3 else 1  # fewer for grouped-query heads
    zeros = isa.ZerosOp(result_type)
    ops: list[Operation] = [
        zeros,
        isa.PrefetchOp(lhs, "ifmap", count * m * k, first_use("ifmap", k, spec)),
        isa.PrefetchOp(rhs, "filter", rhs_count * k * n, first_use("filter", k, spec)),
    ]
    acc = zeros.result
    index = 0
    grid = fold_count(m, n, k, spec)
    for head in range(count):
        head_attr = head if heads else None
        if grid > UNROLL_FOLDS:
            folds = isa.FoldsOp(lhs, rhs, acc, index, m, n, k, spec.rows, spec.cols,
                                spec.dataflow, transpose_a=transpose_a,
                                transpose_b=transpose_b, head=head_attr)
            ops.append(folds)
            acc = folds.result
            index += grid
            continue
        for mt, nt, kt in fold_tiles(m, n, k, spec):
            fold = isa.FoldOp(lhs, rhs, acc, index, mt, nt, kt, transpose_a=transpose_a,
                              transpose_b=transpose_b, head=head_attr)
            ops.append(fold)
            acc = fold.result
            index += 1
    if epilogue is not None:
        ops.append(epilogue(acc))
        acc = ops[-1].results[0]
    ops.append(isa.WritebackOp(acc, count * ofmap_words(m, n, k, spec)))
    return ops


def lower_matmul(op: MatmulOp, spec: SystolicSpec) -> list[Operation]:
    """The ISA ops computing one matmul on the array described by `spec`."""
    return lower_gemm(op.lhs, op.rhs, op.result.type, spec,  # type: ignore[arg-type]
                      transpose_a=op.transpose_a is not None,
                      transpose_b=op.transpose_b is not None)


def lower_sddmm(op: SddmmOp, spec: SystolicSpec) -> list[Operation]:
    """Q K^T on the array, then scale and mask on the vector unit before draining."""
    pattern = op.pattern[0] if op.pattern else None

    def epilogue(acc: SSAValue) -> Operation:
        return isa.EpilogueOp(acc, op.scale.value.data, op.mask_kind, op.window_size, pattern)

    return lower_gemm(op.lhs, op.rhs, op.result.type, spec,  # type: ignore[arg-type]
                      transpose_b=True, epilogue=epilogue)


def lower_spmm(op: SpmmOp, spec: SystolicSpec) -> list[Operation]:
    """P V as a dense GEMM: the array multiplies the zeros of P too."""
    return lower_gemm(op.lhs, op.rhs, op.result.type, spec)  # type: ignore[arg-type]


def lower_softmax(op: SoftmaxOp, spec: SystolicSpec) -> list[Operation]:
    pattern = op.pattern[0] if op.pattern else None
    return [isa.SoftmaxOp(op.input, op.mask_kind, op.window_size, pattern)]


def lower_vector(op: Operation, spec: SystolicSpec) -> list[Operation]:
    """An elementwise or normalization kernel op: one vector-unit instruction."""
    kind = op.name.removeprefix("sparsec.")
    return [isa.VectorOp(kind, list(op.operands), op.results[0].type, dict(op.properties))]


def lower_move(op: Operation, spec: SystolicSpec) -> list[Operation]:
    """heads, merge_heads, concat: data movement, no arithmetic."""
    kind = op.name.removeprefix("sparsec.")
    return [isa.MoveOp(kind, list(op.operands), op.results[0].type, dict(op.properties))]


def lower_gqa_attention(op: block.GqaAttentionOp, spec: SystolicSpec) -> list[Operation]:
    """Grouped-query (KV-cache) attention: Q K^T folds per query head reading its group's
    key head, the scale and causal mask (at `start`) on the vector unit, the softmax,
    then P V folds reading the group's value head."""
    if op.keep:
        raise PassFailedException(
            "lower-systolic: sparsec.gqa_attention with `keep` (runtime token pruning) is "
            "not supported: the array's folds tile the tokens statically, so it cannot skip "
            "the pruned ones (run it on bitllm)")
    q_shape = op.query.type.get_shape()  # type: ignore[union-attr]
    s_len = op.key.type.get_shape()[-2]  # type: ignore[union-attr]
    element = op.result.type.element_type  # type: ignore[union-attr]
    scores_type = TensorType(element, [*q_shape[:-1], s_len])
    mask, start = op.mask_kind, (op.start_position if op.mask_kind == "causal" else None)

    def epilogue(acc: SSAValue) -> Operation:
        return isa.EpilogueOp(acc, op.scale.value.data, mask, None, None, start)

    scores = lower_gemm(op.query, op.key, scores_type, spec, transpose_b=True,
                        epilogue=epilogue)
    softmax = isa.SoftmaxOp(scores[-1].results[0], mask, None, None, start)
    out = lower_gemm(softmax.result, op.value, op.result.type, spec)  # type: ignore[arg-type]
    base = op.result.name_hint or "attn"
    scores[-1].results[0].name_hint = f"{base}_scores"
    softmax.result.name_hint = f"{base}_probs"
    return [*scores, softmax, *out]


def lower_kv_compress(op: KvCompressOp, spec: SystolicSpec) -> list[Operation]:
    """A policy-compressed KV-cache tensor: read as stored, dequantized on the vector unit."""
    return [isa.KvLoadOp(op.input, op.result.type, dict(op.properties))]


def lower_prune_activations(op: PruneActivationsOp, spec: SystolicSpec) -> list[Operation]:
    """Runtime activation pruning: one vector-unit instruction before the GEMM."""
    return [isa.PruneOp(op.input, list(op.weight), op.result.type, dict(op.properties))]


LOWERINGS: dict[type[Operation], Callable[[Any, SystolicSpec], list[Operation]]] = {
    KvCompressOp: lower_kv_compress, PruneActivationsOp: lower_prune_activations,
    MatmulOp: lower_matmul, SddmmOp: lower_sddmm, SpmmOp: lower_spmm, SoftmaxOp: lower_softmax,
    block.RmsNormOp: lower_vector, block.LayerNormOp: lower_vector, block.SiluOp: lower_vector,
    block.GeluOp: lower_vector, block.ExpOp: lower_vector, block.AddOp: lower_vector,
    block.MulOp: lower_vector, block.RopeOp: lower_vector, block.HeadsOp: lower_move,
    block.MergeHeadsOp: lower_move, block.ConcatOp: lower_move,
    block.GqaAttentionOp: lower_gqa_attention,
}


@dataclass
class LowerKernelOps(RewritePattern):
    spec: SystolicSpec

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        lowering = LOWERINGS.get(type(op))
        if lowering is None:
            return
        ops = lowering(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerSystolicPass(SystolicSpec, ModulePass):
    """Lower matmuls (and attention: sddmm, softmax, spmm) to systolic folds and
    vector-unit ops; options are the array's spec. Attention is decomposed first.

    Example: `lower-systolic{rows=16 cols=16 dataflow=ws}`.
    """

    name: ClassVar[str] = "lower-systolic"

    def hardware(self) -> SystolicSpec:
        return SystolicSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(DecomposeAttention(), apply_recursively=False).rewrite_module(op)
        PatternRewriteWalker(LowerKernelOps(spec), apply_recursively=False).rewrite_module(op)
        for rest in op.walk():
            if isinstance(rest, AttentionOp):
                raise PassFailedException(
                    "lower-systolic: this attention's query is "
                    f"{rest.query.type.encoding.name} (approximate attention); run it on "  # type: ignore[union-attr]
                    "its own target (e.g. sparc), or drop the pass that set that format")
