"""Dynamic-sparsity ops: `sparsec.kv_compress` (a KV-cache tensor as a recency-aware
precision policy stores it), `sparsec.prune_activations` (runtime importance pruning) and
`sparsec.prune_tokens` (runtime token pruning by accumulated attention).

Set by the `kv-quantize` and `kv-evict` passes in front of a decode step's attention;
its semantics are tensors/kv_cache.py `compress`, its storage is exact bits.
"""

from __future__ import annotations

from typing import Any

from xdsl.dialects.builtin import (
    ArrayAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    f64,
    i64,
)
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

ROLES = ("key", "value")


@irdl_op_definition
class KvCompressOp(IRDLOperation):
    """One KV-cache tensor X [H, S, d] (keys or values, oldest token first) after eviction
    and recency-tiered quantization:

        kept = [0, sink) + [S - window, S)   (every position when window = 0)
        groups of `group` positions; a group's tier follows the age of its newest token:
          tier i when sum(tiers[:i]) <= age < sum(tiers[:i+1]); the last group, if
          incomplete, is tier 0; bits[i] >= 16 keeps fp16, else asymmetric integers with
          one scale and min (meta_bits each) per channel over the group (`axis = channel`)
          or per token over `group` channels (`axis = token`), re-quantized down the tiers
        result = X[:, kept] as dequantized           [H, len(kept), d]

    Properties: role (key|value), bits, tiers, group, axis, sink, window, meta_bits,
    length (S: tiers and eviction are measured against the full cache).
    """

    name = "sparsec.kv_compress"
    input = operand_def(TensorType)
    result = result_def(TensorType)
    role = prop_def(StringAttr)
    bits = prop_def(ArrayAttr[IntegerAttr])
    tiers = prop_def(ArrayAttr[IntegerAttr])
    group = prop_def(IntegerAttr)
    axis = prop_def(StringAttr)
    sink = prop_def(IntegerAttr)
    window = prop_def(IntegerAttr)
    meta_bits = prop_def(IntegerAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, result_type: TensorType, role: str,
                 bits: tuple[int, ...], tiers: tuple[int, ...], group: int, axis: str,
                 sink: int, window: int, meta_bits: int):
        def ints(xs: tuple[int, ...]) -> ArrayAttr[IntegerAttr]:
            return ArrayAttr([IntegerAttr(x, i64) for x in xs])

        props: dict[str, Attribute] = {
            "role": StringAttr(role), "bits": ints(bits), "tiers": ints(tiers),
            "group": IntegerAttr(group, i64), "axis": StringAttr(axis),
            "sink": IntegerAttr(sink, i64), "window": IntegerAttr(window, i64),
            "meta_bits": IntegerAttr(meta_bits, i64)}
        super().__init__(operands=[value], result_types=[result_type], properties=props)

    def policy(self):  # -> sparsec.tensors.kv_cache.KVPolicy
        """The policy the properties spell (raises ValueError naming the broken rule)."""
        from sparsec.tensors.kv_cache import KVPolicy

        axis = self.axis.data
        return KVPolicy(bits=tuple(b.value.data for b in self.bits.data),
                        tiers=tuple(t.value.data for t in self.tiers.data),
                        group=self.group.value.data, sink=self.sink.value.data,
                        window=self.window.value.data, meta_bits=self.meta_bits.value.data,
                        key_axis=axis, value_axis=axis)

    def verify_(self) -> None:
        verify_kv_compress(self)


