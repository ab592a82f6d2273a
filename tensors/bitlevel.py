"""Bit-level weight code: each integer weight as at most k signed powers of two.

Two ways to get there from a `bits`-bit two's complement code q:

* `sm` (sign-magnitude truncation): keep the k most significant one-bits of |q|, drop the
  rest (toward zero); the sign is kept apart. |q| <= 2^(bits-1), so bits positions.
* `csd` (canonical signed digit, the non-adjacent form): q = sum_p d_p 2^p with
  d_p in {-1, 0, +1} and no two adjacent nonzero digits (the representation with the
  fewest nonzero digits); keep its k most significant nonzero digits. bits + 1 positions.

Both are exact (zero error) for weights that already have <= k ones (sm) or <= k nonzero
digits (csd); csd fits more values exactly (127 = 2^7 - 2^0 has 2 digits, 7 ones in sm).

Storage, exact, two layouts (`storage=`):
* `index` (default): a fixed-width index into the set V of values the code can represent
  (|V| = 128 for sm k=3, 208 for csd k=3 on 8 bits): numel * ceil(log2 |V|) bits; a
  |V|-entry table of term lists decodes it (fixed, not stored per tensor).
* `terms`: variable length, per weight
    sm:  ceil(log2(k + 1)) count bits + 1 sign bit + n * ceil(log2(bits))       position bits
    csd: ceil(log2(k + 1)) count bits + n * (1 sign + ceil(log2(bits + 1)) position bits)
  where n <= k is the weight's number of kept terms.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

METHODS = ("csd", "sm")


def positions(bits: int, method: str) -> int:
    """Digit positions the code addresses: bits (sm, |q| <= 2^(bits-1)) or bits + 1 (csd)."""
    return bits if method == "sm" else bits + 1


def signed_digits(codes: np.ndarray, bits: int, method: str) -> np.ndarray:
    """Digits [..., positions] in {-1, 0, 1}, least significant first, summing to codes."""
    q = np.asarray(codes, dtype=np.int64)
    count = positions(bits, method)
    digits = np.zeros((*q.shape, count), dtype=np.int64)
    if method == "sm":
        magnitude, sign = np.abs(q), np.where(q < 0, -1, 1)
        for p in range(count):
            digits[..., p] = ((magnitude >> p) & 1) * sign
        return digits
    rest = q.copy()
    for p in range(count):
        odd = (rest & 1) == 1
        digit = np.where(odd, 2 - (rest & 3), 0)  # +1 when rest = 1 mod 4, -1 when 3 mod 4
        digits[..., p] = digit
        rest = (rest - digit) >> 1
    assert not rest.any(), "csd: digits must cover every code"
    return digits


def keep_top_terms(digits: np.ndarray, max_ones: int) -> np.ndarray:
    """Zero every nonzero digit beyond the `max_ones` most significant ones."""
    nonzero = digits != 0
    from_top = np.cumsum(nonzero[..., ::-1], axis=-1)[..., ::-1]
    return np.where(from_top <= max_ones, digits, 0)


@dataclass(frozen=True)
class BitLevelCode:
    """Codes after encoding, their terms and the exact storage."""

    codes: np.ndarray
    terms: np.ndarray
    storage_bits: int
    changed: int
    bits: int
    method: str

    @property
    def digits(self) -> np.ndarray:
        """The kept digits [..., positions]: the code's own digits, since the top k digits
        of a NAF are a NAF (and the top k ones of |q| are |q'|'s binary digits)."""
        return signed_digits(self.codes, self.bits, self.method)

    @property
    def bits_per_weight(self) -> float:
        return self.storage_bits / self.codes.size if self.codes.size else 0.0


def term_storage_bits(terms: np.ndarray, bits: int, method: str, max_ones: int) -> int:
    """Exact bits of the variable-length code of weights with `terms` kept terms each."""
    count_bits = math.ceil(math.log2(max_ones + 1))
    position_bits = math.ceil(math.log2(positions(bits, method)))
    n = int(np.asarray(terms).sum())
    weights = int(np.asarray(terms).size)
    if method == "sm":
        return weights * (count_bits + 1) + n * position_bits
    return weights * count_bits + n * (1 + position_bits)


STORAGE_LAYOUTS = ("index", "terms")


def representable(bits: int, max_ones: int, method: str) -> np.ndarray:
    """Every code value with <= max_ones terms (sorted): the index layout's table."""
    every = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
    kept = keep_top_terms(signed_digits(every, bits, method), max_ones)
    return np.unique(decode(kept))


def index_bits(bits: int, max_ones: int, method: str) -> int:
    """Width of one weight in the index layout: ceil(log2 |V|)."""
    return max(1, math.ceil(math.log2(representable(bits, max_ones, method).size)))


def encode(codes: np.ndarray, bits: int, max_ones: int, method: str,
           storage: str = "index") -> BitLevelCode:
    """Encode integer codes with at most `max_ones` signed powers of two each."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got '{method}'")
    if max_ones < 1:
        raise ValueError(f"max_ones must be >= 1, got {max_ones}")
    q = np.asarray(codes, dtype=np.int64)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if q.size and (q.min() < low or q.max() > high):
        raise ValueError(f"codes must lie in [{low}, {high}] ({bits}-bit)")
    table, term_table = _code_table(bits, max_ones, method)
    new_codes = table[q - low]
    terms = term_table[q - low]
    if storage not in STORAGE_LAYOUTS:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_LAYOUTS)}, got '{storage}'")
    total = (q.size * index_bits(bits, max_ones, method) if storage == "index"
             else term_storage_bits(terms, bits, method, max_ones))
    return BitLevelCode(new_codes, terms, total, int(np.count_nonzero(new_codes != q)), bits,
                        method)


@functools.lru_cache(maxsize=64)
def _code_table(bits: int, max_ones: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(new code, kept terms) for every code of `bits` bits, indexed by code + 2^(bits-1):
    encoding a tensor is then one table look-up per weight."""
    every = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
    kept = keep_top_terms(signed_digits(every, bits, method), max_ones)
    return decode(kept), np.count_nonzero(kept, axis=-1)


def decode(digits: np.ndarray) -> np.ndarray:
    """Codes from their digits (the inverse of signed_digits / keep_top_terms)."""
    return (np.asarray(digits, dtype=np.int64)
            * (1 << np.arange(digits.shape[-1], dtype=np.int64))).sum(axis=-1)
