"""HotTiles' cost model and partitioner (Gerogiannis et al., HPCA 2024, Sec. IV-V).

Per tile i and worker type w (hot h, cold c), from the tile's exact statistics:

- bytes (Table I): Din rows by w's Din reuse type (Inter-tile 0, stream tile_width,
  demand tile_uniq_cids, None tile_nnz), Dout rows likewise (stream tile_height, demand
  tile_uniq_rids), each row K * element bytes, the Dout rows read and written back; sparse
  items COO 3 * nnz (two indices and a value) or CSR (height + 1) + 2 * nnz;
- time (Sec. IV-D): every memory task takes bytes * vis_lat[w] cycles, the SIMD MAC
  2 K nnz / F_w; the tasks w overlaps take the longest of them, groups add up (with
  `shared_port` the memory tasks of a group add first: one port moves them, (A));
- maximum reuse during partitioning (Sec. IV-C): Inter-tile Dout costs 0; once the split
  is known the first tile of each type in each row panel is re-costed (stream: its
  height, demand: its distinct rows) for the prediction.

Partition (Sec. V): th_total = sum_hot th / N_h, tc_total = sum_cold tc / N_c (eq. 2),
b_total = sum_hot bh + sum_cold bc (eq. 3); parallel T = max(th, tc, b / BW) + t_merge
(eqs. 4-6), serial T = max(th, bh / BW) + max(tc, bc / BW) (eq. 7); the four O(N log N)
heuristics sort the tiles by th - tc (MinTime) or bh - bc (MinByte), move a cutoff from
the head while their objective falls, and the partition with the least eq. 6 / eq. 7
time wins (eq. 8). IUnaware (eq. 1) splits tiles at random in the ratio of the two types'
roofline times. Equations and the choices the paper leaves open: backends/hottiles/README.md.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from sparsec.passes.hardware import HEURISTICS, HeterogeneousModel, WorkerModel
from sparsec.tensors.tiles import COLD, HOT, PARALLEL, SERIAL, Nonzeros, Partition, Tiles, tiles_of


@dataclass(frozen=True)
class Problem:
    """One SpMM Dout[M x K] = A[M x N'] . Din[N' x K] (K dense columns) in element bytes."""

    k: int
    value_bytes: int
    out_bytes: int

    @property
    def din_row_bytes(self) -> int:
        return self.k * self.value_bytes

    @property
    def dout_row_bytes(self) -> int:
        return self.k * self.out_bytes


@dataclass(frozen=True)
class TileCosts:
    """Per tile: time (cycles) and bytes on a hot and on a cold worker."""

    th: np.ndarray
    tc: np.ndarray
    bh: np.ndarray
    bc: np.ndarray


def _rows(reuse: str, tiles: Tiles, along: str) -> np.ndarray:
    """Table I: the Din (`along` = cols) or Dout (rows) rows a tile reads from memory."""
    extent = tiles.width if along == "cols" else tiles.height
    distinct = tiles.cols if along == "cols" else tiles.rows
    return {"inter": np.zeros(tiles.count), "stream": extent.astype(np.float64),
            "demand": distinct.astype(np.float64),
            "none": tiles.nnz.astype(np.float64)}[reuse]


def sparse_bytes(worker: WorkerModel, tiles: Tiles, problem: Problem, index_bytes: int
                 ) -> np.ndarray:
    """Table I, sparse items: COO 2 indices + 1 value per nonzero; CSR a row pointer per
    row (+1) and an index + value per nonzero."""
    per_nonzero = 2 * index_bytes + problem.value_bytes
    if worker.sparse_format == "csr":
        per_nonzero = index_bytes + problem.value_bytes
        return (tiles.height + 1) * index_bytes + tiles.nnz * per_nonzero
    return tiles.nnz * float(per_nonzero)


def task_bytes(worker: WorkerModel, tiles: Tiles, problem: Problem, index_bytes: int,
               dout_rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Bytes of the four memory tasks of every tile on `worker` (Table I); `dout_rows`
    overrides the Dout rows (the re-costed first tiles of a row panel)."""
    if dout_rows is None:
        dout_rows = _rows(worker.dout_reuse, tiles, "rows")
    dout = dout_rows * problem.dout_row_bytes
    return {"a": np.asarray(sparse_bytes(worker, tiles, problem, index_bytes), np.float64),
            "din": _rows(worker.din_reuse, tiles, "cols") * problem.din_row_bytes,
            "dout": dout, "wb": dout}


