"""SIGMA's cycle model: STONNE's SparseSDMemory controller, Benes DN, multipliers and FAN.

A GEMM runs as a sequence of *stationary iterations*. The stationary matrix S (vectors x
K: the rows of A, or the columns of B) is packed vector by vector into the multipliers;
each vector is a dot-product group ("virtual neuron", VN) of as many multipliers as it
has bitmap ones. Then the streaming matrix T (n_str x K) passes once, one vector per
step: every column j that some stationary VN needs becomes one multicast package.

Every function here works on whole iterations with numpy (no Python loop per nonzero or
per cycle); README.md writes out each equation and the STONNE code it mirrors.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sparsec.backends.sigma.spec import SigmaSpec

TAIL_WINDOW = 24
"""Cycles before an iteration's last output whose arrivals are replayed through the
global buffer's write FIFO (it drains exponentially, so a short window is exact)."""


@dataclass(frozen=True)
class Iteration:
    """One stationary iteration: vectors v0:v1 of S over columns k0:k1.

    `fold` marks the continuation of a vector longer than the multipliers: multiplier 0
    then forwards the partial sum read back from the buffer.
    """

    v0: int
    v1: int
    k0: int
    k1: int
    fold: bool


@dataclass(frozen=True)
class IterationCost:
    """What one iteration costs and does (README, "One iteration")."""

    cycles: int
    distribution_cycles: int
    reduction_cycles: int
    vns: int
    multipliers_used: int
    weight_reads: int
    stream_reads: int
    psum_reads: int
    output_writes: int
    products: int


def stationary_bits(nonzero: np.ndarray, min_cluster: int) -> np.ndarray:
    """The bitmap the controller maps: each vector gets at least `min_cluster` ones,
    marking its first zero columns (STONNE's generateBitMapFromDense pads to 3)."""
    bits = np.array(nonzero, dtype=bool, copy=True)
    for j in range(min(min_cluster, bits.shape[1])):
        short = bits.sum(axis=1) < min_cluster
        bits[short & ~bits[:, j], j] = True
    return bits


