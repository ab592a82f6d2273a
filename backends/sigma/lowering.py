"""`lower-sigma`: kernel-level matmuls become SIGMA's stationary iterations.

Example: `lower-sigma{multipliers=1024 stationary=auto}` turns `%Y = sparsec.matmul %X, %W`
into `sigma.zeros`, `sigma.pack` of the stationary operand (bitmap) and one
`sigma.iteration` per iteration of the controller, then `sigma.store`.

The iterations depend on where the stationary operand's nonzeros are, so the pass reads
the operand from the program's DataStore (as the SIGMA controller reads the bitmap);
the interpreter accounts each iteration's cycles from the data it actually runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
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

from sparsec.backends.sigma import isa, timing
from sparsec.backends.sigma.spec import SigmaSpec
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp
from sparsec.tensors.datastore import DataStoreError, current_store, dense, store_key


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"lower-sigma: {message}")


def _kernel_of(op: Operation) -> str:
    parent = op.parent_op()
    while parent is not None and parent.name != "func.func":
        parent = parent.parent_op()
    if parent is None:
        raise _fail(f"{op.name} is not inside a func.func")
    return parent.sym_name.data  # type: ignore[attr-defined]


def operand_values(value: SSAValue, op: MatmulOp, role: str) -> np.ndarray:
    """The stored values of a matmul operand bound by `sparsec.input` / `sparsec.param`."""
    owner = value.owner
    if not isinstance(owner, (InputOp, ParamOp)):
        raise _fail(f"operand {role} of {op.name} is computed by the kernel; SIGMA plans its "
                    "iterations from the stationary operand's bitmap, so it must be an `in` "
                    "or `param` tensor")
    try:
        return dense(current_store().get(store_key(_kernel_of(op), owner.sym_name)),
                     f"operand {owner.sym_name}")
    except DataStoreError as err:
        raise _fail(str(err)) from None


def stationary_matrix(op: MatmulOp, which: str) -> np.ndarray:
    """S as vectors x K: A (M x K) when `which` is a, B^T (N x K) when it is b."""
    if which == "a":
        lhs = operand_values(op.lhs, op, "a")
        return lhs.T if op.transpose_a else lhs
    rhs = operand_values(op.rhs, op, "b")
    return rhs if op.transpose_b else rhs.T


def choose_stationary(op: MatmulOp, spec: SigmaSpec) -> str:
    """The spec's choice, or for `auto` the operand whose iterations take fewer cycles
    (ties keep A stationary, STONNE's default MK_STA_KN_STR)."""
    if spec.stationary != "auto":
        return spec.stationary
    m, n, _ = op.problem_shape()
    cycles = {}
    for which, n_str in (("a", n), ("b", m)):
        bits = timing.stationary_bits(stationary_matrix(op, which) != 0, spec.min_cluster)
        cycles[which] = sum(cost.cycles for cost in timing.gemm_costs(bits, n_str, spec))
    return "a" if cycles["a"] <= cycles["b"] else "b"


def lower_matmul(op: MatmulOp, spec: SigmaSpec) -> list[Operation]:
    """The sigma ops computing one matmul on the SIGMA described by `spec`."""
    which = choose_stationary(op, spec)
    bits = timing.stationary_bits(stationary_matrix(op, which) != 0, spec.min_cluster)
    if which == "a":
        source, transpose = op.lhs, op.transpose_a is not None
        streaming, transpose_streaming = op.rhs, op.transpose_b is not None
    else:
        source, transpose = op.rhs, op.transpose_b is None
        streaming, transpose_streaming = op.lhs, op.transpose_a is not None
    zeros = isa.ZerosOp(op.result.type)  # type: ignore[arg-type]
    pack = isa.PackOp(source, which, transpose)
    ops: list[Operation] = [zeros, pack]
    acc = zeros.result
    for index, it in enumerate(timing.plan(bits, spec)):
        iteration = isa.IterationOp(pack.result, streaming, acc, index, which, (it.v0, it.v1),
                                    (it.k0, it.k1), it.fold, transpose_streaming)
        ops.append(iteration)
        acc = iteration.result
    ops.append(isa.StoreOp(acc))
    return ops


@dataclass
class LowerMatmul(RewritePattern):
    spec: SigmaSpec

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        ops = lower_matmul(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerSigmaPass(SigmaSpec, ModulePass):
    """Lower every sparsec.matmul to SIGMA stationary iterations; options are the spec.

    Example: `lower-sigma{multipliers=1024 dn_bw=256 rn_bw=256 stationary=auto}`.
    """

    name: ClassVar[str] = "lower-sigma"

    def hardware(self) -> SigmaSpec:
        return SigmaSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(LowerMatmul(spec), apply_recursively=False).rewrite_module(op)
