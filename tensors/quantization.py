"""Uniform integer quantization, shared by the `quantize` pass and run-time inputs.

A tensor is represented by integer codes q and an affine map back to values,
w ~ scale * (q - zero_point), per tensor or per slice along one axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quantization:
    """Integer codes and the affine map back to values: w ~ scale * (q - zero_point)."""

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray

    def values(self, axis: int | None) -> np.ndarray:
        scale, zero = self.scale, self.zero_point
        if axis is not None:
            shape = [1] * self.codes.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        return (scale * (self.codes.astype(np.float64) - zero)).astype(np.float64)


def quantize_values(values: np.ndarray, bits: int, symmetric: bool,
                    axis: int | None) -> Quantization:
    """Quantize per tensor (`axis` None) or per slice along `axis`, round to nearest.

    Full-size arrays: the values as float64 (none if they are float64 already) and the
    codes, rounded and clipped in place (a model's LM head is 28 M weights: each
    temporary more was 226 MB of fresh pages to zero)."""
    w = np.asarray(values, dtype=np.float64)
    reduce = None if axis is None else tuple(d for d in range(w.ndim) if d != axis)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        largest = np.maximum(np.max(w, axis=reduce), -np.min(w, axis=reduce))  # max |w|
        scale = largest / qmax
        scale = np.where(scale > 0, scale, 1.0)
        zero = np.zeros_like(scale)
        low, high = -qmax - 1, qmax
    else:
        qmax = 2**bits - 1
        lo = np.minimum(np.min(w, axis=reduce), 0.0)
        hi = np.maximum(np.max(w, axis=reduce), 0.0)
        scale = np.where(hi > lo, (hi - lo) / qmax, 1.0)
        zero = np.round(-lo / scale)
        low, high = 0, qmax
    scale, zero = np.atleast_1d(scale), np.atleast_1d(zero)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    q = w / scale.reshape(shape)
    np.rint(q, out=q)  # np.round's nearest-even, in place
    q += zero.reshape(shape)
    np.clip(q, low, high, out=q)
    return Quantization(q.astype(np.int64), scale, zero.astype(np.int64))


def quantize_dynamic(values: np.ndarray, bits: int, symmetric: bool) -> np.ndarray:
    """Values after per-tensor quantization with a scale computed from the values
    themselves: what hardware does to a runtime input as it arrives."""
    q = quantize_values(values, bits, symmetric, None)
    return q.values(None)


def quantize_static(values: np.ndarray, bits: int, symmetric: bool, scale: float,
                    zero_point: int) -> np.ndarray:
    """Values after quantization with a given per-tensor scale and zero point (codes
    clipped to the `bits`-bit range): a runtime input declared in a fixed format."""
    low, high = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric
                 else (0, 2**bits - 1))
    codes = np.clip(np.rint(values.astype(np.float64) / scale) + zero_point, low, high)
    return scale * (codes - zero_point)
