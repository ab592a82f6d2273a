"""Spec typing rules of the transformer-block ops, registered into `spec.OP_RULES`.

    N = rmsnorm(X, G, eps=1e-5)            # X [.., d], G [d]        -> X's type
    L = layernorm(X, G, B, eps=1e-5)       # gain and bias [d]       -> X's type
    A = silu(X)   E = exp(X)   Y = gelu(X, approximate=tanh|none)    # elementwise
    S = add(X, Y)   P = mul(X, Y)          # numpy broadcasting       -> broadcast shape
    R = rope(Q, base=100000, start=0)      # [T, d] or [H, T, d], d even; convention=
                                           # normal (pairs 2i, 2i+1; GGUF) or neox
    H = heads(X, heads=9)                  # [T, H*d] -> [H, T, d]
    M = merge_heads(H)                     # [H, T, d] -> [T, H*d]
    C = concat(Kcache, Knew, axis=1)       # along one axis, others equal

Broadcasting (add, mul) is numpy's: shapes are aligned at their last dimension, each pair
of dimensions must be equal or one of them 1, and missing leading dimensions count as 1.
Every op takes floating-point tensors (heads, merge_heads and concat also integers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sparsec.compiler.spec import (
    FLOAT_TYPES,
    OP_RULES,
    Call,
    Ident,
    SpecError,
    TensorType,
    Value,
    attr_int,
    attr_number,
    check_attrs,
    expect_operands,
    expect_rank,
)
from sparsec.tensors.conventions import GELU_FORMS, ROPE_CONVENTIONS, broadcast_shape

DEFAULT_EPS = 1e-5
"""Normalization epsilon when `eps=` is not given (Llama's RMSNorm, BERT's LayerNorm
use 1e-5 and 1e-12; write the model's value in the spec)."""


def _float_operand(call: Call, index: int, ttype: TensorType) -> None:
    if ttype.dtype not in FLOAT_TYPES:
        operand = call.operands[index]
        raise SpecError(operand.loc, f"{call.op}: {operand.name} must be floating point, "
                                     f"but it is {ttype}")


def _same_dtype(call: Call, types: Sequence[TensorType]) -> None:
    for index, ttype in enumerate(types[1:], start=1):
        if ttype.dtype != types[0].dtype:
            raise SpecError(call.operands[index].loc,
                            f"{call.op}: element types disagree: {call.operands[0].name} is "
                            f"{types[0]} but {call.operands[index].name} is {ttype}")


def _positive(call: Call, name: str, default: float) -> float:
    value = attr_number(call, name, default)
    if not math.isfinite(value) or value <= 0:
        raise SpecError(call.attrs[name].loc, f"{call.op}: {name} must be > 0, got {value}")
    return value


def _gain(call: Call, index: int, x: TensorType, g: TensorType) -> None:
    operand = call.operands[index]
    if g.shape != (x.shape[-1],):
        raise SpecError(operand.loc, f"{call.op}: {operand.name} must be a vector of "
                                     f"{call.operands[0].name}'s last dimension "
                                     f"[{x.shape[-1]}], but it is {g}")


def rmsnorm_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
                 call: Call) -> TensorType:
    expect_operands(call, 2, ("X", "gain"))
    check_attrs(call, ("eps",))
    for index, ttype in enumerate(types):
        _float_operand(call, index, ttype)
    _same_dtype(call, types)
    _gain(call, 1, types[0], types[1])
    _positive(call, "eps", DEFAULT_EPS)
    return types[0]


def layernorm_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
                   call: Call) -> TensorType:
    expect_operands(call, 3, ("X", "gain", "bias"))
    check_attrs(call, ("eps",))
    for index, ttype in enumerate(types):
        _float_operand(call, index, ttype)
    _same_dtype(call, types)
    _gain(call, 1, types[0], types[1])
    _gain(call, 2, types[0], types[2])
    _positive(call, "eps", DEFAULT_EPS)
    return types[0]


def unary_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
               call: Call) -> TensorType:
    expect_operands(call, 1, ("X",))
    check_attrs(call, ("approximate",) if call.op == "gelu" else ())
    _float_operand(call, 0, types[0])
    gelu_form(call)
    return types[0]


