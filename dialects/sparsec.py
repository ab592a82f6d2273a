"""The sparsec dialect: kernel-level tensor ops and the ops that bind DataStore symbols.

Kernel IR is a `func.func` per kernel whose body binds its tensors to DataStore symbols
(`sparsec.input` for runtime data, `sparsec.param` for compile-time constants), computes
with kernel ops (`sparsec.matmul`, ...) and returns its outputs. Values never live in
attributes: the IR carries the symbol, the type (with its encoding) and summary stats.

Example:

    func.func @gemm() -> tensor<128x1536xf32> attributes {sparsec.outputs = ["Y"]} {
      %X = sparsec.input @X : tensor<128x384xf32>
      %W = sparsec.param @W {density = 5.000000e-01 : f64, nnz = 294912 : i64}
             : tensor<384x1536xf32>
      %Y = sparsec.matmul %X, %W : (tensor<128x384xf32>, tensor<384x1536xf32>)
             -> tensor<128x1536xf32>
      func.return %Y : tensor<128x1536xf32>
    }
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from xdsl.dialects.builtin import (
    ArrayAttr,
    BFloat16Type,
    DictionaryAttr,
    Float16Type,
    Float32Type,
    Float64Type,
    FloatAttr,
    IntegerAttr,
    IntegerType,
    StringAttr,
    SymbolRefAttr,
    TensorType,
    UnitAttr,
    f64,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
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
from xdsl.traits import NoMemoryEffect, Pure
from xdsl.utils.exceptions import VerifyException

from sparsec.dialects.bitlevel import BitLevelAttr
from sparsec.dialects.formats import FORMAT_ATTRIBUTES
from sparsec.tensors.conventions import accumulator_type_name

ELEMENT_TYPES: dict[str, Attribute] = {
    "f64": Float64Type(),
    "f32": Float32Type(),
    "f16": Float16Type(),
    "bf16": BFloat16Type(),
    "i32": IntegerType(32),
    "i16": IntegerType(16),
    "i8": IntegerType(8),
}
"""Element types a kernel spec may declare, by their spec names."""


def element_type_name(element_type: Attribute) -> str:
    """The spec name (`f32`, `bf16`, `i8`, ...) of an xDSL element type."""
    for name, attr in ELEMENT_TYPES.items():
        if attr == element_type:
            return name
    raise VerifyException(f"unsupported element type {element_type}; sparsec supports "
                          f"{', '.join(ELEMENT_TYPES)}")


def tensor_type(shape: Sequence[int], element: str, encoding: Attribute | None = None
                ) -> TensorType:
    """A ranked tensor type from a shape, a spec element-type name and an encoding.

    Without an encoding, equal types are one shared instance (types are immutable
    values): a spec of thousands of kernels builds and verifies `tensor<8x8xf32>` once,
    not once per use (issue 10, item 13)."""
    if encoding is None:
        return _plain_tensor_type(tuple(shape), element)
    return TensorType(ELEMENT_TYPES[element], shape, encoding)


@lru_cache(maxsize=4096)
def _shared_symbol(name: str) -> SymbolRefAttr:
    """`@name`, one instance per name (see `tensor_type`: attributes are values)."""
    return SymbolRefAttr(name)


def shared_i64(value: int) -> IntegerAttr:
    """`IntegerAttr(value, i64)`, one shared instance per value (see `tensor_type`): a
    lowering of thousands of kernels builds the same word counts and indices over and
    over, and building and checking an IntegerAttr was a fifth of it. numpy integers
    are converted first, so the attribute always holds a Python int."""
    return _shared_i64(int(value))


@lru_cache(maxsize=65536)
def _shared_i64(value: int) -> IntegerAttr:
    return IntegerAttr(value, i64)


@lru_cache(maxsize=4096)
def _shared_f64(hex_value: str) -> FloatAttr:
    """Keyed by the float's exact bits (`float.hex`): 0.0 and -0.0 print differently."""
    return FloatAttr(float.fromhex(hex_value), f64)


@lru_cache(maxsize=4096)
def _plain_tensor_type(shape: tuple[int, ...], element: str) -> TensorType:
    return TensorType(ELEMENT_TYPES[element], shape)


def _ranked(value: SSAValue, role: str, op_name: str) -> TensorType:
    """The operand's tensor type, checked to be static and of a supported element type."""
    ttype = value.type
    if not isinstance(ttype, TensorType):
        raise VerifyException(f"{op_name}: {role} must be a ranked tensor, got {ttype}")
    if any(d < 0 for d in ttype.get_shape()):
        raise VerifyException(f"{op_name}: {role} must have a static shape, got {ttype}")
    element_type_name(ttype.element_type)
    verify_encoding = getattr(ttype.encoding, "verify_tensor_type", None)
    if verify_encoding is not None:
        verify_encoding(ttype)
    return ttype


