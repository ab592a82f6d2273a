"""Executes HotTiles ISA: exact SpMM values per worker batch with scipy, cycles from the
real work of every tile (execution.py) replayed on the common Timeline.

At its first `hottiles.worker`, an SpMM reads A's partition from the DataStore, finds its
tiles' exact statistics and counts each tile's work on its worker (lines of A, Din and
Dout, L1 hits, SIMD MACs), independently of the partitioner's estimate. Each worker op
adds its tiles' product to C (one scipy CSR product over the nonzeros of its tiles) and
queues its tiles. `hottiles.drain` replays all queues on the Timeline: a tile's bytes
occupy the shared `dram` unit for bytes / bandwidth cycles, in request order, and its
worker for the longest of its compute, its bytes through the worker's port (outstanding
lines over latency) and the DRAM's service of them. A serial partition runs the hot
workers first and the cold ones after; a parallel one runs both at once and then (no
atomic engine) merges the two private outputs. Equations: backends/hottiles/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import SSAValue

from sparsec.backends.common.backend import Machine, dtype_of, enclosing_kernel
from sparsec.backends.common.energy import MAC_PJ
from sparsec.backends.common.isa import zero_accumulator
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline, UnitStats
from sparsec.backends.hottiles import execution, isa
from sparsec.backends.hottiles.spec import HEURISTICS, HottilesSpec
from sparsec.dialects.formats import TiledAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors.datastore import DataStoreError, current_store, store_key
from sparsec.tensors.dtypes import ELEMENT_BYTES
from sparsec.tensors.numerics import effectual_macs, finish, matmul_accumulate
from sparsec.tensors.tiles import HOT, SERIAL, Nonzeros, Partition, nonzeros, tiles_of, unique_sorted

DRAM = "dram"
MERGER = "merger"


def unit_name(hot: bool, index: int) -> str:
    return f"{'hot' if hot else 'cold'}{index}"


@dataclass
class Spmm:
    """One SpMM's partition with the real work of every tile, in run order."""

    name: str
    part: Partition
    work: execution.TileWork
    nonzeros: Nonzeros
    hot_of_nonzero: np.ndarray
    order: np.ndarray
    bounds: np.ndarray
    dtype: str
    k: int
    out_bytes: int
    tile: tuple[int, int]
    queues: dict[int, np.ndarray] = field(default_factory=dict)
    merge_bytes: float = 0.0

    @property
    def hot(self) -> np.ndarray:
        return self.part.kind == HOT

    @property
    def workers(self) -> tuple[int, int]:
        return self.part.workers


def _key_of(op: isa.WorkerOp) -> str:
    owner = op.lhs.owner
    if not isinstance(owner, ParamOp):
        raise DataStoreError(f"hottiles.worker: lhs {operand_name_of(op)} must be bound by "
                             "sparsec.param (its partition lives in the DataStore)")
    return store_key(enclosing_kernel(op), owner.sym_name)


def operand_name_of(op: isa.WorkerOp) -> str:
    owner = op.lhs.owner
    return owner.sym_name if isinstance(owner, ParamOp) else "lhs"


def load_spmm(op: isa.WorkerOp, a: Any, spec: HottilesSpec) -> Spmm:
    """A's partition and the real work of its tiles, in run order."""
    key = _key_of(op)
    tiled = isa.tiled_encoding(op.lhs.type)
    assert isinstance(tiled, TiledAttr)
    part = Partition.load(current_store(), key, tiled.workers, tiled.policy_name)
    dtype = dtype_of(op.lhs.type)
    k = op.rhs.type.get_shape()[1]  # type: ignore[union-attr]
    out_bytes = ELEMENT_BYTES[dtype_of(op.result.type)]
    nz = nonzeros(a)
    tiles = tiles_of(nz, tiled.tile)
    position = np.searchsorted(tiles.ids, part.ids)
    same = (tiles.count == part.count
            and bool(np.all(tiles.ids[np.minimum(position, tiles.count - 1)] == part.ids))
            and bool(np.all(tiles.nnz[position] == part.nnz)))
    if not same:
        raise DataStoreError(f"the partition of {key} does not match its nonzeros (its values "
                             "changed after tile-hot-cold); run tile-hot-cold again")
    run_index = np.empty(part.count, np.int64)
    run_index[position] = np.arange(part.count)
    tile_of = run_index[tiles.of_nonzero]
    in_order = tiles.take(position)
    work = execution.tile_work(spec, nz, in_order, part, k, ELEMENT_BYTES[dtype], out_bytes,
                               tile_of)
    worker_of_nonzero = part.global_worker[tile_of]
    order = np.argsort(worker_of_nonzero, kind="stable")
    bounds = np.searchsorted(worker_of_nonzero[order], np.arange(sum(part.workers) + 1))
    return Spmm(operand_name_of(op), part, work, nz, (part.kind == HOT)[tile_of], order,
                bounds, dtype, k, out_bytes, tiled.tile)


