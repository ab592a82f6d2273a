"""HotTiles' per-tile cost model and partitioning heuristic, vectorised over nonzeros.

One set of cost equations (`tile_costs`) prices a tile on a hot and on a cold worker
from four statistics of the tile: its nonzeros, non-empty rows, distinct columns and
the B rows a hot worker loads. The compiler (`tile-hot-cold`) feeds it the statistics
HotTiles' model can know from the tile's nonzero count alone, their expectation under
nonzeros spread uniformly over the tile (`expected_stats`); the interpreter feeds it
the exact statistics of the real nonzeros (`exact_stats`). The model's error is the
difference, plus what the Timeline adds (DRAM contention, pipeline fill).
Equations: backends/hottiles/README.md, each named where it is used.

Tiles are found by integer division of the nonzeros' coordinates and `np.unique`: no
Python loop runs per nonzero, and no array is as large as the tile grid (only the
non-empty tiles exist). Loops run over tiles only (the LPT assignment and the
Timeline replay).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.tensors.datastore import DataStore, DataStoreError, is_sparse

HOT, COLD = 1, 0
"""`#tile_kind` labels of a tile."""

PARTITION_PARTS = ("tile_ids", "tile_kind", "tile_worker", "tile_nnz", "tile_model_cycles",
                   "tile_model_bytes", "model_cycles")
"""DataStore suffixes (`<kernel>.<symbol>#tile_ids`, ...) of a partition."""


@dataclass(frozen=True)
class Problem:
    """One SpMM C[M x N] = A[M x K] . B[K x N] cut into `tile` = (rows, cols) tiles of A."""

    rows: int
    cols: int
    n: int
    value_bytes: int
    out_bytes: int
    tile: tuple[int, int]

    @property
    def grid_cols(self) -> int:
        return -(-self.cols // self.tile[1])

    @property
    def grid(self) -> tuple[int, int]:
        return -(-self.rows // self.tile[0]), self.grid_cols


@dataclass(frozen=True)
class Nonzeros:
    """Coordinates and values of A's nonzeros (explicit zeros dropped)."""

    row: np.ndarray
    col: np.ndarray
    data: np.ndarray

    @property
    def count(self) -> int:
        return int(self.row.size)


def nonzeros(value: Any) -> Nonzeros:
    """A's nonzeros from a dense array or a scipy sparse matrix (never densified)."""
    if not is_sparse(value):
        rows, cols = np.nonzero(value)
        return Nonzeros(rows.astype(np.int64), cols.astype(np.int64), value[rows, cols])
    csr = value.tocsr()
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    coo = csr.tocoo()
    keep = coo.data != 0
    return Nonzeros(coo.row[keep].astype(np.int64), coo.col[keep].astype(np.int64),
                    coo.data[keep])


@dataclass(frozen=True)
class TileStats:
    """Per non-empty tile (grid ids ascending): the statistics the cost equations use.

    `rows`: non-empty rows; `cols`: distinct columns (B rows a nonzero needs);
    `chunks`: non-empty hot_rows-wide column chunks; `chunk_rows`: the B rows of those
    chunks (what a hot worker loads); `height`, `width`: the tile's extent.
    """

    ids: np.ndarray
    nnz: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    chunks: np.ndarray
    chunk_rows: np.ndarray
    height: np.ndarray
    width: np.ndarray

    @property
    def count(self) -> int:
        return int(self.ids.size)


