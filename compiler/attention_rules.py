"""Spec typing rules of the attention-family ops, registered into `spec.OP_RULES`.

    O = attention(Q, K, V, scale=0.125, mask=causal)     # Q [H,T,d] K [H,S,d] V [H,S,e]
    S = sddmm(Q, K, scale=0.125, mask=window(64))        # -> [H,T,S], 0 off the mask
    P = softmax(S, mask=pattern("p.npz", "key"))         # row softmax over the mask
    O = spmm(P, V)                                       # -> [H,T,e]

The head dimension is optional (rank 2 tensors are one head). Masks: `none` (default),
`causal`, `window(w)` (|i - j| <= w), `pattern("file.npz"[, "key"])` or
`pattern("file.npy")` (a 0/1 [T, S] matrix).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sparsec.compiler.spec import (
    FLOAT_TYPES,
    OP_RULES,
    Call,
    CallValue,
    Ident,
    SpecError,
    String,
    TensorType,
    Value,
    attr_number,
    check_attrs,
    expect_operands,
)

MASK_FORMS = "none, causal, window(w) or pattern(\"p.npz\", \"key\")"


@dataclass(frozen=True)
class MaskSpec:
    """A parsed `mask=` keyword: its kind, a window half-width, a pattern file and key."""

    kind: str = "none"
    window: int | None = None
    path: str | None = None
    key: str | None = None


def parse_mask(call: Call) -> MaskSpec:
    """The op's `mask=` keyword, checked; errors point at the mask's text."""
    value = call.attrs.get("mask")
    if value is None:
        return MaskSpec()
    if isinstance(value, Ident) and value.name in ("none", "causal"):
        return MaskSpec(value.name)
    if not isinstance(value, CallValue) or value.func not in ("window", "pattern"):
        raise SpecError(value.loc, f"{call.op}: mask must be {MASK_FORMS}, got {value}")
    if value.kwargs:
        raise SpecError(value.loc, f"{value.func}(...) takes no keywords")
    if value.func == "window":
        return _window(value)
    return _pattern(value)


def _window(value: CallValue) -> MaskSpec:
    args = value.args
    number = args[0].value if len(args) == 1 else None
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise SpecError(value.loc, f"window(w) takes one integer w >= 0, got {value}")
    return MaskSpec("window", window=number)


def _pattern(value: CallValue) -> MaskSpec:
    args = value.args
    if not 1 <= len(args) <= 2 or not all(isinstance(a, String) for a in args):
        raise SpecError(value.loc, 'pattern takes a file name and an optional key, e.g. '
                                   'pattern("p.npz", "mask")')
    path = args[0].value
    if not path.endswith((".npz", ".npy")):
        raise SpecError(args[0].loc, f"pattern: expected a .npz or .npy file, got '{path}'")
    return MaskSpec("pattern", path=path, key=args[1].value if len(args) == 2 else None)


def _heads(call: Call, index: int, ttype: TensorType) -> tuple[int | None, int, int]:
    """(heads or None, rows, cols) of a rank-2 or rank-3 float operand."""
    operand = call.operands[index]
    if ttype.dtype not in FLOAT_TYPES:
        raise SpecError(operand.loc, f"{call.op}: {operand.name} must be floating point, "
                                     f"but it is {ttype}")
    if ttype.rank == 2:
        return None, ttype.shape[0], ttype.shape[1]
    if ttype.rank == 3:
        return ttype.shape[0], ttype.shape[1], ttype.shape[2]
    raise SpecError(operand.loc, f"{call.op}: {operand.name} must be [T, d] or [heads, T, d], "
                                 f"but it is {ttype}")


def _same_dtype(call: Call, types: Sequence[TensorType]) -> None:
    for index, ttype in enumerate(types[1:], start=1):
        if ttype.dtype != types[0].dtype:
            raise SpecError(call.operands[index].loc,
                            f"{call.op}: element types disagree: {call.operands[0].name} is "
                            f"{types[0]} but {call.operands[index].name} is {ttype}")


def _agree(call: Call, index: int, what: str, got: object, expected: object,
           other: int = 0) -> None:
    """Operand `index` must have `expected` (operand `other`'s value) as its `what`."""
    if got == expected:
        return
    name, first = call.operands[index].name, call.operands[other].name
    if what.startswith("heads") and (got is None or expected is None):
        ranked = {name: got, first: expected}
        three = next(n for n, h in ranked.items() if h is not None)
        two = next(n for n, h in ranked.items() if h is None)
        raise SpecError(call.operands[index].loc,
                        f"{call.op}: {three} has {ranked[three]} heads ([heads, T, d]) but "
                        f"{two} has none ([T, d]); give both the same rank")
    raise SpecError(call.operands[index].loc,
                    f"{call.op}: {name} disagrees in {what}: {got} != {expected}")


def _scale(call: Call, head_dim: int) -> float:
    """`scale=` (default 1/sqrt(d)); must be a finite positive number."""
    scale = attr_number(call, "scale", 1.0 / math.sqrt(head_dim))
    if not math.isfinite(scale) or scale <= 0:
        raise SpecError(call.attrs["scale"].loc, f"{call.op}: scale must be > 0, got {scale}")
    return scale


def _shape(heads: int | None, rows: int, cols: int) -> tuple[int, ...]:
    return (rows, cols) if heads is None else (heads, rows, cols)


def sddmm_rule(types: Sequence[TensorType], attrs: Mapping[str, Value], call: Call) -> TensorType:
    expect_operands(call, 2, ("Q", "K"))
    check_attrs(call, ("scale", "mask"))
    _same_dtype(call, types)
    hq, t, d = _heads(call, 0, types[0])
    hk, s, dk = _heads(call, 1, types[1])
    _agree(call, 1, "heads", hk, hq)
    _agree(call, 1, "its last dimension (d)", dk, d)
    _scale(call, d)
    parse_mask(call)
    return TensorType(types[0].dtype, _shape(hq, t, s))


def softmax_rule(types: Sequence[TensorType], attrs: Mapping[str, Value], call: Call) -> TensorType:
    expect_operands(call, 1, ("S",))
    check_attrs(call, ("mask",))
    _heads(call, 0, types[0])
    parse_mask(call)
    return types[0]


def spmm_rule(types: Sequence[TensorType], attrs: Mapping[str, Value], call: Call) -> TensorType:
    expect_operands(call, 2, ("P", "V"))
    check_attrs(call, ())
    _same_dtype(call, types)
    hp, t, s = _heads(call, 0, types[0])
    hv, sv, e = _heads(call, 1, types[1])
    _agree(call, 1, "heads", hv, hp)
    _agree(call, 1, "its rows (S)", sv, s)
    return TensorType(types[0].dtype, _shape(hp, t, e))


def attention_rule(types: Sequence[TensorType], attrs: Mapping[str, Value],
                   call: Call) -> TensorType:
    """`attention(Q, K, V, scale=, mask=, start=)`. K and V may have fewer heads than Q
    (grouped-query attention: their head count must divide Q's); `start=p` places the
    query rows at positions p, p + 1, ... of a causal mask over a KV cache."""
    expect_operands(call, 3, ("Q", "K", "V"))
    check_attrs(call, ("scale", "mask", "start"))
    _same_dtype(call, types)
    hq, t, d = _heads(call, 0, types[0])
    hk, s, dk = _heads(call, 1, types[1])
    hv, sv, e = _heads(call, 2, types[2])
    _agree(call, 2, "heads", hv, hk, other=1)
    if hq is None or hk is None or hq % hk:
        _agree(call, 1, "heads (or a divisor of Q's heads)", hk, hq)
    _agree(call, 1, "its last dimension (d)", dk, d)
    _agree(call, 2, "its rows (S)", sv, s)
    _scale(call, d)
    mask = parse_mask(call)
    if hk != hq and mask.kind not in ("none", "causal"):
        raise SpecError(call.attrs["mask"].loc, f"{call.op}: grouped-query attention takes "
                                                "mask=none or mask=causal")
    if "start" in call.attrs and hq is None:
        raise SpecError(call.attrs["start"].loc, f"{call.op}: start needs [heads, T, d] "
                                                 "operands")
    _start(call, mask, t, s)
    return TensorType(types[0].dtype, _shape(hq, t, e))


def _start(call: Call, mask: MaskSpec, rows: int, keys: int) -> None:
    """`start=p`: an integer, only with mask=causal, with the queries' positions
    p .. p + T - 1 inside the S keys."""
    value = call.attrs.get("start")
    if value is None:
        return
    start = value.value
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise SpecError(value.loc, f"{call.op}: start must be an integer >= 0, got {value}")
    if mask.kind != "causal":
        raise SpecError(value.loc, f"{call.op}: start places the queries of a causal mask; "
                                   "add mask=causal")
    if start + rows > keys:
        raise SpecError(value.loc, f"{call.op}: queries at positions {start}..{start + rows - 1}"
                                   f" need {start + rows} keys, but K has {keys}")


OP_RULES.update({"attention": attention_rule, "sddmm": sddmm_rule, "softmax": softmax_rule,
                 "spmm": spmm_rule})
