"""Element types and their rounding: the numpy carrier of each declared type and
round-to-nearest-even into it (bf16 by bit manipulation, since numpy has no bfloat16).

Every layer that holds values (the DataStore, passes, backends' interpreters, the
frontend's sources) rounds through these functions, so a value means the same thing
everywhere.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INT_TYPES: frozenset[str] = frozenset({"i32", "i16", "i8"})
"""Integer element types: exact products, saturating rounding."""

__all__ = ["INT_TYPES", "CARRIERS", "ELEMENT_BYTES", "carrier_dtype", "round_to_bf16", "round_to_dtype"]

#: Element type -> numpy dtype that holds its values.
CARRIERS: dict[str, np.dtype] = {
    "f64": np.dtype(np.float64),
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(np.float32),
    "i32": np.dtype(np.int32),
    "i16": np.dtype(np.int16),
    "i8": np.dtype(np.int8),
}

ELEMENT_BYTES: dict[str, int] = {
    "f64": 8, "f32": 4, "f16": 2, "bf16": 2, "i32": 4, "i16": 2, "i8": 1,
}
"""Storage bytes of one element of each spec element type."""


def carrier_dtype(dtype_name: str) -> np.dtype:
    """The numpy dtype that holds values of element type ``dtype_name``."""
    try:
        return CARRIERS[dtype_name]
    except KeyError:
        raise ValueError(
            f"unknown element type {dtype_name!r}; expected one of {', '.join(CARRIERS)}"
        ) from None


# --------------------------------------------------------------------------
# Rounding
# --------------------------------------------------------------------------


def _f64_to_f32_round_to_odd(x: np.ndarray) -> np.ndarray:
    """float64 -> float32 rounding to odd (truncate, then set the last bit if inexact).

    Rounding to odd first and to nearest-even second gives the same result
    as rounding to nearest-even once, as long as the intermediate format
    has at least two more bits, which float32 has over bfloat16. Plain
    float64 -> float32 -> bfloat16 would double-round ties wrongly.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        nearest = x.astype(np.float32)
    back = nearest.astype(np.float64)
    inexact = (back != x) & ~np.isnan(x)
    bits = np.ascontiguousarray(nearest).view(np.uint32).copy()
    away = inexact & (np.abs(back) > np.abs(x))
    bits[away] -= np.uint32(1)  # one step toward zero: the truncated value
    bits[inexact] |= np.uint32(1)
    return bits.view(np.float32)


def round_to_bf16(a: Any) -> np.ndarray:
    """Round to the nearest bfloat16 (ties to even); result is a float32 array.

    bfloat16 is the upper 16 bits of a float32. Rounding adds ``0x7FFF`` plus
    the lowest kept bit to the float32 bits and clears the low half, which
    rounds to nearest with ties to even, carrying into the exponent when the
    mantissa overflows (so large values correctly become inf). NaNs stay NaN
    (quiet, sign kept); infinities stay infinite. float64/int inputs are
    first narrowed with round-to-odd so there is no double rounding.
    """
    x = np.asarray(a)
    if x.dtype.kind == "c":
        raise TypeError("round_to_bf16: complex input is not supported")
    if x.dtype in (np.float32, np.float16):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
    else:
        x32 = _f64_to_f32_round_to_odd(np.asarray(x, dtype=np.float64))
    bits = x32.view(np.uint32)
    lsb = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)
    quiet_nan = (bits | np.uint32(0x00400000)) & np.uint32(0xFFFF0000)
    out = np.where(np.isnan(x32), quiet_nan, rounded).astype(np.uint32)
    return out.view(np.float32).reshape(x.shape)


def round_to_dtype(array: Any, dtype_name: str) -> np.ndarray:
    """``array`` as element type ``dtype_name``, in that type's carrier dtype.

    Floats round to nearest-even (bf16 via :func:`round_to_bf16`); values
    beyond the type's range become +-inf. Integer types round floats to
    nearest-even, map NaN to 0 and saturate at the type's bounds.
    """
    carrier = carrier_dtype(dtype_name)
    x = np.asarray(array)
    if dtype_name == "bf16":
        return round_to_bf16(x)
    if dtype_name not in INT_TYPES:
        with np.errstate(over="ignore"):
            return x.astype(carrier)
    info = np.iinfo(carrier)
    if x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            x = np.nan_to_num(np.rint(x), nan=0.0, posinf=info.max, neginf=info.min)
    if x.dtype.kind in "iuf":
        x = np.clip(x, info.min, info.max)
    return x.astype(carrier)


# --------------------------------------------------------------------------
# random(...)
# --------------------------------------------------------------------------
