"""STONNE's `-SparseGEMM` operands, reproduced exactly, to hold sparsec against STONNE.

STONNE's main.cpp (runSparseGEMMCommand) draws MK then KN with `generateMatrixDense`:
for each element in row-major order, `rand() % 100 <= sparsity` makes it 0, else a
second `rand() % 10 + 1` gives its value. rand() is glibc's (srand never called, so
seed 1). This module replays glibc's TYPE_3 additive generator, so the matrices (and
therefore the cycle counts) are the ones STONNE simulated.
"""

from __future__ import annotations

import numpy as np

GLIBC_DISCARD = 310
"""glibc's srandom_r discards 10 * 31 outputs after seeding."""


def glibc_rand(count: int, seed: int = 1) -> np.ndarray:
    """The first `count` values of glibc's rand() after srand(seed)."""
    state = [seed]
    for _ in range(30):
        high, low = divmod(state[-1], 127773)
        word = 16807 * low - 2836 * high
        state.append(word + 2147483647 if word < 0 else word)
    state.extend(state[:3])
    total = 34 + GLIBC_DISCARD + count
    state.extend([0] * (total - len(state)))
    for i in range(34, total):
        state[i] = (state[i - 31] + state[i - 3]) & 0xFFFFFFFF
    return np.array(state[34 + GLIBC_DISCARD:], dtype=np.int64) >> 1


def _draw(stream: np.ndarray, position: int, rows: int, cols: int, sparsity: int
          ) -> tuple[np.ndarray, int]:
    """generateMatrixDense: one rand() decides zero, a second draws the value 1..10."""
    values = np.zeros(rows * cols)
    draws = stream.tolist()
    for index in range(rows * cols):
        if draws[position] % 100 <= sparsity:
            position += 1
            continue
        values[index] = draws[position + 1] % 10 + 1
        position += 2
    return values.reshape(rows, cols), position


def sparse_gemm_operands(m: int, n: int, k: int, mk_sparsity: int, kn_sparsity: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
    """MK (m x k) and KN (k x n) exactly as `stonne -SparseGEMM -M=m -N=n -K=k
    -MK_sparsity=.. -KN_sparsity=..` generates them. The real zero fraction of an
    operand is about (sparsity + 1) %, since `<=` also zeroes the 0 draws."""
    stream = glibc_rand(2 * (m * k + k * n) + 2)
    mk, position = _draw(stream, 0, m, k, mk_sparsity)
    kn, _ = _draw(stream, position, k, n, kn_sparsity)
    return mk, kn
