"""Kernel ops of a transformer block beyond GEMM: normalization, activations, elementwise
arithmetic, rotary position embedding, head reshapes, concatenation and grouped-query
(KV-cache) attention. Same `sparsec` dialect as dialects/sparsec.py (registered there).

Example (one SmolLM2 attention half, decode step at position 7):

    %n = sparsec.rmsnorm %x, %g {eps = 1.0e-05 : f64} : (tensor<1x576xf32>, tensor<576xf32>)
           -> tensor<1x576xf32>
    %q = sparsec.heads %qp {heads = 9 : i64} : tensor<1x576xf32> -> tensor<9x1x64xf32>
    %r = sparsec.rope %q {base = 1.0e+05 : f64, start = 7 : i64} : tensor<9x1x64xf32>
           -> tensor<9x1x64xf32>
    %o = sparsec.gqa_attention %r, %k, %v {scale = 0.125 : f64, mask = "causal", start = 7 : i64}
           : (tensor<9x1x64xf32>, tensor<3x8x64xf32>, tensor<3x8x64xf32>) -> tensor<9x1x64xf32>

Every op computes in f32 (f64 for f64 tensors) and rounds its result once to the
declared element type; the numpy semantics are `sparsec.tensors.block_ops`.
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr, TensorType, f64, i64
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
)
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from sparsec.dialects.sparsec import _ranked, element_type_name
from sparsec.tensors.conventions import GELU_FORMS, ROPE_CONVENTIONS, broadcast_shape


def _float(value: SSAValue, role: str, op: str) -> TensorType:
    """The operand's ranked tensor type, checked to hold floating-point elements."""
    ttype = _ranked(value, role, op)
    if element_type_name(ttype.element_type).startswith("i"):
        raise VerifyException(f"{op}: {role} must be floating point, got {ttype}")
    return ttype


def _same_element(op: str, *types: TensorType) -> None:
    names = {element_type_name(t.element_type) for t in types}
    if len(names) != 1:
        raise VerifyException(f"{op}: operands and result must have one element type, got "
                              f"{', '.join(sorted(names))}")


