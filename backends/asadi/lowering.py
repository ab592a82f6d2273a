"""`lower-asadi`: attention-family kernel ops become batches of ASADI in-situ iterations.

Example: `lower-asadi{preset=paper}` turns `%O = sparsec.attention %Q, %K, %V pattern %M`
(M 512 x 512 with `#sparsec.diagonal<w = 64, diagonals = 80>`) into one `asadi.write` of
Q, K, V, `asadi.sddmm` over diagonals [0, 80) (one op per batch of `arrays` diagonals,
which the Tile accumulates at once), `asadi.softmax`, `asadi.spmm` over the same
diagonals and `asadi.read` of O. With `asadi{diagonal=false}` the batches run over the
mask's rows instead (the CSR paradigm). Kernels ASADI cannot run are refused with the
pass that would make them runnable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.asadi import isa
from sparsec.backends.asadi.spec import AsadiSpec
from sparsec.dialects.sparsec import (
    AttentionOp,
    InputOp,
    MatmulOp,
    ParamOp,
    SddmmOp,
    SoftmaxOp,
    SpmmOp,
)

ENCODE = "encode-diagonal"
RESIDENT = (isa.WriteOp, isa.ZerosOp, isa.SddmmOp, isa.SoftmaxOp, isa.SpmmOp)
"""ISA ops whose results live in the ReRAM arrays (no write needed to compute on them)."""


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"asadi: {message}")


def value_name(value: SSAValue, role: str) -> str:
    """The tensor's name in the kernel spec, else its role."""
    owner = value.owner
    if isinstance(owner, (InputOp, ParamOp)):
        return owner.sym_name
    return value.name_hint or role


def bands(count: int, size: int) -> Iterator[tuple[int, int]]:
    """[first, last) batches of `size` iterations covering `count`."""
    for first in range(0, count, size):
        yield first, min(count, first + size)


@dataclass(frozen=True)
class Lowering:
    """How the kernel's ops become ASADI ops on the hardware `spec`."""

    spec: AsadiSpec

    def pattern(self, op: AttentionOp | SddmmOp | SoftmaxOp) -> SSAValue:
        """The op's mask pattern, refused unless the paradigm can run it."""
        name = op.results[0].name_hint or op.name
        if not op.pattern:
            raise _fail(f"{op.name} {name} has mask '{op.mask_kind}'; ASADI runs a pattern "
                        f"mask in the diagonal format: run {ENCODE} first (sparsec compare "
                        "adds it)")
        mask = op.pattern[0]
        self.require_diagonal(mask, f"the mask {value_name(mask, 'pattern')} of {op.name} "
                                    f"{name}")
        return mask

    def require_diagonal(self, mask: SSAValue, what: str) -> None:
        if self.spec.diagonal and isa.diagonal_encoding(mask) is None:
            raise _fail(f"{what} is not in the diagonal format (#sparsec.diagonal); run "
                        f"{ENCODE} first, or use asadi{{diagonal=false}} (CSR paradigm)")

    def iterations(self, mask: SSAValue) -> tuple[int, int]:
        """(count, batch): diagonals (DIA) or mask rows (CSR), and how many one ISA op
        takes: the vectors the Tile's arrays accumulate at once."""
        t, s = mask.type.get_shape()[-2:]  # type: ignore[union-attr]
        batch = self.spec.vector_slots(max(t, s))
        encoding = isa.diagonal_encoding(mask)
        if self.spec.diagonal and encoding is not None:
            return encoding.count, batch
        return t, batch

    def resident(self, values: list[SSAValue], ops: list[Operation]) -> list[SSAValue]:
        """`values` in the arrays: one asadi.write for those not computed there."""
        outside = list(dict.fromkeys(v for v in values if not isinstance(v.owner, RESIDENT)))
        if not outside:
            return values
        write = isa.WriteOp(outside)
        ops.append(write)
        written = dict(zip(outside, write.results_, strict=True))
        for value, result in written.items():
            result.name_hint = value.name_hint
        return [written.get(v, v) for v in values]

    def sddmm(self, lhs: SSAValue, rhs: SSAValue, mask: SSAValue, scores: TensorType,
              scale: float, ops: list[Operation], name: str | None) -> SSAValue:
        q, k = self.resident([lhs, rhs], ops)
        zeros = isa.ZerosOp(scores)
        zeros.result.name_hint = name
        ops.append(zeros)
        acc = zeros.result
        count, batch = self.iterations(mask)
        for band in bands(count, batch):
            step = isa.SddmmOp(q, k, mask, acc, self.spec.paradigm, band, scale)
            step.result.name_hint = name
            ops.append(step)
            acc = step.result
        return acc

    def softmax(self, scores: SSAValue, mask: SSAValue, ops: list[Operation],
                name: str | None) -> SSAValue:
        (value,) = self.resident([scores], ops)
        softmax = isa.SoftmaxOp(value, mask, self.spec.paradigm)
        softmax.result.name_hint = name
        ops.append(softmax)
        return softmax.result

    def spmm(self, probs: SSAValue, values: SSAValue, mask: SSAValue, out: TensorType,
             ops: list[Operation], name: str | None) -> SSAValue:
        p, v = self.resident([probs, values], ops)
        zeros = isa.ZerosOp(out)
        ops.append(zeros)
        acc = zeros.result
        count, batch = self.iterations(mask)
        for band in bands(count, batch):
            step = isa.SpmmOp(p, v, mask, acc, self.spec.paradigm, band)
            ops.append(step)
            acc = step.result
        read = isa.ReadOp(acc, out)
        ops.append(read)
        for op in ops[ops.index(zeros):]:
            op.results[0].name_hint = name
        return read.result

    def spmm_mask(self, op: SpmmOp) -> SSAValue:
        """The structure of P: the mask of the asadi op computing it, or P itself when
        it is a param (its `#sparsec.diagonal` encoding, or its nonzeros for CSR)."""
        owner = op.lhs.owner
        if isinstance(owner, (isa.SoftmaxOp, isa.SddmmOp)):
            return owner.mask
        name = value_name(op.lhs, "lhs")
        if not isinstance(owner, ParamOp):
            raise _fail(f"operand {name} of {op.name} has no known structure: P must come "
                        "from a sddmm/softmax with a pattern mask, or be a param (run "
                        f"{ENCODE} on it)")
        self.require_diagonal(op.lhs, f"operand {name} of {op.name}")
        return op.lhs


