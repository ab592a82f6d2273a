"""`lower-stc`: kernel-level matmuls become thread-block tiles of (sparse) tensor-core mma.

Example: `lower-stc{preset=a100 path=kernel}` turns `%Y = sparsec.matmul %X, %W` with W
(256 x 256 f16, 2:4 along K) into `stc.zeros`, `stc.compress %W` and four `stc.tile`s
(the 2:4 operand is the hardware's A, so the tiles compute Y^T = W^T . X^T), then
`stc.store`. With `stc{sparse=false}` every matmul runs as dense mma (f32 on the CUDA
cores), so 2:4 versus dense is one option. The default `path=library` adds what PyTorch
runs around the mma: `stc.launch` before every kernel, `stc.pad` of a 2:4 matmul's
dense operand, the result stored transposed, and `stc.copy_out` to the user's layout.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.stc import isa
from sparsec.backends.stc.spec import (
    CUDA_CORE_DTYPES,
    MMA_M,
    MMA_N,
    PAD_MULTIPLE,
    TENSOR_DTYPES,
    StcSpec,
)
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp
from sparsec.tensors.dtypes import ELEMENT_BYTES

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
    rows x cols = N x M then, M x N otherwise; `tile` = (rows, cols, k-chunk). `m` and
    `n` are the problem the kernel runs: on the library path a 2:4 matmul's dense
    operand is padded, so they may exceed the matmul's.
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
    """Decide dense or 2:4 mma, the problem the kernel runs and its thread-block tile;
    refuse what the GPU cannot run."""
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
    library = spec.path == "library" and sparse is not None
    if library:
        m, n = padded_problem(m, n, sparse, dtype)
    rows, cols = (n, m) if sparse == "rhs" else (m, n)
    tm, tn = choose_tile(rows, cols, spec, split=spec.fill_sms and not library,
                         shrink=not (library and spec.sparse_library == "cutlass"))
    return GemmPlan(m, n, k, dtype, sparse, (tm, tn, spec.chunk_k(ELEMENT_BYTES[dtype])))


def padded_problem(m: int, n: int, sparse: str | None, dtype: str) -> tuple[int, int]:
    """(M, N) after PyTorch pads a 2:4 matmul's dense operand: X's M rows (2:4 rhs) or B's
    N columns (2:4 lhs) rounded up to PAD_MULTIPLE[dtype]."""
    multiple = PAD_MULTIPLE[dtype]
    if sparse == "rhs":
        return round_up(m, multiple), n
    return m, round_up(n, multiple)


def _sizes_below(start: int, granule: int) -> list[int]:
    """`start` and the power-of-two multiples of `granule` below it (40, 8 -> 40 8 16 32)."""
    smaller = [granule << i for i in range(start.bit_length()) if granule << i < start]
    return [start, *smaller]


def choose_tile(rows: int, cols: int, spec: StcSpec, *, split: bool,
                shrink: bool) -> tuple[int, int]:
    """The thread-block tile (rows x cols) of a hardware problem of rows x cols outputs.

    The spec's tile, shrunk to the problem rounded up to the mma's 16 x 8 (`shrink`).
    When that leaves SMs idle (fewer tiles than SMs) and `split` is set, the tile is
    split into power-of-two multiples of 16 x 8: the split with the most tiles that still
    fit one wave, ties to the taller, then wider tile (libraries pick small tiles for
    small or skinny GEMMs in the same spirit). Dense and 2:4 kernels follow the same rule
    (split when `fill_sms`), except the library path's 2:4 kernel, which never splits and,
    with `sparse_library=cutlass`, does not shrink either (a fixed tile).
    """
    tm = min(spec.tile_m, round_up(rows, MMA_M)) if shrink else spec.tile_m
    tn = min(spec.tile_n, round_up(cols, MMA_N)) if shrink else spec.tile_n
    if not split or cdiv(rows, tm) * cdiv(cols, tn) >= spec.sms:
        return tm, tn
    splits = [(cdiv(rows, r) * cdiv(cols, c), r, c)
              for r, c in itertools.product(_sizes_below(tm, MMA_M), _sizes_below(tn, MMA_N))]
    _, r, c = max(split for split in splits if split[0] <= spec.sms)
    return r, c


def lower_matmul(op: MatmulOp, spec: StcSpec) -> list[Operation]:
    """The stc ops computing one matmul on the GPU described by `spec`."""
    plan = plan_matmul(op, spec)
    if spec.path == "kernel":
        return gemm_ops(op, plan, op.lhs, op.rhs, spec)
    if plan.sparse is None:
        return [isa.LaunchOp("gemm"), *gemm_ops(op, plan, op.lhs, op.rhs, spec)]
    return library_sparse_ops(op, plan, spec)


def gemm_ops(op: MatmulOp, plan: GemmPlan, lhs: SSAValue, rhs: SSAValue, spec: StcSpec,
             transpose_store: bool = False) -> list[Operation]:
    """One GEMM kernel: zeros, the 2:4 operand's compression, one tile per thread block
    in launch order, store. The accumulator is the plan's (possibly padded) M x N."""
    result_type = op.result.type
    assert isinstance(result_type, TensorType)
    zeros = isa.ZerosOp(TensorType(result_type.element_type, [plan.m, plan.n],
                                   result_type.encoding))
    ops: list[Operation] = [zeros]
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
    ops.append(isa.StoreOp(acc, transpose=transpose_store))
    return ops


def library_sparse_ops(op: MatmulOp, plan: GemmPlan, spec: StcSpec) -> list[Operation]:
    """A 2:4 matmul as PyTorch runs it through cuSPARSELt (or its own CUTLASS kernel).

    A launch and stc.pad of the dense operand when the plan padded it; a launch and the
    2:4 GEMM on the padded problem, its result stored transposed for a 2:4 rhs (the
    library computes Y^T = W . X^T); stc.copy_out to the matmul's M x N when the result
    is transposed or padded: a strided view, or with `copy_out` a launch and a copy.
    """
    m, n, _ = op.problem_shape()
    lhs, rhs = op.lhs, op.rhs
    ops: list[Operation] = []
    multiple = PAD_MULTIPLE[plan.dtype]
    if plan.m != m:
        pad = isa.PadOp(lhs, 1 if op.transpose_a else 0, multiple)
        pad.result.name_hint = f"{operand_name(lhs, 'lhs')}_pad"
        ops += [isa.LaunchOp("pad"), pad]
        lhs = pad.result
    if plan.n != n:
        pad = isa.PadOp(rhs, 0 if op.transpose_b else 1, multiple)
        pad.result.name_hint = f"{operand_name(rhs, 'rhs')}_pad"
        ops += [isa.LaunchOp("pad"), pad]
        rhs = pad.result
    transposed = plan.sparse == "rhs"
    gemm = gemm_ops(op, plan, lhs, rhs, spec, transpose_store=transposed)
    ops += [isa.LaunchOp("sparse_gemm"), *gemm]
    if not transposed and (plan.m, plan.n) == (m, n):
        return ops
    if spec.copy_out:
        ops.append(isa.LaunchOp("copy_out"))
    result_type = op.result.type
    assert isinstance(result_type, TensorType)
    ops.append(isa.CopyOutOp(gemm[-1].results[0], result_type, transpose=transposed,
                             view=not spec.copy_out))
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