def tile_time(worker: WorkerModel, nbytes: dict[str, np.ndarray], nnz: np.ndarray,
              problem: Problem) -> np.ndarray:
    """Sec. IV-D: t(task) = bytes * vis_lat, t(mac) = 2 K nnz / F; overlapped tasks take
    their longest, groups (and tasks in no group) add up."""
    times = {task: b * worker.vis_lat for task, b in nbytes.items()}
    times["mac"] = 2.0 * problem.k * nnz / worker.flops_per_cycle
    grouped = {task for group in worker.overlap for task in group}
    total = np.zeros(nnz.size)
    for group in worker.overlap:
        parts = [times[task] for task in group if task == "mac" or not worker.shared_port]
        memory = [times[task] for task in group if task != "mac"]
        if worker.shared_port and memory:
            parts.append(np.sum(memory, axis=0))
        total += np.maximum.reduce(parts)
    for task, time in times.items():
        if task not in grouped:
            total += time
    return total


def costs(machine: HeterogeneousModel, tiles: Tiles, problem: Problem,
          dout_rows: tuple[np.ndarray, np.ndarray] | None = None) -> TileCosts:
    """th, tc, bh, bc of every tile (under maximum reuse unless `dout_rows` re-costs)."""
    out = []
    for index, worker in enumerate((machine.hot, machine.cold)):
        nbytes = task_bytes(worker, tiles, problem, machine.index_bytes,
                            None if dout_rows is None else dout_rows[index])
        out.append((tile_time(worker, nbytes, tiles.nnz, problem), sum(nbytes.values())))
    (th, bh), (tc, bc) = out
    return TileCosts(th, tc, bh, bc)


def recost(machine: HeterogeneousModel, tiles: Tiles, problem: Problem, hot: np.ndarray
           ) -> TileCosts:
    """Sec. IV-C: the split known, the first tile of each type in each row panel (grid
    order) reads its Dout rows (stream: its height; demand: its distinct rows)."""
    panel = tiles.panel
    dout_rows = []
    for worker, mine in ((machine.hot, hot), (machine.cold, ~hot)):
        rows = _rows(worker.dout_reuse, tiles, "rows")
        if worker.dout_reuse == "inter":
            first = np.zeros(tiles.count, bool)
            index = np.flatnonzero(mine)
            if index.size:
                lead = np.ones(index.size, bool)
                lead[1:] = panel[index][1:] != panel[index][:-1]
                first[index[lead]] = True
            extent = tiles.height if worker.dout_first == "stream" else tiles.rows
            rows = np.where(first, extent, 0.0).astype(np.float64)
        dout_rows.append(rows)
    return costs(machine, tiles, problem, (dout_rows[0], dout_rows[1]))


def merge_cycles(machine: HeterogeneousModel, rows: int, problem: Problem) -> float:
    """t_merge: read the two private output buffers, write the result (3 buffers of
    M rows) at the shared bandwidth; 0 with an atomic engine (A: the factor 3)."""
    if machine.atomic:
        return 0.0
    return 3.0 * rows * problem.dout_row_bytes / machine.bandwidth


