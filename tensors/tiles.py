"""Semantics of the hot/cold-tiled format (`#sparsec.tiled`): a sparse matrix cut into a
grid of tiles, each non-empty tile labelled hot or cold and given to one worker.

What the partitioner (`tile-hot-cold`) and the machine that runs the partition (the
`hottiles` backend) both need, and nothing about costs: the nonzeros of a matrix (never
densified), the exact statistics of every non-empty tile (nonzeros, distinct rows and
columns, extent, row panel), and the partition as it is kept in the DataStore.

Everything is vectorised over nonzeros: tiles are found by integer division of the
coordinates and one sort; no array is as large as the tile grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsec.tensors.datastore import DataStore, DataStoreError, is_sparse

HOT, COLD = 1, 0
"""`#tile_kind` labels of a tile."""

PARALLEL, SERIAL = 0, 1
"""How the two worker types run: at once (then their private outputs are merged), or
the hot tiles first and the cold tiles after (eq. 6 / eq. 7 of HotTiles)."""

PARTITION_PARTS = ("tile_ids", "tile_kind", "tile_worker", "tile_nnz", "tile_model_cycles",
                   "tile_model_bytes", "model")
"""DataStore suffixes (`<kernel>.<symbol>#tile_ids`, ...) of a partition."""


@dataclass(frozen=True)
class Nonzeros:
    """Coordinates and values of a matrix's nonzeros in row-major (CSR) order, explicit
    zeros dropped."""

    row: np.ndarray
    col: np.ndarray
    data: np.ndarray
    shape: tuple[int, int]

    @property
    def count(self) -> int:
        return int(self.row.size)


def nonzeros(value: Any) -> Nonzeros:
    """A matrix's nonzeros from a dense array or a scipy sparse matrix (never densified)."""
    if not is_sparse(value):
        value = np.asarray(value)
        rows, cols = np.nonzero(value)
        return Nonzeros(rows.astype(np.int64), cols.astype(np.int64), value[rows, cols],
                        (int(value.shape[0]), int(value.shape[1])))
    csr = value.tocsr()
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    keep = csr.data != 0
    counts = np.diff(csr.indptr)
    row = np.repeat(np.arange(csr.shape[0], dtype=np.int64), counts)
    return Nonzeros(row[keep], csr.indices[keep].astype(np.int64), csr.data[keep],
                    (int(csr.shape[0]), int(csr.shape[1])))


