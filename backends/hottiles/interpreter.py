"""Executes HotTiles ISA: exact SpMM values per worker batch with scipy, cycles from each
tile's exact statistics replayed on the common Timeline.

At its first `hottiles.worker`, an SpMM reads A's partition from the DataStore and
computes the exact statistics of every tile (vectorised over the nonzeros), which the
cost equations of `model.tile_costs` turn into each tile's compute cycles and DRAM bytes
on its worker. Each worker op adds its tiles' product to C (one scipy CSR product over
the nonzeros of its tiles) and queues its tiles. `hottiles.drain` replays the queues of
all workers concurrently on the Timeline: a tile's bytes occupy the shared `dram` unit
for bytes / bandwidth cycles, and its worker's unit for the longer of its compute and
its transfer through the worker's port, from when DRAM starts serving it; DRAM serves
the workers in the order they ask. Equations: backends/hottiles/README.md.
"""

from __future__ import annotations

import heapq
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
from sparsec.backends.hottiles import isa, model
from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.dialects.formats import TiledAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors.datastore import DataStoreError, current_store, store_key
from sparsec.tensors.dtypes import ELEMENT_BYTES
from sparsec.tensors.numerics import (
    effectual_macs,
    finish,
    matmul_accumulate,
)

DRAM = "dram"


def unit_name(hot: bool, index: int) -> str:
    return f"{'hot' if hot else 'cold'}{index}"


@dataclass
class Spmm:
    """One SpMM's partition with the exact cost of every tile, in run order."""

    name: str
    problem: model.Problem
    part: model.Partition
    stats: model.TileStats
    costs: model.TileCosts
    nonzeros: model.Nonzeros
    order: np.ndarray
    bounds: np.ndarray
    dtype: str
    queues: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def hot(self) -> np.ndarray:
        return self.part.kind == model.HOT

    @property
    def workers(self) -> tuple[int, int]:
        return self.part.workers

    def cycles(self) -> np.ndarray:
        """Exact time of each tile on its worker, DRAM alone (eq. T4)."""
        return self.costs.cycles(self.hot)


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
    """A's partition and the exact statistics and costs of its tiles, in run order."""
    key = _key_of(op)
    tiled = isa.tiled_encoding(op.lhs.type)
    assert isinstance(tiled, TiledAttr)
    part = model.Partition.load(current_store(), key, tiled.workers, tiled.policy_name)
    rows, cols = op.lhs.type.get_shape()  # type: ignore[union-attr]
    dtype = dtype_of(op.lhs.type)
    problem = model.Problem(rows, cols, op.rhs.type.get_shape()[1],  # type: ignore[union-attr]
                            ELEMENT_BYTES[dtype], ELEMENT_BYTES[dtype_of(op.result.type)],
                            tiled.tile)
    nonzeros = model.nonzeros(a)
    stats, inverse = model.exact_stats(nonzeros, problem, spec.hot_rows)
    position = np.searchsorted(stats.ids, part.ids)
    same = (stats.count == part.count
            and bool(np.all(stats.ids[np.minimum(position, stats.count - 1)] == part.ids))
            and bool(np.all(stats.nnz[position] == part.nnz)))
    if not same:
        raise DataStoreError(f"the partition of {key} does not match its nonzeros (its values "
                             "changed after tile-hot-cold); run tile-hot-cold again")
    in_order = model.TileStats(*(getattr(stats, f)[position] for f in (
        "ids", "nnz", "rows", "cols", "chunks", "chunk_rows", "height", "width")))
    run_index = np.empty(part.count, np.int64)
    run_index[position] = np.arange(part.count)
    worker_of_nonzero = part.global_worker[run_index[inverse]]
    order = np.argsort(worker_of_nonzero, kind="stable")
    bounds = np.searchsorted(worker_of_nonzero[order], np.arange(sum(part.workers) + 1))
    return Spmm(operand_name_of(op), problem, part, in_order,
                model.tile_costs(in_order, problem, spec), nonzeros, order, bounds, dtype)


