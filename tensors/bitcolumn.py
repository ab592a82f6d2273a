"""Bit columns of INT8 weights: sign-magnitude bits, groups, column masks, bit flips.

BitWave (Shi et al., HPCA 2024) stores an INT8 weight as 1 sign bit and 7 magnitude
bits, groups G weights along the reduction dimension and calls the bits of one
significance across a group a *bit column*. A column that is zero for the whole group is
neither stored nor computed. This module is the numpy data layer of that idea, shared by
the `#sparsec.bitcolumn` storage, the `sparsify` and `bit-flip` passes and the `bitwave`
backend:

- `groups(codes, group, axis)`: codes as (channels, groups, G), zero-padded along the
  reduction axis `axis` of a rank-2 tensor;
- `column_bits(grouped, sign_magnitude)`: the 8 bit planes of every group, column 0 the
  sign (or two's complement bit 7), columns 1..7 magnitude bits 2^6 .. 2^0 (the order of
  BitSim's `int_to_signMagnitude`);
- `column_masks`: one 8-bit mask per group, bit 7 - j set when column j is kept
  (nonzero), i.e. bit 7 = sign column, bits 6..0 = magnitude 2^6..2^0 (the `col_mask` of
  BitSim's `scheduler_bitwave.v`);
- `pack_columns` / `unpack_columns`: the mask and the kept columns (G bits each), exact
  and bit-exact;
- `bit_flip(codes, zero_cols, group, axis)`: BBS-MICRO's `bitFlip_fc` procedure,
  vectorised (see its docstring for the steps and the error bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORD_BITS = 8
"""Bits of one weight: sign + 7 magnitude bits (or 8 two's complement bits)."""
MAGNITUDE_BITS = 7
MAX_MAGNITUDE = (1 << MAGNITUDE_BITS) - 1
"""127: -128 has no 8-bit sign-magnitude code."""
MASK_BITS = 8
"""Metadata per group: one bit per column (BitSim's 8-bit `col_mask`)."""


class BitColumnError(ValueError):
    """Codes that do not fit the bit-column format (out of range, wrong rank)."""


def _check_codes(codes: np.ndarray, sign_magnitude: bool) -> np.ndarray:
    c = np.asarray(codes)
    if c.ndim != 2:
        raise BitColumnError(f"bit columns group a rank-2 weight, got rank {c.ndim}")
    c = c.astype(np.int64)
    low = -MAX_MAGNITUDE if sign_magnitude else -(1 << (WORD_BITS - 1))
    bad = (c < low) | (c > MAX_MAGNITUDE)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "sign-magnitude" if sign_magnitude else "two's complement"
        raise BitColumnError(f"code {int(c[where])} at element {where} does not fit 8-bit "
                             f"{kind} [{low}, {MAX_MAGNITUDE}]; quantize{{bits=8}} first")
    return c


def num_groups(length: int, group: int) -> int:
    return -(-length // group)


def groups(codes: np.ndarray, group: int, axis: int, *, sign_magnitude: bool = True
           ) -> np.ndarray:
    """Codes of a rank-2 tensor as (channels, groups, group): channel = the index along
    the axis that is not `axis`, groups run along `axis` (zero-padded to a multiple)."""
    if group < 1:
        raise BitColumnError(f"group must be >= 1, got {group}")
    if axis not in (0, 1):
        raise BitColumnError(f"axis must be 0 or 1 for a rank-2 tensor, got {axis}")
    c = _check_codes(codes, sign_magnitude)
    rows = c.T if axis == 0 else c
    length = rows.shape[1]
    pad = num_groups(length, group) * group - length
    if pad:
        rows = np.pad(rows, ((0, 0), (0, pad)))
    return rows.reshape(rows.shape[0], -1, group)


def ungroup(grouped: np.ndarray, shape: tuple[int, int], axis: int) -> np.ndarray:
    """Inverse of `groups`: drop the padding, restore the tensor's orientation."""
    channels = grouped.shape[0]
    length = shape[axis]
    rows = grouped.reshape(channels, -1)[:, :length]
    return rows.T.copy() if axis == 0 else rows.copy()


def column_bits(grouped: np.ndarray, sign_magnitude: bool = True) -> np.ndarray:
    """Bit planes (..., 8, G) as uint8: column 0 the sign bit (sign-magnitude) or bit 7
    (two's complement), column j = 1..7 the bit of weight 2^(7 - j)."""
    g = np.asarray(grouped, dtype=np.int64)
    if sign_magnitude:
        word = np.abs(g) | np.where(g < 0, 1 << MAGNITUDE_BITS, 0)
    else:
        word = g & 0xFF
    shifts = np.arange(WORD_BITS - 1, -1, -1, dtype=np.int64)
    bits = (word[..., None, :] >> shifts[:, None]) & 1
    return bits.astype(np.uint8)


def codes_from_bits(bits: np.ndarray, sign_magnitude: bool = True) -> np.ndarray:
    """Inverse of `column_bits`: codes (..., G) as int64."""
    weights = (1 << np.arange(WORD_BITS - 1, -1, -1, dtype=np.int64))[:, None]
    word = (bits.astype(np.int64) * weights).sum(axis=-2)
    if sign_magnitude:
        magnitude = word & MAX_MAGNITUDE
        return np.where(word >> MAGNITUDE_BITS, -magnitude, magnitude)
    return np.where(word >= 128, word - 256, word)


def masks_from_bits(bits: np.ndarray) -> np.ndarray:
    """8-bit column masks (...,) from bit planes (..., 8, G): bit 7 - j = column j kept."""
    kept = bits.any(axis=-1).astype(np.int64)
    weights = 1 << np.arange(WORD_BITS - 1, -1, -1, dtype=np.int64)
    return (kept * weights).sum(axis=-1).astype(np.uint8)


def column_masks(codes: np.ndarray, group: int, axis: int, *, sign_magnitude: bool = True
                 ) -> np.ndarray:
    """One 8-bit mask per group, shape (channels, groups)."""
    grouped = groups(codes, group, axis, sign_magnitude=sign_magnitude)
    return masks_from_bits(column_bits(grouped, sign_magnitude))


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def popcount(masks: np.ndarray) -> np.ndarray:
    return _POPCOUNT[np.asarray(masks, dtype=np.uint8)]


def kept_magnitude_columns(masks: np.ndarray) -> np.ndarray:
    """Nonzero magnitude columns per group (bits 6..0 of the mask): the cycles one
    bit-column-serial PE spends on the group; the sign is a per-lane control."""
    return popcount(np.asarray(masks, dtype=np.uint8) & MAX_MAGNITUDE)


def zero_columns(masks: np.ndarray) -> np.ndarray:
    """All-zero columns per group out of the 8 (sign or bit 7 included)."""
    return WORD_BITS - popcount(masks)


def zero_column_histogram(codes: np.ndarray, group: int, axis: int, *,
                          sign_magnitude: bool) -> list[int]:
    """Groups with 0, 1, ..., 8 zero columns (9 counts)."""
    masks = column_masks(codes, group, axis, sign_magnitude=sign_magnitude)
    return [int(v) for v in np.bincount(zero_columns(masks).ravel(), minlength=WORD_BITS + 1)]


@dataclass(frozen=True)
class PackedColumns:
    """A rank-2 INT8 tensor in bit columns: `masks` (channels, groups) of 8 bits and the
    kept columns, G bits each, flattened in (channel, group, column) order with the
    sign column first and magnitude columns from 2^6 down to 2^0."""

    shape: tuple[int, int]
    group: int
    axis: int
    sign_magnitude: bool
    masks: np.ndarray
    columns: np.ndarray

    @property
    def kept_columns(self) -> int:
        return int(popcount(self.masks).sum())

    @property
    def bits(self) -> int:
        """Exact storage: 8 mask bits per group + G bits per kept column."""
        return MASK_BITS * int(self.masks.size) + int(self.columns.size)


def pack_columns(codes: np.ndarray, group: int, axis: int, *, sign_magnitude: bool = True
                 ) -> PackedColumns:
    grouped = groups(codes, group, axis, sign_magnitude=sign_magnitude)
    bits = column_bits(grouped, sign_magnitude)
    masks = masks_from_bits(bits)
    kept = bits.any(axis=-1)
    columns = bits[kept].reshape(-1)
    shape = tuple(int(s) for s in np.shape(codes))
    return PackedColumns(shape, group, axis, sign_magnitude, masks, columns)  # type: ignore[arg-type]


def unpack_columns(packed: PackedColumns) -> np.ndarray:
    """The int64 codes, bit-exact."""
    channels, ngroups = packed.masks.shape
    shifts = np.arange(WORD_BITS - 1, -1, -1)
    kept = ((packed.masks[..., None].astype(np.int64) >> shifts) & 1).astype(bool)
    bits = np.zeros((channels, ngroups, WORD_BITS, packed.group), dtype=np.uint8)
    bits[kept] = packed.columns.reshape(-1, packed.group)
    grouped = codes_from_bits(bits, packed.sign_magnitude)
    return ungroup(grouped, packed.shape, packed.axis)


# --------------------------------------------------------------------------- bit flips


def flip_groups(grouped: np.ndarray, zero_cols: int) -> np.ndarray:
    """BBS-MICRO's `bitFlip_fc` on groups (..., G) of sign-magnitude codes.

    Column j = 1..7 is magnitude bit 2^(7-j). Per group, with Z = zero_cols:
      p = 8 - Z; for j = 1..7 in order: if p > j and column j is all zero: p += 1
         (existing zero columns above the cut count towards Z);
      t = 1 + the largest j < p whose column is all zero (t = 1 if none);
      v = the magnitude's bits [t, 8) as an integer (the part that may change);
      v' = the multiple n * 2^(8-p), n in [0, 2^(p-t)), nearest to v (ties to the
           smaller), so columns [p, 8) become zero and no carry reaches column t-1;
      the magnitude's bits [t, 8) become v'; bits [1, t) and the sign are kept.
    Groups with p >= 8 are unchanged. Error per weight: |w' - w| <= 2^(7-p) when v
    does not saturate, else <= 2^(8-p) - 1; with p >= 8 - Z, always <= 2^Z - 1. At
    least min(Z, 7) magnitude columns of every group are zero afterwards, and every
    column that was zero stays zero.
    """
    if not 0 <= zero_cols <= MAGNITUDE_BITS:
        raise BitColumnError(f"zero_cols must lie in [0, {MAGNITUDE_BITS}], got {zero_cols}")
    g = np.asarray(grouped, dtype=np.int64)
    sign = g < 0
    magnitude = np.abs(g)
    shifts = np.arange(MAGNITUDE_BITS - 1, -1, -1)          # column j=1..7 -> bit 7-j
    zero = ~(((magnitude[..., None, :] >> shifts[:, None]) & 1).any(axis=-1))  # (..., 7)
    prune = np.full(g.shape[:-1], WORD_BITS - zero_cols, dtype=np.int64)
    for j in range(1, WORD_BITS):
        prune += (prune > j) & zero[..., j - 1]
    test = np.ones_like(prune)
    for j in range(1, WORD_BITS):
        test = np.where((prune > j) & zero[..., j - 1], j + 1, test)
    active = prune < WORD_BITS
    p = np.minimum(prune, WORD_BITS)[..., None]
    t = test[..., None]
    low_width = WORD_BITS - t                                 # bits [t, 8) of the word
    v = magnitude & ((1 << low_width) - 1)
    step = 1 << (WORD_BITS - p)
    largest = (1 << (p - t)) - 1
    n = np.clip((2 * v + step - 1) // (2 * step), 0, largest)   # nearest, ties down
    new_low = n * step
    new_magnitude = (magnitude - v) + new_low
    out = np.where(active[..., None], new_magnitude, magnitude)
    return np.where(sign, -out, out)


def bit_flip(codes: np.ndarray, zero_cols: int, group: int, axis: int) -> np.ndarray:
    """Codes after `flip_groups` on groups of `group` along the reduction axis `axis`."""
    grouped = groups(codes, group, axis)
    return ungroup(flip_groups(grouped, zero_cols), np.shape(codes), axis)  # type: ignore[arg-type]


def flip_error_bound(zero_cols: int) -> int:
    """The largest |w' - w| a flip to `zero_cols` zero columns can cause: 2^Z - 1."""
    return (1 << zero_cols) - 1
