"""`lower-hottiles`: SpMMs with a hot/cold-tiled A become one instruction per worker.

Example: `lower-hottiles{hot_workers=2 cold_workers=16}` turns `%C = sparsec.matmul %A, %B`
(A a tiled `param`) into `hottiles.zeros`, 18 `hottiles.worker` ops (hot 0-1, cold
0-15, each running the batch of tiles the partition gives it) and `hottiles.drain`.
A must carry its partition: the target prepares `tile-hot-cold` with its options, so
`sparsec run spec.sk --target hottiles` needs no pipeline; under plain `xdsl-opt` run
tile-hot-cold first (it needs the program's data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.hottiles import isa
from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.dialects.sparsec import (
    AttentionOp,
    InputOp,
    MatmulOp,
    ParamOp,
    SddmmOp,
    SoftmaxOp,
    SpmmOp,
)


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"hottiles: {message}")


def operand_name(op: MatmulOp) -> str:
    """The lhs's name in the kernel spec (its DataStore symbol), else `lhs`."""
    owner = op.lhs.owner
    return owner.sym_name if isinstance(owner, (InputOp, ParamOp)) else "lhs"


def _workers_text(workers: tuple[int, int]) -> str:
    return f"{workers[0]} hot + {workers[1]} cold workers"


def check_matmul(op: MatmulOp, spec: HottilesSpec) -> None:
    """Refuse what the machine cannot run: transposes, an untiled A, another machine's
    partition."""
    where = f"operand {operand_name(op)} of {op.name}"
    if op.transpose_a is not None or op.transpose_b is not None:
        raise _fail(f"{op.name} with transpose_a / transpose_b: HotTiles runs C = A . B")
    tiled = isa.tiled_encoding(op.lhs.type)
    if tiled is None:
        raise _fail(f"{where} has no #sparsec.tiled partition; run tile-hot-cold first (the "
                    "hottiles target adds it under `sparsec compile` / `run`)")
    allowed = spec.allowed_workers()
    if tiled.workers not in allowed:
        wanted = " or ".join(_workers_text(w) for w in sorted(allowed))
        raise _fail(f"{where} is partitioned for {_workers_text(tiled.workers)} but the target "
                    f"({spec.policy}) has {wanted}; run tile-hot-cold with the target's options")


def lower_matmul(op: MatmulOp, spec: HottilesSpec) -> list[Operation]:
    """zeros, one worker op per hot then cold worker of A's partition, drain."""
    check_matmul(op, spec)
    tiled = isa.tiled_encoding(op.lhs.type)
    assert tiled is not None
    result_type = op.result.type
    assert isinstance(result_type, TensorType)
    zeros = isa.ZerosOp(result_type)
    ops: list[Operation] = [zeros]
    acc = zeros.result
    for kind, count in zip(isa.KINDS, tiled.workers, strict=True):
        for index in range(count):
            worker = isa.WorkerOp(op.lhs, op.rhs, acc, kind, index)
            ops.append(worker)
            acc = worker.result
    ops.append(isa.DrainOp(acc))
    return ops


@dataclass
class LowerMatmul(RewritePattern):
    spec: HottilesSpec

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        ops = lower_matmul(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


def _untiled(module: ModuleOp) -> list[MatmulOp]:
    return [op for op in module.walk()
            if isinstance(op, MatmulOp) and isa.tiled_encoding(op.lhs.type) is None]


@dataclass(frozen=True)
class LowerHottilesPass(HottilesSpec, ModulePass):
    """Lower every sparsec.matmul with a hot/cold-tiled lhs to one instruction per worker
    (partitioned by tile-hot-cold); options are the machine's spec.

    Example: `lower-hottiles{hot_workers=2 cold_workers=16 policy=hottiles}`.
    """

    name: ClassVar[str] = "lower-hottiles"

    def hardware(self) -> HottilesSpec:
        return HottilesSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        for inner in op.walk():
            if isinstance(inner, (AttentionOp, SddmmOp, SoftmaxOp, SpmmOp)):
                raise _fail(f"{inner.name} is not an SpMM of a sparse param; HotTiles runs "
                            "C = A . B (sparsec.matmul with A a `param`)")
        PatternRewriteWalker(LowerMatmul(spec), apply_recursively=False).rewrite_module(op)