def deal_panels(times: np.ndarray, mine: np.ndarray, panel: np.ndarray, count: int
                ) -> tuple[np.ndarray, float]:
    """(worker of each tile, busiest worker's time): a row panel's tiles of one type go
    to one worker of that type (SPADE's requirement, Sec. V); panels are dealt longest
    first to the least-loaded worker (LPT, by predicted time) (A)."""
    worker = np.zeros(times.size, np.int64)
    index = np.flatnonzero(mine)
    if index.size == 0 or count == 0:
        return worker, (math.inf if index.size else 0.0)
    panels, inverse = np.unique(panel[index], return_inverse=True)
    load = np.bincount(inverse, weights=times[index], minlength=panels.size)
    assigned = np.zeros(panels.size, np.int64)
    heap = [(0.0, w) for w in range(count)]
    for p in np.argsort(-load, kind="stable"):
        total, w = heapq.heappop(heap)
        assigned[p] = w
        heapq.heappush(heap, (total + float(load[p]), w))
    worker[index] = assigned[inverse]
    return worker, max(total for total, _ in heap)


def predict(machine: HeterogeneousModel, c: TileCosts, hot: np.ndarray, schedule: int,
            merge: float, panel: np.ndarray | None = None) -> float:
    """Eq. 6 (parallel, + t_merge when both types work) or eq. 7 (serial). th_total and
    tc_total are eq. 2's sum / N, or with `panel` the busiest worker once row panels are
    dealt (which is never less)."""
    n_h, n_c = machine.hot.count, machine.cold.count
    th = float(c.th[hot].sum()) / n_h if n_h else (math.inf if hot.any() else 0.0)
    tc = float(c.tc[~hot].sum()) / n_c if n_c else (math.inf if (~hot).any() else 0.0)
    if panel is not None:
        th = max(th, deal_panels(c.th, hot, panel, n_h)[1])
        tc = max(tc, deal_panels(c.tc, ~hot, panel, n_c)[1])
    bh, bc = float(c.bh[hot].sum()), float(c.bc[~hot].sum())
    bw = machine.bandwidth
    if schedule == SERIAL:
        return max(th, bh / bw) + max(tc, bc / bw)
    both = bool(hot.any()) and bool((~hot).any())
    return max(th, tc, (bh + bc) / bw) + (merge if both else 0.0)


def cutoff(objective: np.ndarray) -> int:
    """Greedy cutoff (Sec. V-B): `objective[k]` is the subproblem's value with the first k
    tiles (in the heuristic's sort order) hot; start at k = 0, step right while it falls, stop at the
    first step that does not."""
    rises = np.flatnonzero(np.diff(objective) >= 0)
    return int(rises[0]) if rises.size else int(objective.size - 1)


def heuristic_split(name: str, machine: HeterogeneousModel, c: TileCosts) -> np.ndarray:
    """The hot tiles one of the four heuristics chooses (MinTime / MinByte x Parallel /
    Serial): sort by th - tc or bh - bc ascending, then `cutoff` on its objective:
    MinTime-Par max(th_total, tc_total), MinTime-Ser th_total + tc_total, MinByte b_total."""
    n_h, n_c = machine.hot.count, machine.cold.count
    by_time = name.startswith("mintime")
    order = np.argsort(c.th - c.tc if by_time else c.bh - c.bc, kind="stable")
    zero = np.zeros(1)
    if by_time:
        hot_sum = np.concatenate([zero, np.cumsum(c.th[order])]) / n_h
        cold_sum = (c.tc.sum() - np.concatenate([zero, np.cumsum(c.tc[order])])) / n_c
        objective = (np.maximum(hot_sum, cold_sum) if name.endswith("par")
                     else hot_sum + cold_sum)
    else:
        objective = (np.concatenate([zero, np.cumsum(c.bh[order])])
                     + c.bc.sum() - np.concatenate([zero, np.cumsum(c.bc[order])]))
    hot = np.zeros(c.th.size, bool)
    hot[order[:cutoff(objective)]] = True
    return hot


@dataclass(frozen=True)
class Choice:
    """A split with its schedule, its re-costed tiles and the predicted time."""

    hot: np.ndarray
    schedule: int
    heuristic: int
    costs: TileCosts
    predicted: float
    merge: float