def verify_kv_compress(op: Any) -> None:
    """The rules of `KvCompressOp` (also the rules of the backends'
    ISA ops that carry its operands and properties)."""
    x = _ranked(op.input, "input", op.name)
    out = _ranked(op.result, "result", op.name)
    if element_type_name(x.element_type).startswith("i"):
        raise VerifyException(f"{op.name}: the cache must be floating point, got {x}")
    if op.role.data not in ROLES:
        raise VerifyException(f"{op.name}: role must be key or value, got "
                              f"'{op.role.data}'")
    if op.axis.data not in ("channel", "token"):
        raise VerifyException(f"{op.name}: axis must be channel or token, got "
                              f"'{op.axis.data}'")
    try:
        policy = op.policy()
    except ValueError as error:
        raise VerifyException(f"{op.name}: {error}") from None
    if x.get_num_dims() != 3:
        raise VerifyException(f"{op.name}: input must be [heads, tokens, d], got {x}")
    from sparsec.tensors.kv_cache import kept_positions

    h, s, d = x.get_shape()
    kept = kept_positions(s, policy.sink, policy.window).size
    if tuple(out.get_shape()) != (h, kept, d) or out.element_type != x.element_type:
        raise VerifyException(f"{op.name}: result must be tensor<{h}x{kept}x{d}x"
                              f"{x.element_type}> (sink {policy.sink} + window "
                              f"{policy.window} of {s} tokens), got {out}")


ESTIMATES = ("abs", "abs_w")


@irdl_op_definition
class PruneActivationsOp(IRDLOperation):
    """Runtime importance pruning of an activation X [M, K] before a product X W:

        saliency[m, k] = |X[m, k]|                      (estimate = abs)
                       = |X[m, k]| * max_n |W[k, n]|    (estimate = abs_w; W the weight
                                                         operand, [K, N], or [N, K] with
                                                         transpose_w)
        limit = threshold, or threshold * max_k saliency[m, k] when `relative`
        result[m, k] = X[m, k] if saliency[m, k] >= limit else 0
    Decided from the activation as it arrives; tensors/runtime_pruning.py has the
    semantics and the deciding cost (a compare per activation, plus a multiply for abs_w
    and a max pass when relative).
    """

    name = "sparsec.prune_activations"
    input = operand_def(TensorType)
    weight = var_operand_def(TensorType)
    result = result_def(TensorType)
    threshold = prop_def(FloatAttr)
    estimate = prop_def(StringAttr)
    relative = opt_prop_def(UnitAttr)
    transpose_w = opt_prop_def(UnitAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input (`weight` $weight^)? attr-dict `:` type($input) "
                       "(`,` type($weight)^)? `->` type($result)")

    def __init__(self, value: SSAValue, threshold: float, estimate: str, relative: bool,
                 weight: SSAValue | None = None, transpose_w: bool = False):
        props: dict[str, Attribute] = {"threshold": FloatAttr(threshold, f64),
                                       "estimate": StringAttr(estimate)}
        if relative:
            props["relative"] = UnitAttr()
        if transpose_w:
            props["transpose_w"] = UnitAttr()
        super().__init__(operands=[value, [weight] if weight is not None else []],
                         result_types=[value.type], properties=props)

    def verify_(self) -> None:
        verify_prune_activations(self)


def verify_prune_activations(op: Any) -> None:
    """The rules of `PruneActivationsOp` (also the rules of the backends'
    ISA ops that carry its operands and properties)."""
    x = _ranked(op.input, "input", op.name)
    out = _ranked(op.result, "result", op.name)
    if x.get_num_dims() != 2 or element_type_name(x.element_type).startswith("i"):
        raise VerifyException(f"{op.name}: input must be a float [M, K] activation, got {x}")
    if out != x:
        raise VerifyException(f"{op.name}: result must have the input's type {x}, got {out}")
    if not op.threshold.value.data >= 0:
        raise VerifyException(f"{op.name}: threshold must be >= 0, got "
                              f"{op.threshold.value.data}")
    estimate = op.estimate.data
    if estimate not in ESTIMATES:
        raise VerifyException(f"{op.name}: estimate must be abs or abs_w, got '{estimate}'")
    if (estimate == "abs_w") != bool(op.weight):
        raise VerifyException(f"{op.name}: estimate abs_w takes the weight operand "
                              "(and only abs_w does)")
    if not op.weight:
        return
    w = _ranked(op.weight[0], "weight", op.name)
    rows = w.get_shape()[1] if op.transpose_w is not None else w.get_shape()[0]
    if w.get_num_dims() != 2 or rows != x.get_shape()[1]:
        raise VerifyException(f"{op.name}: weight {w} must have K = {x.get_shape()[1]} "
                              "rows (columns with transpose_w)")