class _BindOp(IRDLOperation):
    """Common verifier of the ops that bind a tensor to a DataStore symbol.

    `effects` lists what passes did to the tensor, one dictionary per pass, e.g.
    `{pass = "prune-nm{n=2 m=4}", density = 0.5, retained_energy = 0.86, rel_error = 0.5}`
    for a param, `{pass = "sparsify{...}", note = "format only: runtime input"}` for an input.
    """

    symbol = prop_def(SymbolRefAttr)
    effects = opt_prop_def(ArrayAttr[DictionaryAttr])
    result = result_def(TensorType)

    def record_effect(self, effect: dict[str, float | int | str]) -> None:
        """Append one pass's effect to `effects` (numbers as f64/i64, text as strings)."""
        entry = DictionaryAttr({key: _effect_value(value) for key, value in effect.items()})
        previous = list(self.effects.data) if self.effects is not None else []
        self.effects = ArrayAttr([*previous, entry])

    def effect_list(self) -> list[dict[str, float | int | str]]:
        """`effects` as plain Python dictionaries, for reports."""
        if self.effects is None:
            return []
        return [{k: _plain(v) for k, v in entry.data.items()} for entry in self.effects.data]

    def verify_(self) -> None:
        ttype = _ranked(self.result, "result", self.name)
        _verify_sparse_encoding(ttype)
        if self.symbol.nested_references.data:
            raise VerifyException(f"{self.name}: symbol must be flat (@name), got {self.symbol}")
        nnz = getattr(self, "nnz", None)
        if nnz is None:
            return
        size = 1
        for d in ttype.get_shape():
            size *= d
        if not 0 <= nnz.value.data <= size:
            raise VerifyException(
                f"{self.name}: nnz = {nnz.value.data} must lie in [0, {size}] for {ttype}")

    @property
    def sym_name(self) -> str:
        return self.symbol.root_reference.data


def _verify_sparse_encoding(ttype: TensorType) -> None:
    """MLIR's `verifyEncoding`: a `#sparse_tensor.encoding` must fit its tensor (a rank-3
    encoding on a rank-2 tensor parses in xDSL, but mlir-opt rejects it). Every tensor of a
    kernel starts at a binding op, so checking there covers xdsl-opt as well as sparsec."""
    from sparsec.dialects.sparse_tensor import SparseTensorEncodingAttr

    if isinstance(ttype.encoding, SparseTensorEncodingAttr):
        ttype.encoding.verify_tensor_type(ttype)


def _effect_value(value: float | int | str) -> Attribute:
    if isinstance(value, bool):
        return IntegerAttr(int(value), i64)
    if isinstance(value, int):
        return IntegerAttr(value, i64)
    if isinstance(value, float):
        return FloatAttr(value, f64)
    return StringAttr(str(value))


def _plain(attr: Attribute) -> float | int | str:
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    return str(attr)


@irdl_op_definition
class InputOp(_BindOp):
    """Binds a runtime input tensor, read from the DataStore at execution time.

    Semantics: `%x = sparsec.input @X : T`  ==>  x = store[kernel + "." + "X"]
    The data may be replaced at run time (it is the kernel's input); passes may change
    its declared format (encoding) but never its values.
    """

    name = "sparsec.input"
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$symbol attr-dict `:` type($result)"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, symbol: str, result_type: TensorType):
        super().__init__(properties={"symbol": _shared_symbol(symbol)},
                         result_types=[result_type])