def evaluate(machine: HeterogeneousModel, tiles: Tiles, problem: Problem, hot: np.ndarray,
             schedule: int, heuristic: int) -> Choice:
    merge = merge_cycles(machine, tiles.shape[0], problem)
    c = recost(machine, tiles, problem, hot)
    panel = tiles.panel if machine.balance else None
    return Choice(hot, schedule, heuristic, c, predict(machine, c, hot, schedule, merge, panel),
                  merge)


def hottiles_choice(machine: HeterogeneousModel, tiles: Tiles, problem: Problem) -> Choice:
    """Eq. 8 by the four heuristics: each split evaluated with eq. 6 (Par) or eq. 7
    (Ser), the least predicted time wins; with an atomic engine only the Par ones. The
    two homogeneous assignments (cutoff at either end) compete too (heuristic -1)."""
    c = costs(machine, tiles, problem)
    names = [machine.heuristic] if machine.heuristic != "auto" else list(HEURISTICS)
    if machine.atomic:
        names = [n for n in names if n.endswith("par")] or names
    choices = [evaluate(machine, tiles, problem, heuristic_split(name, machine, c),
                        SERIAL if name.endswith("ser") else PARALLEL, HEURISTICS.index(name))
               for name in names]
    if machine.heuristic == "auto":
        # the ends of every cutoff line (all cold, all hot) are assignments of eq. 8 too
        choices += [homogeneous_choice(machine, tiles, problem, kind)
                    for kind in ("coldonly", "hotonly")]
    return min(choices, key=lambda choice: choice.predicted)


def uniform_tiles(tiles: Tiles) -> Tiles:
    """The tiles as IUnaware's roofline sees them: the matrix's nonzeros spread evenly
    over its non-empty tiles, distinct rows / columns those of uniform throws."""
    share = tiles.nnz.sum() / max(1, tiles.count)
    nnz = np.full(tiles.count, share)

    def occupied(bins: np.ndarray) -> np.ndarray:
        bins = bins.astype(np.float64)
        return bins * -np.expm1(share * np.log1p(-1.0 / np.maximum(bins, 1.0 + 1e-12)))

    return Tiles(tiles.shape, tiles.tile, tiles.ids, nnz, occupied(tiles.height),
                 occupied(tiles.width), tiles.height, tiles.width, tiles.of_nonzero)


def iunaware_choice(machine: HeterogeneousModel, tiles: Tiles, problem: Problem) -> Choice:
    """Eq. 1: Ex_w = roofline time of the whole matrix on w's workers (uniform
    nonzeros): max(sum t_w / N_w, sum b_w / BW); frac_hot = Ex_c / (Ex_c + Ex_h) of
    the tiles, chosen at random (seeded), run in parallel."""
    c = costs(machine, uniform_tiles(tiles), problem)
    bw = machine.bandwidth
    ex_h = max(c.th.sum() / max(1, machine.hot.count), c.bh.sum() / bw)
    ex_c = max(c.tc.sum() / max(1, machine.cold.count), c.bc.sum() / bw)
    frac = ex_c / (ex_c + ex_h) if ex_c + ex_h > 0 else 0.5
    if machine.hot.count == 0 or machine.cold.count == 0:
        frac = float(machine.hot.count > 0)
    picked = np.random.default_rng(machine.seed).permutation(tiles.count)
    hot = np.zeros(tiles.count, bool)
    hot[picked[:int(round(frac * tiles.count))]] = True
    return evaluate(machine, tiles, problem, hot, PARALLEL, -1)


def homogeneous_choice(machine: HeterogeneousModel, tiles: Tiles, problem: Problem,
                       kind: str) -> Choice:
    hot = np.full(tiles.count, kind == "hotonly")
    return evaluate(machine, tiles, problem, hot, PARALLEL, -1)


