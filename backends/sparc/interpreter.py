"""Executes SpARC ISA on numpy values and accounts its cycles on the Timeline.

Values come from the stage functions of backends/sparc/clustering.py, the same ones the
reference semantics of row-clustered attention calls, so outputs equal the reference bit
for bit. Units: `dma_in` / `dma_out` (DRAM <-> global buffer), `matrix` (16 x 64 INT16
MACs), `l1` (L1-distance unit), `cluster` (cluster unit: compare trees and member
accumulation), `cache` (the centroid cache's port), `exp` (Taylor exponent unit) and
`divider`. The centroid cache is an LRU cache simulated on the real access trace of the
run (which cluster each row joined). Equations: backends/sparc/README.md.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import SSAValue

from sparsec.backends.common.backend import Machine, dtype_of
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.backends.sparc import isa
from sparsec.backends.sparc.spec import SparcSpec
from sparsec.tensors import row_clustering as clustering
from sparsec.tensors.dtypes import carrier_dtype

UNITS = ("dma_in", "dma_out", "matrix", "l1", "cluster", "cache", "exp", "divider")

ACCESS_KINDS = ("read", "update", "write")
"""A cache access reads a line, updates it (read-modify-write: accumulate a member), or
overwrites it whole (no fill needed on a miss)."""


@dataclass(frozen=True)
class Access:
    """What one cache access did: hit, and on a miss whether it filled the line from the
    global buffer and wrote a dirty victim back."""

    hit: bool
    fill: bool = False
    writeback: bool = False


@dataclass
class CentroidCache:
    """An LRU cache of cluster lines (`lines` of them), write-back, write-allocate.

    A line is a cluster's state: the running sum of its member queries, then its
    attention output row. A miss allocates the line, evicting the least recently used
    one (written back to the global buffer if dirty); the line is filled from the buffer
    only when its contents live there (it was evicted dirty before) and the access is
    not a whole-line write.
    """

    lines: int
    entries: OrderedDict[Hashable, bool] = field(default_factory=OrderedDict)
    spilled: set[Hashable] = field(default_factory=set)
    hits: int = 0
    misses: int = 0
    fills: int = 0
    writebacks: int = 0
    evictions: int = 0

    def access(self, tag: Hashable, kind: str) -> Access:
        """Touch `tag` with a read, update or write; LRU order and counters follow."""
        assert kind in ACCESS_KINDS, kind
        dirty = kind != "read"
        if tag in self.entries:
            self.entries.move_to_end(tag)
            self.entries[tag] = self.entries[tag] or dirty
            self.hits += 1
            return Access(hit=True)
        self.misses += 1
        fill = tag in self.spilled and kind != "write"
        self.spilled.discard(tag)
        self.fills += fill
        writeback = False
        if len(self.entries) >= self.lines:
            victim, victim_dirty = self.entries.popitem(last=False)
            self.evictions += 1
            writeback = victim_dirty
            if victim_dirty:
                self.spilled.add(victim)
                self.writebacks += 1
        self.entries[tag] = dirty
        return Access(hit=False, fill=fill, writeback=writeback)

    def invalidate(self, tags: Iterable[Hashable]) -> None:
        """Drop finished lines without writing them back (their block is done)."""
        for tag in tags:
            self.entries.pop(tag, None)
            self.spilled.discard(tag)

    def summary(self) -> dict[str, float]:
        accesses = self.hits + self.misses
        return {"lines": self.lines, "hits": self.hits, "misses": self.misses,
                "fills": self.fills, "writebacks": self.writebacks,
                "evictions": self.evictions,
                "hit_rate": self.hits / accesses if accesses else 0.0}


@dataclass(frozen=True)
class BlockInfo:
    """What the machine carries from stage to stage of one block: its head's buffer slot,
    its first row, its rows n and the query width d."""

    slot: int
    first_row: int
    rows: int
    d: int

    def tags(self, clusters: Iterable[int]) -> list[Hashable]:
        """Centroid-cache tags of the block's clusters."""
        return [(self.slot, self.first_row, int(j)) for j in clusters]