@irdl_op_definition
class PruneTokensOp(IRDLOperation):
    """Runtime token pruning (RTP-like) of a decode step's KV cache, decided from the
    accumulated-importance state earlier steps built (no look at the step itself):

        state [3, S]: per cached token, the attention it received summed over heads, the
                      steps it was seen, alive (1/0)
        keep[j] = decide_tokens(state, heads, threshold, sink, recent, min_seen)[j], j < S
        keep[j] = 1 for the step's `new` tokens (j >= S)             result [S + new]

    (tensors/runtime_pruning.py `decide_tokens`: alive tokens whose mean attention per
    step and head is below threshold / alive count are dropped, except the `sink` first,
    the `recent` last and those seen fewer than `min_seen` steps.) The decode attention
    takes `keep` as its operand. Deciding costs (heads + 2) operations per cached token
    (accumulating the last step's probabilities; normalize and compare).
    """

    name = "sparsec.prune_tokens"
    state = operand_def(TensorType)
    result = result_def(TensorType)
    threshold = prop_def(FloatAttr)
    sink = prop_def(IntegerAttr)
    recent = prop_def(IntegerAttr)
    min_seen = prop_def(IntegerAttr)
    heads = prop_def(IntegerAttr)
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$state attr-dict `:` type($state) `->` type($result)"

    def __init__(self, state: SSAValue, new: int, threshold: float, sink: int, recent: int,
                 min_seen: int, heads: int):
        st = state.type
        assert isinstance(st, TensorType)
        result = TensorType(st.element_type, [st.get_shape()[1] + new])
        props: dict[str, Attribute] = {
            "threshold": FloatAttr(threshold, f64), "sink": IntegerAttr(sink, i64),
            "recent": IntegerAttr(recent, i64), "min_seen": IntegerAttr(min_seen, i64),
            "heads": IntegerAttr(heads, i64)}
        super().__init__(operands=[state], result_types=[result], properties=props)

    def rule(self) -> dict[str, float | int]:
        """The decision's parameters as Python numbers (decide_tokens' keywords)."""
        return {"threshold": self.threshold.value.data, "sink": self.sink.value.data,
                "recent": self.recent.value.data, "min_seen": self.min_seen.value.data,
                "heads": self.heads.value.data}

    def verify_(self) -> None:
        verify_prune_tokens(self)


def verify_prune_tokens(op: Any) -> None:
    """The rules of `PruneTokensOp` (also the rules of the backends'
    ISA ops that carry its operands and properties)."""
    st = _ranked(op.state, "state", op.name)
    out = _ranked(op.result, "result", op.name)
    if element_type_name(st.element_type).startswith("i"):
        raise VerifyException(f"{op.name}: state must be floating point, got {st}")
    if st.get_num_dims() != 2 or st.get_shape()[0] != 3:
        raise VerifyException(f"{op.name}: state must be [3, S] (attention received, "
                              f"steps seen, alive per cached token), got {st}")
    if out.get_num_dims() != 1 or out.get_shape()[0] <= st.get_shape()[1] or \
            out.element_type != st.element_type:
        raise VerifyException(f"{op.name}: result must be [S + new] with new >= 1 "
                              f"(S = {st.get_shape()[1]}) of {st.element_type}, got {out}")
    rule = op.rule()
    if not rule["threshold"] >= 0:
        raise VerifyException(f"{op.name}: threshold must be >= 0, got {rule['threshold']}")
    for key in ("sink", "recent", "min_seen"):
        if rule[key] < 0:
            raise VerifyException(f"{op.name}: {key} must be >= 0, got {rule[key]}")
    if rule["heads"] < 1:
        raise VerifyException(f"{op.name}: heads must be >= 1, got {rule['heads']}")


KV_OPS = [KvCompressOp, PruneActivationsOp, PruneTokensOp]