def gelu_form(call: Call) -> str:
    """`approximate=none|tanh` of a gelu call (none when absent: the exact erf form)."""
    value = call.attrs.get("approximate")
    if value is None:
        return "none"
    if not isinstance(value, Ident) or value.name not in GELU_FORMS:
        raise SpecError(value.loc, f"{call.op}: approximate must be "
                                   f"{' or '.join(GELU_FORMS)}, got {value}")
    return value.name


def binary_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
                call: Call) -> TensorType:
    expect_operands(call, 2, ("X", "Y"))
    check_attrs(call, ())
    for index, ttype in enumerate(types):
        _float_operand(call, index, ttype)
    _same_dtype(call, types)
    shape = broadcast_shape(types[0].shape, types[1].shape)
    if shape is None:
        raise SpecError(call.operands[1].loc,
                        f"{call.op}: {types[0]} and {types[1]} do not broadcast (numpy rule: "
                        "aligned at the last dimension, each pair equal or 1)")
    return TensorType(types[0].dtype, shape)


def rope_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
              call: Call) -> TensorType:
    expect_operands(call, 1, ("X",))
    check_attrs(call, ("base", "start", "convention"))
    x = types[0]
    _float_operand(call, 0, x)
    if x.rank not in (2, 3) or x.shape[-1] % 2:
        raise SpecError(call.operands[0].loc, f"{call.op}: {call.operands[0].name} must be "
                                              f"[T, d] or [heads, T, d] with d even, but it is {x}")
    _positive(call, "base", 10000.0)
    attr_int(call, "start", 0, minimum=0)
    rope_convention(call)
    return x


def rope_convention(call: Call) -> str:
    """`convention=normal|neox` of a rope call (normal when absent)."""
    value = call.attrs.get("convention")
    if value is None:
        return "normal"
    if not isinstance(value, Ident) or value.name not in ROPE_CONVENTIONS:
        raise SpecError(value.loc, f"{call.op}: convention must be "
                                   f"{' or '.join(ROPE_CONVENTIONS)}, got {value}")
    return value.name


def heads_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
               call: Call) -> TensorType:
    expect_operands(call, 1, ("X",))
    check_attrs(call, ("heads",))
    x = types[0]
    expect_rank(call, 0, x, 2)
    if "heads" not in call.attrs:
        raise SpecError(call.loc, f"{call.op}: needs heads=H (the number of heads)")
    heads = attr_int(call, "heads", 1, minimum=1)
    if x.shape[1] % heads:
        raise SpecError(call.attrs["heads"].loc, f"{call.op}: heads={heads} must divide "
                                                 f"{call.operands[0].name}'s {x.shape[1]} "
                                                 "columns")
    return TensorType(x.dtype, (heads, x.shape[0], x.shape[1] // heads))


def merge_heads_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
                     call: Call) -> TensorType:
    expect_operands(call, 1, ("X",))
    check_attrs(call, ())
    x = types[0]
    expect_rank(call, 0, x, 3)
    h, t, d = x.shape
    return TensorType(x.dtype, (t, h * d))


def concat_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
                call: Call) -> TensorType:
    expect_operands(call, 2, ("A", "B"))
    check_attrs(call, ("axis",))
    _same_dtype(call, types)
    a, b = types
    axis = attr_int(call, "axis", 0, minimum=0)
    if axis >= a.rank:
        raise SpecError(call.attrs["axis"].loc, f"{call.op}: axis must be < rank {a.rank}")
    rest_a = a.shape[:axis] + a.shape[axis + 1:]
    rest_b = b.shape[:axis] + b.shape[axis + 1:]
    if b.rank != a.rank or rest_a != rest_b:
        raise SpecError(call.operands[1].loc, f"{call.op}: {a} and {b} must agree in every "
                                              f"dimension but axis {axis}")
    shape = list(a.shape)
    shape[axis] += b.shape[axis]
    return TensorType(a.dtype, tuple(shape))


OP_RULES.update({
    "rmsnorm": rmsnorm_rule, "layernorm": layernorm_rule, "silu": unary_rule,
    "gelu": unary_rule, "exp": unary_rule, "add": binary_rule, "mul": binary_rule,
    "rope": rope_rule, "heads": heads_rule, "merge_heads": merge_heads_rule,
    "concat": concat_rule,
})
