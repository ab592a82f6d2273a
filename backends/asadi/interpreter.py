"""Executes ASADI ISA on numpy values and accounts its cycles and energy on the Timeline.

One Tile per head (heads beyond `tiles` run in further rounds); every Tile runs the same
iterations, since the heads share one mask. Units: `write` (rows of run-time operands
written into the arrays), `operand_arrays` (the arrays holding Q, K, V by dimension: the
SDDMM and SpMM iterations), `oci` (on-chip transfers between arrays), `score_arrays`
(the arrays holding the diagonal vectors: slice accumulation and softmax), `read` (the
output read out). Equations: backends/asadi/README.md; each is named where it is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import SSAValue

from sparsec.backends.asadi import isa
from sparsec.backends.asadi.spec import AsadiSpec
from sparsec.backends.common.backend import Machine, dtype_of, enclosing_kernel
from sparsec.backends.common.isa import zero_accumulator
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.dialects.sparsec import InputOp, ParamOp
from sparsec.tensors.attention import masked_softmax
from sparsec.tensors.datastore import DataStoreError, current_store, store_key
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.numerics import accumulate_dtype, finish
from sparsec.tensors.storage import DiagonalLayout, place_diagonals

UNITS = ("write", "operand_arrays", "oci", "score_arrays", "read")
PHASES = ("write", "sddmm", "softmax", "spmm", "read")
CTRL_PAIR_BYTES = 4
"""Bytes of one (R_d, R_o) pair sent to the row selector (two 16-bit row indices)."""


@dataclass
class Structure:
    """What the hardware needs of one mask: its shape, pattern and DIA layout."""

    mask: np.ndarray
    layout: DiagonalLayout | None
    rows: np.ndarray = field(init=False)
    """[D, S] row each slot holds (-1: padding), DIA only."""
    live: np.ndarray = field(init=False)
    """[D, S] slots holding an element the mask allows (what values are computed for)."""
    row_nnz: np.ndarray = field(init=False)
    """[T] allowed keys of each query row (the CSR paradigm's z_i)."""

    def __post_init__(self) -> None:
        self.row_nnz = self.mask.sum(axis=1).astype(np.int64)
        if self.layout is None:
            self.rows = np.zeros((0, self.mask.shape[1]), dtype=np.int64)
            self.live = np.zeros(self.rows.shape, dtype=bool)
            return
        self.rows = self.layout.slot_rows()
        cols = np.broadcast_to(np.arange(self.mask.shape[1]), self.rows.shape)
        self.live = self.rows >= 0
        self.live[self.live] = self.mask[self.rows[self.live], cols[self.live]]

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]

    def rounds(self, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The allowed slots of diagonal k as (rows, columns) groups with distinct rows,
        in column order: a row holding several elements of the diagonal (moved ones)
        adds them one group after another."""
        cols = np.flatnonzero(self.live[k])
        rows = self.rows[k][cols]
        order = np.argsort(rows, kind="stable")
        repeat = np.empty(rows.size, dtype=np.int64)
        sorted_rows = rows[order]
        repeat[order] = np.arange(rows.size) - np.searchsorted(sorted_rows, sorted_rows)
        return [(rows[repeat == n], cols[repeat == n]) for n in range(int(repeat.max(initial=-1)) + 1)]

    def band(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(lengths, moved) of diagonals [first, last): rows each activates, and the
        moved elements each copies."""
        assert self.layout is not None
        return (self.layout.lengths()[first:last],
                self.layout.moved_per_diagonal()[first:last])


def _heads(shape: tuple[int, ...]) -> int:
    """Heads of a [T, d] (one) or [heads, T, d] tensor."""
    return shape[0] if len(shape) == 3 else 1


def _as3(array: np.ndarray) -> np.ndarray:
    """A [T, d] array as one head [1, T, d]."""
    return array[None] if array.ndim == 2 else array


class AsadiMachine(Machine):
    """One run of an ASADI program: Timeline, ReRAM/interconnect counters, energy."""

    spec: AsadiSpec

    def __init__(self, spec: AsadiSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.reram = MemoryLevel("reram", spec.tile_bits // 8)
        self.oci = MemoryLevel("oci", None, spec.oci_bytes_per_cycle, spec.oci_pj_per_byte, 0.0)
        self.ready: dict[SSAValue, Event] = {}
        self.structures: dict[str, Structure] = {}
        self.phase_cycles = dict.fromkeys(PHASES, 0)
        self.energy = dict.fromkeys((*PHASES, "oci", "periphery"), 0.0)
        self.iterations = {"sddmm": 0, "spmm": 0}
        self.macs = {"effectual": 0, "dense": 0, "executed": 0}
        self.heads = 1

    def functions(self) -> InterpreterFunctions:
        return AsadiFunctions(self)

    # -- helpers ----------------------------------------------------------------------

    def fj(self, gates: float) -> float:
        """pJ of `gates` gate (or cell) actions, each on one row."""
        return gates * self.spec.gate_fj / 1000

    def structure(self, mask_value: SSAValue, mask: np.ndarray) -> Structure:
        """The mask's pattern and, for the DIA paradigm, its layout from the DataStore
        (`<kernel>.<symbol>#offsets`, `#moved`), cached per symbol."""
        owner = mask_value.owner
        symbol = owner.sym_name if isinstance(owner, (InputOp, ParamOp)) else None
        key = store_key(enclosing_kernel(owner), symbol) if symbol else str(id(mask_value))
        if key in self.structures:
            return self.structures[key]
        t, s = mask.shape[-2:]
        pattern = (np.asarray(mask) != 0).reshape(-1, t, s).any(axis=0)
        encoding = isa.diagonal_encoding(mask_value)
        layout = self._layout(key, pattern, encoding) if encoding is not None else None
        found = Structure(pattern, layout)
        self.structures[key] = found
        return found

    def _layout(self, key: str, pattern: np.ndarray, encoding: Any) -> DiagonalLayout:
        store = current_store()
        if f"{key}#offsets" in store:
            aux = {name: store.get(f"{key}#{name}") for name in ("offsets", "moved")
                   if f"{key}#{name}" in store}
            layout = DiagonalLayout.from_aux(pattern.shape, encoding.band, aux)
        else:
            layout = place_diagonals(pattern, encoding.band).layout
        if layout.count != encoding.count or not layout.covered()[pattern].all():
            raise DataStoreError(f"the layout of {key} does not match its {encoding}; "
                                 "re-run encode-diagonal")
        return layout

    def issue(self, unit: str, cycles: int, phase: str, after: list[Event | None]) -> Event:
        """One step of every Tile: `cycles` per round, for every round of heads."""
        total = cycles * self.spec.waves(self.heads)
        self.phase_cycles[phase] += total
        return self.timeline.issue(unit, total, after=after)

    def transfer(self, nbytes: float, phase: str, after: list[Event | None]) -> Event:
        """Move `nbytes` per Tile between arrays over the on-chip interconnect."""
        self.oci.read(math.ceil(nbytes) * self.heads)
        self.energy["oci"] += math.ceil(nbytes) * self.heads * self.spec.oci_pj_per_byte
        return self.issue("oci", self.spec.transfer_cycles(nbytes), phase, after)

    def require_fits(self, bits: int, what: str) -> None:
        self.reram.require_fits(math.ceil(bits / 8), what)

    def ctrl_cycles(self, s: int, moved: np.ndarray) -> np.ndarray:
        """Per iteration: the diagonal's (row's) mask bits and (R_d, R_o) pairs sent to
        the row selectors of the arrays."""
        nbytes = math.ceil(s / 8) + moved * CTRL_PAIR_BYTES
        return np.ceil(nbytes / self.spec.oci_bytes_per_cycle).astype(np.int64)

    # -- instructions ---------------------------------------------------------------------

    def write(self, op: isa.WriteOp) -> Event:
        """Write rows of run-time operands: every array writes one row per cycle, so
        cycles = write_cycles * min(rows written, array rows); energy = cells written."""
        spec = self.spec
        shapes = [tuple(s.type.get_shape()) for s in op.sources]  # type: ignore[union-attr]
        self.heads = max(self.heads, *(_heads(shape) for shape in shapes))
        rows = max(shape[-2] for shape in shapes)
        cells = sum(math.prod(shape) for shape in shapes) * spec.value_bits
        self.reram.write(cells // 8)
        self.energy["write"] += self.fj(cells)
        after = [self.ready.get(s) for s in op.sources]
        event = self.issue("write", spec.write_cycles * min(rows, spec.rows), "write", after)
        for result in op.results_:
            self.ready[result] = event
        return event

    def sddmm(self, op: isa.SddmmOp, structure: Structure) -> Event:
        """One batch of Q K^T iterations: the iterations on the Q/K arrays, the slices'
        transfer, their sum over d (and the scale) on the accumulating arrays."""
        spec = self.spec
        q_shape = tuple(op.lhs.type.get_shape())  # type: ignore[union-attr]
        self.heads = max(self.heads, _heads(q_shape))
        d, (t, s) = q_shape[-1], structure.shape
        first, last = op.band
        slots = spec.vector_slots(max(t, s))
        if op.is_dia:
            lengths, moved = structure.band(first, last)
            count = last - first
            ctrl = self.ctrl_cycles(s, moved)
            iterate = int(np.sum(ctrl + spec.mul_cycles + 2 * spec.copy_cycles * moved))
            rows_touched = int(lengths.sum())
            self.energy["sddmm"] += self.heads * self.fj(
                d * rows_touched * spec.mul_gates + 4 * d * int(moved.sum()) * spec.value_bits
                + rows_touched * ((d - 1) * spec.add_gates + spec.mul_gates))
        else:
            nnz = structure.row_nnz[first:last]
            count = int(np.count_nonzero(nnz))
            ctrl = self.ctrl_cycles(s, np.zeros(count, dtype=np.int64))
            iterate = int(np.sum(ctrl)) + count * (spec.write_cycles + spec.mul_cycles)
            rows_touched = count * s
            self.energy["sddmm"] += self.heads * self.fj(
                d * rows_touched * spec.mul_gates + d * int(nnz.sum()) * spec.value_bits
                + rows_touched * ((d - 1) * spec.add_gates + spec.mul_gates))
        self.iterations["sddmm"] += count
        self.macs["executed"] += self.heads * rows_touched * d
        self.require_fits(self._resident_bits(op, structure, count, d), "the Q, K, V, scores "
                          f"and slices of {op.name} [{first}, {last})")
        deps = [self.ready.get(op.lhs), self.ready.get(op.rhs)]
        loop = self.issue("operand_arrays", iterate, "sddmm", deps)
        moved_out = self.transfer(count * d * s * spec.value_bits / 8, "sddmm", [loop])
        accumulate = math.ceil(count / slots) * ((d - 1) * spec.add_cycles + spec.mul_cycles)
        event = self.issue("score_arrays", accumulate, "sddmm",
                           [moved_out, self.ready.get(op.acc)])
        self.ready[op.result] = event
        return event

    def _resident_bits(self, op: isa.SddmmOp, structure: Structure, count: int,
                       d: int) -> int:
        """Per Tile: Q, K, V (3 x d values per row), the scores and probabilities (two
        vectors per diagonal, or per row for CSR) and the batch's slices (d per vector)."""
        t, s = structure.shape
        vectors = structure.layout.count if op.is_dia and structure.layout else t
        return self.spec.value_bits * (3 * d * max(t, s) + 2 * vectors * s + count * d * s)

    def softmax(self, op: isa.SoftmaxOp, structure: Structure) -> Event:
        """Softmax on every diagonal (row) vector at once (ASADI Sec. IV-D)."""
        spec = self.spec
        t, s = structure.shape
        slots = spec.vector_slots(max(t, s))
        elementwise = spec.add_cycles + spec.mul_cycles + spec.exp2_cycles + spec.div_cycles
        gates = 2 * spec.add_gates + spec.mul_gates + spec.exp2_cycles + spec.div_gates \
            + spec.max_cycles
        if op.is_dia and structure.layout is not None:
            layout = structure.layout
            vectors, moved = layout.count, layout.moved_per_diagonal()
            depth = math.ceil(math.log2(vectors)) if vectors > 1 else 0
            cycles = (math.ceil(vectors / slots) * (int(moved.max(initial=0)) * spec.copy_cycles
                                                     + elementwise)
                      + depth * (spec.max_cycles + spec.add_cycles))
            energy = self.fj(int(layout.lengths().sum()) * gates
                             + 2 * layout.num_moved * spec.value_bits)
        else:
            vectors = int(np.count_nonzero(structure.row_nnz))
            cycles = (math.ceil(vectors / slots) * (spec.max_cycles + elementwise)
                      + int(structure.row_nnz.max(initial=0)) * spec.read_cycles)
            energy = self.fj(vectors * s * gates + int(structure.row_nnz.sum()) * spec.value_bits)
        self.energy["softmax"] += self.heads * energy
        event = self.issue("score_arrays", cycles, "softmax", [self.ready.get(op.input)])
        self.ready[op.result] = event
        return event

    def spmm(self, op: isa.SpmmOp, structure: Structure) -> Event:
        """One batch of P V iterations on the V arrays (one per output column): multiply,
        move the products to their rows, add; the diagonal vectors rotate over the
        arrays (Alg. 1) through the interconnect."""
        spec = self.spec
        v_shape = tuple(op.rhs.type.get_shape())  # type: ignore[union-attr]
        self.heads = max(self.heads, _heads(v_shape))
        e, s = v_shape[-1], structure.shape[1]
        first, last = op.band
        if op.is_dia:
            lengths, moved = structure.band(first, last)
            count = last - first
            ctrl = self.ctrl_cycles(s, moved)
            iterate = int(np.sum(ctrl + spec.mul_cycles + spec.add_cycles
                                 + spec.copy_cycles * moved))
            rows_touched = int(lengths.sum())
            self.energy["spmm"] += self.heads * self.fj(
                e * rows_touched * (spec.mul_gates + spec.add_gates)
                + 2 * e * int(moved.sum()) * spec.value_bits)
            rotate = count * (e - 1) * s * spec.value_bits / 8
        else:
            nnz = structure.row_nnz[first:last]
            count = int(np.count_nonzero(nnz))
            ctrl = self.ctrl_cycles(s, np.zeros(count, dtype=np.int64))
            iterate = int(np.sum(ctrl)) + count * (spec.mul_cycles + spec.write_cycles) \
                + int(nnz.sum()) * (spec.write_cycles + spec.read_cycles)
            rows_touched = count * s
            self.energy["spmm"] += self.heads * self.fj(
                e * rows_touched * spec.mul_gates
                + e * (2 * int(nnz.sum()) + count) * spec.value_bits)
            rotate = 0.0
        self.iterations["spmm"] += count
        self.macs["executed"] += self.heads * rows_touched * e
        deps = [self.ready.get(op.lhs), self.ready.get(op.rhs), self.ready.get(op.acc)]
        loop = self.issue("operand_arrays", iterate, "spmm", deps)
        event = self.transfer(rotate, "spmm", [loop]) if rotate else loop
        self.ready[op.result] = event
        return event

    def read(self, op: isa.ReadOp) -> Event:
        """Read the output out: one row per cycle of every array."""
        spec = self.spec
        shape = tuple(op.acc.type.get_shape())  # type: ignore[union-attr]
        cells = math.prod(shape) * spec.value_bits
        self.reram.read(cells // 8)
        self.energy["read"] += self.fj(cells)
        event = self.issue("read", spec.read_cycles * min(shape[-2], spec.rows), "read",
                           [self.ready.get(op.acc)])
        self.ready[op.result] = event
        return event

    def count_work(self, structure: Structure, width: int) -> None:
        """Useful MACs (allowed pairs times the contracted or output width) and dense MACs
        of one sddmm or spmm."""
        t, s = structure.shape
        self.macs["effectual"] += self.heads * int(structure.mask.sum()) * width
        self.macs["dense"] += self.heads * t * s * width

    def report(self, kernel: str) -> Report:
        spec = self.spec
        span = self.timeline.cycles
        tiles_used = min(self.heads, spec.tiles)
        self.energy["periphery"] = spec.periphery_mw * span / spec.clock_ghz * tiles_used
        layouts = [s.layout for s in self.structures.values() if s.layout is not None]
        details: dict[str, Any] = {
            "paradigm": spec.paradigm,
            "heads": self.heads,
            "tile_rounds": spec.waves(self.heads),
            "iterations": dict(self.iterations),
            "phase_cycles": dict(self.phase_cycles),
            "executed_macs": self.macs["executed"],
            "energy_breakdown_pj": dict(self.energy),
        }
        if layouts:
            details["diagonals"] = sum(layout.count for layout in layouts)
            details["band"] = sum(layout.band for layout in layouts)
            details["moved"] = sum(layout.num_moved for layout in layouts)
        details["nonempty_rows"] = sum(int(np.count_nonzero(s.row_nnz))
                                       for s in self.structures.values())
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=span,
            stall_cycles=self.timeline.units["operand_arrays"].waiting,
            units=self.timeline.summary(),
            bytes={m.name: m.summary() for m in (self.reram, self.oci)},
            macs={"effectual": self.macs["effectual"], "dense": self.macs["dense"]},
            energy_pj=sum(self.energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details=details,
        )


# -- values --------------------------------------------------------------------------------

def sddmm_values(q: np.ndarray, k: np.ndarray, acc: np.ndarray, structure: Structure,
                 band: tuple[int, int], dia: bool, scale: float, dtype: str) -> np.ndarray:
    """Fill the scores of a batch: every allowed slot of its diagonals (DIA) or every
    allowed element of its rows (CSR) gets scale * Q[row] . K[column], the dot product
    summed as numpy's matmul sums it (so the scores equal the reference's bit for bit;
    the order in which the hardware adds the d slices is not modeled)."""
    kind = accumulate_dtype(dtype)
    q3, k3, out = _as3(q).astype(kind), _as3(k).astype(kind), _as3(acc)
    first, last = band
    if not dia:
        rows = slice(first, last)
        scores = np.matmul(q3[:, rows], np.swapaxes(k3, -1, -2)) * kind(scale)
        out[:, rows] = np.where(structure.mask[rows], scores, kind(0))
        return acc
    live = structure.live[first:last]
    rows = structure.rows[first:last][live]
    cols = np.broadcast_to(np.arange(structure.shape[1]), live.shape)[live]
    scores = np.matmul(q3, np.swapaxes(k3, -1, -2)) * kind(scale)
    out[:, rows, cols] = scores[:, rows, cols]
    return acc


def spmm_values(p: np.ndarray, v: np.ndarray, acc: np.ndarray, structure: Structure,
                band: tuple[int, int], dia: bool) -> np.ndarray:
    """Accumulate a batch of P V: diagonal by diagonal (products moved to their rows,
    then added), or row by row for CSR."""
    kind = acc.dtype.type
    p3, v3, out = _as3(p).astype(kind), _as3(v).astype(kind), _as3(acc)
    first, last = band
    if not dia:
        out[:, first:last] += np.matmul(p3[:, first:last], v3)
        return acc
    for k in range(first, last):
        for rows, cols in structure.rounds(k):
            out[:, rows] += p3[:, rows, cols, None] * v3[:, cols, :]
    return acc


@register_impls
class AsadiFunctions(InterpreterFunctions):
    """numpy semantics of the ASADI ISA, with accounting by the machine."""

    def __init__(self, machine: AsadiMachine):
        self.machine = machine

    @impl(isa.WriteOp)
    def run_write(self, interpreter: Interpreter, op: isa.WriteOp, args: tuple[Any, ...]):
        self.machine.write(op)
        return tuple(args)

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (zero_accumulator(op, self.machine.execute),)

    @impl(isa.SddmmOp)
    def run_sddmm(self, interpreter: Interpreter, op: isa.SddmmOp, args: tuple[Any, ...]):
        q, k, mask, acc = args
        structure = self.machine.structure(op.mask, mask)
        self.machine.sddmm(op, structure)
        if op.band[0] == 0:
            self.machine.count_work(structure, op.lhs.type.get_shape()[-1])  # type: ignore[union-attr]
        if not self.machine.execute:
            return (None,)
        return (sddmm_values(q, k, acc, structure, op.band, op.is_dia, op.scale.value.data,
                             dtype_of(op.result.type)),)

    @impl(isa.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: isa.SoftmaxOp,
                    args: tuple[Any, ...]):
        scores, mask = args
        structure = self.machine.structure(op.mask, mask)
        self.machine.softmax(op, structure)
        if not self.machine.execute:
            return (None,)
        dtype = dtype_of(op.result.type)
        rounded = round_to_dtype(np.asarray(scores), dtype)
        return (masked_softmax(rounded, structure.mask, dtype),)

    @impl(isa.SpmmOp)
    def run_spmm(self, interpreter: Interpreter, op: isa.SpmmOp, args: tuple[Any, ...]):
        p, v, mask, acc = args
        structure = self.machine.structure(op.mask, mask)
        self.machine.spmm(op, structure)
        if op.band[0] == 0:
            self.machine.count_work(structure, op.rhs.type.get_shape()[-1])  # type: ignore[union-attr]
        if not self.machine.execute:
            return (None,)
        return (spmm_values(p, v, acc, structure, op.band, op.is_dia),)

    @impl(isa.ReadOp)
    def run_read(self, interpreter: Interpreter, op: isa.ReadOp, args: tuple[Any, ...]):
        self.machine.read(op)
        (acc,) = args
        if not self.machine.execute:
            return (None,)
        return (finish(np.asarray(acc), dtype_of(op.result.type)),)
