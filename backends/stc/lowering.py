"""`lower-stc`: kernel-level matmuls become thread-block tiles of (sparse) tensor-core mma.

Example: `lower-stc{preset=a100}` turns `%Y = sparsec.matmul %X, %W` with W (256 x 256
f16, 2:4 along K) into `stc.zeros`, `stc.compress %W` and four `stc.tile`s (the 2:4
operand is the hardware's A, so the tiles compute Y^T = W^T . X^T), then `stc.store`.
With `stc{sparse=false}` every matmul runs as dense mma (f32 on the CUDA cores), so
2:4 versus dense is one option.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.common.energy import ELEMENT_BYTES
from sparsec.backends.stc import isa
from sparsec.backends.stc.spec import CUDA_CORE_DTYPES, MMA_M, MMA_N, TENSOR_DTYPES, StcSpec
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp

Range = tuple[int, int]
PRUNE = "prune-nm{n=2 m=4}"


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def round_up(value: int, multiple: int) -> int:
    return cdiv(value, multiple) * multiple


def operand_name(value: SSAValue, role: str) -> str:
    """The tensor's name in the kernel spec (its DataStore symbol), else its role."""
    owner = value.owner
    if isinstance(owner, (InputOp, ParamOp)):
        return owner.sym_name
    return value.name_hint or role


@dataclass(frozen=True)
class GemmPlan:
    """How one matmul runs: its shape, element type, 2:4 operand and thread-block tile.

    `sparse` names the 2:4 operand (`lhs`, `rhs`) or is None for dense mma. A 2:4 rhs is
    fed to the hardware as A by computing the transpose, so the hardware problem is
    rows x cols = N x M then, M x N otherwise; `tile` = (rows, cols, k-chunk).
    """

    m: int
    n: int
    k: int
    dtype: str
    sparse: str | None
    tile: tuple[int, int, int]

    @property
    def swapped(self) -> bool:
        return self.sparse == "rhs"

    @property
    def hardware_shape(self) -> tuple[int, int]:
        return (self.n, self.m) if self.swapped else (self.m, self.n)

    def tiles(self, swizzle: int) -> Iterator[tuple[Range, Range]]:
        """(m, n) output ranges of every tile, in launch order.

        CUTLASS's `GemmIdentityThreadblockSwizzle<swizzle>`: the tile grid is cut into
        strips `swizzle` tile-columns wide; within a strip, columns vary fastest, then
        rows; strips follow one another. Consecutive tiles (one wave) thus cover a
        compact block and share operand panels in L2.
        """
        rows, cols = self.hardware_shape
        tm, tn, _ = self.tile
        row_tiles, col_tiles = cdiv(rows, tm), cdiv(cols, tn)
        for strip in range(0, col_tiles, swizzle):
            strip_columns = range(strip, min(col_tiles, strip + swizzle))
            for r, c in itertools.product(range(row_tiles), strip_columns):
                row_range = (r * tm, min(rows, (r + 1) * tm))
                col_range = (c * tn, min(cols, (c + 1) * tn))
                yield (col_range, row_range) if self.swapped else (row_range, col_range)


