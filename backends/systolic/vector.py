"""The vector unit beside the array: what each elementwise, normalization and softmax
instruction asks of it, and how many cycles and picojoules that takes.

The unit has `lanes` lanes; each lane has an ALU (add, multiply, compare, select: one
operation every `alu_cycles` cycles, pipelined) and an SFU for transcendental functions
(exp, reciprocal, reciprocal square root, erf, tanh, sin, cos: one every `sfu_cycles`).
A row reduction (sum, max) accumulates a partial result per lane (counted as ALU work)
and then combines the lanes in an adder tree of ceil(log2 lanes) levels; rows stream
through the tree, so each reduction pass adds that latency once.

    cycles = alu_cycles * ceil(alu_ops / lanes) + sfu_cycles * ceil(sfu_ops / lanes)
             + reductions * ceil(log2 lanes)

ALU and SFU work are not overlapped (one datapath per lane). Operation counts per kind
are in `work` and in backends/systolic/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VectorWork:
    """Operations one instruction performs on the vector unit."""

    alu_ops: int
    sfu_ops: int
    reductions: int = 0

    def cycles(self, lanes: int, alu_cycles: int, sfu_cycles: int) -> int:
        tree = math.ceil(math.log2(lanes)) if lanes > 1 else 0
        return (alu_cycles * -(-self.alu_ops // lanes) + sfu_cycles * -(-self.sfu_ops // lanes)
                + self.reductions * tree)

    def energy_pj(self, alu_pj: float, sfu_pj: float) -> float:
        return self.alu_ops * alu_pj + self.sfu_ops * sfu_pj


def _rows(shape: tuple[int, ...]) -> int:
    return math.prod(shape[:-1])


def work(kind: str, shape: tuple[int, ...], props: dict[str, Any]) -> VectorWork:
    """The operations of one vector instruction of `kind` producing a `shape` result.

    n = elements, r = rows (every dimension but the last), d = the last dimension.
    """
    n, r = math.prod(shape), _rows(shape)
    if kind in ("add", "mul"):
        return VectorWork(n, 0)
    if kind == "exp":
        return VectorWork(0, n)
    if kind == "silu":
        # x * 1 / (1 + exp(-x)): exp and reciprocal on the SFU; add and multiply.
        return VectorWork(2 * n, 2 * n)
    if kind == "gelu":
        if props.get("approximate", "none") == "tanh":
            # x^3 (2), * 0.044715, + x, * sqrt(2/pi), tanh, + 1, * x, * 0.5
            return VectorWork(8 * n, n)
        # x / sqrt 2, erf, + 1, * x, * 0.5
        return VectorWork(4 * n, n)
    if kind == "rmsnorm":
        # square-accumulate, one rsqrt per row, x * r, * gain
        return VectorWork(3 * n, r, reductions=1)
    if kind == "layernorm":
        # sum, (x - mu) and its square-accumulate (2), one mean and one variance scaling
        # per row, rsqrt per row, * r, * gain, + bias
        return VectorWork(6 * n + 2 * r, r, reductions=2)
    if kind == "rope":
        # angles p * base^(-2i/d) for the T x d/2 (position, pair) angles, shared by heads:
        # one multiply, then sin and cos on the SFU; per element 2 multiplies and 1 add.
        t, d = shape[-2], shape[-1]
        angles = t * d // 2
        return VectorWork(3 * n + angles, 2 * angles)
    if kind == "softmax":
        # max, subtract, exp, sum, one reciprocal per row, multiply
        return VectorWork(4 * n, n + r, reductions=2)
    if kind == "epilogue":
        # scale and mask the accumulated scores (a multiply and a select)
        return VectorWork(n, 0)
    raise ValueError(f"the vector unit has no '{kind}' instruction")