def _relative(estimate: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(mean of |e - a| / a over tiles, sum |e - a| / sum a): the model's error."""
    if actual.size == 0:
        return 0.0, 0.0
    error = np.abs(estimate - actual)
    return float(np.mean(error / np.maximum(actual, 1.0))), float(error.sum() / actual.sum())


class HottilesMachine(Machine):
    """One run of a HotTiles program: Timeline with one unit per worker and the DRAM."""

    spec: HottilesSpec

    def __init__(self, spec: HottilesSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units([DRAM])
        self.dram = MemoryLevel(DRAM, None, spec.dram_bytes_per_cycle, spec.dram_pj_per_byte,
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
        rows, row_of = model.unique_sorted(nz.row[picked])
        cols, col_of = model.unique_sorted(nz.col[picked])
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
        end = last.end if last is not None else start
        self.account(spmm, end - start)
        return last

    def replay(self, spmm: Spmm, start: int) -> Event | None:
        """Issue every tile in the order the workers free up (eqs. S1-S2): its bytes take
        the shared DRAM for bytes / BW cycles, in request order; the worker starts the
        tile when DRAM starts serving it and streams it for max(compute, bytes / port)
        cycles, and no less than DRAM needs to deliver the bytes."""
        hot = spmm.hot
        dram = spmm.costs.dram(hot).astype(np.int64)
        work = np.maximum(spmm.costs.compute(hot), spmm.costs.transfer(hot)).astype(np.int64)
        units = [unit_name(g < spmm.workers[0], g if g < spmm.workers[0] else g - spmm.workers[0])
                 for g in range(sum(spmm.workers))]
        heap = [(start, g) for g, queue in spmm.queues.items() if queue.size]
        heapq.heapify(heap)
        issued = dict.fromkeys(spmm.queues, 0)
        last: Event | None = None
        while heap:
            free, g = heapq.heappop(heap)
            tile = spmm.queues[g][issued[g]]
            move = self.timeline.issue(DRAM, int(dram[tile]), not_before=free)
            run = self.timeline.issue(units[g], max(int(work[tile]), move.end - move.start),
                                      not_before=move.start)
            issued[g] += 1
            last = run if last is None or run.end > last.end else last
            if issued[g] < spmm.queues[g].size:
                heapq.heappush(heap, (run.end, g))
        return last

    def account(self, spmm: Spmm, span: int) -> None:
        """Traffic, MACs, energy and the model's error of one SpMM."""
        hot, stats, problem = spmm.hot, spmm.stats, spmm.problem
        written = stats.rows * problem.n * problem.out_bytes
        traffic = spmm.costs.bytes(hot)
        self.dram.read(int(round(float((traffic - written).sum()))))
        self.dram.write(int(round(float(written.sum()))))
        performed = float(np.where(hot, spmm.costs.hot_macs, stats.nnz * problem.n).sum())
        self.macs["performed"] += int(performed)
        self.macs["dense"] += problem.rows * problem.cols * problem.n
        self.mac_pj += performed * MAC_PJ[spmm.dtype]
        self.spmms.append(self.summary(spmm, span))

    def summary(self, spmm: Spmm, span: int) -> dict[str, Any]:
        """Partition, per-worker figures and the model's error of one SpMM, for the report."""
        part, hot, problem = spmm.part, spmm.hot, spmm.problem
        cycles = spmm.cycles()
        mean, weighted = _relative(part.model_cycles, cycles)
        hot_mean, hot_weighted = _relative(part.model_cycles[hot], cycles[hot])
        cold_mean, cold_weighted = _relative(part.model_cycles[~hot], cycles[~hot])
        _, bytes_weighted = _relative(part.model_bytes, spmm.costs.bytes(hot))
        hot_nnz = int(part.nnz[hot].sum())
        return {
            "operand": spmm.name,
            "partition": {
                "policy": part.policy, "tile": list(problem.tile), "grid": list(problem.grid),
                "tiles": part.count, "hot_tiles": part.hot_tiles,
                "cold_tiles": part.count - part.hot_tiles, "hot_nnz": hot_nnz,
                "cold_nnz": int(part.nnz.sum()) - hot_nnz,
                "hot_nnz_share": hot_nnz / max(1, int(part.nnz.sum())),
                "workers": list(part.workers),
                "area": part.workers[0] * self.spec.hot_area + part.workers[1] * self.spec.cold_area,
                "area_budget": self.spec.area_budget,
            },
            "workers": self.worker_figures(spmm),
            "model": {
                "predicted_cycles": part.predicted, "cycles": span,
                "span_error": (part.predicted - span) / span if span else 0.0,
                "tile_error_mean": mean, "tile_error_weighted": weighted,
                "hot_tile_error_mean": hot_mean, "hot_tile_error_weighted": hot_weighted,
                "cold_tile_error_mean": cold_mean, "cold_tile_error_weighted": cold_weighted,
                "bytes_error_weighted": bytes_weighted,
            },
        }

    def worker_figures(self, spmm: Spmm) -> list[dict[str, Any]]:
        """Per worker: tiles, nonzeros, DRAM bytes, busy cycles and utilization."""
        traffic = spmm.costs.bytes(spmm.hot)
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