def _dims(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _result_is(op: str, result: TensorType, shape: Sequence[int], like: TensorType) -> None:
    if tuple(result.get_shape()) != tuple(shape) or result.element_type != like.element_type:
        raise VerifyException(f"{op}: result must be tensor<{_dims(shape)}x"
                              f"{like.element_type}>, got {result}")


class _UnaryOp(IRDLOperation):
    """An elementwise op of one float tensor; the result has the input's type."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, properties: dict[str, Attribute] | None = None):
        super().__init__(operands=[value], result_types=[value.type],
                         properties=properties or {})

    def verify_(self) -> None:
        x = _float(self.input, "input", self.name)
        out = _ranked(self.result, "result", self.name)
        _result_is(self.name, out, x.get_shape(), x)


@irdl_op_definition
class SiluOp(_UnaryOp):
    """SiLU (swish): y = x * sigmoid(x) = x / (1 + exp(-x)), elementwise."""

    name = "sparsec.silu"


@irdl_op_definition
class ExpOp(_UnaryOp):
    """Exponential: y = exp(x), elementwise."""

    name = "sparsec.exp"




@irdl_op_definition
class GeluOp(_UnaryOp):
    """GELU, elementwise: y = 0.5 x (1 + erf(x / sqrt(2)))  (approximate = "none", default)
    or y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (approximate = "tanh")."""

    name = "sparsec.gelu"
    approximate = opt_prop_def(StringAttr)

    def __init__(self, value: SSAValue, approximate: str = "none"):
        props = {} if approximate == "none" else {"approximate": StringAttr(approximate)}
        super().__init__(value, props)

    @property
    def form(self) -> str:
        return self.approximate.data if self.approximate is not None else "none"

    def verify_(self) -> None:
        super().verify_()
        if self.form not in GELU_FORMS:
            raise VerifyException(f"{self.name}: approximate must be one of "
                                  f"{', '.join(GELU_FORMS)}, got '{self.form}'")


class _BinaryOp(IRDLOperation):
    """An elementwise op of two float tensors under numpy broadcasting: shapes are
    aligned at their last dimension and each pair of dimensions must be equal or one of
    them 1 (a [576] weight broadcasts over [T, 576] rows; a [T, 1] column over its row).
    The result has the broadcast shape and the operands' element type."""

    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` "
                       "`->` type($result)")

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType):
        super().__init__(operands=[lhs, rhs], result_types=[result_type])

    def verify_(self) -> None:
        a = _float(self.lhs, "lhs", self.name)
        b = _float(self.rhs, "rhs", self.name)
        out = _ranked(self.result, "result", self.name)
        _same_element(self.name, a, b, out)
        shape = broadcast_shape(a.get_shape(), b.get_shape())
        if shape is None:
            raise VerifyException(
                f"{self.name}: shapes {_dims(a.get_shape())} and {_dims(b.get_shape())} do not "
                "broadcast (aligned at the last dimension, each pair must be equal or 1)")
        _result_is(self.name, out, shape, a)


@irdl_op_definition
class AddOp(_BinaryOp):
    """Elementwise sum with numpy broadcasting: result[idx] = lhs[idx'] + rhs[idx'']."""

    name = "sparsec.add"


@irdl_op_definition
class MulOp(_BinaryOp):
    """Elementwise product with numpy broadcasting: result[idx] = lhs[idx'] * rhs[idx'']."""

    name = "sparsec.mul"


def _eps(op: IRDLOperation, eps: FloatAttr) -> None:
    value = eps.value.data
    if not value > 0:
        raise VerifyException(f"{op.name}: eps must be > 0, got {value}")


def _weight(op: IRDLOperation, value: SSAValue, role: str, x: TensorType) -> TensorType:
    w = _float(value, role, op.name)
    width = x.get_shape()[-1]
    if tuple(w.get_shape()) != (width,):
        raise VerifyException(f"{op.name}: {role} must be a vector of the input's last "
                              f"dimension ({width}), got {w}")
    return w


@irdl_op_definition
class RmsNormOp(IRDLOperation):
    """RMS normalization over the last dimension (d), with a learned gain:

        for each row x (last dimension):  y = x / sqrt(mean(x^2) + eps) * weight
    """

    name = "sparsec.rmsnorm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    eps = prop_def(FloatAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input `,` $weight attr-dict `:` `(` type($input) `,` type($weight) "
                       "`)` `->` type($result)")

    def __init__(self, value: SSAValue, weight: SSAValue, eps: float):
        super().__init__(operands=[value, weight], result_types=[value.type],
                         properties={"eps": FloatAttr(eps, f64)})

    def verify_(self) -> None:
        x = _float(self.input, "input", self.name)
        w = _weight(self, self.weight, "weight", x)
        out = _ranked(self.result, "result", self.name)
        _same_element(self.name, x, w, out)
        _result_is(self.name, out, x.get_shape(), x)
        _eps(self, self.eps)


@irdl_op_definition
class LayerNormOp(IRDLOperation):
    """Layer normalization over the last dimension, with gain and bias:

        for each row x:  mu = mean(x); var = mean((x - mu)^2)
                         y = (x - mu) / sqrt(var + eps) * weight + bias
    """

    name = "sparsec.layernorm"
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = operand_def(TensorType)
    result = result_def(TensorType)
    eps = prop_def(FloatAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input `,` $weight `,` $bias attr-dict `:` `(` type($input) `,` "
                       "type($weight) `,` type($bias) `)` `->` type($result)")

    def __init__(self, value: SSAValue, weight: SSAValue, bias: SSAValue, eps: float):
        super().__init__(operands=[value, weight, bias], result_types=[value.type],
                         properties={"eps": FloatAttr(eps, f64)})

    def verify_(self) -> None:
        x = _float(self.input, "input", self.name)
        w = _weight(self, self.weight, "weight", x)
        b = _weight(self, self.bias, "bias", x)
        out = _ranked(self.result, "result", self.name)
        _same_element(self.name, x, w, b, out)
        _result_is(self.name, out, x.get_shape(), x)
        _eps(self, self.eps)




def _rows_and_width(op: str, ttype: TensorType, role: str) -> tuple[int | None, int, int]:
    shape = ttype.get_shape()
    if len(shape) == 2:
        return None, shape[0], shape[1]
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    raise VerifyException(f"{op}: {role} must be [T, d] or [heads, T, d], got {ttype}")


def _start(op: IRDLOperation, start: IntegerAttr | None) -> int:
    value = start.value.data if start is not None else 0
    if value < 0:
        raise VerifyException(f"{op.name}: start must be >= 0, got {value}")
    return value


@irdl_op_definition
class RopeOp(IRDLOperation):
    """Rotary position embedding of rows at positions start, start + 1, ... (per head):

        for row t (position p = start + t), pair i < d/2:
            theta = p * base^(-2i / d)
            (y[2i], y[2i+1]) = (x[2i] cos theta - x[2i+1] sin theta,
                                x[2i] sin theta + x[2i+1] cos theta)
    With convention = "normal" (default) the pairs are adjacent elements (2i, 2i+1):
    llama.cpp's RoPE for GGUF Llama checkpoints, whose Q and K rows are permuted at
    conversion; convention = "neox" pairs (i, i + d/2) (Hugging Face's rotate_half).
    """

    name = "sparsec.rope"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    base = prop_def(FloatAttr)
    start = opt_prop_def(IntegerAttr)
    convention = opt_prop_def(StringAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, base: float, start: int = 0,
                 convention: str = "normal"):
        props: dict[str, Attribute] = {"base": FloatAttr(base, f64)}
        if start:
            props["start"] = IntegerAttr(start, i64)
        if convention != "normal":
            props["convention"] = StringAttr(convention)
        super().__init__(operands=[value], result_types=[value.type], properties=props)

    @property
    def start_position(self) -> int:
        return self.start.value.data if self.start is not None else 0

    def verify_(self) -> None:
        x = _float(self.input, "input", self.name)
        _, _, d = _rows_and_width(self.name, x, "input")
        if d % 2:
            raise VerifyException(f"{self.name}: the rotated (last) dimension must be even, "
                                  f"got {d}")
        if not self.base.value.data > 0:
            raise VerifyException(f"{self.name}: base must be > 0, got {self.base.value.data}")
        _start(self, self.start)
        convention = self.convention.data if self.convention is not None else "normal"
        if convention not in ROPE_CONVENTIONS:
            raise VerifyException(f"{self.name}: convention must be one of "
                                  f"{', '.join(ROPE_CONVENTIONS)}, got '{convention}'")
        _result_is(self.name, _ranked(self.result, "result", self.name), x.get_shape(), x)


@irdl_op_definition
class HeadsOp(IRDLOperation):
    """Split the columns of [T, H*d] into H heads: result[h, t, j] = input[t, h*d + j]."""

    name = "sparsec.heads"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    heads = prop_def(IntegerAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, heads: int, result_type: TensorType):
        super().__init__(operands=[value], result_types=[result_type],
                         properties={"heads": IntegerAttr(heads, i64)})

    def verify_(self) -> None:
        x = _ranked(self.input, "input", self.name)
        if x.get_num_dims() != 2:
            raise VerifyException(f"{self.name}: input must be rank 2 [T, H*d], got {x}")
        t, width = x.get_shape()
        h = self.heads.value.data
        if h < 1 or width % h:
            raise VerifyException(f"{self.name}: heads = {h} must divide the input's "
                                  f"{width} columns")
        _result_is(self.name, _ranked(self.result, "result", self.name), (h, t, width // h), x)


@irdl_op_definition
class MergeHeadsOp(IRDLOperation):
    """Concatenate H heads side by side: result[t, h*d + j] = input[h, t, j]."""

    name = "sparsec.merge_heads"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, result_type: TensorType):
        super().__init__(operands=[value], result_types=[result_type])

    def verify_(self) -> None:
        x = _ranked(self.input, "input", self.name)
        if x.get_num_dims() != 3:
            raise VerifyException(f"{self.name}: input must be rank 3 [H, T, d], got {x}")
        h, t, d = x.get_shape()
        _result_is(self.name, _ranked(self.result, "result", self.name), (t, h * d), x)


@irdl_op_definition
class ConcatOp(IRDLOperation):
    """Concatenation along `axis` (appending new keys to a KV cache along the rows):
    result = lhs followed by rhs along `axis`; every other dimension must agree."""

    name = "sparsec.concat"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    axis = prop_def(IntegerAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` "
                       "`->` type($result)")

    def __init__(self, lhs: SSAValue, rhs: SSAValue, axis: int, result_type: TensorType):
        super().__init__(operands=[lhs, rhs], result_types=[result_type],
                         properties={"axis": IntegerAttr(axis, i64)})

    def verify_(self) -> None:
        a = _ranked(self.lhs, "lhs", self.name)
        b = _ranked(self.rhs, "rhs", self.name)
        out = _ranked(self.result, "result", self.name)
        _same_element(self.name, a, b, out)
        axis = self.axis.value.data
        if a.get_num_dims() != b.get_num_dims() or not 0 <= axis < a.get_num_dims():
            raise VerifyException(f"{self.name}: operands must have one rank and 0 <= axis < "
                                  f"rank, got {a}, {b} and axis {axis}")
        sa, sb = list(a.get_shape()), list(b.get_shape())
        if sa[:axis] + sa[axis + 1:] != sb[:axis] + sb[axis + 1:]:
            raise VerifyException(f"{self.name}: {a} and {b} must agree in every dimension "
                                  f"but axis {axis}")
        sa[axis] += sb[axis]
        _result_is(self.name, out, sa, a)


