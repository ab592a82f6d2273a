"""Executes EIE ISA on numpy values: exact fixed-point arithmetic from the packed weights,
cycles from the simulated activation queues, SRAM traffic and energy per action.

`eie.encode` packs the weight matrix with `compiler/storage.py` and decodes every PE's
entries from the packed buffers (column pointers, relative indices, codebook indices).
Each `eie.column` broadcasts one activation column of every input vector where it is
nonzero: it advances the FIFO recurrence (backends/eie/fifo.py) for all PEs and vectors
at once and accumulates the column's products. `eie.store` closes the matmul: the input
vectors run back to back, so its cycles are the sum of theirs, placed on the Timeline.
Equations: backends/eie/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from sparsec.backends.common.backend import Machine, dtype_of, enclosing_kernel
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.backends.eie import isa
from sparsec.backends.eie.fifo import QueueState
from sparsec.backends.eie.fixed_point import (
    Codes,
    accumulator_bounds,
    activation_codes,
    codebook_codes,
    saturating_add,
    scale_text,
)
from sparsec.backends.eie.lowering import operand_name
from sparsec.backends.eie.spec import EieSpec
from sparsec.dialects.formats import QuantizedAttr
from sparsec.dialects.sparsec import InputOp, ParamOp
from sparsec.tensors.datastore import DataStoreError, current_store, store_key
from sparsec.tensors.numerics import finish
from sparsec.tensors.storage import Packed, pack

UNITS = ("broadcast", "pes")


@dataclass
class EncodedWeights:
    """The weight matrix M (N x K, (out, in)) as the PEs hold it, decoded from its packed
    rcsc form. Entries are sorted by column; `work[p, k]` is PE p's entries of column k
    (padding included) and `words[p, k]` the Spmat words they span."""

    name: str
    rows: int
    cols: int
    packed: Packed
    weights: Codes
    work: np.ndarray
    words: np.ndarray
    column_start: np.ndarray
    entry_rows: np.ndarray
    entry_codes: np.ndarray
    real_per_column: np.ndarray


@dataclass
class MatmulState:
    """One matmul in flight: the accumulators, the queues and what has been counted."""

    shape: tuple[int, int]
    result_dtype: str
    values: np.ndarray | None = None
    weights: EncodedWeights | None = None
    activations: Codes | None = None
    nonzero: np.ndarray | None = None
    queues: QueueState | None = None
    bounds: tuple[int, int] = (0, 0)
    saturated: np.ndarray | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("broadcasts", "entries", "effectual", "spmat_words", "pointer_pairs",
         "saturations"), 0))


def decode_rcsc(packed: Packed, pes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, codebook index) of every stored entry, from the packed buffers.

    PE p's entries follow those of PEs 0..p-1; within a PE, column c holds entries
    col_ptr[p, c] .. col_ptr[p, c + 1] - 1, and an entry's local row is the running sum
    of (relative index + 1) over its column, minus one; its row is local * pes + p.
    """
    col_ptr = packed.buffers["col_ptr"].astype(np.int64)
    cols = col_ptr.shape[1] - 1
    counts = np.diff(col_ptr, axis=1).ravel()
    segment = np.repeat(np.arange(pes * cols, dtype=np.int64), counts)
    steps = np.cumsum(packed.buffers["rel_index"].astype(np.int64) + 1)
    starts = np.cumsum(counts) - counts
    before = np.concatenate(([0], steps))[starts]
    local = steps - before[segment] - 1
    row = local * pes + segment // cols
    return row, segment % cols, packed.buffers["indices"].astype(np.int64)


def spmat_words(col_ptr: np.ndarray, per_word: int) -> np.ndarray:
    """(P, K) Spmat words each PE reads for each column: the words its entries span."""
    start, end = col_ptr[:, :-1], col_ptr[:, 1:]
    spanned = (end - 1) // per_word - start // per_word + 1
    return np.where(end > start, spanned, 0)