@irdl_op_definition
class ParamOp(_BindOp):
    """Binds a compile-time constant tensor held in the DataStore.

    Semantics: `%w = sparsec.param @W {nnz = N, density = d} : T`  ==>  w = store[kernel.W]
    Passes may rewrite the stored values (pruning, quantizing) together with the IR;
    `nnz` and `density` summarize the stored values so the IR shows what a pass did.
    """

    name = "sparsec.param"
    nnz = opt_prop_def(IntegerAttr)
    density = opt_prop_def(FloatAttr)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "$symbol attr-dict `:` type($result)"
    irdl_options = (ParsePropInAttrDict(),)

    def __init__(self, symbol: str, result_type: TensorType, nnz: int | None = None,
                 density: float | None = None):
        properties: dict[str, Attribute] = {"symbol": _shared_symbol(symbol)}
        if nnz is not None:
            properties["nnz"] = shared_i64(nnz)
        if density is not None:
            properties["density"] = _shared_f64(float(density).hex())
        super().__init__(properties=properties, result_types=[result_type])


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """Matrix product of two rank-2 tensors, optionally transposing either operand.

    Semantics:
        A = transpose_a ? lhs^T : lhs          # M x K
        B = transpose_b ? rhs^T : rhs          # K x N
        for i < M, j < N: result[i, j] = sum_k A[i, k] * B[k, j]
    Float operands accumulate in at least f32 and round the result to their type;
    integer operands (i8, i16, i32) accumulate exactly and return i32.
    """

    name = "sparsec.matmul"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    transpose_a = opt_prop_def(UnitAttr)
    transpose_b = opt_prop_def(UnitAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType,
                 transpose_a: bool = False, transpose_b: bool = False):
        properties: dict[str, Attribute] = {}
        if transpose_a:
            properties["transpose_a"] = UnitAttr()
        if transpose_b:
            properties["transpose_b"] = UnitAttr()
        super().__init__(operands=[lhs, rhs], result_types=[result_type],
                         properties=properties)

    def problem_shape(self) -> tuple[int, int, int]:
        """(M, N, K) of the product after applying the transpose flags."""
        a = self.lhs.type.get_shape()  # type: ignore[union-attr]
        b = self.rhs.type.get_shape()  # type: ignore[union-attr]
        m, k = (a[1], a[0]) if self.transpose_a else (a[0], a[1])
        k2, n = (b[1], b[0]) if self.transpose_b else (b[0], b[1])
        if k != k2:
            raise VerifyException(
                f"sparsec.matmul: inner dimensions disagree: lhs gives K={k} "
                f"but rhs gives K={k2}")
        return m, n, k

    def verify_(self) -> None:
        a = _ranked(self.lhs, "lhs", self.name)
        b = _ranked(self.rhs, "rhs", self.name)
        out = _ranked(self.result, "result", self.name)
        if a.get_num_dims() != 2 or b.get_num_dims() != 2:
            raise VerifyException("sparsec.matmul: operands must be rank 2, got "
                                  f"{a.get_num_dims()} and {b.get_num_dims()}")
        if a.element_type != b.element_type:
            raise VerifyException(
                "sparsec.matmul: operands must have one element type, got "
                f"{a.element_type} and {b.element_type}")
        m, n, _ = self.problem_shape()
        if tuple(out.get_shape()) != (m, n):
            raise VerifyException(
                f"sparsec.matmul: result shape must be {m}x{n} (M x N), got {out}")
        expected = accumulator_type_name(element_type_name(a.element_type))
        if element_type_name(out.element_type) != expected:
            raise VerifyException(
                f"sparsec.matmul: result element type must be {expected} for "
                f"{element_type_name(a.element_type)} operands, got {out.element_type}")


MASK_KINDS = ("none", "causal", "window", "pattern")
"""Attention masks: all pairs, j <= i (aligned to the last key), |i - j| <= window, or
an explicit 0/1 pattern tensor [T, S] (an extra operand)."""


class _MaskedOp(IRDLOperation):
    """Shared mask properties and checks of the attention-family ops.

    `mask` names the kind; `window` is the half-width of a band mask; a `pattern` mask
    takes a 0/1 i8 tensor [T, S] as its last operand.
    """

    mask = opt_prop_def(StringAttr)
    window = opt_prop_def(IntegerAttr)

    @property
    def mask_kind(self) -> str:
        return self.mask.data if self.mask is not None else "none"

    @property
    def window_size(self) -> int | None:
        return self.window.value.data if self.window is not None else None

    def _verify_mask(self, scores: tuple[int, int], pattern: SSAValue | None) -> None:
        kind = self.mask_kind
        if kind not in MASK_KINDS:
            raise VerifyException(f"{self.name}: mask must be one of {', '.join(MASK_KINDS)}, "
                                  f"got '{kind}'")
        if (kind == "window") != (self.window is not None):
            raise VerifyException(f"{self.name}: a window mask needs `window` (and only it)")
        if kind == "window" and self.window_size is not None and self.window_size < 0:
            raise VerifyException(f"{self.name}: window must be >= 0, got {self.window_size}")
        if (kind == "pattern") != (pattern is not None):
            raise VerifyException(f"{self.name}: a pattern mask takes the pattern as its last "
                                  "operand (and only a pattern mask does)")
        if pattern is None:
            return
        ptype = _ranked(pattern, "pattern", self.name)
        if tuple(ptype.get_shape()) != scores:
            raise VerifyException(f"{self.name}: pattern must be {scores[0]}x{scores[1]} "
                                  f"(T x S), got {ptype}")