GQA_MASKS = ("none", "causal")


@irdl_op_definition
class GqaAttentionOp(IRDLOperation):
    """Grouped-query attention, optionally causal over a KV cache (decoder attention):

        Q [Hq, T, d], K [Hkv, S, d], V [Hkv, S, e], Hkv divides Hq, group g = Hq / Hkv
        query head h reads key/value head h // g (consecutive query heads share one)
        query row t sits at position start + t; key j at position j
        causal: key j is visible to row t iff j <= start + t  (start defaults to S - T:
                the queries are the last T positions; a decode step has T = 1)
        O[h, t, :] = sum_j softmax_j(scale * Q[h, t] . K[h // g, j]) V[h // g, j, :]
        keep (optional operand, [S], 1 or 0): key j is visible only where keep[j] != 0
                (runtime token pruning: `sparsec.prune_tokens` decides it)
    Scores, probabilities and the output are rounded to the element type after each step
    (as sddmm, softmax and spmm do). A distinct op from `sparsec.attention` so a target
    that runs only equal-head attention refuses it by name.
    """

    name = "sparsec.gqa_attention"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    keep = var_operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(FloatAttr)
    mask = opt_prop_def(StringAttr)
    start = opt_prop_def(IntegerAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$query `,` $key `,` $value (`keep` $keep^)? attr-dict `:` `(` type($query) `,` "
        "type($key) `,` type($value) (`,` type($keep)^)? `)` `->` type($result)"
    )

    def __init__(self, query: SSAValue, key: SSAValue, value: SSAValue,
                 result_type: TensorType, scale: float, mask: str = "none",
                 start: int | None = None, keep: SSAValue | None = None):
        props: dict[str, Attribute] = {"scale": FloatAttr(scale, f64)}
        if mask != "none":
            props["mask"] = StringAttr(mask)
        if start is not None:
            props["start"] = IntegerAttr(start, i64)
        super().__init__(operands=[query, key, value, [keep] if keep is not None else []],
                         result_types=[result_type], properties=props)

    @property
    def mask_kind(self) -> str:
        return self.mask.data if self.mask is not None else "none"

    @property
    def start_position(self) -> int:
        """Position of the first query row (S - T unless `start` says otherwise)."""
        if self.start is not None:
            return self.start.value.data
        q = self.query.type.get_shape()  # type: ignore[union-attr]
        k = self.key.type.get_shape()  # type: ignore[union-attr]
        return k[-2] - q[-2]

    @property
    def group(self) -> int:
        """Query heads per key/value head."""
        q = self.query.type.get_shape()  # type: ignore[union-attr]
        k = self.key.type.get_shape()  # type: ignore[union-attr]
        return q[0] // k[0]

    def verify_(self) -> None:
        op = self.name
        q = _float(self.query, "query", op)
        k = _float(self.key, "key", op)
        v = _float(self.value, "value", op)
        out = _ranked(self.result, "result", op)
        _same_element(op, q, k, v, out)
        for role, ttype in (("query", q), ("key", k), ("value", v)):
            if ttype.get_num_dims() != 3:
                raise VerifyException(f"{op}: {role} must be rank 3 [heads, rows, d], "
                                      f"got {ttype}")
        hq, t, d = q.get_shape()
        hk, s, dk = k.get_shape()
        hv, sv, e = v.get_shape()
        if hk != hv or s != sv:
            raise VerifyException(f"{op}: key {k} and value {v} must agree in heads and rows")
        if hq % hk:
            raise VerifyException(f"{op}: key/value heads ({hk}) must divide query heads "
                                  f"({hq})")
        if d != dk:
            raise VerifyException(f"{op}: query and key must agree in their last dimension, "
                                  f"got {d} and {dk}")
        if not self.scale.value.data > 0:
            raise VerifyException(f"{op}: scale must be > 0, got {self.scale.value.data}")
        if self.mask_kind not in GQA_MASKS:
            raise VerifyException(f"{op}: mask must be one of {', '.join(GQA_MASKS)}, got "
                                  f"'{self.mask_kind}'")
        if self.start is not None and self.mask_kind != "causal":
            raise VerifyException(f"{op}: `start` places the queries for a causal mask; "
                                  "it needs mask = \"causal\"")
        if self.keep:
            kt = _float(self.keep[0], "keep", op)
            if tuple(kt.get_shape()) != (s,):
                raise VerifyException(f"{op}: keep must be [{s}] (one flag per key), got {kt}")
        start = _start(self, self.start) if self.start is not None else s - t
        if start < 0 or start + t > s:
            raise VerifyException(f"{op}: query positions {start}..{start + t - 1} need keys "
                                  f"up to position {start + t - 1}, but there are {s}")
        _result_is(op, out, (hq, t, e), q)


BLOCK_OPS = [RmsNormOp, LayerNormOp, SiluOp, GeluOp, ExpOp, AddOp, MulOp, RopeOp, HeadsOp,
             MergeHeadsOp, ConcatOp, GqaAttentionOp]
"""The block ops, registered in the `sparsec` dialect."""