class HottilesMachine(Machine):
    """One run of a HotTiles program: Timeline with one unit per worker and the DRAM."""

    spec: HottilesSpec

    def __init__(self, spec: HottilesSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units([DRAM])
        self.dram = MemoryLevel(DRAM, None, spec.bandwidth, spec.dram_pj_per_byte,
                                spec.dram_pj_per_byte)
        self.ready: dict[SSAValue, Event] = {}
        self.current: Spmm | None = None
        self.spmms: list[dict[str, Any]] = []
        self.macs = {"effectual": 0, "dense": 0, "performed": 0}
        self.mac_pj = 0.0

    def functions(self) -> InterpreterFunctions:
        return HottilesFunctions(self)

    # -- hottiles.worker ------------------------------------------------------------------

    def worker(self, op: isa.WorkerOp, a: Any, b: Any) -> Spmm:
        """Queue the worker's tiles (loading the SpMM at its first worker op)."""
        if self.current is None:
            self.current = load_spmm(op, a, self.spec)
            self.macs["effectual"] += effectual_macs(a, b)
        spmm = self.current
        index = op.worker_index if op.is_hot else spmm.workers[0] + op.worker_index
        spmm.queues[index] = np.flatnonzero(spmm.part.global_worker == index)
        self.timeline.units.setdefault(unit_name(op.is_hot, op.worker_index), UnitStats())
        return spmm

    @staticmethod
    def product(spmm: Spmm, op: isa.WorkerOp, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows, A_w . B on those rows): the worker's nonzeros as CSR over the rows and
        columns they touch, times the B rows of those columns."""
        index = op.worker_index if op.is_hot else spmm.workers[0] + op.worker_index
        picked = spmm.order[spmm.bounds[index]:spmm.bounds[index + 1]]
        nz = spmm.nonzeros
        rows, row_of = unique_sorted(nz.row[picked])
        cols, col_of = unique_sorted(nz.col[picked])
        block = scipy.sparse.csr_matrix((nz.data[picked], (row_of, col_of)),
                                        shape=(rows.size, cols.size))
        return rows, matmul_accumulate(block, b[cols], spmm.dtype)

    # -- hottiles.drain -------------------------------------------------------------------

    def drain(self, op: isa.DrainOp, after: list[Event | None]) -> Event | None:
        """Replay every worker's queue on the Timeline; account bytes, MACs, the model."""
        spmm = self.current
        self.current = None
        if spmm is None:
            return None
        start = max([self.timeline.end, *(e.end for e in after if e is not None)])
        last = self.replay(spmm, start)
        merged = self.merge(spmm, last)
        last = merged or last
        end = last.end if last is not None else start
        self.account(spmm, end - start)
        return last

    def replay(self, spmm: Spmm, start: int) -> Event | None:
        """Run the queues (execution.fluid_replay: the workers share the DRAM's bandwidth
        max-min fairly, each capped at its port) and record every tile on its worker's
        unit and the bytes on the DRAM unit. Serial: cold workers start when the hot
        ones have ended."""
        spec, hot_count = self.spec, spmm.workers[0]
        work = spmm.work
        port = np.where(spmm.hot, spec.port("hot"), spec.port("cold"))
        units = [unit_name(g < hot_count, g if g < hot_count else g - hot_count)
                 for g in range(sum(spmm.workers))]
        serial = spmm.part.schedule == SERIAL
        phases = ([[g for g in spmm.queues if g < hot_count],
                   [g for g in spmm.queues if g >= hot_count]] if serial
                  else [list(spmm.queues)])
        last: Event | None = None
        for phase in phases:
            begin_at = max(start, last.end) if last is not None else start
            queues = {g: spmm.queues[g] for g in phase}
            begin, end = execution.fluid_replay(queues, work.bytes, work.compute, port,
                                                spec.bandwidth, float(begin_at))
            for g, queue in queues.items():
                for tile in queue:
                    first = int(np.ceil(begin[tile] - 1e-6))
                    finish = int(np.ceil(end[tile] - 1e-6))
                    run = self.timeline.issue(units[g], max(0, finish - first),
                                              not_before=first)
                    last = run if last is None or run.end > last.end else last
        dram = self.timeline.units[DRAM]
        dram.busy += int(np.ceil(float(work.bytes.sum()) / spec.bandwidth - 1e-6))
        dram.instructions += spmm.part.count
        return last

    def merge(self, spmm: Spmm, last: Event | None) -> Event | None:
        """Without an atomic engine, a parallel run whose both types worked merges their
        private outputs after the last tile: the rows move through DRAM and the merger
        adds them (execution.merge_work)."""
        hot = spmm.hot_of_nonzero
        if (self.spec.atomic or spmm.part.schedule == SERIAL or last is None
                or hot.all() or not hot.any()):
            spmm.merge_bytes = 0.0
            return None
        nbytes, cycles = execution.merge_work(self.spec, spmm.nonzeros, hot, spmm.k,
                                              spmm.out_bytes)
        spmm.merge_bytes = nbytes
        self.timeline.units.setdefault(MERGER, UnitStats())
        move = self.timeline.issue(DRAM, int(np.ceil(nbytes / self.spec.bandwidth)),
                                   not_before=last.end)
        return self.timeline.issue(MERGER, max(int(cycles), move.end - move.start),
                                   not_before=move.start)

    def account(self, spmm: Spmm, span: int) -> None:
        """Traffic, MACs, energy and the model's error of one SpMM."""
        work = spmm.work
        self.dram.read(int(round(float(work.read.sum() + 2 * spmm.merge_bytes / 3))))
        self.dram.write(int(round(float(work.written.sum() + spmm.merge_bytes / 3))))
        performed = float(spmm.part.nnz.sum()) * spmm.k
        self.macs["performed"] += int(performed)
        self.macs["dense"] += int(spmm.nonzeros.shape[0]) * int(spmm.nonzeros.shape[1]) * spmm.k
        self.mac_pj += performed * MAC_PJ[spmm.dtype]
        self.spmms.append(self.summary(spmm, span))

    def summary(self, spmm: Spmm, span: int) -> dict[str, Any]:
        """Partition, per-worker figures and the model's error of one SpMM, for the report."""
        part, hot = spmm.part, spmm.hot
        hot_nnz = int(part.nnz[hot].sum())
        rows, cols = spmm.nonzeros.shape
        bytes_error = (float(part.model_bytes.sum()) - float(spmm.work.bytes.sum())) / max(
            1.0, float(spmm.work.bytes.sum()))
        return {
            "operand": spmm.name,
            "partition": {
                "policy": part.policy, "tile": list(spmm.tile),
                "grid": [-(-rows // spmm.tile[0]), -(-cols // spmm.tile[1])],
                "tiles": part.count, "hot_tiles": part.hot_tiles,
                "cold_tiles": part.count - part.hot_tiles, "hot_nnz": hot_nnz,
                "cold_nnz": int(part.nnz.sum()) - hot_nnz,
                "hot_nnz_share": hot_nnz / max(1, int(part.nnz.sum())),
                "workers": list(part.workers),
                "heuristic": HEURISTICS[part.heuristic + 1] if part.heuristic >= 0 else None,
                "schedule": "serial" if part.schedule == SERIAL else "parallel",
            },
            "workers": self.worker_figures(spmm),
            "traffic": {"dram_bytes": float(spmm.work.bytes.sum()) + spmm.merge_bytes,
                        "merge_bytes": spmm.merge_bytes,
                        "din_rows": float(spmm.work.din_rows.sum()),
                        "l1_hits": int(spmm.work.l1_hits.sum()),
                        "lines_per_nnz": (float(spmm.work.bytes.sum()) + spmm.merge_bytes)
                        / self.spec.line_bytes / max(1, int(part.nnz.sum()))},
            "model": {
                "predicted_cycles": part.predicted, "cycles": span,
                "span_error": (part.predicted - span) / span if span else 0.0,
                "merge_cycles": part.merge, "bytes_error": bytes_error,
            },
        }

    def worker_figures(self, spmm: Spmm) -> list[dict[str, Any]]:
        """Per worker: tiles, nonzeros, DRAM bytes, busy cycles and utilization."""
        traffic = spmm.work.bytes
        figures = []
        for g, queue in sorted(spmm.queues.items()):
            is_hot = g < spmm.workers[0]
            unit = unit_name(is_hot, g if is_hot else g - spmm.workers[0])
            stats = self.timeline.units[unit]
            figures.append({"unit": unit, "kind": "hot" if is_hot else "cold",
                            "tiles": int(queue.size), "nnz": int(spmm.part.nnz[queue].sum()),
                            "dram_bytes": int(round(float(traffic[queue].sum()))),
                            "busy": stats.busy, "utilization": self.timeline.utilization(unit)})
        return figures

    def report(self, kernel: str) -> Report:
        spec = self.spec
        workers = [u for u in self.timeline.units if u != DRAM]
        energy = {DRAM: self.dram.energy_pj, "macs": self.mac_pj}
        details: dict[str, Any] = dict(self.spmms[0]) if len(self.spmms) == 1 else {
            "spmms": self.spmms}
        details.update({"performed_macs": self.macs["performed"],
                        "energy_breakdown_pj": energy, "policy": spec.policy})
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=self.timeline.cycles,
            stall_cycles=sum(self.timeline.units[u].waiting for u in workers),
            units=self.timeline.summary(),
            bytes={DRAM: self.dram.summary()},
            macs={"effectual": self.macs["effectual"], "dense": self.macs["dense"]},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details=details,
        )


@register_impls
class HottilesFunctions(InterpreterFunctions):
    """numpy / scipy semantics of the HotTiles ISA, with accounting by the machine."""

    def __init__(self, machine: HottilesMachine):
        self.machine = machine

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (zero_accumulator(op, self.machine.execute),)

    @impl(isa.WorkerOp)
    def run_worker(self, interpreter: Interpreter, op: isa.WorkerOp, args: tuple[Any, ...]):
        a, b, acc = args
        spmm = self.machine.worker(op, a, b)
        if not self.machine.execute:
            return (None,)
        rows, partial = self.machine.product(spmm, op, np.asarray(b))
        acc[rows] += partial
        return (acc,)

    @impl(isa.DrainOp)
    def run_drain(self, interpreter: Interpreter, op: isa.DrainOp, args: tuple[Any, ...]):
        rhs_ready = [self.machine.ready.get(v) for v in _inputs(op)]
        event = self.machine.drain(op, rhs_ready)
        if event is not None:
            self.machine.ready[op.result] = event
        (acc,) = args
        if not self.machine.execute:
            return (None,)
        return (finish(acc, dtype_of(op.result.type)),)


def _inputs(op: isa.DrainOp) -> list[SSAValue]:
    """The B operands of the worker ops feeding this drain (their producers' events)."""
    values: list[SSAValue] = []
    acc = op.acc
    while isinstance(acc.owner, isa.WorkerOp):
        values.append(acc.owner.rhs)
        acc = acc.owner.acc
    return values
