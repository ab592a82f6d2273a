"""The machine's own account of a partition, independent of the partitioner's estimate.

The partitioner (passes/hotcold_model.py) prices tiles with HotTiles' formulas (Table I
rows, a visible latency per byte, eqs. 2-7). Here every tile's work is counted from what
the workers would do with the real nonzeros, so that comparing the two gives the cost
model's prediction error, as the paper reports it (Sec. VII-E):

- DRAM moves whole `line_bytes` lines: A's items (COO or CSR) in lines, each Din / Dout
  row as ceil(row bytes / line) lines;
- Din rows: a streaming worker loads the tile's full width (even for one nonzero), a
  demand worker each distinct column once, a worker without reuse one row per nonzero,
  less the hits of its L1: the worker runs its row panel in row order, and a nonzero's
  Din row hits when the same column was used at most `L1 rows` accesses earlier in that
  stream (a sufficient condition for a hit in a fully associative LRU cache);
- Dout rows with Inter-tile reuse: once per row panel and worker, read before its first
  tile and written after its last (a streaming worker the panel's height, a demand
  worker the distinct rows it touches in the panel);
- compute: nnz * ceil(K / SIMD lanes) SIMD MACs at `simd_per_cycle` per cycle;
- a worker sustains `mlp` outstanding lines over the DRAM latency (Little's law); all
  share the DRAM, whose bandwidth the Timeline replay divides (interpreter.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.tensors.tiles import HOT, Nonzeros, Partition, Tiles, count_distinct


@dataclass(frozen=True)
class TileWork:
    """Per tile in run order: compute cycles, DRAM bytes read and written, Din rows
    fetched and L1 hits (cold workers)."""

    compute: np.ndarray
    read: np.ndarray
    written: np.ndarray
    din_rows: np.ndarray
    l1_hits: np.ndarray

    @property
    def bytes(self) -> np.ndarray:
        return self.read + self.written


def _lines(nbytes: np.ndarray | float, line: int) -> np.ndarray:
    return np.ceil(np.asarray(nbytes, np.float64) / line) * line


def l1_hits(nz: Nonzeros, tile_of: np.ndarray, cold_tile: np.ndarray, panel_of: np.ndarray,
            capacity: int) -> np.ndarray:
    """Per tile: nonzeros whose Din row hits the cold worker's L1 (see module doc)."""
    hits = np.zeros(cold_tile.size, np.int64)
    if capacity <= 0:
        return hits
    cold = np.flatnonzero(cold_tile[tile_of])
    if cold.size < 2:
        return hits
    # one stable sort by (panel, column) keeps each group's uses in stream order
    key = panel_of[tile_of[cold]] * np.int64(nz.shape[1]) + nz.col[cold]
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    near = (order[1:] - order[:-1]) <= capacity
    hit = order[1:][same & near]
    return np.bincount(tile_of[cold[hit]], minlength=cold_tile.size)