def choose(machine: HeterogeneousModel, tiles: Tiles, problem: Problem) -> Choice:
    """The split the machine's policy makes."""
    policy = machine.policy
    if policy in ("hotonly", "coldonly"):
        return homogeneous_choice(machine, tiles, problem, policy)
    if policy == "best":
        kinds = [k for k, n in (("hotonly", machine.hot.count), ("coldonly", machine.cold.count))
                 if n]
        return min((homogeneous_choice(machine, tiles, problem, k) for k in kinds),
                   key=lambda choice: choice.predicted)
    if machine.hot.count == 0 or machine.cold.count == 0:
        return homogeneous_choice(machine, tiles, problem,
                                  "hotonly" if machine.hot.count else "coldonly")
    if policy == "iunaware":
        return iunaware_choice(machine, tiles, problem)
    return hottiles_choice(machine, tiles, problem)


def tile_shape(machine: HeterogeneousModel, problem: Problem, shape: tuple[int, int]
               ) -> tuple[tuple[int, int], list[int]]:
    """Sec. IV-A: a worker keeping Din (Dout) in a scratchpad fixes the tile width
    (height) to the most rows that fit it; a free dimension is searched: returns the fixed
    (height or 0, width) and the candidate heights to try."""
    spads = [w for w in (machine.hot, machine.cold) if w.count]
    din = [w.din_spad_bytes for w in spads if w.din_spad_bytes]
    dout = [w.dout_spad_bytes for w in spads if w.dout_spad_bytes]
    width = machine.tile_cols or (min(din) // problem.din_row_bytes if din else shape[1])
    height = machine.tile_rows or (min(dout) // problem.dout_row_bytes if dout else 0)
    width = max(1, min(width, shape[1]))
    if height:
        return (min(height, shape[0]), width), []
    candidates = sorted({min(h, shape[0]) for h in machine.tile_row_candidates})
    return (0, width), candidates


def workers_of(machine: HeterogeneousModel, tiles: Tiles, choice: Choice
               ) -> tuple[np.ndarray, np.ndarray]:
    """(worker, run position) of each tile: row panels dealt by `deal_panels`; each
    worker runs its panels in row order."""
    times = np.where(choice.hot, choice.costs.th, choice.costs.tc)
    hot_worker, _ = deal_panels(times, choice.hot, tiles.panel, machine.hot.count)
    cold_worker, _ = deal_panels(times, ~choice.hot, tiles.panel, machine.cold.count)
    return np.where(choice.hot, hot_worker, cold_worker), np.arange(tiles.count)


def partition(machine: HeterogeneousModel, nz: Nonzeros, problem: Problem
              ) -> tuple[Partition, Tiles]:
    """Tile the matrix (searching a free tile height by predicted time), split it by the
    policy, deal the tiles to workers; the partition in run order and its tiles."""
    (height, width), candidates = tile_shape(machine, problem, nz.shape)
    best: tuple[Choice, Tiles] | None = None
    for h in candidates or [height]:
        tiles = tiles_of(nz, (h, width))
        if tiles.count > machine.max_tiles and best is not None:
            continue
        choice = choose(machine, tiles, problem)
        if best is None or choice.predicted < best[0].predicted:
            best = (choice, tiles)
    assert best is not None
    choice, tiles = best
    workers = (machine.hot.count, machine.cold.count)
    if machine.policy in ("hotonly", "coldonly", "best"):
        workers = (machine.hot.count, 0) if choice.hot.all() else (0, machine.cold.count)
    worker, position = workers_of(machine, tiles, choice)
    global_worker = np.where(choice.hot, worker, workers[0] + worker)
    order = np.lexsort((position, global_worker))
    times = np.where(choice.hot, choice.costs.th, choice.costs.tc)
    nbytes = np.where(choice.hot, choice.costs.bh, choice.costs.bc)
    kind = np.where(choice.hot, HOT, COLD).astype(np.int8)
    part = Partition(tiles.ids[order], kind[order], worker[order], tiles.nnz[order],
                     times[order], nbytes[order], choice.predicted, choice.schedule,
                     choice.heuristic, choice.merge, workers, machine.policy)
    return part, tiles
