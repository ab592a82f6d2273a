"""Executes systolic ISA on numpy values and accounts its cycles on the Timeline.

Units: `ifmap_dma` and `filter_dma` (DRAM -> operand SRAM, one read port each),
`array` (the PE grid, one fold at a time), `ofmap_dma` (output SRAM -> DRAM). The
equations are in backends/systolic/README.md; each is named where it is used.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import SSAValue

from sparsec.backends.common.backend import Machine, dtype_of
from sparsec.backends.common.block_reference import (
    evaluate,
    kv_compress_values,
    plain_properties,
    run_activation_prune,
)
from sparsec.backends.common.isa import zero_accumulator
from sparsec.backends.common.kv import empty_tally
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.backends.systolic import isa, vector
from sparsec.backends.systolic.buffers import (
    FoldRecord,
    OfmapWriteBuffer,
    calc_prefetch,
    cycle_of_word,
    fold_cycles,
)
from sparsec.backends.systolic.lowering import spatial_temporal
from sparsec.backends.systolic.spec import SystolicSpec
from sparsec.tensors import attention
from sparsec.tensors.datastore import is_sparse
from sparsec.tensors.numerics import (
    effectual_macs,
    finish,
    matmul_accumulate,
)

UNITS = ("ifmap_dma", "filter_dma", "array", "vector", "ofmap_dma", "ofmap_flush")


@dataclass
class GemmState:
    """What the machine knows about the GEMM whose folds are running."""

    first_fold_after: int = 0
    folds: list[Event] = field(default_factory=list)
    records: list[FoldRecord] = field(default_factory=list)
    resident: dict[str, tuple[int, int, int, int] | None] = field(default_factory=dict)
    fold_length: int = 0
    temporal: int = 0
    epilogue: Event | None = None


class SystolicMachine(Machine):
    """One run of a systolic program: Timeline, SRAM/DRAM counters and MAC counts."""

    spec: SystolicSpec
    accounts_unmade_dense = True
    """The array's cycles and traffic follow from shapes; a dense operand's every
    product is useful (`count_effectual`)."""

    def __init__(self, spec: SystolicSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        word = spec.word_bytes
        self.dram = MemoryLevel("dram", None, None, spec.dram_pj_per_byte, spec.dram_pj_per_byte)
        self.srams = {
            name: MemoryLevel(f"{name}_sram", spec.sram_words(name) * word, None,
                              spec.sram_pj_per_byte, spec.sram_pj_per_byte)
            for name in ("ifmap", "filter", "ofmap")
        }
        self.ready: dict[SSAValue, Event] = {}
        self.gemm = GemmState()
        self.effectual_macs = 0
        self.dense_macs = 0
        self.compute_cycles = 0
        self.fill_cycles = 0
        self.folds = 0
        self.mac_pj = spec.mac_pj
        self.tails: list[dict[str, int]] = []
        self.vector_kinds: dict[str, dict[str, int]] = {}
        self.gemms: list[dict[str, Any]] = []

        self.onchip: set[SSAValue] = set()
        self.runtime_pruning: dict[str, int] = {"activations": 0, "pruned": 0, "decide_ops": 0,
                                                "skipped_products": 0, "dense_products": 0}
        self.kv_cache: dict[str, int] = empty_tally()
        self.vector_pj = 0.0
        self.pending = PendingFolds()

    def functions(self) -> InterpreterFunctions:
        return SystolicFunctions(self)

    def listeners(self) -> tuple[Interpreter.Listener, ...]:
        return (FlushFoldsFirst(self.pending),)

    # -- accounting, one method per instruction ------------------------------------------

    def prefetch(self, op: isa.PrefetchOp) -> None:
        """Fill an operand SRAM before the first fold (SCALE-Sim's read-buffer prefetch).

        Its time is SCALE-Sim's; its bytes are counted with the first fold's tiles. In
        user (bandwidth-limited) mode the per-fold tile loads are the fill, so the
        prefetch only marks the operand's SRAM as empty.
        """
        operand = op.operand.data
        self.gemm.resident[operand] = None
        if self.spec.mode == "user":
            # Tiles load per fold; the first fold still waits for the operand's producer.
            producer = self.ready.get(op.source)
            if producer is not None:
                self.gemm.first_fold_after = max(self.gemm.first_fold_after, producer.end)
            return
        cycles, _, covers_all = calc_prefetch(op.words.value.data,
                                              self.spec.sram_words(operand))
        event = self.timeline.issue(f"{operand}_dma", cycles, after=[self.ready.get(op.source)])
        first_use = 0 if covers_all else op.first_use.value.data
        self.gemm.first_fold_after = max(self.gemm.first_fold_after, event.end - first_use)

    def fold(self, op: isa.FoldOp) -> None:
        """One fold on the array: L = T + R + C - 2 (os) or T + 2R + C - 2 (ws, is)."""
        (m0, m1), (n0, n1), (k0, k1) = op.tile()
        spec = self.spec
        rows_used, cols_used, temporal = spatial_temporal(m1 - m0, n1 - n0, k1 - k0,
                                                          spec.dataflow)
        length = fold_cycles(spec, temporal)
        if spec.mode == "user":
            self.require_stationary_fits(op)
        loads = self._load_tiles(op)
        first = not self.gemm.folds
        not_before = self.gemm.first_fold_after if first else 0
        free_at = self.timeline.units["array"].free_at
        event = self.timeline.issue("array", length, after=loads, not_before=not_before)
        if first:
            self.fill_cycles += event.start - free_at
        self.gemm.folds.append(event)
        self.gemm.fold_length = length
        self.gemm.temporal = temporal
        self.gemm.records.append(
            FoldRecord(event.start, (m1 - m0) * (n1 - n0), rows_used, cols_used))
        self.compute_cycles += length
        self.folds += 1
        self.dense_macs += (m1 - m0) * (n1 - n0) * (k1 - k0)
        self.srams["ifmap"].read((m1 - m0) * (k1 - k0) * spec.word_bytes)
        self.srams["filter"].read((k1 - k0) * (n1 - n0) * spec.word_bytes)

    def vector_work(self, kind: str, shape: tuple[int, ...], props: dict[str, Any]) -> int:
        """Cycles of one vector-unit instruction (backends/systolic/vector.py), with its
        operations and energy counted under `kind`."""
        spec = self.spec
        done = vector.work(kind, shape, props)
        cycles = done.cycles(spec.lanes, spec.vector_alu_cycles, spec.vector_sfu_cycles)
        tally = self.vector_kinds.setdefault(kind, {"instructions": 0, "cycles": 0,
                                                    "alu_ops": 0, "sfu_ops": 0})
        tally["instructions"] += 1
        tally["cycles"] += cycles
        tally["alu_ops"] += done.alu_ops
        tally["sfu_ops"] += done.sfu_ops
        self.vector_pj += done.energy_pj(spec.vector_alu_pj, spec.vector_sfu_pj)
        return cycles

    def epilogue(self, op: isa.EpilogueOp) -> None:
        """Scale and mask the accumulator on the vector unit (one multiply and a select per
        element: ceil(elements / lanes) ALU steps)."""
        cycles = self.vector_work("epilogue", _shape(op.acc.type), {})
        self.gemm.epilogue = self.timeline.issue("vector", cycles, after=[self.gemm.folds[-1]])

    def softmax(self, op: isa.SoftmaxOp) -> None:
        """Masked row softmax on the vector unit (max, subtract, exp, sum, reciprocal,
        multiply), once its input has drained; its result stays in the output SRAM for
        the next GEMM to read."""
        elements = _elements(op.input.type)
        self.srams["ofmap"].read(elements * self.spec.word_bytes)
        self.srams["ofmap"].write(elements * self.spec.word_bytes)
        cycles = self.vector_work("softmax", _shape(op.input.type), {})
        self.ready[op.result] = self.timeline.issue("vector", cycles,
                                                    after=[self.ready.get(op.input)])

    def vector(self, op: isa.VectorOp) -> None:
        """An elementwise or normalization instruction. Inputs the machine produced are
        read from the SRAMs; kernel inputs and params (weights, the residual stream) come
        from DRAM. The result is written to the SRAM and to DRAM, where the next GEMM's
        prefetch reads it."""
        word = self.spec.word_bytes
        for value in op.inputs:
            nbytes = _elements(value.type) * word
            if value not in self.ready:
                self.dram.read(nbytes)
                self.srams["ofmap"].write(nbytes)
            self.srams["ofmap"].read(nbytes)
        out_bytes = _elements(op.result.type) * word
        self.srams["ofmap"].write(out_bytes)
        self.dram.write(out_bytes)
        props = {k: v for k, v in plain_properties(op).items() if k != "kind"}
        cycles = self.vector_work(op.kind.data, _shape(op.result.type), props)
        self.ready[op.result] = self.timeline.issue(
            "vector", cycles, after=[self.ready.get(v) for v in op.inputs])

    def kv_load(self, op: isa.KvLoadOp) -> None:
        """A KV-cache tensor read as its policy stores it: ceil(stored bits / 8) bytes from
        DRAM into the filter SRAM (user mode: at `bandwidth` words per cycle), then
        2 ALU operations (q * scale + min) per integer element on the vector unit. The
        dequantized tensor stays on chip: the folds that read it fetch nothing."""
        from sparsec.backends.common.kv import kv_read

        read = kv_read(op)
        stored, dequant = read.stored_bytes, read.dequantized_elements
        self.dram.read(stored)
        self.srams["filter"].write(stored)
        read.add_to(self.kv_cache)
        after = [self.ready.get(op.input)]
        if self.spec.mode == "user":
            words = -(-stored // self.spec.word_bytes)
            after = [self.timeline.issue("filter_dma", -(-words // self.spec.bandwidth),
                                         after=after)]
        done = vector.VectorWork(2 * dequant, 0)
        cycles = self.count_vector("kv_dequant", done)
        self.ready[op.result] = self.timeline.issue("vector", cycles, after=after)
        self.onchip.add(op.result)

    def prune(self, op: isa.PruneOp, result: Any | None) -> None:
        """Activation pruning on the vector unit: its deciding operations (counted by the
        semantics; from the shape when values are not executed), after the input is
        ready; skipped products are tallied in details.runtime_pruning."""
        m, k = _shape(op.input.type)
        decide = m * k * (1 + (op.estimate.data == "abs_w") + (op.relative is not None))
        if result is not None:
            decide = result.decide_ops
            tally = self.runtime_pruning
            tally["activations"] += m * k
            tally["pruned"] += int(m * k - np.count_nonzero(result.kept))
            tally["skipped_products"] += result.skipped_products
            tally["dense_products"] += result.dense_products
        self.runtime_pruning["decide_ops"] += decide
        cycles = self.count_vector("prune", vector.VectorWork(decide, 0))
        self.ready[op.result] = self.timeline.issue(
            "vector", cycles, after=[self.ready.get(op.input)])

    def count_vector(self, kind: str, done: vector.VectorWork) -> int:
        """Cycles and energy of vector work counted under `kind`."""
        spec = self.spec
        cycles = done.cycles(spec.lanes, spec.vector_alu_cycles, spec.vector_sfu_cycles)
        tally = self.vector_kinds.setdefault(kind, {"instructions": 0, "cycles": 0,
                                                    "alu_ops": 0, "sfu_ops": 0})
        tally["instructions"] += 1
        tally["cycles"] += cycles
        tally["alu_ops"] += done.alu_ops
        tally["sfu_ops"] += done.sfu_ops
        self.vector_pj += done.energy_pj(spec.vector_alu_pj, spec.vector_sfu_pj)
        return cycles

    def move(self, op: isa.MoveOp) -> None:
        """Head split/merge and KV-cache append: no cycles (addressing); the appended rows
        are written to the cache in DRAM. Ready when the inputs are."""
        if op.kind.data == "concat":
            self.dram.write(_elements(op.inputs[1].type) * self.spec.word_bytes)
        inputs = [self.ready.get(v) for v in op.inputs]
        ends = [e for e in inputs if e is not None]
        if ends:
            self.ready[op.result] = max(ends, key=lambda e: e.end)

    def count_effectual(self, a: np.ndarray | None, b: np.ndarray | None,
                        op: isa.FoldOp) -> None:
        """Useful MACs of a GEMM (nonzero times nonzero); the array performs them all.
        An operand whose values were not computed (--no-execute: an intermediate, or
        dense generated data left unmade) has no zero: with the other operand's values,
        each of its nonzeros meets a full row or column; with neither, every product
        is useful."""
        heads = op.acc.type.get_shape()[0] if op.head is not None else 1  # type: ignore[union-attr]
        lhs = op.lhs.type.get_shape()[-2:]  # type: ignore[union-attr]
        m, k = (lhs[1], lhs[0]) if op.transpose_a else (lhs[0], lhs[1])
        n = op.acc.type.get_shape()[-1]  # type: ignore[union-attr]
        if a is None and b is None:
            self.effectual_macs += heads * m * k * n
        elif b is None:
            self.effectual_macs += _nnz(a) * n
        elif a is None:
            shared = heads // b.shape[0] if b.ndim == 3 else heads  # grouped-query heads
            self.effectual_macs += m * _nnz(b) * shared
        else:
            self.effectual_macs += effectual_macs(a, _grouped(a, b))

    def require_stationary_fits(self, op: isa.FoldOp) -> None:
        """Bandwidth-limited mode: a fold's stationary tile must fit its SRAM whole."""
        (m0, m1), (n0, n1), (k0, k1) = op.tile()
        stationary = {"os": None, "ws": ("filter", (k1 - k0) * (n1 - n0)),
                      "is": ("ifmap", (m1 - m0) * (k1 - k0))}[self.spec.dataflow]
        if stationary is None:
            return
        operand, words = stationary
        self.srams[operand].require_fits(words * self.spec.word_bytes,
                                         f"the stationary {operand} tile of fold "
                                         f"{op.index.value.data}")

    def writeback(self, op: isa.WritebackOp) -> Event:
        """Drain the output SRAM: C-word lines, one per cycle (SCALE-Sim's write buffer)."""
        words = op.words.value.data
        line = self.spec.bandwidth if self.spec.mode == "user" else self.spec.cols
        buffer = OfmapWriteBuffer(line_words=line,
                                  capacity_words=self.spec.sram_words("ofmap"))
        lines_left, drains = buffer.replay(words)
        last_row = self.gemm.folds[-1].end - 1
        if self.gemm.epilogue is not None:
            last_row = max(last_row, self.gemm.epilogue.end)
        prefix = [0]
        for record in self.gemm.records[:-1]:
            prefix.append(prefix[-1] + record.words)
        events: list[Event] = []
        for word_count, lines in drains:
            at = cycle_of_word(word_count, self.gemm.records, prefix, self.spec,
                               self.gemm.fold_length, self.gemm.temporal)
            # SCALE-Sim starts the next drain once the cycle reaches the previous drain's
            # last line (`current_cycle < drain_end_cycle` is false there): the DMA accepts
            # a drain after lines - 1 cycles; its last line leaves after `lines`.
            events.append(self.timeline.issue("ofmap_dma", max(0, lines - 1), not_before=at,
                                              latency=lines))
        if lines_left:
            # The last lines leave on the flush path while a drain may still be under way.
            events.append(self.timeline.issue("ofmap_flush", lines_left, not_before=last_row))
        self.srams["ofmap"].write(words * self.spec.word_bytes)
        self.dram.write(words * self.spec.word_bytes)
        self.tails.append({"words": words, "mid_run_drains": len(drains),
                           "lines_after_compute": lines_left})
        self.gemms.append({"name": _kernel_name(op.result.name_hint), "folds": len(self.gemm.folds),
                           "array_cycles": sum(e.end - e.start for e in self.gemm.folds)})
        self.gemm = GemmState()
        return max(events, key=lambda e: e.end)

    # -- helpers ---------------------------------------------------------------------------

    def _count_dram_read(self, operand: str, words: int) -> None:
        nbytes = words * self.spec.word_bytes
        self.dram.read(nbytes)
        self.srams[operand].write(nbytes)

    def _load_tiles(self, op: isa.FoldOp) -> list[Event]:
        """Fetch the fold's operand tiles that are not already in their SRAMs.

        Traffic is counted in both modes; a tile equal to the previous fold's (the
        stationary filter columns of consecutive os folds, say) is reused. Only user
        mode spends time on it: each operand SRAM is double-buffered, so the tile of
        fold i is fetched while fold i-1 computes, once fold i-2 has freed its half; a
        tile larger than half its SRAM cannot be fetched ahead and waits for fold i-1.
        """
        (m0, m1), (n0, n1), (k0, k1) = op.tile()
        tiles = {"ifmap": (op.head_index, m0, m1, k0, k1),
                 "filter": (op.rhs_head_index, k0, k1, n0, n1)}
        events: list[Event] = []
        folds = self.gemm.folds
        for operand, tile in tiles.items():
            if self.gemm.resident.get(operand) == tile:
                continue
            self.gemm.resident[operand] = tile
            if (op.lhs if operand == "ifmap" else op.rhs) in self.onchip:
                continue  # dequantized on chip by kv_load: nothing crosses DRAM
            words = (tile[2] - tile[1]) * (tile[4] - tile[3])
            self._count_dram_read(operand, words)
            if self.spec.mode != "user":
                continue
            lag = 2 if 2 * words <= self.spec.sram_words(operand) else 1
            freed = folds[-lag] if len(folds) >= lag else None
            events.append(self.timeline.issue(f"{operand}_dma",
                                              -(-words // self.spec.bandwidth), after=[freed]))
        return events

    def report(self, kernel: str) -> Report:
        spec = self.spec
        span = self.timeline.cycles
        array = self.timeline.units["array"]
        memories = [self.dram, *self.srams.values()]
        energy = {m.name: m.energy_pj for m in memories}
        energy["macs"] = self.effectual_macs * self.mac_pj
        energy["vector"] = self.vector_pj
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            # SCALE-Sim reports the index of the last active cycle (span - 1); so do we.
            cycles=max(0, span - 1),
            # Waiting for the initial fill is prefetch time, not a stall (as in SCALE-Sim).
            stall_cycles=array.waiting - self.fill_cycles,
            units=self.timeline.summary(),
            bytes={m.name: m.summary() for m in memories},
            macs={"effectual": self.effectual_macs, "dense": self.dense_macs},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "compute_cycles": max(0, self.compute_cycles - 1),
                "folds": self.folds,
                "cycles_per_fold": self.gemm.fold_length or None,
                "span_cycles": span,
                "fill_cycles": self.fill_cycles,
                "writeback": self.tails,
                "energy_breakdown_pj": energy,
                "vector_unit": self.vector_kinds,
                "gemms": self.gemms,

                **({"kv_cache": self.kv_cache} if self.kv_cache["tokens"] else {}),
                **({"runtime_pruning": self.runtime_pruning}
                   if self.runtime_pruning["decide_ops"] else {}),
                "dataflow": spec.dataflow,
                "mode": spec.mode,
            },
        )


def _elements(value_type: Any) -> int:
    count = 1
    for d in value_type.get_shape():
        count *= d
    return count


def _kernel_name(hint: str | None) -> str:
    """The kernel tensor a GEMM's write-back produces (`Qp` for `%Qp_3`; `C_scores`
    style names of attention's parts are kept)."""
    if hint is None:
        return "?"
    stem, _, suffix = hint.rpartition("_")
    return stem if stem and suffix.isdigit() else hint


def _shape(value_type: Any) -> tuple[int, ...]:
    return tuple(value_type.get_shape())


def _mask(op: isa.EpilogueOp | isa.SoftmaxOp, pattern: np.ndarray | None,
          keys: int) -> np.ndarray | None:
    """The op's [T, S] mask; `start` places the query rows of a causal mask."""
    t = op.results[0].type.get_shape()[-2]  # type: ignore[union-attr]
    return attention.mask_matrix(op.mask_kind, t, keys, op.window_size, pattern,
                                 start=op.start_position)


def _nnz(values: Any) -> int:
    """Nonzeros of a dense array or a scipy sparse matrix (a large loaded .mtx)."""
    return int(np.count_nonzero(values.data if is_sparse(values) else values))


def _grouped(lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """rhs with its heads repeated to match lhs's (grouped-query heads), for counting."""
    if lhs.ndim != 3 or rhs.ndim != 3 or lhs.shape[0] == rhs.shape[0]:
        return rhs
    return np.repeat(rhs, lhs.shape[0] // rhs.shape[0], axis=0)


def _head(array: np.ndarray, head: int | None) -> np.ndarray:
    return array if head is None else array[head]


def _matrix_t(array: np.ndarray, transposed: bool) -> np.ndarray:
    return np.swapaxes(array, -1, -2) if transposed else array


@dataclass
class PendingFolds:
    """Folds whose products are not yet added to their accumulator, batched into one BLAS
    call per rectangle.

    Consecutive folds of one GEMM that share the operands, the accumulator, the head and
    the k range add disjoint tiles of the same product A[:, k] . B[k, :]; when they cover a
    rectangle exactly, one product of the rectangle computes them all (the same sums in the
    same accumulator type; only BLAS's blocking inside a tile may differ, as it does between
    any two BLAS calls). Anything else falls back to one product per fold. Every other
    instruction flushes first (`FlushFoldsFirst`: one listener for all of them, so an
    instruction added later cannot forget), so none reads an accumulator with pending
    folds. Thousands of tiny BLAS calls become a few large ones
    (benchmarks/interpreter_overhead.py).
    """

    tiles: list[tuple[int, int, int, int]] = field(default_factory=list)
    key: tuple[Any, ...] | None = None
    operands: tuple[Any, ...] = ()

    def add(self, op: isa.FoldOp, lhs: np.ndarray, rhs: np.ndarray, acc: np.ndarray) -> None:
        (m0, m1), (n0, n1), k = op.tile()
        # The lhs SSA value stands for its element type (read once per batch, in flush).
        key = (id(lhs), id(rhs), id(acc), k, op.head_index, op.rhs_head_index,
               op.transpose_a is not None, op.transpose_b is not None, op.lhs)
        if key != self.key:
            self.flush()
            self.key, self.operands = key, (lhs, rhs, acc)
        self.tiles.append((m0, m1, n0, n1))

    def flush(self) -> None:
        if not self.tiles:
            return
        lhs, rhs, acc = self.operands
        _, _, _, (k0, k1), head, rhs_head, transpose_a, transpose_b, lhs_value = self.key
        dtype = dtype_of(lhs_value.type)
        a = _matrix_t(_head(lhs, head), transpose_a)
        b = _matrix_t(_head(rhs, rhs_head), transpose_b)
        out = _head(acc, head)
        for m0, m1, n0, n1 in _rectangles(self.tiles):
            with all_blas_threads((m1 - m0) * (n1 - n0) * (k1 - k0)):
                out[m0:m1, n0:n1] += matmul_accumulate(a[m0:m1, k0:k1], b[k0:k1, n0:n1],
                                                       dtype)
        self.tiles, self.key, self.operands = [], None, ()


LARGE_PRODUCT_MACS = 1 << 24
"""A batched product this large uses every BLAS thread: one call, so no per-call thread
start-up to amortise (the reason the interpreter runs single-threaded, see
`one_blas_thread`)."""


def all_blas_threads(macs: int) -> contextlib.AbstractContextManager:
    if macs < LARGE_PRODUCT_MACS:
        return contextlib.nullcontext()
    return threadpool_limits(limits=os.cpu_count() or 1, user_api="blas")


class FlushFoldsFirst(Interpreter.Listener):
    """Completes the pending folds before any instruction that is not a fold runs."""

    def __init__(self, pending: PendingFolds):
        self.pending = pending

    def will_interpret_op(self, op: Any, args: Any) -> None:
        if not isinstance(op, (isa.FoldOp, isa.FoldsOp)):
            self.pending.flush()


def _rectangles(tiles: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """The bounding rectangle of `tiles` if they cover it exactly once, else the tiles."""
    m0 = min(t[0] for t in tiles)
    m1 = max(t[1] for t in tiles)
    n0 = min(t[2] for t in tiles)
    n1 = max(t[3] for t in tiles)
    area = sum((t[1] - t[0]) * (t[3] - t[2]) for t in tiles)
    if area != (m1 - m0) * (n1 - n0) or len(set(tiles)) != len(tiles) or not _disjoint(tiles):
        return tiles
    return [(m0, m1, n0, n1)]


def _disjoint(tiles: list[tuple[int, int, int, int]]) -> bool:
    """True when no two tiles overlap (tiles of a fold grid: distinct row and column bands)."""
    rows = sorted({(t[0], t[1]) for t in tiles})
    cols = sorted({(t[2], t[3]) for t in tiles})
    bands_disjoint = all(a[1] <= b[0] for a, b in itertools.pairwise(rows)) and \
        all(a[1] <= b[0] for a, b in itertools.pairwise(cols))
    return bands_disjoint and len(tiles) <= len(rows) * len(cols)


@register_impls
class SystolicFunctions(InterpreterFunctions):
    """numpy semantics of the systolic ISA, with accounting by the machine."""

    def __init__(self, machine: SystolicMachine):
        self.machine = machine
        self.folds = machine.pending

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (zero_accumulator(op, self.machine.execute),)

    @impl(isa.PrefetchOp)
    def run_prefetch(self, interpreter: Interpreter, op: isa.PrefetchOp,
                     args: tuple[Any, ...]):
        self.machine.prefetch(op)
        return ()

    @impl(isa.FoldOp)
    def run_fold(self, interpreter: Interpreter, op: isa.FoldOp, args: tuple[Any, ...]):
        return self._run_folds([op], args)

    @impl(isa.FoldsOp)
    def run_folds(self, interpreter: Interpreter, op: isa.FoldsOp, args: tuple[Any, ...]):
        return self._run_folds(op.folds(), args)

    def _run_folds(self, folds: Iterable[Any], args: tuple[Any, ...]) -> tuple[Any]:
        """Account and (batched) execute folds, one `systolic.fold` or a grid's."""
        lhs, rhs, acc = args
        for fold in folds:
            self.machine.fold(fold)
            if fold.fold_index == 0:
                self.folds.flush()
                self.machine.count_effectual(
                    None if lhs is None else _matrix_t(lhs, fold.transpose_a is not None),
                    None if rhs is None else _matrix_t(rhs, fold.transpose_b is not None),
                    fold)
            if self.machine.execute:
                self.folds.add(fold, lhs, rhs, acc)
        return (acc if self.machine.execute else None,)

    @impl(isa.EpilogueOp)
    def run_epilogue(self, interpreter: Interpreter, op: isa.EpilogueOp,
                     args: tuple[Any, ...]):
        self.machine.epilogue(op)
        acc = args[0]
        if not self.machine.execute:
            return (None,)
        mask = _mask(op, args[1] if len(args) > 1 else None, acc.shape[-1])
        scaled = acc * acc.dtype.type(op.scale.value.data)
        return (scaled if mask is None else np.where(mask, scaled, acc.dtype.type(0)),)

    @impl(isa.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: isa.SoftmaxOp, args: tuple[Any, ...]):
        self.machine.softmax(op)
        if not self.machine.execute:
            return (None,)
        mask = _mask(op, args[1] if len(args) > 1 else None, args[0].shape[-1])
        return (attention.masked_softmax(args[0], mask, dtype_of(op.result.type)),)

    @impl(isa.VectorOp)
    def run_vector(self, interpreter: Interpreter, op: isa.VectorOp, args: tuple[Any, ...]):
        self.machine.vector(op)
        return self._evaluate_kind(op, args)

    @impl(isa.PruneOp)
    def run_prune(self, interpreter: Interpreter, op: isa.PruneOp, args: tuple[Any, ...]):
        return run_activation_prune(self.machine, op, args)

    @impl(isa.KvLoadOp)
    def run_kv_load(self, interpreter: Interpreter, op: isa.KvLoadOp, args: tuple[Any, ...]):
        self.machine.kv_load(op)
        if not self.machine.execute:
            return (None,)
        return (kv_compress_values(op, args[0], dtype_of(op.result.type)),)

    @impl(isa.MoveOp)
    def run_move(self, interpreter: Interpreter, op: isa.MoveOp, args: tuple[Any, ...]):
        self.machine.move(op)
        return self._evaluate_kind(op, args)

    def _evaluate_kind(self, op: isa.VectorOp | isa.MoveOp, args: tuple[Any, ...]) -> tuple[Any]:
        """The block op named by `kind`, by the shared reference semantics."""
        if not self.machine.execute:
            return (None,)
        props = {k: v for k, v in plain_properties(op).items() if k != "kind"}
        return (evaluate(op.kind.data, list(args), props, dtype_of(op.result.type)),)

    @impl(isa.WritebackOp)
    def run_writeback(self, interpreter: Interpreter, op: isa.WritebackOp,
                      args: tuple[Any, ...]):
        event = self.machine.writeback(op)
        self.machine.ready[op.result] = event
        (acc,) = args
        if not self.machine.execute:
            return (None,)
        return (finish(acc, dtype_of(op.result.type)),)