def _dout_rows(kind_hot: bool, spec: HottilesSpec, tiles: Tiles, mine: np.ndarray,
               nz: Nonzeros, tile_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows read, rows written) of Dout per tile for the tiles of one worker type."""
    prefix = "hot" if kind_hot else "cold"
    reuse = getattr(spec, f"{prefix}_dout_reuse")
    count = tiles.count
    if reuse == "stream":
        rows = np.where(mine, tiles.height, 0).astype(np.float64)
        return rows, rows
    if reuse == "demand":
        rows = np.where(mine, tiles.rows, 0).astype(np.float64)
        return rows, rows
    if reuse == "none":
        rows = np.where(mine, tiles.nnz, 0).astype(np.float64)
        return rows, rows
    # Inter-tile: once per row panel (one worker of this type runs all of its tiles there)
    panel = tiles.panel
    read, written = np.zeros(count), np.zeros(count)
    index = np.flatnonzero(mine)
    if index.size == 0:
        return read, written
    panels, inverse = np.unique(panel[index], return_inverse=True)
    if getattr(spec, f"{prefix}_dout_first") == "stream":
        per_panel = np.minimum(tiles.tile[0], tiles.shape[0] - panels * tiles.tile[0])
    else:
        picked = mine[tile_of]
        group = np.searchsorted(panels, panel[tile_of[picked]])
        per_panel = count_distinct(group, nz.row[picked] % tiles.tile[0], panels.size)
    last = np.full(panels.size, -1)
    np.maximum.at(last, inverse, index)
    first = np.full(panels.size, count)
    np.minimum.at(first, inverse, index)
    np.add.at(read, first, per_panel.astype(np.float64))
    np.add.at(written, last, per_panel.astype(np.float64))
    return read, written


def tile_work(spec: HottilesSpec, nz: Nonzeros, tiles: Tiles, part: Partition, k: int,
              value_bytes: int, out_bytes: int, tile_of: np.ndarray) -> TileWork:
    """The work of every tile of `tiles` (in run order, labelled by `part`) on its worker;
    `tile_of` maps each nonzero to its tile's run position."""
    line = spec.line_bytes
    hot = part.kind == HOT
    din_lines = _lines(k * value_bytes, line)
    out_lines = _lines(k * out_bytes, line)
    compute = np.zeros(tiles.count)
    a_bytes = np.zeros(tiles.count)
    din_rows = np.zeros(tiles.count)
    read_rows, write_rows = np.zeros(tiles.count), np.zeros(tiles.count)
    hits = np.zeros(tiles.count, np.int64)
    for kind_hot in (True, False):
        prefix = "hot" if kind_hot else "cold"
        mine = hot if kind_hot else ~hot
        lanes = getattr(spec, f"{prefix}_simd_lanes")
        per_cycle = getattr(spec, f"{prefix}_simd_per_cycle")
        macs = np.ceil(tiles.nnz * math.ceil(k / lanes) / per_cycle)
        compute = np.where(mine, macs, compute)
        if getattr(spec, f"{prefix}_format") == "csr":
            items = (tiles.height + 1) * spec.index_bytes + tiles.nnz * (spec.index_bytes
                                                                         + value_bytes)
        else:
            items = tiles.nnz * (2 * spec.index_bytes + value_bytes)
        a_bytes = np.where(mine, _lines(items, line), a_bytes)
        reuse = getattr(spec, f"{prefix}_din_reuse")
        rows = {"stream": tiles.width, "demand": tiles.cols, "inter": tiles.cols,
                "none": tiles.nnz}[reuse].astype(np.float64)
        if reuse == "none" and not kind_hot:
            capacity = int(spec.cold_l1_kb * 1024 // din_lines)
            cold_hits = l1_hits(nz, tile_of, mine, tiles.panel, capacity)
            hits = np.where(mine, cold_hits, hits)
            rows = rows - cold_hits
        din_rows = np.where(mine, rows, din_rows)
        r, w = _dout_rows(kind_hot, spec, tiles, mine, nz, tile_of)
        read_rows += r
        write_rows += w
    read = a_bytes + din_rows * din_lines + read_rows * out_lines
    return TileWork(compute, read, write_rows * out_lines, din_rows, hits)


def merge_work(spec: HottilesSpec, nz: Nonzeros, hot_of_nonzero: np.ndarray, k: int,
               out_bytes: int) -> tuple[float, float]:
    """(bytes, merger cycles) of merging the two private outputs: read the rows each
    type wrote, write their union, add them `merger_lanes` elements per cycle."""
    line_rows = _lines(k * out_bytes, spec.line_bytes)
    rows_hot = np.unique(nz.row[hot_of_nonzero])
    rows_cold = np.unique(nz.row[~hot_of_nonzero])
    union = np.union1d(rows_hot, rows_cold).size
    nbytes = float((rows_hot.size + rows_cold.size + union) * line_rows)
    return nbytes, float(union * math.ceil(k / spec.merger_lanes))


def fair_rates(caps: np.ndarray, bandwidth: float) -> np.ndarray:
    """Max-min fair split of `bandwidth` among streams capped at `caps` (water filling):
    each stream gets its cap or an equal share of what the capped ones leave."""
    rates = np.zeros(caps.size)
    left, remaining = bandwidth, caps.size
    for index in np.argsort(caps, kind="stable"):
        share = left / remaining
        rates[index] = min(caps[index], share)
        left -= rates[index]
        remaining -= 1
    return rates


def fluid_replay(queues: dict[int, np.ndarray], nbytes: np.ndarray, compute: np.ndarray,
                 port: np.ndarray, bandwidth: float, start: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of every tile when the workers run their queues at once and share the
    DRAM: at every moment the streams still moving bytes split the bandwidth max-min
    fairly, each capped at its worker's port (interleaved line requests, as a fluid); a
    tile ends when its bytes have arrived and its compute (which overlaps them) is done."""
    begin = np.zeros(nbytes.size)
    end = np.zeros(nbytes.size)
    issued = {g: 0 for g, q in queues.items() if q.size}
    current: dict[int, int] = {}
    remaining: dict[int, float] = {}
    now = start
    for g in issued:
        tile = int(queues[g][0])
        current[g], remaining[g], begin[tile] = tile, float(nbytes[tile]), now
    while current:
        moving = [g for g in current if remaining[g] > 1e-9]
        rates = fair_rates(np.array([port[current[g]] for g in moving]), bandwidth)
        rate_of = dict(zip(moving, rates, strict=True))
        step = np.inf
        for g, tile in current.items():
            if g in rate_of:
                step = min(step, remaining[g] / rate_of[g])
            else:
                step = min(step, max(0.0, begin[tile] + compute[tile] - now))
        now += step
        for g, rate in rate_of.items():
            remaining[g] = max(0.0, remaining[g] - rate * step)
        for g in list(current):
            tile = current[g]
            if remaining[g] > 1e-9 or now + 1e-9 < begin[tile] + compute[tile]:
                continue
            end[tile] = now
            issued[g] += 1
            if issued[g] == queues[g].size:
                del current[g], remaining[g]
                continue
            nxt = int(queues[g][issued[g]])
            current[g], remaining[g], begin[nxt] = nxt, float(nbytes[nxt]), now
    return begin, end
