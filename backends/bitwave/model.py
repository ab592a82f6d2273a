"""BitWave's cycle model on real bit columns, vectorised (no Python loop over weights).

A layer Y[M x N] = X[M x K] . W[K x N] runs on a PE shape (L lanes, R rows, C cols):
rows take R output channels, columns C tokens, each PE's L lanes L consecutive weights
of the reduction dimension. A *weight tile* is R channels x L weights; the R rows share
the activation broadcast and advance in lock-step, so

    cycles(tile)        = max over its R rows of kept(row, lane group)         (bitwave)
                        = 8                                                     (stripes)
    kept(row, group)    = nonzero magnitude columns of the row's L weights (the sign is
                          a per-lane negation, not a cycle)
    cycles(row tile t)  = ceil(M / C) * sum over the K/L lane groups of cycles(tile)
    compute cycles      = sum over the ceil(N / R) row tiles

(BitSim `Bitwave._calc_cycle_fc`; its Stripes counts 8 cycles per tile.)
"""

from __future__ import annotations

import math

import numpy as np

from sparsec.tensors import bitcolumn as bc

STRIPES_CYCLES = 8
"""Bit-serial dense: every bit of an 8-bit weight, one per cycle."""


def kept_columns(codes: np.ndarray, lanes: int) -> np.ndarray:
    """(N, ceil(K / lanes)) nonzero magnitude columns of each lane group of each output
    channel; `codes` is K x N (reduction along dimension 0)."""
    return bc.kept_magnitude_columns(bc.column_masks(codes, lanes, 0))


def row_tile_sums(kept: np.ndarray, rows: int, mode: str) -> np.ndarray:
    """Per row tile of `rows` channels: sum over lane groups of the lock-step cycles."""
    channels, groups = kept.shape
    tiles = math.ceil(channels / rows)
    if mode == "stripes":
        return np.full(tiles, STRIPES_CYCLES * groups, dtype=np.int64)
    padded = np.zeros((tiles * rows, groups), dtype=np.int64)
    padded[:channels] = kept
    return padded.reshape(tiles, rows, groups).max(axis=1).sum(axis=1)


def compute_cycles(codes: np.ndarray, tokens: int, shape: tuple[int, int, int], mode: str
                   ) -> int:
    """Compute cycles of the whole layer on PE shape (lanes, rows, cols)."""
    lanes, rows, cols = shape
    sums = row_tile_sums(kept_columns(codes, lanes), rows, mode)
    return int(sums.sum()) * math.ceil(tokens / cols)


def choose_shape(codes: np.ndarray, tokens: int, shapes: tuple[tuple[int, int, int], ...],
                 mode: str) -> tuple[tuple[int, int, int], dict[str, int]]:
    """The PE shape with the fewest compute cycles (the first on ties) and every
    shape's cycles, keyed `LxRxC`."""
    cycles = {shape: compute_cycles(codes, tokens, shape, mode) for shape in shapes}
    best = min(shapes, key=lambda s: cycles[s])
    return best, {f"{s[0]}x{s[1]}x{s[2]}": c for s, c in cycles.items()}