def _mask_properties(mask: str, window: int | None) -> dict[str, Attribute]:
    properties: dict[str, Attribute] = {}
    if mask != "none":
        properties["mask"] = StringAttr(mask)
    if window is not None:
        properties["window"] = IntegerAttr(window, i64)
    return properties


def _heads_rows_cols(ttype: TensorType, role: str, op: str) -> tuple[int | None, int, int]:
    """(heads or None, rows, cols) of a rank-2 or rank-3 (leading head dim) tensor."""
    shape = ttype.get_shape()
    if len(shape) == 2:
        return None, shape[0], shape[1]
    if len(shape) == 3:
        return shape[0], shape[1], shape[2]
    raise VerifyException(f"{op}: {role} must be [T, d] or [heads, T, d], got {ttype}")


def _float_operands(op: str, *types: TensorType) -> None:
    names = {element_type_name(t.element_type) for t in types}
    if len(names) != 1:
        raise VerifyException(f"{op}: operands must have one element type, got "
                              f"{', '.join(sorted(names))}")
    if names.pop().startswith("i"):
        raise VerifyException(f"{op}: attention operands must be floating point")


def _expect(op: str, result: TensorType, shape: tuple[int, ...], element: Attribute) -> None:
    if tuple(result.get_shape()) != shape or result.element_type != element:
        dims = "x".join(map(str, shape))
        raise VerifyException(f"{op}: result must be tensor<{dims}x{element}>, got {result}")


@irdl_op_definition
class SddmmOp(_MaskedOp):
    """Sampled dense-dense product: the attention scores on the mask's pattern.

    Semantics (per head h when rank 3):
        S[h, i, j] = scale * sum_d A[h, i, d] * B[h, j, d]   if mask(i, j)
                   = 0                                        otherwise
    """

    name = "sparsec.sddmm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    pattern = var_operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(FloatAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs (`pattern` $pattern^)? attr-dict `:` `(` type($lhs) `,` type($rhs) "
        "(`,` type($pattern)^)? `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType, scale: float,
                 mask: str = "none", window: int | None = None,
                 pattern: SSAValue | None = None):
        properties = {"scale": FloatAttr(scale, f64), **_mask_properties(mask, window)}
        super().__init__(operands=[lhs, rhs, [pattern] if pattern is not None else []],
                         result_types=[result_type], properties=properties)

    def verify_(self) -> None:
        a = _ranked(self.lhs, "lhs", self.name)
        b = _ranked(self.rhs, "rhs", self.name)
        out = _ranked(self.result, "result", self.name)
        _float_operands(self.name, a, b)
        ha, t, d = _heads_rows_cols(a, "lhs", self.name)
        hb, s_len, d2 = _heads_rows_cols(b, "rhs", self.name)
        if ha != hb or d != d2:
            raise VerifyException(f"{self.name}: lhs {a} and rhs {b} must agree in heads and "
                                  "the contracted (last) dimension")
        shape = (t, s_len) if ha is None else (ha, t, s_len)
        _expect(self.name, out, shape, a.element_type)
        self._verify_mask((t, s_len), self.pattern[0] if self.pattern else None)


@irdl_op_definition
class SoftmaxOp(_MaskedOp):
    """Row softmax over the entries the mask allows (the others are 0).

    Semantics: P[.., i, j] = exp(S[.., i, j] - m_i) / sum_{j' in mask(i)} exp(S[.., i, j'] - m_i)
    for j in mask(i), m_i = max over mask(i); P = 0 elsewhere (a row with no allowed
    entry is all 0).
    """

    name = "sparsec.softmax"
    input = operand_def(TensorType)
    pattern = var_operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$input (`pattern` $pattern^)? attr-dict `:` `(` type($input) "
        "(`,` type($pattern)^)? `)` `->` type($result)"
    )

    def __init__(self, value: SSAValue, mask: str = "none", window: int | None = None,
                 pattern: SSAValue | None = None):
        super().__init__(operands=[value, [pattern] if pattern is not None else []],
                         result_types=[value.type], properties=_mask_properties(mask, window))

    def verify_(self) -> None:
        x = _ranked(self.input, "input", self.name)
        _float_operands(self.name, x)
        _, t, s_len = _heads_rows_cols(x, "input", self.name)
        _expect(self.name, _ranked(self.result, "result", self.name), tuple(x.get_shape()),
                x.element_type)
        self._verify_mask((t, s_len), self.pattern[0] if self.pattern else None)