def scores_type(op: AttentionOp, mask: SSAValue) -> TensorType:
    """The type of an attention op's scores: [.., T, S] in the mask's encoding."""
    q = op.query.type
    assert isinstance(q, TensorType)
    s = op.key.type.get_shape()[-2]  # type: ignore[union-attr]
    shape = [*q.get_shape()[:-1], s]
    encoding = isa.diagonal_encoding(mask)
    if encoding is None:
        return TensorType(q.element_type, shape)
    return TensorType(q.element_type, shape, encoding)


@dataclass
class LowerAttention(RewritePattern):
    lowering: Lowering

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AttentionOp, rewriter: PatternRewriter) -> None:
        mask = self.lowering.pattern(op)
        ops: list[Operation] = []
        name = op.result.name_hint or "attn"
        q, k, v = self.lowering.resident([op.query, op.key, op.value], ops)
        scores = self.lowering.sddmm(q, k, mask, scores_type(op, mask), op.scale.value.data,
                                     ops, f"{name}_scores")
        probs = self.lowering.softmax(scores, mask, ops, f"{name}_probs")
        out = self.lowering.spmm(probs, v, mask, op.result.type, ops, name)  # type: ignore[arg-type]
        rewriter.replace(op, ops, [out])


@dataclass
class LowerSddmm(RewritePattern):
    lowering: Lowering

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SddmmOp, rewriter: PatternRewriter) -> None:
        mask = self.lowering.pattern(op)
        ops: list[Operation] = []
        scores = self.lowering.sddmm(op.lhs, op.rhs, mask, op.result.type,  # type: ignore[arg-type]
                                     op.scale.value.data, ops, op.result.name_hint)
        rewriter.replace(op, ops, [scores])


@dataclass
class LowerSoftmax(RewritePattern):
    lowering: Lowering

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SoftmaxOp, rewriter: PatternRewriter) -> None:
        mask = self.lowering.pattern(op)
        ops: list[Operation] = []
        probs = self.lowering.softmax(op.input, mask, ops, op.result.name_hint)
        rewriter.replace(op, ops, [probs])


@dataclass
class LowerSpmm(RewritePattern):
    lowering: Lowering

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SpmmOp, rewriter: PatternRewriter) -> None:
        mask = self.lowering.spmm_mask(op)
        ops: list[Operation] = []
        out = self.lowering.spmm(op.lhs, op.rhs, mask, op.result.type, ops,  # type: ignore[arg-type]
                                 op.result.name_hint)
        rewriter.replace(op, ops, [out])


@dataclass
class RefuseMatmul(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        name = op.result.name_hint or "?"
        raise _fail(f"{op.name} {name}: ASADI's digital modules run attention (sddmm, "
                    "softmax, spmm); its linear layers (analog crossbars) are not modeled; "
                    "use another target for matmuls")


def read_returned(module: ModuleOp) -> None:
    """Scores or probabilities a kernel returns leave the arrays through asadi.read, in
    the type the kernel declares for them (a diagonal-encoded P is read out dense)."""
    for ret in [op for op in module.walk() if isinstance(op, func.ReturnOp)]:
        kernel = ret.parent_op()
        assert isinstance(kernel, func.FuncOp)
        declared = kernel.function_type.outputs.data
        operands = list(ret.operands)
        for index, value in enumerate(operands):
            if not isinstance(value.owner, (isa.SddmmOp, isa.SoftmaxOp)):
                continue
            read = isa.ReadOp(value, declared[index])  # type: ignore[arg-type]
            Rewriter.insert_op(read, InsertPoint.before(ret))
            operands[index] = read.result
        ret.operands = operands


@dataclass(frozen=True)
class LowerAsadiPass(AsadiSpec, ModulePass):
    """Lower attention, sddmm, softmax and spmm to ASADI in-situ iteration batches; the
    options are the hardware's spec.

    Example: `lower-asadi{preset=paper}`, `lower-asadi{diagonal=false}` (CSR-ASADI).
    """

    name: ClassVar[str] = "lower-asadi"

    def hardware(self) -> AsadiSpec:
        return AsadiSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lowering = Lowering(self.hardware())
        for pattern in (RefuseMatmul(), LowerAttention(lowering), LowerSddmm(lowering),
                        LowerSoftmax(lowering), LowerSpmm(lowering)):
            PatternRewriteWalker(pattern, apply_recursively=False).rewrite_module(op)
        read_returned(op)