def unique_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, index of each key's distinct value): `np.unique` with
    `return_inverse`, by one sort."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(ordered.size, bool)
    first[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(keys.size, np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def count_distinct(group: np.ndarray, value: np.ndarray, groups: int) -> np.ndarray:
    """Distinct `value`s per `group` (0..groups-1), by one sort of the pairs."""
    if group.size == 0:
        return np.zeros(groups, np.int64)
    span = int(value.max()) + 1
    keys = np.sort(group.astype(np.int64) * span + value)
    first = np.ones(keys.size, bool)
    first[1:] = keys[1:] != keys[:-1]
    return np.bincount(keys[first] // span, minlength=groups).astype(np.int64)


@dataclass(frozen=True)
class Tiles:
    """Every non-empty tile of a matrix cut into `tile` = (rows, cols) tiles, grid ids
    (row-major) ascending, with its exact statistics; `of_nonzero` is each nonzero's
    index into these arrays."""

    shape: tuple[int, int]
    tile: tuple[int, int]
    ids: np.ndarray
    nnz: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    height: np.ndarray
    width: np.ndarray
    of_nonzero: np.ndarray

    @property
    def count(self) -> int:
        return int(self.ids.size)

    @property
    def grid(self) -> tuple[int, int]:
        return -(-self.shape[0] // self.tile[0]), -(-self.shape[1] // self.tile[1])

    @property
    def panel(self) -> np.ndarray:
        """Row panel (grid row) of each tile."""
        return self.ids // self.grid[1]

    def take(self, index: np.ndarray) -> Tiles:
        """The tiles at `index`, in that order (`of_nonzero` is left as it was)."""
        return Tiles(self.shape, self.tile, self.ids[index], self.nnz[index], self.rows[index],
                     self.cols[index], self.height[index], self.width[index], self.of_nonzero)


def tiles_of(nz: Nonzeros, tile: tuple[int, int]) -> Tiles:
    """The non-empty tiles of the matrix and their exact statistics: nonzeros, distinct
    rows (`tile_uniq_rids`) and columns (`tile_uniq_cids`), extent cut by the matrix."""
    rows, cols = nz.shape
    tr, tc = tile
    grid_cols = -(-cols // tc)
    keys = (nz.row // tr) * grid_cols + nz.col // tc
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(ordered.size, bool)
    first[1:] = ordered[1:] != ordered[:-1]
    ids = ordered[first]
    tile_sorted = np.cumsum(first) - 1
    inverse = np.empty(keys.size, np.int64)
    inverse[order] = tile_sorted
    nnz = np.bincount(tile_sorted, minlength=ids.size).astype(np.int64)
    # the stable sort keeps each tile's nonzeros in row-major order: a tile's rows are
    # non-decreasing, so its distinct rows are where the row changes
    row_sorted = nz.row[order]
    new_row = first.copy()
    new_row[1:] |= row_sorted[1:] != row_sorted[:-1]
    distinct_rows = np.bincount(tile_sorted[new_row], minlength=ids.size).astype(np.int64)
    distinct_cols = count_distinct(tile_sorted, nz.col[order] % tc, ids.size)
    height = np.minimum(tr, rows - (ids // grid_cols) * tr)
    width = np.minimum(tc, cols - (ids % grid_cols) * tc)
    return Tiles(nz.shape, tile, ids, nnz, distinct_rows, distinct_cols, height, width,
                 inverse)


@dataclass(frozen=True)
class Partition:
    """The labels of every non-empty tile, in the order the workers run them.

    Tiles of hot worker 0 come first (in its run order), then hot worker 1, ..., then cold
    worker 0, ...; `model_cycles` / `model_bytes` are the partitioner's estimates of each
    tile on its worker; `predicted` its time of the whole SpMM, `schedule` PARALLEL or
    SERIAL, `heuristic` the index of the heuristic that chose the split (-1 for none) and
    `merge` the estimated cycles of merging the two private outputs.
    """

    ids: np.ndarray
    kind: np.ndarray
    worker: np.ndarray
    nnz: np.ndarray
    model_cycles: np.ndarray
    model_bytes: np.ndarray
    predicted: float
    schedule: int
    heuristic: int
    merge: float
    workers: tuple[int, int]
    policy: str

    @property
    def count(self) -> int:
        return int(self.ids.size)

    @property
    def hot_tiles(self) -> int:
        return int(np.count_nonzero(self.kind == HOT))

    @property
    def global_worker(self) -> np.ndarray:
        """Worker of each tile numbered over both types: hot 0..H-1, then cold H..H+C-1."""
        return np.where(self.kind == HOT, self.worker, self.workers[0] + self.worker)

    def save(self, store: DataStore, key: str) -> None:
        parts = {"tile_ids": self.ids, "tile_kind": self.kind.astype(np.int8),
                 "tile_worker": self.worker.astype(np.int32), "tile_nnz": self.nnz,
                 "tile_model_cycles": self.model_cycles, "tile_model_bytes": self.model_bytes,
                 "model": np.array([self.predicted, self.schedule, self.heuristic, self.merge])}
        for part, array in parts.items():
            array = np.asarray(array)
            store.put(f"{key}#{part}", array, "f64" if array.dtype.kind == "f" else "i32")

    @classmethod
    def load(cls, store: DataStore, key: str, workers: tuple[int, int], policy: str
             ) -> Partition:
        missing = [p for p in PARTITION_PARTS if f"{key}#{p}" not in store]
        if missing:
            raise DataStoreError(f"{key} has a #sparsec.tiled encoding but the store lacks its "
                                 f"partition ({', '.join('#' + p for p in missing)}); run "
                                 "tile-hot-cold through `sparsec compile`")
        get = {p: np.asarray(store.get(f"{key}#{p}")) for p in PARTITION_PARTS}
        predicted, schedule, heuristic, merge = (float(v) for v in get["model"][:4])
        return cls(get["tile_ids"].astype(np.int64), get["tile_kind"].astype(np.int8),
                   get["tile_worker"].astype(np.int64), get["tile_nnz"].astype(np.int64),
                   get["tile_model_cycles"].astype(np.float64),
                   get["tile_model_bytes"].astype(np.float64), predicted, int(schedule),
                   int(heuristic), merge, workers, policy)
