"""Seeded synthetic sparse matrices with intra-matrix heterogeneity (dense and sparse
regions in one matrix), of millions of nonzeros, built as coordinates and never densified.

HotTiles' matrices (Table V: 22-100 M nonzeros) cannot ship; these stand in for them:

- `rmat`: a Kronecker / R-MAT graph (Chakrabarti et al., SDM 2004; the Graph500 generator
  with a = 0.57, b = c = 0.19): each edge picks one quadrant per level of a 2^scale
  matrix, so the low-numbered hubs form dense tiles and the rest is a sparse power-law
  tail, like kron_g500-logn19 or soc-Pokec. Labels are not permuted (that would scatter
  the hubs and erase the heterogeneity the workload is for).
- `banded`: a band of random nonzeros around the diagonal (a mesh or a PDE matrix) with
  dense blocks scattered along it (strongly coupled sub-regions), like dgreen or Serena.

Duplicates are summed; values are U[0.5, 1.5) so no sum is zero.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse


class MatrixSpecError(ValueError):
    """A generator argument out of range; the message names it."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise MatrixSpecError(message)


def rmat(scale: int, edge_factor: float = 16.0, a: float = 0.57, b: float = 0.19,
         c: float = 0.19, seed: int = 0, noise: float = 0.1) -> scipy.sparse.csr_matrix:
    """A 2^scale square R-MAT matrix with about edge_factor * 2^scale entries (before
    duplicates merge). At each level the quadrant probabilities are perturbed by up to
    `noise` (relative), as the Graph500 generator does, to avoid a perfectly
    self-similar staircase."""
    _check(1 <= scale <= 31, f"rmat: scale must be in 1..31, got {scale}")
    _check(edge_factor > 0, f"rmat: edge factor must be > 0, got {edge_factor}")
    _check(min(a, b, c) > 0 and a + b + c < 1, "rmat: a, b, c must be > 0 with a + b + c < 1")
    _check(0 <= noise < 1, f"rmat: noise must be in [0, 1), got {noise}")
    rng = np.random.default_rng(seed)
    edges = int(round(edge_factor * (1 << scale)))
    row = np.zeros(edges, np.int64)
    col = np.zeros(edges, np.int64)
    for level in range(scale):
        jitter = 1 + noise * rng.uniform(-1, 1, 4)
        p = np.array([a, b, c, 1 - a - b - c]) * jitter
        p /= p.sum()
        u = rng.random(edges)
        right = ((u >= p[0]) & (u < p[0] + p[1])) | (u >= p[0] + p[1] + p[2])
        down = u >= p[0] + p[1]
        bit = 1 << (scale - 1 - level)
        row += down * bit
        col += right * bit
        del u, right, down
    values = rng.uniform(0.5, 1.5, edges).astype(np.float32)
    n = 1 << scale
    return scipy.sparse.csr_matrix((values, (row, col)), shape=(n, n))


def banded(rows: int, band: int = 64, per_row: int = 8, blocks: int = 64,
           block_size: int = 512, block_density: float = 0.3, seed: int = 0
           ) -> scipy.sparse.csr_matrix:
    """A rows x rows matrix: `per_row` random nonzeros per row within `band` of the
    diagonal, plus `blocks` square blocks of `block_size` at random places along the
    diagonal, each filled to `block_density`."""
    _check(rows >= 1, f"banded: rows must be >= 1, got {rows}")
    _check(band >= 0 and per_row >= 0 and blocks >= 0, "banded: band, per-row and blocks "
           "must be >= 0")
    _check(1 <= block_size <= rows, f"banded: block size must be in 1..{rows}, got {block_size}")
    _check(0 < block_density <= 1, f"banded: block density must be in (0, 1], got "
           f"{block_density}")
    rng = np.random.default_rng(seed)
    band_rows = np.repeat(np.arange(rows, dtype=np.int64), per_row)
    band_cols = np.clip(band_rows + rng.integers(-band, band + 1, band_rows.size), 0, rows - 1)
    per_block = int(round(block_density * block_size * block_size))
    starts = rng.integers(0, rows - block_size + 1, blocks)
    offset = np.clip(starts + rng.integers(-band, band + 1, blocks), 0, rows - block_size)
    cells = rng.integers(0, block_size * block_size, (blocks, per_block))
    block_rows = (starts[:, None] + cells // block_size).ravel()
    block_cols = (offset[:, None] + cells % block_size).ravel()
    row = np.concatenate([band_rows, block_rows])
    col = np.concatenate([band_cols, block_cols])
    values = rng.uniform(0.5, 1.5, row.size).astype(np.float32)
    return scipy.sparse.csr_matrix((values, (row, col)), shape=(rows, rows))


def save_matrix(matrix: scipy.sparse.spmatrix, path: str | Path) -> Path:
    """Write Matrix Market (`.mtx`, or gzip'd `.mtx.gz`) atomically: a temporary file in
    the same folder, then a rename."""
    path = Path(path)
    name = path.name.lower()
    _check(name.endswith(".mtx") or name.endswith(".mtx.gz"),
           f"output must end in .mtx or .mtx.gz, got '{path.name}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as fh:
                    scipy.io.mmwrite(fh, matrix)
            else:
                scipy.io.mmwrite(raw, matrix)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