@irdl_op_definition
class SpmmOp(IRDLOperation):
    """Sparse (attention probabilities) times dense (values), per head.

    Semantics: O[.., i, e] = sum_j P[.., i, j] * V[.., j, e]
    """

    name = "sparsec.spmm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$lhs `,` $rhs attr-dict `:` `(` type($lhs) `,` type($rhs) `)` `->` type($result)"
    )

    def __init__(self, lhs: SSAValue, rhs: SSAValue, result_type: TensorType):
        super().__init__(operands=[lhs, rhs], result_types=[result_type])

    def verify_(self) -> None:
        p = _ranked(self.lhs, "lhs", self.name)
        v = _ranked(self.rhs, "rhs", self.name)
        _float_operands(self.name, p, v)
        hp, t, s_len = _heads_rows_cols(p, "lhs", self.name)
        hv, s2, e = _heads_rows_cols(v, "rhs", self.name)
        if hp != hv or s_len != s2:
            raise VerifyException(f"{self.name}: lhs {p} and rhs {v} must agree in heads and "
                                  "the contracted dimension (S)")
        shape = (t, e) if hp is None else (hp, t, e)
        _expect(self.name, _ranked(self.result, "result", self.name), shape, p.element_type)


@irdl_op_definition
class AttentionOp(_MaskedOp):
    """Scaled dot-product attention, single or multi-head (leading head dimension).

    Semantics: O = spmm(softmax(sddmm(Q, K, scale, mask), mask), V), i.e.
        O[.., i, :] = sum_{j in mask(i)} softmax_j(scale * Q[.., i, :] . K[.., j, :]) V[.., j, :]
    `decompose-attention` rewrites it into exactly those three ops.
    """

    name = "sparsec.attention"
    query = operand_def(TensorType)
    key = operand_def(TensorType)
    value = operand_def(TensorType)
    pattern = var_operand_def(TensorType)
    result = result_def(TensorType)
    scale = prop_def(FloatAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = (
        "$query `,` $key `,` $value (`pattern` $pattern^)? attr-dict `:` `(` type($query) `,` "
        "type($key) `,` type($value) (`,` type($pattern)^)? `)` `->` type($result)"
    )

    def __init__(self, query: SSAValue, key: SSAValue, value: SSAValue,
                 result_type: TensorType, scale: float, mask: str = "none",
                 window: int | None = None, pattern: SSAValue | None = None):
        properties = {"scale": FloatAttr(scale, f64), **_mask_properties(mask, window)}
        super().__init__(operands=[query, key, value, [pattern] if pattern is not None else []],
                         result_types=[result_type], properties=properties)

    def verify_(self) -> None:
        q = _ranked(self.query, "query", self.name)
        k = _ranked(self.key, "key", self.name)
        v = _ranked(self.value, "value", self.name)
        _float_operands(self.name, q, k, v)
        hq, t, d = _heads_rows_cols(q, "query", self.name)
        hk, s_len, dk = _heads_rows_cols(k, "key", self.name)
        hv, sv, e = _heads_rows_cols(v, "value", self.name)
        if not hq == hk == hv or d != dk or s_len != sv:
            raise VerifyException(f"{self.name}: Q {q}, K {k}, V {v} must agree in heads, "
                                  "Q and K in their last dimension, K and V in their rows")
        shape = (t, e) if hq is None else (hq, t, e)
        _expect(self.name, _ranked(self.result, "result", self.name), shape, q.element_type)
        self._verify_mask((t, s_len), self.pattern[0] if self.pattern else None)


OUTPUTS_ATTR = "sparsec.outputs"
"""func.func attribute naming the kernel's outputs, in the order of func.return."""

TARGET_ATTR = "sparsec.target"
"""builtin.module attribute: the target spec (`systolic{rows=32 ...}`) it was lowered for."""


def output_names(attr: Attribute | None, count: int) -> list[str]:
    """Names of a kernel's outputs from its `sparsec.outputs` attribute."""
    if attr is None:
        return [f"out{i}" for i in range(count)]
    return [s.data for s in attr.data if isinstance(s, StringAttr)]  # type: ignore[attr-defined]


# The block ops (dialects/block.py) use this module's helpers, so they are imported last.
from sparsec.dialects.block import BLOCK_OPS  # noqa: E402
from sparsec.dialects.kv import KV_OPS  # noqa: E402

Sparsec = Dialect(
    "sparsec",
    [InputOp, ParamOp, MatmulOp, SddmmOp, SoftmaxOp, SpmmOp, AttentionOp, *BLOCK_OPS, *KV_OPS],
    [*FORMAT_ATTRIBUTES, BitLevelAttr],
)