def _either(names: tuple[str, ...]) -> str:
    """`a, b or c`."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"stc: {message}")


def _two_four_role(op: MatmulOp) -> str | None:
    """`lhs` if the lhs is 2:4 along K, else `rhs` if the rhs is, else None."""
    if isa.runs_on_two_four(op.lhs.type, isa.reduction_axis("lhs", op.transpose_a is not None)):
        return "lhs"
    if isa.runs_on_two_four(op.rhs.type, isa.reduction_axis("rhs", op.transpose_b is not None)):
        return "rhs"
    return None


def _why_not_two_four(op: MatmulOp) -> str:
    """The refusal for a sparse target whose matmul has no 2:4 operand along K."""
    for role, value, transposed in (("rhs", op.rhs, op.transpose_b), ("lhs", op.lhs, op.transpose_a)):
        layout = isa.nm_layout(value.type)
        if layout is None:
            continue
        n, m, axis = layout
        name = operand_name(value, role)
        k_axis = isa.reduction_axis(role, transposed is not None)
        if m != isa.BLOCK or not 1 <= n <= isa.KEPT:
            return (f"operand {name} of {op.name} is {n}:{m} structured; sparse tensor cores "
                    f"run 2:4; run {PRUNE} first, or use stc{{sparse=false}} for dense mma")
        return (f"operand {name} of {op.name} is 2:4 along dim {axis}, but sparse tensor "
                f"cores need its 4-blocks along the reduction dimension K (dim {k_axis}); run "
                f"{PRUNE} first, or use stc{{sparse=false}} for dense mma")
    name = operand_name(op.rhs, "rhs")
    if isinstance(op.lhs.owner, ParamOp) and not isinstance(op.rhs.owner, ParamOp):
        name = operand_name(op.lhs, "lhs")
    return (f"operand {name} of {op.name} is not 2:4 sparse; run {PRUNE} first, or use "
            "stc{sparse=false} for dense mma")


def plan_matmul(op: MatmulOp, spec: StcSpec) -> GemmPlan:
    """Decide dense or 2:4 mma and the thread-block tile; refuse what the GPU cannot run."""
    m, n, k = op.problem_shape()
    dtype = isa.math_dtype(op.lhs.type, op.rhs.type)
    if dtype not in TENSOR_DTYPES + CUDA_CORE_DTYPES:
        raise _fail(f"{op.name} has {dtype} operands; the tensor cores multiply "
                    f"{_either(TENSOR_DTYPES)} (and f32 runs dense on the CUDA cores)")
    sparse: str | None = None
    if spec.sparse and dtype in CUDA_CORE_DTYPES:
        raise _fail(f"{op.name} has {dtype} operands, which run on the CUDA cores (FP32 FMA) "
                    f"with no 2:4 path; declare {_either(TENSOR_DTYPES)} operands for sparse "
                    "tensor cores, or use stc{sparse=false} for dense FP32")
    if spec.sparse:
        sparse = _two_four_role(op)
        if sparse is None:
            raise _fail(_why_not_two_four(op))
    rows, cols = (n, m) if sparse == "rhs" else (m, n)
    tm, tn = choose_tile(rows, cols, spec)
    return GemmPlan(m, n, k, dtype, sparse, (tm, tn, spec.chunk_k(ELEMENT_BYTES[dtype])))


def _sizes_below(start: int, granule: int) -> list[int]:
    """`start` and the power-of-two multiples of `granule` below it (40, 8 -> 40 8 16 32)."""
    smaller = [granule << i for i in range(start.bit_length()) if granule << i < start]
    return [start, *smaller]


def choose_tile(rows: int, cols: int, spec: StcSpec) -> tuple[int, int]:
    """The thread-block tile (rows x cols) of a hardware problem of rows x cols outputs.

    The spec's tile, shrunk to the problem rounded up to the mma's 16 x 8. When that
    leaves SMs idle (fewer tiles than SMs) and `fill_sms` is set, the tile is split into
    power-of-two multiples of 16 x 8: the split with the most tiles that still fit one
    wave, ties to the taller, then wider tile (libraries pick small tiles for small or
    skinny GEMMs in the same spirit). Dense and 2:4 runs follow the same rule.
    """
    tm = min(spec.tile_m, round_up(rows, MMA_M))
    tn = min(spec.tile_n, round_up(cols, MMA_N))
    if not spec.fill_sms or cdiv(rows, tm) * cdiv(cols, tn) >= spec.sms:
        return tm, tn
    splits = [(cdiv(rows, r) * cdiv(cols, c), r, c)
              for r, c in itertools.product(_sizes_below(tm, MMA_M), _sizes_below(tn, MMA_N))]
    _, r, c = max(split for split in splits if split[0] <= spec.sms)
    return r, c


def lower_matmul(op: MatmulOp, spec: StcSpec) -> list[Operation]:
    """The stc ops computing one matmul on the GPU described by `spec`."""
    plan = plan_matmul(op, spec)
    zeros = isa.ZerosOp(op.result.type)  # type: ignore[arg-type]
    ops: list[Operation] = [zeros]
    lhs, rhs = op.lhs, op.rhs
    if plan.sparse is not None:
        compress = isa.CompressOp(lhs if plan.sparse == "lhs" else rhs)
        ops.append(compress)
        lhs, rhs = (compress.result, rhs) if plan.sparse == "lhs" else (lhs, compress.result)
    acc = zeros.result
    for index, (m_range, n_range) in enumerate(plan.tiles(spec.swizzle)):
        tile = isa.TileOp(lhs, rhs, acc, index, m_range, n_range, plan.tile, plan.sparse,
                          transpose_a=op.transpose_a is not None,
                          transpose_b=op.transpose_b is not None)
        ops.append(tile)
        acc = tile.result
    ops.append(isa.StoreOp(acc))
    return ops


@dataclass
class LowerMatmul(RewritePattern):
    spec: StcSpec

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        ops = lower_matmul(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerStcPass(StcSpec, ModulePass):
    """Lower every sparsec.matmul to thread-block tiles of (2:4 sparse) tensor-core mma.

    Example: `lower-stc{preset=h100 sparse=true}`.
    """

    name: ClassVar[str] = "lower-stc"

    def hardware(self) -> StcSpec:
        return StcSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(LowerMatmul(spec), apply_recursively=False).rewrite_module(op)
