"""`quantize`: uniform integer quantization of a param, per tensor or per output channel.

Symmetric (default): scale = max|w| / (2^(bits-1) - 1), q = clip(round(w / scale)),
zero maps to zero, so pruned zeros stay zeros. Asymmetric: scale = (max - min) /
(2^bits - 1), zero_point = round(-min / scale), q in [0, 2^bits - 1]. The stored values
become scale * (q - zero_point) (the program computes with exactly the values the
integer hardware represents); the codes and scales go to the DataStore (`#q`, `#scale`,
`#zero_point`) and the tensor gets `#sparsec.quantized<...>` around its layout.
Fixed point (`frac_bits=F`, symmetric, per tensor): scale = 2^-F, q = clip(round(w 2^F));
a runtime input then declares that it arrives in that format (EIE's 16-bit activations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.dialects.formats import CodebookAttr, QuantizedAttr, quantized
from sparsec.passes.common import (
    FORMAT_ONLY,
    Target,
    encoding_of,
    fail,
    param_values,
    record_format_only,
    set_type,
    targets,
    update_param_values,
    with_encoding,
)
from sparsec.tensors.datastore import DataStore, current_store
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.quantization import Quantization, quantize_values


def fixed_point_values(values: np.ndarray, bits: int, frac_bits: int) -> Quantization:
    """Symmetric codes with the power-of-two scale 2^-frac_bits, clipped to `bits` bits."""
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = np.clip(np.rint(np.ldexp(values.astype(np.float64), frac_bits)), low, high)
    return Quantization(codes.astype(np.int64), np.array([np.ldexp(1.0, -frac_bits)]),
                        np.zeros(1, dtype=np.int64))


def channel_axis(target: Target) -> int:
    """The output-channel axis of a matmul operand: the one that is not reduced."""
    return 1 - target.reduction_axis


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    """Quantize to `bits`-bit integers, e.g. `quantize{bits=8 operand=b per_channel=true}`."""

    name: ClassVar[str] = "quantize"

    bits: int = 8
    operand: str = "b"
    per_channel: bool = False
    symmetric: bool = True
    frac_bits: int = -1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not 2 <= self.bits <= 16:
            raise fail(self.name, None, f"bits must lie in [2, 16], got {self.bits}")
        fixed = self.frac_bits >= 0
        if fixed and (self.per_channel or not self.symmetric or self.frac_bits > 62):
            raise fail(self.name, None, "frac_bits (fixed point, scale 2^-frac_bits) takes a "
                       "symmetric per-tensor quantization and lies in [0, 62]")
        extra = " per_channel=true" if self.per_channel else ""
        extra += f" frac_bits={self.frac_bits}" if fixed else ""
        label = f"quantize{{bits={self.bits}{extra}}}"
        effect: dict[str, float | int | str] = {"pass": label, "bits": self.bits}
        for target in list(targets(op, self.operand, self.name)):
            layout = encoding_of(target.ttype)
            if isinstance(layout, (QuantizedAttr, CodebookAttr)):
                raise fail(self.name, target, f"is already {layout.name}; quantize once")
            axis = channel_axis(target) if self.per_channel else None
            scale = float(np.ldexp(1.0, -self.frac_bits)) if fixed else None
            if not target.is_param:
                encoding = quantized(self.bits, scale=scale, axis=axis,
                                     symmetric=self.symmetric, layout=layout)
                set_type(target, with_encoding(target.ttype, encoding))
                note = (f"format only: runtime input, arrives in fixed point (multiples of "
                        f"2^-{self.frac_bits})") if fixed else FORMAT_ONLY
                record_format_only(target, {**effect, "note": note})
                continue
            self._quantize_param(target, current_store(), axis, layout, effect)

    def _quantize_param(self, target: Target, store: DataStore, axis: int | None,
                        layout: object, effect: dict[str, float | int | str]) -> None:
        values = param_values(store, target)
        if self.frac_bits >= 0:
            q = fixed_point_values(values, self.bits, self.frac_bits)
            unclipped = np.rint(np.ldexp(values.astype(np.float64), self.frac_bits))
            effect = {**effect, "clipped": int(np.count_nonzero(unclipped != q.codes))}
        else:
            q = quantize_values(values, self.bits, self.symmetric, axis)
        dtype = store.dtypes[target.key]
        store.put(f"{target.key}#q", q.codes.astype(np.int32), "i32")
        store.put(f"{target.key}#scale", q.scale.astype(np.float64), "f64")
        store.put(f"{target.key}#zero_point", q.zero_point.astype(np.int32), "i32")
        dequantized = round_to_dtype(q.values(axis), dtype).astype(values.dtype)
        update_param_values(target, store, dequantized, effect)
        if axis is None:
            encoding = quantized(self.bits, scale=float(q.scale[0]),
                                 zero_point=int(q.zero_point[0]),
                                 symmetric=self.symmetric, layout=layout)  # type: ignore[arg-type]
        else:
            encoding = quantized(self.bits, axis=axis, symmetric=self.symmetric,
                                 layout=layout)  # type: ignore[arg-type]
        set_type(target, with_encoding(target.ttype, encoding))