def synthetic_assignment(rows: int, clusters: int) -> np.ndarray:
    """Without execution the allocation is unknown: equal contiguous clusters stand in."""
    return np.arange(rows, dtype=np.int64) * clusters // rows


class SparcMachine(Machine):
    """One run of a SpARC program: Timeline, memories, the centroid cache and counters."""

    spec: SparcSpec

    def __init__(self, spec: SparcSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.dram = MemoryLevel("dram", None, spec.dram_bytes_per_cycle, spec.dram_pj_per_byte,
                                spec.dram_pj_per_byte)
        self.buffer = MemoryLevel("buffer", spec.buffer_bytes, None, spec.buffer_pj_per_byte,
                                  spec.buffer_pj_per_byte)
        self.cache_level = MemoryLevel("centroid_cache", spec.cache_bytes, None,
                                       spec.cache_pj_per_byte, spec.cache_pj_per_byte)
        self.cache = CentroidCache(spec.cache_lines)
        self.ready: dict[SSAValue, Event] = {}
        self.loaded: dict[tuple[SSAValue, int], Event] = {}
        self.slot_of: dict[tuple[SSAValue, int], int] = {}
        self.slot_done: dict[int, Event] = {}
        self.blocks: dict[SSAValue, BlockInfo] = {}
        self.counts = {"effectual_macs": 0, "dense_macs": 0, "l1_ops": 0, "exps": 0,
                       "divisions": 0, "multiplies": 0, "clusters": 0, "rows": 0,
                       "blocks": 0, "dense_cycles": 0}

    def functions(self) -> InterpreterFunctions:
        return SparcFunctions(self)

    # -- bookkeeping ----------------------------------------------------------------------

    def _finish(self, info: BlockInfo, event: Event, result: SSAValue) -> None:
        """The result is ready at `event`; it is progress of the block's head (slot)."""
        self.ready[result] = event
        self.blocks[result] = info
        done = self.slot_done.get(info.slot)
        if done is None or event.end > done.end:
            self.slot_done[info.slot] = event

    def _trace(self, tags: list[Hashable], kind: str) -> int:
        """Run accesses on the centroid cache: port cycles (one access per cycle) plus
        ceil(line / buffer bandwidth) cycles per refill and per dirty write-back."""
        line = self.spec.cache_line_bytes
        transfer = -(-line // self.spec.buffer_bytes_per_cycle)
        penalty = 0
        for tag in tags:
            access = self.cache.access(tag, kind)
            if kind == "read":
                self.cache_level.read(line)
            else:
                self.cache_level.write(line)
            self.buffer.read(line * int(access.fill))
            self.buffer.write(line * int(access.writeback))
            penalty += (int(access.fill) + int(access.writeback)) * transfer
        return len(tags) + penalty

    # -- one method per instruction -------------------------------------------------------

    def load(self, op: isa.LoadOp) -> None:
        """DMA one head of Q, K or V; slot s waits for head s - 2 (double buffering)."""
        _, rows, width = isa.heads_rows_width(op.source.type, "source", op.name)
        slot = op.slot.value.data
        nbytes = rows * width * self.spec.word_bytes
        cycles = self.dram.read(nbytes)
        self.buffer.write(nbytes)
        event = self.timeline.issue("dma_in", cycles, after=[self.slot_done.get(slot - 2)])
        key = (op.source, op.head_index)
        self.loaded[key] = event
        self.slot_of[key] = slot

    def lowrank(self, op: isa.LowrankOp) -> None:
        """L = scale * Q_c K_c^T on the matrix unit: matrix_cycles(n, S, r)."""
        head = op.head_index
        r0, r1 = op.row_range()
        n, r = r1 - r0, len(op.column_list())
        _, keys, d = isa.heads_rows_width(op.key.type, "key", op.name)
        info = BlockInfo(self.slot_of[(op.query, head)], r0, n, d)
        self.buffer.read((n + keys) * r * self.spec.word_bytes)
        self.counts["effectual_macs"] += n * keys * r
        after = [self.loaded.get((op.query, head)), self.loaded.get((op.key, head))]
        event = self.timeline.issue("matrix", self.spec.matrix_cycles(n, keys, r), after=after)
        self._finish(info, event, op.result)

    def cluster(self, op: isa.ClusterOp) -> None:
        """k passes, each: L1 distances of the n rows to the new centroid (l1: ceil(nS /
        l1_lanes)), then the nearest-centroid update and the next farthest row (cluster:
        ceil(n / cluster_lanes))."""
        info = self.blocks[op.scores]
        n, keys = op.scores.type.get_shape()  # type: ignore[union-attr]
        k, spec = op.count, self.spec
        self.buffer.read(k * n * keys * spec.word_bytes)
        self.counts["l1_ops"] += k * n * keys
        l1 = self.timeline.issue("l1", k * -(-n * keys // spec.l1_lanes),
                                 after=[self.ready.get(op.scores)])
        compare = self.timeline.issue("cluster", k * -(-n // spec.cluster_lanes), after=[l1])
        self._finish(info, compare, op.result)

    def centroids(self, op: isa.CentroidsOp, assignment: np.ndarray) -> None:
        """Accumulate each row's query into its cluster's line in token order (cluster
        adders: ceil(n d / cluster_lanes); cache port: one access per row, then one read
        per cluster, plus miss transfers); k reciprocals of the member counts on the
        divider (ceil(k / divider_lanes), + divider_latency); the k x d scaling on the
        cluster unit (ceil(k d / cluster_lanes))."""
        head, (r0, r1), k = op.head_index, op.row_range(), op.count
        _, _, d = isa.heads_rows_width(op.query.type, "query", op.name)
        info = BlockInfo(self.slot_of[(op.query, head)], r0, r1 - r0, d)
        spec = self.spec
        port = self._trace(info.tags(assignment), "update")
        port += self._trace(info.tags(range(k)), "read")
        adds = -(-info.rows * d // spec.cluster_lanes)
        self.buffer.read(info.rows * d * spec.word_bytes)
        after = [self.ready.get(op.assignment), self.loaded.get((op.query, head))]
        gather = self.timeline.issue(("cluster", "cache"), max(adds, port), after=after)
        divide = self._reciprocals(k, gather)
        scale = self.timeline.issue("cluster", -(-k * d // spec.cluster_lanes), after=[divide])
        self.counts["multiplies"] += k * d
        self._finish(info, scale, op.result)

    def _reciprocals(self, count: int, after: Event) -> Event:
        """`count` reciprocals on the pipelined divider."""
        busy = -(-count // self.spec.divider_lanes)
        self.counts["divisions"] += count
        return self.timeline.issue("divider", busy, after=[after],
                                   latency=busy + self.spec.divider_latency)

    def singletons(self, op: isa.SingletonsOp) -> None:
        """An exact block's identity assignment: no instruction time."""
        self.ready[op.result] = Event(0, 0, ())

    def scores(self, op: isa.ScoresOp) -> None:
        """scale * Q_c K^T on the matrix unit: matrix_cycles(k, S, d)."""
        info = self.blocks[op.centroids]
        k, d = op.centroids.type.get_shape()  # type: ignore[union-attr]
        _, keys, _ = isa.heads_rows_width(op.key.type, "key", op.name)
        self.buffer.read((k + keys) * d * self.spec.word_bytes)
        self.counts["effectual_macs"] += k * keys * d
        after = [self.ready.get(op.centroids), self.loaded.get((op.key, op.head_index))]
        event = self.timeline.issue("matrix", self.spec.matrix_cycles(k, keys, d), after=after)
        self._finish(info, event, op.result)

    def softmax(self, op: isa.SoftmaxOp) -> None:
        """Exponentials and row sums on the Taylor unit (ceil(kS / exp_lanes), +
        taylor_terms latency), k reciprocals on the divider, then the kS normalising
        multiplies on the exponent unit's multipliers (ceil(kS / exp_lanes))."""
        info = self.blocks[op.scores]
        k, keys = op.scores.type.get_shape()  # type: ignore[union-attr]
        spec = self.spec
        busy = -(-k * keys // spec.exp_lanes)
        exp = self.timeline.issue("exp", busy, after=[self.ready.get(op.scores)],
                                  latency=busy + spec.taylor_terms)
        divide = self._reciprocals(k, exp)
        normalise = self.timeline.issue("exp", busy, after=[divide])
        self.counts["exps"] += k * keys
        self.counts["multiplies"] += k * keys
        self._finish(info, normalise, op.result)

    def av(self, op: isa.AvOp) -> None:
        """A_c V on the matrix unit (matrix_cycles(k, e, S)); the k output rows are written
        whole into the clusters' lines (cache port: k accesses plus miss transfers)."""
        info = self.blocks[op.probs]
        k, keys = op.probs.type.get_shape()  # type: ignore[union-attr]
        _, _, e = isa.heads_rows_width(op.value.type, "value", op.name)
        spec = self.spec
        self.buffer.read((k * keys + keys * e) * spec.word_bytes)
        self.counts["effectual_macs"] += k * keys * e
        after = [self.ready.get(op.probs), self.loaded.get((op.value, op.head_index))]
        matrix = self.timeline.issue("matrix", spec.matrix_cycles(k, e, keys), after=after)
        written = self.timeline.issue("cache", self._trace(info.tags(range(k)), "write"),
                                      after=[matrix])
        n, d = info.rows, info.d
        self.counts["dense_macs"] += n * keys * (d + e)
        self.counts["dense_cycles"] += max(
            spec.matrix_cycles(n, keys, d) + spec.matrix_cycles(n, e, keys),
            2 * -(-n * keys // spec.exp_lanes))
        self._finish(info, written, op.result)

    def expand(self, op: isa.ExpandOp, assignment: np.ndarray) -> None:
        """Read the cluster outputs back row by row in token order (cache port: n accesses
        plus miss transfers), send the block's n rows to DRAM; drop the block's lines."""
        info = self.blocks[op.outputs]
        k = op.outputs.type.get_shape()[0]  # type: ignore[union-attr]
        _, _, e = isa.heads_rows_width(op.acc.type, "acc", op.name)
        gathered = self.timeline.issue("cache", self._trace(info.tags(assignment), "read"),
                                       after=[self.ready.get(op.outputs),
                                              self.ready.get(op.acc)])
        nbytes = info.rows * e * self.spec.word_bytes
        store = self.timeline.issue("dma_out", self.dram.write(nbytes), after=[gathered])
        self.cache.invalidate(info.tags(range(k)))
        self.counts["clusters"] += k
        self.counts["rows"] += info.rows
        self.counts["blocks"] += 1
        self._finish(info, store, op.result)

    # -- report ---------------------------------------------------------------------------

    def report(self, kernel: str) -> Report:
        spec = self.spec
        span = self.timeline.cycles
        counts = self.counts
        memories = [self.dram, self.buffer, self.cache_level]
        energy = {m.name: m.energy_pj for m in memories}
        energy |= {"macs": (counts["effectual_macs"] + counts["multiplies"]) * spec.mac_pj,
                   "l1": counts["l1_ops"] * spec.l1_pj, "exp": counts["exps"] * spec.exp_pj,
                   "divider": counts["divisions"] * spec.divide_pj}
        rows = counts["rows"]
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=span,
            stall_cycles=self.timeline.units["matrix"].waiting,
            units=self.timeline.summary(),
            bytes={m.name: m.summary() for m in memories},
            macs={"effectual": counts["effectual_macs"], "dense": counts["dense_macs"]},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "map_sparsity": 1.0 - counts["clusters"] / rows if rows else 0.0,
                "clusters": counts["clusters"],
                "rows": rows,
                "blocks": counts["blocks"],
                "dense_cycles": counts["dense_cycles"],
                "speedup_vs_dense": counts["dense_cycles"] / span if span else 0.0,
                "l1_ops": counts["l1_ops"],
                "exps": counts["exps"],
                "divisions": counts["divisions"],
                "multiplies": counts["multiplies"],
                "centroid_cache": {**self.cache.summary(),
                                   "line_bytes": spec.cache_line_bytes},
                "cache_trace": "real" if self.execute else "synthetic (no execution)",
                "energy_breakdown_pj": energy,
            },
        )


@register_impls
class SparcFunctions(InterpreterFunctions):
    """numpy semantics of the SpARC ISA (clustering.py's stages), with accounting."""

    def __init__(self, machine: SparcMachine):
        self.machine = machine

    def _dtype(self, op: Any) -> str:
        return dtype_of(op.result.type)

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        if not self.machine.execute:
            return (None,)
        shape = tuple(op.result.type.get_shape())  # type: ignore[union-attr]
        return (np.zeros(shape, dtype=carrier_dtype(dtype_of(op.result.type))),)

    @impl(isa.LoadOp)
    def run_load(self, interpreter: Interpreter, op: isa.LoadOp, args: tuple[Any, ...]):
        self.machine.load(op)
        return ()

    @impl(isa.LowrankOp)
    def run_lowrank(self, interpreter: Interpreter, op: isa.LowrankOp, args: tuple[Any, ...]):
        machine = self.machine
        machine.lowrank(op)
        q, k = args
        if not machine.execute:
            return (None,)
        r0, r1 = op.row_range()
        q3, k3 = clustering.heads_view(q), clustering.heads_view(k)
        return (clustering.lowrank_scores(q3[op.head_index, r0:r1], k3[op.head_index],
                                          op.column_list(), op.scale.value.data,
                                          self._dtype(op)),)

    @impl(isa.ClusterOp)
    def run_cluster(self, interpreter: Interpreter, op: isa.ClusterOp, args: tuple[Any, ...]):
        self.machine.cluster(op)
        (scores,) = args
        if not self.machine.execute:
            return (None,)
        return (clustering.allocate(scores, op.count).assignment,)

    @impl(isa.SingletonsOp)
    def run_singletons(self, interpreter: Interpreter, op: isa.SingletonsOp,
                       args: tuple[Any, ...]):
        self.machine.singletons(op)
        rows = op.result.type.get_shape()[0]  # type: ignore[union-attr]
        return (clustering.singletons(rows).assignment,)

    @impl(isa.CentroidsOp)
    def run_centroids(self, interpreter: Interpreter, op: isa.CentroidsOp,
                      args: tuple[Any, ...]):
        q, assignment = args
        r0, r1 = op.row_range()
        trace = assignment if assignment is not None else synthetic_assignment(r1 - r0, op.count)
        self.machine.centroids(op, trace)
        if not self.machine.execute:
            return (None,)
        q3 = clustering.heads_view(q)
        return (clustering.representatives(q3[op.head_index, r0:r1], assignment, op.count,
                                           self._dtype(op)),)

    @impl(isa.ScoresOp)
    def run_scores(self, interpreter: Interpreter, op: isa.ScoresOp, args: tuple[Any, ...]):
        self.machine.scores(op)
        centroids, k = args
        if not self.machine.execute:
            return (None,)
        return (clustering.cluster_scores(centroids, clustering.heads_view(k)[op.head_index],
                                          op.scale.value.data, self._dtype(op)),)

    @impl(isa.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: isa.SoftmaxOp, args: tuple[Any, ...]):
        self.machine.softmax(op)
        (scores,) = args
        if not self.machine.execute:
            return (None,)
        return (clustering.cluster_probs(scores, self._dtype(op)),)

    @impl(isa.AvOp)
    def run_av(self, interpreter: Interpreter, op: isa.AvOp, args: tuple[Any, ...]):
        machine = self.machine
        machine.av(op)
        probs, v = args
        if not machine.execute:
            return (None,)
        return (clustering.cluster_outputs(probs, clustering.heads_view(v)[op.head_index],
                                           self._dtype(op)),)

    @impl(isa.ExpandOp)
    def run_expand(self, interpreter: Interpreter, op: isa.ExpandOp, args: tuple[Any, ...]):
        outputs, assignment, acc = args
        r0, r1 = op.row_range()
        k = op.outputs.type.get_shape()[0]  # type: ignore[union-attr]
        trace = assignment if assignment is not None else synthetic_assignment(r1 - r0, k)
        self.machine.expand(op, trace)
        if not self.machine.execute:
            return (None,)
        clustering.heads_view(acc)[op.head_index, r0:r1] = clustering.expand(outputs, assignment)
        return (acc,)
