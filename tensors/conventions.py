"""Names and shape rules that the spec checker, the dialects and the numpy semantics
share: the accumulator type of a product, numpy's broadcast, the forms of GELU and the
pairings of RoPE.

Plain Python (no numpy, no xDSL), so that the spec front end (`sparsec.compiler.spec`)
parses and checks a spec without loading the compiler's IR: `sparsec run` draws a
spec's random data while xDSL is still being imported (docs/decisions.md, "Start-up").
"""

from __future__ import annotations

from collections.abc import Sequence

GELU_FORMS = ("none", "tanh")
"""GELU's exact form 0.5 x (1 + erf(x / sqrt 2)) (`none`: no approximation) and its tanh
approximation 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), PyTorch's names."""

ROPE_CONVENTIONS = ("normal", "neox")
"""Which elements rotate together: (2i, 2i+1) or (i, i + d/2)."""


def accumulator_type_name(element: str) -> str:
    """Element type a product of two `element` tensors is returned in.

    Integer operands accumulate (and return) in i32, as integer MAC arrays do;
    floating-point operands return their own type (accumulation happens in f32 or wider).
    """
    return "i32" if element.startswith("i") else element


def broadcast_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """numpy's broadcast of two shapes (trailing dimensions aligned; each pair equal or
    one of them 1), or None when they do not broadcast."""
    out: list[int] = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(reversed(out))
