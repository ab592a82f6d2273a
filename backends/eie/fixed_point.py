"""EIE's fixed-point numbers: activation codes, codebook codes and the saturating accumulator.

- An activation is a `bits`-bit signed code q_a with a per-tensor scale s_a: a = s_a q_a.
  A power-of-two scale (`quantize{frac_bits=F}`, s_a = 2^-F) is fixed point proper; a
  dynamic or static non-power-of-two scale is recovered from the format and the values.
- A weight is a codebook entry c = 2^-F_w q_w with q_w a `word_bits`-bit signed code;
  F_w is the widest fraction the largest |entry| leaves room for, and every entry must
  be a multiple of 2^-F_w (share-weights{frac_bits=F} with F <= F_w rounds them so).
- Products q_a q_w are exact integers; the accumulator keeps every fraction bit of them
  (units of u = s_a 2^-F_w) but saturates at the range of the `word_bits`-bit output
  format with `acc_frac_bits` fraction bits: [-2^(word_bits-1), 2^(word_bits-1) - 1] *
  2^-acc_frac_bits, after every addition. The output value is acc * u.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from sparsec.dialects.formats import QuantizedAttr
from sparsec.tensors.datastore import DataStoreError

MAX_FRACTION_BITS = 62
"""The widest fraction a codebook format may have (its codes stay exact in int64)."""


class NotFixedPointError(DataStoreError):
    """Values that their format (or EIE's datapath) says are fixed point, but are not."""


def is_power_of_two(value: float) -> bool:
    mantissa, _ = math.frexp(value)
    return value > 0 and mantissa == 0.5


def scale_text(scale: float) -> str:
    """`2^-8` for a power of two, else the number."""
    if is_power_of_two(scale):
        return f"2^{int(math.log2(scale))}"
    return f"{scale:.6g}"


@dataclass(frozen=True)
class Codes:
    """Integer codes and the real value of one code step: values = scale * codes."""

    codes: np.ndarray
    scale: float

    @property
    def exact(self) -> bool:
        """Whether scale is a power of two (so products and sums stay exact in f64)."""
        return is_power_of_two(self.scale)


def activation_codes(values: np.ndarray, encoding: QuantizedAttr, name: str) -> Codes:
    """The codes of a quantized activation tensor; NotFixedPointError if the values do
    not lie on the grid their format declares (a fixed-point `in` tensor must arrive
    quantized)."""
    low, high = encoding.code_range
    scale = encoding.scale_value
    if scale is None:
        peak = float(np.max(np.abs(values), initial=0.0))
        scale = peak / high if peak > 0 else 1.0
    real = values.astype(np.float64)
    codes = np.rint(real / scale)
    error = np.abs(codes * scale - real)
    eps = np.finfo(values.dtype if values.dtype.kind == "f" else np.float64).eps
    tolerance = 0.0 if is_power_of_two(scale) else 4 * eps * np.abs(real)
    bad = (error > tolerance) | (codes < low) | (codes > high)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise NotFixedPointError(
            f"activations {name}: value {float(real[where]):.9g} at {list(where)} is not a "
            f"{encoding.bit_width}-bit code times the scale {scale_text(scale)} its format "
            f"declares ({encoding}); a fixed-point `in` tensor must arrive quantized (or "
            "declare it a param so that quantize rounds it)")
    return Codes(codes.astype(np.int64), scale)


def codebook_codes(book: np.ndarray, word_bits: int, name: str) -> Codes:
    """The codebook as `word_bits`-bit codes with the widest fraction that still fits its
    largest entry (the finest format the weight decoder's table can hold);
    NotFixedPointError when an entry is not a code of that format."""
    table = np.asarray(book, dtype=np.float64).ravel()
    high = (1 << (word_bits - 1)) - 1
    peak = float(np.max(np.abs(table), initial=0.0))
    widest = math.floor(math.log2(high / peak)) if peak > 0 else word_bits - 1
    widest = min(widest, MAX_FRACTION_BITS)
    codes = np.ldexp(table, widest)
    if widest >= 0 and np.array_equal(codes, np.rint(codes)):
        return Codes(codes.astype(np.int64), math.ldexp(1.0, -widest))
    raise NotFixedPointError(
        f"codebook of {name} is not {word_bits}-bit fixed point (largest |entry| "
        f"{peak:.6g} leaves at most {widest} fraction bits); round it with "
        f"share-weights{{bits=4 frac_bits={max(widest, 0)}}} (or fewer fraction bits)")


def accumulator_bounds(unit: float, word_bits: int, frac_bits: int) -> tuple[int, int]:
    """(lo, hi) of the accumulator in units of `unit`: the word_bits-bit output format
    with frac_bits fraction bits, [-2^(w-1), 2^(w-1) - 1] * 2^-frac_bits, in whole units."""
    step = Fraction(unit)
    low = Fraction(-(1 << (word_bits - 1)), 1 << frac_bits)
    high = Fraction((1 << (word_bits - 1)) - 1, 1 << frac_bits)
    return math.ceil(low / step), math.floor(high / step)


def saturating_add(acc: np.ndarray, addend: np.ndarray, low: int, high: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """acc + addend clamped to [low, high], and where the sum had to be clamped."""
    total = acc + addend
    clamped = (total < low) | (total > high)
    return np.clip(total, low, high), clamped