def place(sizes: np.ndarray, spec: SigmaSpec, first: int) -> np.ndarray:
    """First multiplier of each VN of `sizes` placed from multiplier `first` on.

    One FAN (flex_dpe 0): VNs sit back to back. With Flex-DPEs, a VN that fits one
    Flex-DPE never straddles two, and a larger one starts on a Flex-DPE boundary.
    """
    ends = first + np.cumsum(sizes)
    if spec.dpe_size == spec.multipliers:
        return ends - sizes
    starts = np.empty(sizes.size, dtype=np.int64)
    offset, dpe = first, spec.dpe_size
    for index, size in enumerate(sizes.tolist()):
        crosses = offset % dpe + size > dpe
        offset = -(-offset // dpe) * dpe if crosses else offset
        starts[index] = offset
        offset += size
    return starts


def _rows_that_fit(sizes: np.ndarray, spec: SigmaSpec) -> int:
    """How many leading vectors of `sizes` fit the multipliers together."""
    if spec.dpe_size == spec.multipliers:
        return int(np.searchsorted(np.cumsum(sizes), spec.multipliers, side="right"))
    window = sizes[: spec.multipliers]
    ends = place(window, spec, 0) + window
    return int(np.searchsorted(ends > spec.multipliers, True))


def _fold_chunks(row: np.ndarray, index: int, spec: SigmaSpec) -> Iterator[Iteration]:
    """A vector longer than the array: `multipliers` ones first, then multipliers - 1
    ones per iteration (multiplier 0 forwards the partial sum), column ranges cut after
    the last one of each chunk (SparseSDMemory's sta_last_j_metadata)."""
    columns = np.flatnonzero(row)
    start, k0, fold = 0, 0, False
    while start < columns.size:
        stop = min(start + spec.multipliers - int(fold), columns.size)
        k1 = row.size if stop == columns.size else int(columns[stop - 1]) + 1
        yield Iteration(index, index + 1, k0, k1, fold)
        start, k0, fold = stop, k1, True


def plan(bits: np.ndarray, spec: SigmaSpec) -> list[Iteration]:
    """The controller's iterations over S's bitmap (SparseSDMemory, state CONFIGURING):
    as many whole vectors as fit, in order; a vector that alone exceeds the array folds."""
    sizes = bits.sum(axis=1).astype(np.int64)
    iterations: list[Iteration] = []
    vector = 0
    while vector < sizes.size:
        fit = _rows_that_fit(sizes[vector:], spec)
        if fit == 0:
            iterations.extend(_fold_chunks(bits[vector], vector, spec))
            vector += 1
            continue
        iterations.append(Iteration(vector, vector + fit, 0, bits.shape[1], False))
        vector += fit
    return iterations


@functools.lru_cache(maxsize=32)
def bus_lines(multipliers: int, rn_bw: int) -> np.ndarray:
    """Collection-bus line of every adder, indexed 2^level - 1 + node (root = 0).

    STONNE's ASNetwork::setMemoryConnections: adders joined by a forwarding link form
    "double" switches, dealt round-robin to the lines two at a time; the others are
    "single" switches, dealt after them. Adders sharing a line share its one output
    per cycle.
    """
    doubles: list[int] = []
    singles: list[int] = [0]
    for level in range(1, int(math.log2(multipliers))):
        width = 1 << level
        base = width - 1
        doubles.extend(base + node for pair in range(2, width, 2) for node in (pair - 1, pair))
        singles.extend((base, base + width - 1))
    table = np.zeros(multipliers, dtype=np.int64)
    table[np.array(doubles, dtype=np.int64)] = (np.arange(len(doubles)) // 2) % rn_bw
    table[np.array(singles, dtype=np.int64)] = (np.arange(len(singles)) + len(doubles)) % rn_bw
    return table


def _run_starts(*keys: np.ndarray) -> np.ndarray:
    """Index of the first entry of each run of equal keys (entries sorted by them)."""
    change = np.empty(keys[0].size, dtype=bool)
    change[0] = True
    np.not_equal(keys[0][1:], keys[0][:-1], out=change[1:])
    for key in keys[1:]:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def reduce_times(vn: np.ndarray, ms: np.ndarray, ready: np.ndarray, levels: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cycles at which each VN's sum leaves the FAN, and the adder (2^level - 1 + node)
    that sends it to the collection bus.

    `ready[i, c]` is the cycle multiplier `ms[i]` (of VN `vn[i]`, sorted) sends its
    product in case c (a column per streamed vector of interest). Mirrors CompilerART's
    sparse configuration level by level: an adder sends one cycle after its last child
    input; the range of nodes a VN occupies at a level shrinks at an edge node that
    forwards through an augmented link (+1 cycle for the receiver); the VN is done at
    the first level where it occupies one node, or two nodes joined by a forwarding link.
    """
    count = int(vn[-1]) + 1
    done_at = np.zeros((count, ready.shape[1]), dtype=np.int64)
    adder = np.zeros(count, dtype=np.int64)
    node, t, v = ms.astype(np.int64), ready.astype(np.int64), vn.astype(np.int64)
    for level in range(levels - 1, -1, -1):
        first = _run_starts(v)
        x, y = node[first], node[np.append(first[1:], v.size) - 1]
        node = node >> 1
        merged = _run_starts(v, node)
        t, v, node = np.maximum.reduceat(t, merged, axis=0) + 1, v[merged], node[merged]
        first = _run_starts(v)
        last = np.append(first[1:], v.size) - 1
        ids, p0, p1 = v[first], node[first], node[last]
        single = first == last
        paired = (last == first + 1) & (p0 % 2 == 1)
        to_left = (np.minimum(y, 2 * p0 + 1) - x + 1 >= y - 2 * p0 - 1)[:, None]
        joined = np.where(to_left, np.maximum(t[first], t[last] + 1),
                          np.maximum(t[last], t[first] + 1))
        finished = single | paired
        done_at[ids[single]] = t[first[single]]
        done_at[ids[paired]] = joined[paired]
        adder[ids[single]] = (1 << level) - 1 + p0[single]
        adder[ids[paired]] = (1 << level) - 1 + np.where(to_left[:, 0], p0, p0 + 1)[paired]
        if finished.all():
            break
        keep = ~np.repeat(finished, last - first + 1)
        left = first[~finished & (p0 % 2 == 1)]
        right = last[~finished & (p1 % 2 == 0)]
        t[left + 1] = np.maximum(t[left + 1], t[left] + 1)
        t[right - 1] = np.maximum(t[right - 1], t[right] + 1)
        keep[left] = False
        keep[right] = False
        node, t, v = node[keep], t[keep], v[keep]
    return done_at, adder


def _write_fifo_drained(line_done: np.ndarray, bus_bound: np.ndarray, outputs: np.ndarray,
                        vn_done: np.ndarray, period: int, n_str: int) -> int:
    """Cycle the global buffer's write FIFO pops the iteration's last output.

    SparseSDMemory pops ceil(size / 2) outputs per cycle (its loop runs to the shrinking
    size). Outputs land one cycle after leaving the bus: a bus-bound line lands one per
    cycle for its `outputs` values until it is done, a VN on a free line one every
    `period` cycles until its last.
    """
    end = int(line_done.max()) + 1
    low = end - TAIL_WINDOW + 1
    arrivals = np.zeros(TAIL_WINDOW + 1, dtype=np.int64)
    busy_end = line_done[bus_bound] + 1 - low
    np.add.at(arrivals, np.clip(busy_end - outputs[bus_bound] + 1, 0, TAIL_WINDOW), 1)
    np.add.at(arrivals, np.clip(busy_end + 1, 0, TAIL_WINDOW), -1)
    arrivals = np.cumsum(arrivals)[:TAIL_WINDOW]
    steps = np.arange(min(n_str, TAIL_WINDOW // period + 1))
    landed = (vn_done[:, None] + 2 - steps[None, :] * period).ravel() - low
    np.add.at(arrivals, landed[(landed >= 0) & (landed < TAIL_WINDOW)], 1)
    backlog, last = 0, low
    for cycle in range(TAIL_WINDOW + 64):
        size = backlog + (int(arrivals[cycle]) if cycle < TAIL_WINDOW else 0)
        last = low + cycle if size else last
        backlog = size >> 1
        if cycle >= TAIL_WINDOW and not backlog:
            break
    return last


def iteration_cost(block: np.ndarray, fold: bool, n_str: int, spec: SigmaSpec) -> IterationCost:
    """Cycles of one iteration whose stationary bitmap block is `block` (vectors x
    columns, min_cluster padding applied), streaming `n_str` vectors.

    c0: configure; c0+1: weights enter the read-port FIFOs; c0+1+t: streaming vector t's
    packages enter them; every port sends one package per cycle (a partial sum first);
    a package reaches its multipliers the same cycle (one multiplier per port) or the
    next (through the Benes subtree); each FAN level adds a cycle; the collection bus
    adds one and lands the value in the write FIFO the cycle after.
    """
    rows, cols = np.nonzero(block)
    sizes = np.bincount(rows, minlength=block.shape[0]).astype(np.int64)
    present = np.flatnonzero(sizes)
    shift = int(fold)
    starts = place(sizes[present] + shift, spec, 0)
    vn = np.searchsorted(present, rows)
    rank_in_vn = np.arange(rows.size) - (np.cumsum(sizes[present]) - sizes[present])[vn]
    ms = starts[vn] + shift + rank_in_vn
    fanout, width = spec.port_fanout, block.shape[1]
    port = ms // fanout
    weights = np.bincount(port, minlength=spec.dn_bw)
    keys = np.unique(port * width + cols)
    packages = np.bincount(keys // width, minlength=spec.dn_bw)
    rank = np.searchsorted(keys, port * width + cols) - np.searchsorted(keys, port * width) + 1
    sent_last = weights[port] + (n_str - 1) * packages[port] + rank
    sent_first = weights[port] + rank
    if fold and fanout > 1:
        # port 0's partial sums jump its queue: its other packages wait for all of them
        sent_last = sent_last + np.where((port == 0) & (sent_last > 1), n_str, 0)
        sent_first = sent_first + np.where((port == 0) & (sent_first > 1), n_str, 0)
    hop = 0 if fanout == 1 else 1
    if fold:
        vn, ms = np.append(0, vn), np.append(0, ms)
        sent_last, sent_first = np.append(0, sent_last), np.append(0, sent_first)
    levels = int(math.log2(spec.multipliers))
    sent = np.stack((sent_last, sent_first), axis=1) + hop
    reduced, adder = reduce_times(vn, ms, sent, levels)
    vn_last, vn_first = reduced[:, 0], reduced[:, 1]
    line = bus_lines(spec.multipliers, spec.rn_bw)[adder]
    used, line_of_vn, sharing = np.unique(line, return_inverse=True, return_counts=True)
    last_out = np.full(used.size, -1, dtype=np.int64)
    np.maximum.at(last_out, line_of_vn, vn_last)
    first_out = np.full(used.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_out, line_of_vn, vn_first)
    dn_bound, bus_bound = last_out + 1, first_out + sharing * n_str
    line_done = np.maximum(dn_bound, bus_bound)
    congested = bus_bound > dn_bound
    period = max(1, int(packages.max()) + int(fold))
    drained = _write_fifo_drained(line_done, congested, sharing * n_str,
                                  vn_last[~congested[line_of_vn]], period, n_str)
    distribution = int(np.max(np.maximum(weights, 1) + n_str * (packages + (np.arange(
        spec.dn_bw) == 0) * int(fold)))) if rows.size else 0
    return IterationCost(
        cycles=drained + 1,
        distribution_cycles=distribution,
        reduction_cycles=max(0, drained + 1 - 1 - distribution),
        vns=int(present.size),
        multipliers_used=int(rows.size + shift * present.size),
        weight_reads=int(rows.size),
        stream_reads=int(n_str * np.unique(cols).size),
        psum_reads=n_str * shift,
        output_writes=int(n_str * present.size),
        products=int(n_str * rows.size),
    )


def gemm_costs(bits: np.ndarray, n_str: int, spec: SigmaSpec) -> list[IterationCost]:
    """Every iteration's cost for stationary bitmap `bits` (already padded)."""
    return [iteration_cost(bits[it.v0:it.v1, it.k0:it.k1], it.fold, n_str, spec)
            for it in plan(bits, spec)]
