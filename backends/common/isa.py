"""ISA pieces every backend's dialect shares.

Each backend names its own ops (`systolic.zeros`, `stc.zeros`, ...) so its dialect is
self-contained, but the op that zeroes an accumulator is the same everywhere: backends
subclass `AccumulatorZerosOp` with their name and a docstring saying where the
accumulator lives, and interpret it with `zero_accumulator`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.irdl import IRDLOperation, result_def

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