def unique_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct keys ascending, index of each key's distinct value): `np.unique` by a
    stable sort (faster than its hash path on millions of int64 keys)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    first = np.ones(ordered.size, bool)
    first[1:] = ordered[1:] != ordered[:-1]
    inverse = np.empty(keys.size, np.int64)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def tile_index(nz: Nonzeros, problem: Problem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, inverse, nnz): grid id (row-major) of every non-empty tile, ascending; the
    index into `ids` of each nonzero's tile; nonzeros per tile."""
    tr, tc = problem.tile
    ids, inverse = unique_sorted((nz.row // tr) * problem.grid_cols + nz.col // tc)
    return ids, inverse, np.bincount(inverse, minlength=ids.size).astype(np.int64)


def _extent(ids: np.ndarray, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """(height, width) of each tile: tile sizes, cut at the matrix's last row / column."""
    tr, tc = problem.tile
    top = (ids // problem.grid_cols) * tr
    left = (ids % problem.grid_cols) * tc
    return np.minimum(tr, problem.rows - top), np.minimum(tc, problem.cols - left)


def _distinct_per_tile(inverse: np.ndarray, local: np.ndarray, span: int, tiles: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values of `local` per tile, the unique (tile, value) keys)."""
    keys = np.sort(inverse.astype(np.int64) * span + local)
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if keys.size else keys
    return np.bincount(keys // span, minlength=tiles), keys


def exact_stats(nz: Nonzeros, problem: Problem, chunk: int) -> tuple[TileStats, np.ndarray]:
    """The statistics of the real nonzeros, and each nonzero's tile index."""
    ids, inverse, nnz = tile_index(nz, problem)
    tr, tc = problem.tile
    height, width = _extent(ids, problem)
    rows, _ = _distinct_per_tile(inverse, nz.row % tr, tr, ids.size)
    cols, _ = _distinct_per_tile(inverse, nz.col % tc, tc, ids.size)
    per_tile = -(-tc // chunk)
    chunks, keys = _distinct_per_tile(inverse, (nz.col % tc) // chunk, per_tile, ids.size)
    tile, index = keys // per_tile, keys % per_tile
    chunk_width = np.minimum(chunk, width[tile] - index * chunk)
    chunk_rows = np.bincount(tile, weights=chunk_width, minlength=ids.size)
    stats = TileStats(ids, nnz, rows.astype(np.float64), cols.astype(np.float64),
                      chunks.astype(np.float64), chunk_rows, height, width)
    return stats, inverse


def _occupied(bins: np.ndarray, balls: np.ndarray) -> np.ndarray:
    """Expected non-empty bins when `balls` fall uniformly into `bins` (eq. M1):
    bins * (1 - (1 - 1/bins)^balls)."""
    bins = bins.astype(np.float64)
    return bins * -np.expm1(balls * np.log1p(-1.0 / np.maximum(bins, 1.0 + 1e-12)))


def expected_stats(ids: np.ndarray, nnz: np.ndarray, problem: Problem, chunk: int) -> TileStats:
    """The statistics HotTiles' model assumes: each tile's nonzeros spread uniformly."""
    height, width = _extent(ids, problem)
    rows = np.where(height == 1, 1.0, _occupied(height, nnz))
    cols = np.where(width == 1, 1.0, _occupied(width, nnz))
    per_tile = -(-width // chunk)
    chunks = np.where(per_tile == 1, 1.0, _occupied(per_tile, nnz))
    chunk_rows = np.minimum(width, chunks * chunk)
    return TileStats(ids, nnz, rows, cols, chunks, chunk_rows.astype(np.float64), height,
                     width)


@dataclass(frozen=True)
class TileCosts:
    """Per tile: cycles of compute and DRAM bytes on a hot and on a cold worker, and the
    bandwidths that move those bytes (each worker's port, the shared DRAM)."""

    hot_compute: np.ndarray
    cold_compute: np.ndarray
    hot_bytes: np.ndarray
    cold_bytes: np.ndarray
    hot_macs: np.ndarray
    hot_port: float
    cold_port: float
    bandwidth: float

    def bytes(self, hot: np.ndarray) -> np.ndarray:
        return np.where(hot, self.hot_bytes, self.cold_bytes)

    def compute(self, hot: np.ndarray) -> np.ndarray:
        return np.where(hot, self.hot_compute, self.cold_compute)

    def transfer(self, hot: np.ndarray) -> np.ndarray:
        """Cycles to stream each tile's bytes through its worker's port (eq. T3)."""
        return np.ceil(self.bytes(hot) / np.where(hot, self.hot_port, self.cold_port))

    def dram(self, hot: np.ndarray) -> np.ndarray:
        """Cycles of the shared DRAM each tile's bytes take at its full bandwidth (eq. T3)."""
        return np.ceil(self.bytes(hot) / self.bandwidth)

    def cycles(self, hot: np.ndarray) -> np.ndarray:
        """A tile's time on its worker with DRAM to itself (eq. T4): compute and the
        transfer overlap (the worker streams its tile), so the longer of the two."""
        return np.maximum.reduce([self.compute(hot), self.transfer(hot), self.dram(hot)])


def cold_b_rows(stats: TileStats, problem: Problem, spec: HottilesSpec) -> np.ndarray:
    """B rows a cold worker fetches (eq. B4): each distinct column once, and every
    repeated use that misses the cache. With S = cache rows (cache bytes / B row bytes),
    a repeated use hits with probability min(1, S / cols) (the steady state of a cache
    over uniformly reused rows): cols + (nnz - cols) * max(0, 1 - S / cols)."""
    capacity = spec.cold_cache_bytes / (problem.n * problem.value_bytes)
    miss = np.maximum(0.0, 1.0 - capacity / np.maximum(stats.cols, 1.0))
    return stats.cols + (stats.nnz - stats.cols) * miss


def tile_costs(stats: TileStats, problem: Problem, spec: HottilesSpec) -> TileCosts:
    """Equations B1-B4 and T1-T2 of the README for every tile, on both worker types."""
    n, vb, ob, ib = problem.n, problem.value_bytes, problem.out_bytes, spec.index_bytes
    a_bytes = stats.nnz * (vb + ib) + (stats.height + 1) * ib                  # B1
    out_bytes = 2.0 * stats.rows * n * ob                                       # B2
    hot_b = stats.chunk_rows * n * vb                                           # B3
    cold_b = cold_b_rows(stats, problem, spec) * n * vb                         # B4
    r, c = spec.hot_rows, spec.hot_cols
    fold = stats.rows + 2 * r + c - 2
    hot_compute = stats.chunks * math.ceil(n / c) * fold                        # T1
    cold_compute = (stats.nnz * math.ceil(n / spec.cold_lanes)
                    + stats.rows * spec.cold_row_cycles)                        # T2
    return TileCosts(hot_compute=hot_compute.astype(np.float64),
                     cold_compute=cold_compute.astype(np.float64),
                     hot_bytes=(a_bytes + out_bytes + hot_b).astype(np.float64),
                     cold_bytes=(a_bytes + out_bytes + cold_b).astype(np.float64),
                     hot_macs=stats.rows * stats.chunk_rows * n,
                     hot_port=spec.hot_bytes_per_cycle, cold_port=spec.cold_bytes_per_cycle,
                     bandwidth=spec.dram_bytes_per_cycle)


def auto_tile(nz: Nonzeros, rows: int, cols: int, spec: HottilesSpec) -> tuple[int, int]:
    """The tile: `tile_rows` x `tile_cols`, or (for a 0) the smallest power-of-two side
    >= `spec.min_tile` cutting A into at most `max_tiles` non-empty tiles."""
    side = spec.min_tile
    while side < max(rows, cols):
        probe = Problem(rows, cols, 1, 1, 1, (spec.tile_rows or side, spec.tile_cols or side))
        grid_ids = np.sort((nz.row // probe.tile[0]) * probe.grid_cols + nz.col // probe.tile[1])
        if np.count_nonzero(grid_ids[1:] != grid_ids[:-1]) + min(1, grid_ids.size) <= spec.max_tiles:
            break
        side *= 2
    return spec.tile_rows or side, spec.tile_cols or side


# -- the heuristic ---------------------------------------------------------------------------


def split_hot_cold(costs: TileCosts, hot_workers: int, cold_workers: int) -> np.ndarray:
    """HotTiles' split (eqs. H1-H3): rank tiles by how much a hot worker speeds them up,
    make the first k hot, and keep the k whose predicted time is least.

    T(k) = max(sum hot / H, sum cold / C, all bytes / BW, largest hot tile, largest cold
    tile), evaluated for every k = 0..tiles at once with prefix sums.
    """
    tiles = costs.hot_compute.size
    if hot_workers == 0 or cold_workers == 0:
        return np.full(tiles, hot_workers > 0)
    all_hot, all_cold = np.ones(tiles, bool), np.zeros(tiles, bool)
    hot_t, cold_t = costs.cycles(all_hot), costs.cycles(all_cold)
    order = np.argsort(-(cold_t / hot_t), kind="stable")                        # H1
    hot_t, cold_t = hot_t[order], cold_t[order]
    hot_b, cold_b = costs.hot_bytes[order], costs.cold_bytes[order]
    zero = np.zeros(1)
    hot_sum = np.concatenate([zero, np.cumsum(hot_t)])
    cold_sum = cold_t.sum() - np.concatenate([zero, np.cumsum(cold_t)])
    traffic = (np.concatenate([zero, np.cumsum(hot_b)])
               + cold_b.sum() - np.concatenate([zero, np.cumsum(cold_b)]))
    hot_max = np.concatenate([zero, np.maximum.accumulate(hot_t)])
    cold_max = np.concatenate([np.maximum.accumulate(cold_t[::-1])[::-1], zero])
    predicted = np.maximum.reduce([hot_sum / hot_workers, cold_sum / cold_workers,
                                   traffic / costs.bandwidth, hot_max, cold_max])   # H2
    k = int(np.argmin(predicted))                                               # H3
    hot = np.zeros(tiles, bool)
    hot[order[:k]] = True
    return hot


def assign_lpt(times: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(worker, queue position) of each tile: longest tile first to the least-loaded
    worker (LPT, eq. H4); each worker runs its tiles longest first."""
    worker = np.zeros(times.size, np.int64)
    position = np.zeros(times.size, np.int64)
    if workers == 0 or times.size == 0:
        return worker, position
    loads = [(0.0, w) for w in range(workers)]
    for rank, tile in enumerate(np.argsort(-times, kind="stable")):
        load, w = heapq.heappop(loads)
        worker[tile], position[tile] = w, rank
        heapq.heappush(loads, (load + float(times[tile]), w))
    return worker, position


def predicted_span(cycles: np.ndarray, global_worker: np.ndarray, workers: int,
                   traffic: float, bandwidth: float) -> float:
    """The model's time of a whole partition (eq. H5): the busiest worker, or DRAM."""
    busiest = np.bincount(global_worker, weights=cycles, minlength=workers).max(initial=0.0)
    return float(max(busiest, math.ceil(traffic / bandwidth)))


# -- partitions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """The labels of every non-empty tile, in the order the workers run them.

    Tiles of hot worker 0 come first (in its queue order), then hot worker 1, ..., then
    cold worker 0, ...; `model_cycles` / `model_bytes` are the model's estimates for the
    tile on its worker; `predicted` the model's time of the whole SpMM.
    """

    ids: np.ndarray
    kind: np.ndarray
    worker: np.ndarray
    nnz: np.ndarray
    model_cycles: np.ndarray
    model_bytes: np.ndarray
    predicted: float
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
                 "model_cycles": np.array([self.predicted])}
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
        return cls(get["tile_ids"].astype(np.int64), get["tile_kind"].astype(np.int8),
                   get["tile_worker"].astype(np.int64), get["tile_nnz"].astype(np.int64),
                   get["tile_model_cycles"].astype(np.float64),
                   get["tile_model_bytes"].astype(np.float64), float(get["model_cycles"][0]),
                   workers, policy)


def _ordered(ids: np.ndarray, hot: np.ndarray, worker: np.ndarray, position: np.ndarray,
             nnz: np.ndarray, costs: TileCosts, workers: tuple[int, int], policy: str
             ) -> Partition:
    """The partition with its tiles in run order, and the model's time of it."""
    global_worker = np.where(hot, worker, workers[0] + worker)
    order = np.lexsort((position, global_worker))
    cycles, traffic = costs.cycles(hot), costs.bytes(hot)
    predicted = predicted_span(cycles, global_worker, sum(workers), float(traffic.sum()),
                               costs.bandwidth)
    kind = np.where(hot, HOT, COLD).astype(np.int8)
    return Partition(ids[order], kind[order], worker[order], nnz[order], cycles[order],
                     traffic[order], predicted, workers, policy)


def _by_type(ids: np.ndarray, hot: np.ndarray, nnz: np.ndarray, costs: TileCosts,
             workers: tuple[int, int], policy: str) -> Partition:
    """Each worker type's tiles spread over its workers by LPT on the model's times."""
    cycles = costs.cycles(hot)
    worker = np.zeros(ids.size, np.int64)
    position = np.zeros(ids.size, np.int64)
    for label, count in ((True, workers[0]), (False, workers[1])):
        mine = np.flatnonzero(hot == label)
        worker[mine], position[mine] = assign_lpt(cycles[mine], count)
    return _ordered(ids, hot, worker, position, nnz, costs, workers, policy)


def _unaware(ids: np.ndarray, nnz: np.ndarray, costs: TileCosts, workers: tuple[int, int],
             policy: str, seed: int) -> Partition:
    """Heterogeneity-unaware: tiles dealt to the H + C workers as if they were alike,
    at random or round robin in grid order (eq. H6)."""
    total = sum(workers)
    dealt = (np.random.default_rng(seed).integers(0, total, ids.size) if policy == "random"
             else np.arange(ids.size) % total)
    hot = dealt < workers[0]
    worker = np.where(hot, dealt, dealt - workers[0])
    return _ordered(ids, hot, worker, np.arange(ids.size), nnz, costs, workers, policy)


def partition(nz: Nonzeros, problem: Problem, spec: HottilesSpec) -> Partition:
    """The partition `spec.policy` makes of A's non-empty tiles, from the model's costs."""
    ids, _, nnz = tile_index(nz, problem)
    costs = tile_costs(expected_stats(ids, nnz, problem, spec.hot_rows), problem, spec)
    policy = spec.policy
    if policy in ("random", "roundrobin"):
        return _unaware(ids, nnz, costs, spec.workers(), policy, spec.seed)
    if policy == "best":
        machines = [kind for kind in ("hotonly", "coldonly") if sum(spec.workers(kind))]
        candidates = [_by_type(ids, np.full(ids.size, kind == "hotonly"), nnz, costs,
                               spec.workers(kind), policy) for kind in machines]
        return min(candidates, key=lambda p: p.predicted)
    workers = spec.workers()
    hot = split_hot_cold(costs, *workers)
    return _by_type(ids, hot, nnz, costs, workers, policy)