class EieMachine(Machine):
    """One run of an EIE program: queue simulation, SRAM counters, energy per action."""

    spec: EieSpec

    def __init__(self, spec: EieSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.spmat = MemoryLevel("spmat_sram", spec.spmat_bytes(), None,
                                 spec.spmat_pj_per_byte, spec.spmat_pj_per_byte)
        self.ptr = MemoryLevel("ptr_sram", spec.ptr_bytes(), None, spec.ptr_pj_per_byte,
                               spec.ptr_pj_per_byte)
        self.act = MemoryLevel("act_sram", spec.act_sram_kb * 1024)
        self.dram = MemoryLevel("dram", None, None, spec.dram_pj_per_byte, spec.dram_pj_per_byte)
        """Boundary traffic: the input activations arrive once and the results leave once
        (no time); the compressed weights are preloaded in the PEs' SRAMs, as in the paper."""
        self.last: Event | None = None
        self.layers: list[dict[str, Any]] = []
        self.totals = dict.fromkeys(("cycles", "busy", "entries", "effectual", "broadcasts",
                                     "pointer_pairs", "saturations", "nnz", "padding",
                                     "dense"), 0)
        self.pe_busy = np.zeros(spec.pes, dtype=np.int64)

    def functions(self) -> InterpreterFunctions:
        return EieFunctions(self)

    # -- eie.encode -----------------------------------------------------------------------

    def encode(self, op: isa.EncodeOp, dense: np.ndarray) -> EncodedWeights:
        """Pack the (out, in) matrix into the PEs' SRAMs and decode it back, per column."""
        spec = self.spec
        name = operand_name(op.source, "weights")
        matrix = dense.T if op.in_out is not None else dense
        book = self._codebook(op, name)
        weights = codebook_codes(book, spec.word_bits, name)
        try:
            packed = pack(matrix, op.source.type.encoding, value_bits=spec.word_bits,  # type: ignore[union-attr]
                          aux={"codebook": book})
        except ValueError as err:
            raise DataStoreError(f"eie.encode: weights {name}: {err}") from None
        rows, cols = matrix.shape
        row, column, index = decode_rcsc(packed, spec.pes)
        order = np.argsort(column, kind="stable")
        codes = weights.codes[index]
        col_ptr = packed.buffers["col_ptr"].astype(np.int64)
        self._require_fits(name, col_ptr, cols)
        return EncodedWeights(
            name=name, rows=rows, cols=cols, packed=packed, weights=weights,
            work=np.diff(col_ptr, axis=1),
            words=spmat_words(col_ptr, spec.entries_per_word),
            column_start=np.concatenate(([0], np.cumsum(np.bincount(column, minlength=cols)))),
            entry_rows=row[order], entry_codes=codes[order],
            real_per_column=np.bincount(column[codes != 0], minlength=cols))

    def _codebook(self, op: isa.EncodeOp, name: str) -> np.ndarray:
        owner = op.source.owner
        if not isinstance(owner, (InputOp, ParamOp)):
            raise DataStoreError(f"eie.encode: weights {name} are computed by the kernel; "
                                 "EIE needs a param with its codebook in the data bundle")
        key = f"{store_key(enclosing_kernel(op), owner.sym_name)}#codebook"
        store = current_store()
        if key not in store:
            raise DataStoreError(f"eie.encode: no codebook for {name} ({key}) in the data "
                                 "bundle; run share-weights on it")
        return store.get(key)

    def _require_fits(self, name: str, col_ptr: np.ndarray, cols: int) -> None:
        """The fullest PE's entries must fit its Spmat SRAM, its pointers its Ptr SRAM."""
        spec = self.spec
        entries = int(col_ptr[:, -1].max(initial=0))
        self.spmat.require_fits(-(-entries * spec.entry_bits // 8),
                                f"the {entries} entries of {name} on its fullest PE")
        self.ptr.require_fits(-(-(cols + 1) * spec.ptr_bits // 8),
                              f"the {cols + 1} column pointers of {name} on each PE")

    # -- eie.zeros / eie.column -----------------------------------------------------------

    def zeros(self, op: isa.ZerosOp) -> MatmulState:
        shape = tuple(op.result.type.get_shape())  # type: ignore[union-attr]
        state = MatmulState((shape[0], shape[1]), dtype_of(op.result.type))
        if self.execute:
            state.values = np.zeros(shape, dtype=np.int64)
            state.saturated = np.zeros(shape, dtype=bool)
        return state

    def column(self, op: isa.ColumnOp, x: np.ndarray, weights: EncodedWeights,
               state: MatmulState) -> MatmulState:
        """Broadcast activation column k of every vector where it is nonzero."""
        if state.queues is None:
            self._start(op, x, weights, state)
        assert state.queues is not None and state.nonzero is not None
        k = op.index
        active = np.flatnonzero(state.nonzero[:, k])
        state.queues.broadcast(active, weights.work[:, k])
        n = active.size
        counts = state.counts
        counts["broadcasts"] += n
        counts["entries"] += n * int(weights.work[:, k].sum())
        counts["spmat_words"] += n * int(weights.words[:, k].sum())
        counts["pointer_pairs"] += n * self.spec.pes
        counts["effectual"] += n * int(weights.real_per_column[k])
        if self.execute and n:
            self._accumulate(k, active, weights, state)
        return state

    def _start(self, op: isa.ColumnOp, x: np.ndarray, weights: EncodedWeights,
               state: MatmulState) -> None:
        """First column of a matmul: activation codes, accumulator range, empty queues."""
        encoding = op.activations.type.encoding  # type: ignore[union-attr]
        assert isinstance(encoding, QuantizedAttr)
        view = x.T if op.transpose_a is not None else x
        name = operand_name(op.activations, "activations")
        state.activations = activation_codes(view, encoding, name)
        state.nonzero = state.activations.codes != 0
        state.weights = weights
        unit = state.activations.scale * weights.weights.scale
        state.bounds = accumulator_bounds(unit, self.spec.word_bits, self.spec.acc_frac_bits)
        state.queues = QueueState.empty(view.shape[0], self.spec.pes, self.spec.fifo_depth)

    def _accumulate(self, k: int, active: np.ndarray, weights: EncodedWeights,
                    state: MatmulState) -> None:
        """acc[t, rows] = sat(acc[t, rows] + q_a[t, k] * q_w[rows]) for the active t."""
        assert state.values is not None and state.activations is not None
        assert state.saturated is not None
        lo, hi = weights.column_start[k], weights.column_start[k + 1]
        rows = weights.entry_rows[lo:hi]
        products = state.activations.codes[active, k][:, None] * weights.entry_codes[lo:hi][None, :]
        where = (active[:, None], rows[None, :])
        total, clamped = saturating_add(state.values[where], products, *state.bounds)
        state.values[where] = total
        state.counts["saturations"] += int(clamped.sum())
        state.saturated[where] |= clamped

    # -- eie.store ------------------------------------------------------------------------

    def store(self, state: MatmulState) -> np.ndarray | None:
        """Close a matmul: its vectors' cycles on the Timeline, traffic, figures."""
        if state.queues is None:
            raise DataStoreError("eie.store: the matmul broadcast no column")
        spec = self.spec
        queues, weights, counts = state.queues, state.weights, state.counts
        assert weights is not None and state.activations is not None
        per_vector = queues.cycles()
        cycles = int(per_vector.sum())
        busy = queues.busy.sum(axis=0)
        after = [self.last]
        self.timeline.issue("broadcast", counts["broadcasts"], after=after, latency=cycles)
        self.last = self.timeline.issue("pes", round(int(busy.sum()) / spec.pes), after=after,
                                        latency=cycles)
        self._count_traffic(state)
        self._add_totals(state, cycles, busy)
        self.layers.append(self._layer_figures(state, per_vector, busy))
        if state.values is None:
            return None
        unit = state.activations.scale * weights.weights.scale
        return finish(state.values.astype(np.float64) * unit, state.result_dtype)

    def _count_traffic(self, state: MatmulState) -> None:
        spec = self.spec
        counts = state.counts
        vectors, rows = state.shape
        word_bytes = spec.word_bits // 8 or 1
        assert state.nonzero is not None
        self.spmat.read(counts["spmat_words"] * spec.spmat_width_bits // 8)
        self.ptr.read(counts["pointer_pairs"] * 2 * spec.ptr_bits // 8)
        self.act.read(state.nonzero.size * word_bytes)
        self.act.write(vectors * rows * word_bytes)
        self.dram.read(state.nonzero.size * word_bytes)
        self.dram.write(vectors * rows * word_bytes)

    def _add_totals(self, state: MatmulState, cycles: int, busy: np.ndarray) -> None:
        assert state.weights is not None and state.nonzero is not None
        packed = state.weights.packed
        totals = self.totals
        totals["cycles"] += cycles
        totals["busy"] += int(busy.sum())
        for key in ("entries", "effectual", "broadcasts", "pointer_pairs", "saturations"):
            totals[key] += state.counts[key]
        totals["nnz"] += packed.nnz
        totals["padding"] += packed.padding
        totals["dense"] += state.nonzero.size * state.weights.rows
        self.pe_busy += busy

    def _layer_figures(self, state: MatmulState, per_vector: np.ndarray,
                       busy: np.ndarray) -> dict[str, Any]:
        """What one matmul did, for `details.layers`."""
        weights, counts = state.weights, state.counts
        assert weights is not None and state.activations is not None
        assert state.nonzero is not None
        cycles = int(per_vector.sum())
        packed = weights.packed
        efficiency = busy / cycles if cycles else np.ones_like(busy, dtype=np.float64)
        saturated = int(state.saturated.sum()) if state.saturated is not None else 0
        return {
            "weights": weights.name, "vectors": int(per_vector.size), "n": weights.rows,
            "k": weights.cols, "cycles": cycles,
            "vector_cycles": _spread(per_vector),
            "broadcasts": counts["broadcasts"],
            "work_per_broadcast": (counts["entries"] / counts["broadcasts"] / busy.size
                                   if counts["broadcasts"] else 0.0),
            "activation_density": float(state.nonzero.mean()) if state.nonzero.size else 0.0,
            "load_balance_efficiency": float(busy.sum() / (cycles * busy.size)) if cycles else 1.0,
            "pe_efficiency": [round(float(e), 4) for e in efficiency],
            "bubble_cycles": int(cycles * busy.size - busy.sum()),
            "pe_work_mean_over_max": float(busy.mean() / busy.max()) if busy.max() else 1.0,
            "nnz": packed.nnz, "padding": packed.padding,
            "padding_overhead": packed.padding / packed.nnz if packed.nnz else 0.0,
            "storage_bits": packed.buffer_bits(),
            "activation_scale": scale_text(state.activations.scale),
            "weight_scale": scale_text(weights.weights.scale),
            "saturations": counts["saturations"], "saturated_outputs": saturated,
        }

    def report(self, kernel: str) -> Report:
        spec = self.spec
        totals = self.totals
        cycles = self.timeline.cycles
        memories = [self.spmat, self.ptr, self.act, self.dram]
        energy = {m.name: m.energy_pj for m in memories}
        energy["arithmetic"] = totals["entries"] * spec.mac_pj
        energy["act_rw"] = totals["entries"] * spec.act_rw_pj
        energy["queues"] = totals["broadcasts"] * spec.pes * spec.queue_pj
        energy["lnzd"] = totals["broadcasts"] * spec.lnzd_pj
        pe_cycles = totals["cycles"] * spec.pes
        efficiency = totals["busy"] / pe_cycles if pe_cycles else 1.0
        per_pe = self.pe_busy / totals["cycles"] if totals["cycles"] else np.ones(spec.pes)
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=cycles,
            stall_cycles=round((pe_cycles - totals["busy"]) / spec.pes),
            units=self.timeline.summary(),
            bytes={m.name: m.summary() for m in memories},
            macs={"effectual": totals["effectual"], "dense": totals["dense"]},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "load_balance_efficiency": efficiency,
                "idle_fraction": 1.0 - efficiency,
                "bubble_cycles": pe_cycles - totals["busy"],
                "pe_efficiency": [round(float(e), 4) for e in per_pe],
                "broadcasts": totals["broadcasts"],
                "executed_macs": totals["entries"],
                "codebook_lookups": totals["entries"],
                "pointer_reads": 2 * totals["pointer_pairs"],
                "nnz": totals["nnz"],
                "padding": totals["padding"],
                "padding_overhead": totals["padding"] / totals["nnz"] if totals["nnz"] else 0.0,
                "saturations": totals["saturations"],
                "fifo_depth": spec.fifo_depth,
                "layers": self.layers,
                "energy_breakdown_pj": energy,
            },
        )


def _spread(values: np.ndarray) -> dict[str, float]:
    """min / mean / max of per-vector figures (zeros when there are none)."""
    if not values.size:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": int(values.min()), "mean": float(values.mean()), "max": int(values.max())}


@register_impls
class EieFunctions(InterpreterFunctions):
    """numpy semantics of the EIE ISA, with accounting by the machine."""

    def __init__(self, machine: EieMachine):
        self.machine = machine

    @impl(isa.EncodeOp)
    def run_encode(self, interpreter: Interpreter, op: isa.EncodeOp, args: tuple[Any, ...]):
        (dense,) = args
        return (self.machine.encode(op, dense),)

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (self.machine.zeros(op),)

    @impl(isa.ColumnOp)
    def run_column(self, interpreter: Interpreter, op: isa.ColumnOp, args: tuple[Any, ...]):
        x, weights, state = args
        return (self.machine.column(op, x, weights, state),)

    @impl(isa.StoreOp)
    def run_store(self, interpreter: Interpreter, op: isa.StoreOp, args: tuple[Any, ...]):
        (state,) = args
        return (self.machine.store(state),)

