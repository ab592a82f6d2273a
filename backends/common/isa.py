"""ISA pieces every backend's dialect shares.

Each backend names its own ops (`systolic.zeros`, `stc.zeros`, ...) so its dialect is
self-contained, but some ops are the same everywhere: the op that zeroes an accumulator
(`AccumulatorZerosOp`, interpreted with `zero_accumulator`) and runtime activation pruning
(`ActivationPruneOp`, `sparsec.prune_activations` on the backend's own unit) and the
load-and-dequantize of a KV-cache tensor under a `sparsec.kv_compress` policy (`KvLoadOp`). Backends
subclass them with their name and a docstring saying where the work runs and what it costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import (
    ArrayAttr,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    var_operand_def,
)

from sparsec.dialects.kv import KvCompressOp, verify_kv_compress, verify_prune_activations
from sparsec.dialects.sparsec import element_type_name
from sparsec.tensors.numerics import accumulate_dtype


class AccumulatorZerosOp(IRDLOperation):
    """A zero accumulator of the result's shape: `acc = 0`."""

    result = result_def(TensorType)
    assembly_format = "attr-dict `:` type($result)"

    def __init__(self, result_type: TensorType):
        super().__init__(result_types=[result_type])


def zero_accumulator(op: AccumulatorZerosOp, execute: bool) -> Any:
    """The zeros an accumulator starts from, in the accumulator type of its element type
    (None when values are not executed)."""
    if not execute:
        return None
    ttype = op.result.type
    shape = tuple(ttype.get_shape())  # type: ignore[union-attr]
    element = element_type_name(ttype.element_type)  # type: ignore[union-attr]
    return np.zeros(shape, dtype=accumulate_dtype(element))


class ActivationPruneOp(IRDLOperation):
    """Runtime activation pruning with `sparsec.prune_activations`' semantics and properties:
    `%y = <backend>.prune %x [weight %w] {threshold = .., estimate = "abs"} : T [, W] -> T`."""

    input = operand_def(TensorType)
    weight = var_operand_def(TensorType)
    result = result_def(TensorType)
    threshold = prop_def(FloatAttr)
    estimate = prop_def(StringAttr)
    relative = opt_prop_def(UnitAttr)
    transpose_w = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$input (`weight` $weight^)? attr-dict `:` type($input) "
                       "(`,` type($weight)^)? `->` type($result)")

    def __init__(self, value: SSAValue, weight: list[SSAValue], result_type: Attribute,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[value, weight], result_types=[result_type],
                         properties=dict(properties))

    def verify_(self) -> None:
        """The rules of `sparsec.prune_activations` (same operands and properties)."""
        verify_prune_activations(self)


class KvLoadOp(IRDLOperation):
    """Read a KV-cache tensor as its `sparsec.kv_compress` policy stores it and dequantize
    it: `%k = <backend>.kv_load %K {role = "key", bits = [16, 4, 2], ...} : T -> T'`, with
    that op's semantics, properties and rules. Backends say where the work runs."""

    input = operand_def(TensorType)
    result = result_def(TensorType)
    role = prop_def(StringAttr)
    bits = prop_def(ArrayAttr)
    tiers = prop_def(ArrayAttr)
    group = prop_def(IntegerAttr)
    axis = prop_def(StringAttr)
    sink = prop_def(IntegerAttr)
    window = prop_def(IntegerAttr)
    meta_bits = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($result)"

    def __init__(self, value: SSAValue, result_type: Attribute,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[value], result_types=[result_type],
                         properties=dict(properties))

    def policy(self):  # -> sparsec.tensors.kv_cache.KVPolicy
        """The policy the properties spell (as `sparsec.kv_compress`'s)."""
        return KvCompressOp.policy(self)  # type: ignore[arg-type]

    def verify_(self) -> None:
        """The rules of `sparsec.kv_compress` (same input, result and properties)."""
        verify_kv_compress(self)
