"""Executes bitllm ISA on numpy values and accounts cycles, traffic, energy and every
numerical event (register saturation, spill passes, dropped activations).

Units: `dram` (DRAM <-> SRAM transfers) and `pe_array` (INT-FP tiles, BF16-mode products and
the polynomial nonlinear unit, which uses the same MAC datapath). Equations in
backends/bitllm/README.md, named where they are used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import SSAValue

from sparsec.backends.bitllm import isa
from sparsec.backends.bitllm import nonlinear as nl
from sparsec.backends.bitllm.arith import GemmStats
from sparsec.backends.bitllm.numerics import fp_mode_matmul, int_fp_matmul, nonlinear
from sparsec.backends.bitllm.spec import BitllmSpec
from sparsec.backends.common.backend import Machine, dtype_of
from sparsec.backends.common.block_reference import (
    evaluate,
    kv_compress_values,
    plain_properties,
    prune_tokens_values,
    run_activation_prune,
)
from sparsec.backends.common.isa import zero_accumulator
from sparsec.backends.common.kv import empty_tally, kv_read
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors.datastore import DataStoreError, current_store, enclosing_kernel, store_key
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.runtime_pruning import token_decide_ops

UNITS = ("dram", "pe_array")


def _shape(value_type: Any) -> tuple[int, ...]:
    return tuple(value_type.get_shape())


def _elements(value_type: Any) -> int:
    return math.prod(_shape(value_type))


def tile_cycles(passes: np.ndarray, folds: int, spec: BitllmSpec) -> int:
    """Cycles of one GEMM tile: per column fold, each PE row takes one cycle per
    (row, group) pass; `lockstep` waits for the slowest row at every group,
    `queue` (BMSR's PE queues, A) lets rows run ahead: max over rows of their sum.
        lockstep: folds * (sum_g max_m passes[m, g] + fill)
        queue:    folds * (max_m sum_g passes[m, g] + fill)"""
    if passes.size == 0:
        return 0
    if spec.scheduler == "lockstep":
        per_fold = int(passes.max(axis=0).sum())
    else:
        per_fold = int(passes.sum(axis=1).max())
    return folds * (per_fold + spec.fill_cycles)


def weight_codes(op: isa.GemmOp) -> tuple[np.ndarray, np.ndarray]:
    """(codes [K, N], scale [N]) of the gemm's weight from the DataStore (`#q`, `#scale`),
    or the i8 values themselves."""
    owner = op.rhs.owner
    assert isinstance(owner, ParamOp)
    key = store_key(enclosing_kernel(op), owner.sym_name)
    store = current_store()
    transposed = op.transpose_b is not None
    if f"{key}#q" not in store:
        values = store.get(key).astype(np.int64)
        codes = values.T if transposed else values
        return codes, np.ones(codes.shape[1], dtype=np.float32)
    codes = store.get(f"{key}#q").astype(np.int64)
    codes = codes.T if transposed else codes
    scale = store.get(f"{key}#scale").astype(np.float32).ravel()
    if scale.size == 1:
        scale = np.full(codes.shape[1], scale[0], dtype=np.float32)
    if scale.size != codes.shape[1]:
        raise DataStoreError(f"bitllm.gemm: {key} has {scale.size} scales for "
                             f"{codes.shape[1]} output columns; quantize per output channel")
    return codes, scale


class BitllmMachine(Machine):
    """One run of a bitllm program: Timeline, SRAM/DRAM counters, MACs and events."""

    spec: BitllmSpec

    def __init__(self, spec: BitllmSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.dram = MemoryLevel("dram", None, spec.dram_bytes_per_cycle,
                                spec.dram_pj_per_byte, spec.dram_pj_per_byte)
        self.sram = MemoryLevel("sram", spec.sram_kb * 1024, None, spec.sram_pj_per_byte,
                                spec.sram_pj_per_byte)
        self.ready: dict[SSAValue, Event] = {}
        self.cfg = spec.int_fp_config()
        self.stats = GemmStats()
        self.dense_macs = 0
        self.effectual_macs = 0
        self.fp_macs = 0
        self.cluster_results = 0
        self.nlu_ops = 0
        self.nlu_kinds: dict[str, dict[str, int]] = {}
        self.gemm_cycles = 0
        self.codes: dict[SSAValue, tuple[np.ndarray, np.ndarray]] = {}
        self.last_tiles: list[Event] = []
        self.kv_cache: dict[str, int] = empty_tally()
        self.kv_dequant = {"instructions": 0, "cycles": 0, "ops": 0}
        self.runtime_pruning: dict[str, int] = {"activations": 0, "pruned": 0, "decide_ops": 0,
                                                "skipped_products": 0, "dense_products": 0,
                                                "cycles": 0, "tokens": 0, "tokens_pruned": 0}

    def functions(self) -> InterpreterFunctions:
        return BitllmFunctions(self)

    # -- accounting ----------------------------------------------------------------------------

    def load(self, op: isa.LoadOp) -> None:
        """DRAM -> SRAM at dram_gbps: ceil(bytes / (GB/s / GHz)) cycles."""
        nbytes = op.nbytes.value.data
        cycles = self.dram.read(nbytes)
        self.sram.write(nbytes)
        self.ready[op.source] = self.timeline.issue("dram", cycles)

    def gemm_tile(self, op: isa.GemmOp, passes: np.ndarray | None, k: int) -> Event:
        """One INT-FP tile: tile_cycles over ceil(tile_n / pe_cols) column folds. SRAM
        holds the tile's weights (k x n codes) and activations (rows x k BF16)."""
        (m0, m1), (n0, n1) = op.tile()
        spec = self.spec
        folds = math.ceil((n1 - n0) / spec.pe_cols)
        groups = math.ceil(k / spec.group)
        if passes is None:  # not executed: one pass per (row, group)
            passes = np.ones((m1 - m0, groups), dtype=np.int64)
        cycles = tile_cycles(passes, folds, spec)
        weight_bytes = math.ceil(k * (n1 - n0) * self._weight_bits(op) / 8)
        act_bytes = (m1 - m0) * k * 2
        self.sram.require_fits(weight_bytes + act_bytes + (m1 - m0) * (n1 - n0) * 4,
                               f"bitllm.gemm tile m={m0}:{m1} n={n0}:{n1}")
        self.sram.read(weight_bytes * math.ceil((m1 - m0) / spec.pe_rows) + act_bytes * folds)
        self.dense_macs += (m1 - m0) * (n1 - n0) * k
        self.gemm_cycles += cycles
        after = [self.ready.get(op.lhs), self.ready.get(op.rhs)]
        event = self.timeline.issue("pe_array", cycles, after=after)
        self.last_tiles.append(event)
        return event

    def _weight_bits(self, op: isa.GemmOp) -> int:
        from sparsec.backends.bitllm.lowering import weight_bits

        return weight_bits(op.rhs.type) or 8  # type: ignore[arg-type]

    def fgemm(self, op: isa.FgemmOp, kept: int | None = None) -> Event:
        """A BF16-mode head product: PEs do group / fp_mode_ratio MACs per cycle:
        ceil(m / pe_rows) ceil(n / pe_cols) ceil(k / (group / ratio)) + fill. With keep
        flags, the token dimension (n of the scores, k of P V) is the `kept` count."""
        spec = self.spec
        a = _shape(op.lhs.type)[-2:]
        b = _shape(op.rhs.type)[-2:]
        m, k = a
        n = b[0] if op.transpose_b is not None else b[1]
        if kept is not None:
            n, k = (kept, k) if op.transpose_b is not None else (n, kept)
        lanes = spec.group // spec.fp_mode_ratio
        cycles = (math.ceil(m / spec.pe_rows) * math.ceil(n / spec.pe_cols)
                  * (math.ceil(k / lanes) + spec.fill_cycles))
        self.fp_macs += m * n * k
        self.sram.read((m * k + k * n) * 2)
        after = [self.ready.get(op.lhs), self.ready.get(op.rhs), self.ready.get(op.acc),
                 *map(self.ready.get, op.keep)]
        event = self.timeline.issue("pe_array", cycles, after=after)
        self.ready[op.result] = event
        return event

    def nonlinear_work(self, op: isa.NonlinearOp, kept: int | None = None) -> None:
        """Polynomial unit on the MAC datapath: ceil(ops / lanes) cycles, ops from
        nonlinear.block_work (Horner p MACs + range reduction per function); a softmax
        with keep flags works on the `kept` keys of each row."""
        kind = op.kind.data
        shape = _shape(op.result.type)
        if kept is not None:
            shape = (*shape[:-1], kept)
        work = nl.block_work(kind, shape, op.order.value.data)
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        ops = work.elementwise * math.prod(shape) + work.per_row * rows
        cycles = math.ceil(ops / self.spec.lanes)
        tally = self.nlu_kinds.setdefault(kind, {"instructions": 0, "cycles": 0, "ops": 0})
        tally["instructions"] += 1
        tally["cycles"] += cycles
        tally["ops"] += ops
        self.nlu_ops += ops
        nbytes = sum(_elements(v.type) for v in op.inputs) * 2 + _elements(op.result.type) * 2
        self.sram.read(nbytes)
        self.ready[op.result] = self.timeline.issue(
            "pe_array", cycles, after=[self.ready.get(v) for v in op.inputs])
        self.store_if_output(op.result, self.ready[op.result])

    def prune_tokens(self, op: isa.PruneTokensOp, keep: np.ndarray | None) -> None:
        """Token pruning's decision on the nonlinear lanes: (heads + 2) operations per
        cached token, ceil(ops / lanes) cycles, `nlu_pj` each (counted with the
        activation pruner's in details.runtime_pruning)."""
        cached = _shape(op.state.type)[1]
        ops = token_decide_ops(op.heads.value.data, cached)
        cycles = math.ceil(ops / self.spec.lanes)
        tally = self.runtime_pruning
        tally["decide_ops"] += ops
        tally["cycles"] += cycles
        tally["tokens"] += _shape(op.result.type)[0]
        if keep is not None:
            tally["tokens_pruned"] += int(np.sum(keep == 0))
        self.sram.read(3 * cached * 4)
        self.ready[op.result] = self.timeline.issue("pe_array", cycles,
                                                    after=[self.ready.get(op.state)])

    def kv_load(self, op: isa.KvLoadOp, alive: np.ndarray | None = None) -> None:
        """A KV-cache tensor read as its policy stores it (backends/common/kv.py): its
        ceil(stored bits / 8) bytes DRAM -> SRAM at dram_gbps, then kv_dequant_ops FP
        multiply-adds per integer element on the nonlinear lanes, ceil(ops / lanes)
        cycles on the PE array's datapath, each dequantized element written to the SRAM
        as BF16 (2 bytes). fp16 tiers are read as they are. With keep flags (`alive`,
        runtime token pruning) only the kept tokens are read and dequantized."""
        read = kv_read(op, alive)
        read.add_to(self.kv_cache)
        dram = self.dram.read(read.stored_bytes)
        self.sram.write(read.stored_bytes)
        loaded = self.timeline.issue("dram", dram, after=[self.ready.get(op.input),
                                                          *map(self.ready.get, op.keep)])
        ops = self.spec.kv_dequant_ops * read.dequantized_elements
        cycles = math.ceil(ops / self.spec.lanes)
        self.sram.read(read.stored_bytes)
        self.sram.write(2 * read.dequantized_elements)
        self.kv_dequant["instructions"] += 1
        self.kv_dequant["cycles"] += cycles
        self.kv_dequant["ops"] += ops
        self.ready[op.result] = self.timeline.issue("pe_array", cycles, after=[loaded])

    def append_to_cache(self, op: isa.MoveOp) -> bool:
        """A concat that appends to a DRAM-resident KV cache (read by kv_load): the new rows
        are written to DRAM (2 bytes per element); True when `op` is one."""
        if op.kind.data != "concat" or not op.result.uses or not all(
                isinstance(use.operation, isa.KvLoadOp) for use in op.result.uses):
            return False
        nbytes = _elements(op.inputs[1].type) * 2
        after = [self.ready.get(v) for v in op.inputs]
        self.timeline.issue("dram", self.dram.write(nbytes), after=after)
        self.ready[op.result] = self.timeline.issue("pe_array", 0, after=after)
        return True

    def prune(self, op: isa.PruneOp, result: Any | None) -> None:
        """Activation pruning on the nonlinear lanes: its deciding operations (counted by
        the semantics; from the shape when values are not executed), ceil(ops / lanes)
        cycles; skipped products are tallied in details.runtime_pruning."""
        m, k = _shape(op.input.type)
        decide = m * k * (1 + (op.estimate.data == "abs_w") + (op.relative is not None))
        tally = self.runtime_pruning
        if result is not None:
            decide = result.decide_ops
            tally["activations"] += m * k
            tally["pruned"] += int(m * k - np.count_nonzero(result.kept))
            tally["skipped_products"] += result.skipped_products
            tally["dense_products"] += result.dense_products
        cycles = math.ceil(decide / self.spec.lanes)
        tally["decide_ops"] += decide
        tally["cycles"] += cycles
        self.sram.read(m * k * 2)
        self.sram.write(m * k * 2)
        self.ready[op.result] = self.timeline.issue("pe_array", cycles,
                                                    after=[self.ready.get(op.input)])

    def store_if_output(self, result: SSAValue, event: Event | None) -> None:
        """A kernel output leaves for DRAM (2 bytes per BF16 element); other results stay
        in SRAM for the next instruction."""
        if not any(isinstance(use.operation, func.ReturnOp) for use in result.uses):
            return
        nbytes = _elements(result.type) * 2
        self.sram.read(nbytes)
        self.ready[result] = self.timeline.issue("dram", self.dram.write(nbytes),
                                                 after=[event])

    def writeback(self, op: isa.WritebackOp, events: list[Event]) -> None:
        """Round the accumulator into the SRAM (and DRAM when it is a kernel output)."""
        self.sram.write(_elements(op.result.type) * 2)
        self.ready[op.result] = max(events, key=lambda e: e.end) if events else \
            self.timeline.issue("pe_array", 0)
        self.store_if_output(op.result, self.ready[op.result])

    def report(self, kernel: str) -> Report:
        spec = self.spec
        energy = {
            "dram": self.dram.energy_pj,
            "sram": self.sram.energy_pj,
            "int_fp_macs": self.effectual_macs * spec.mac_pj,
            "fp_accumulate": self.cluster_results * spec.fp_add_pj,
            "fp_mode_macs": self.fp_macs * spec.mac_pj * spec.fp_mode_ratio,
            "nonlinear": self.nlu_ops * spec.nlu_pj,
            "kv_dequant": self.kv_dequant["ops"] * spec.nlu_pj,
            "runtime_pruning": self.runtime_pruning["decide_ops"] * spec.nlu_pj,
        }
        array = self.timeline.units["pe_array"]
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=self.timeline.cycles,
            stall_cycles=array.waiting,
            units=self.timeline.summary(),
            bytes={m.name: m.summary() for m in (self.dram, self.sram)},
            macs={"effectual": self.effectual_macs + self.fp_macs,
                  "dense": self.dense_macs + self.fp_macs},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "gemm_cycles": self.gemm_cycles,
                "int_fp_events": self.stats.as_dict(),
                "register_bits": self.cfg.register_bits,
                "nonlinear": self.nlu_kinds,
                "nonlinear_ops": self.nlu_ops,
                "fp_mode_macs": self.fp_macs,
                "peak_tops": spec.peak_tops,
                "energy_breakdown_pj": energy,
                "kv_cache": self.kv_cache,
                "kv_dequant": self.kv_dequant,
                "runtime_pruning": self.runtime_pruning,
            },
        )


def _kept(keep: tuple[Any, ...]) -> int | None:
    """Kept tokens of an optional keep operand's values (None: no flags, or not executed:
    every token counts)."""
    if not keep or keep[0] is None:
        return None
    return int(np.count_nonzero(keep[0]))


def _per_output_events(stats: GemmStats) -> GemmStats:
    """A tile's events that belong to its outputs alone: clustering, passes and drops are
    per (row, group) and were counted with the row's first column tile."""
    return GemmStats(register_events=stats.register_events,
                     register_error_lsb=stats.register_error_lsb,
                     inexact_conversions=stats.inexact_conversions)


@register_impls
class BitllmFunctions(InterpreterFunctions):
    """numpy semantics of the bitllm ISA, with accounting by the machine."""

    def __init__(self, machine: BitllmMachine):
        self.machine = machine
        self.pending: dict[SSAValue, list[Event]] = {}

    def _chain(self, op: Any, event: Event) -> None:
        self.pending[op.result] = [*self.pending.pop(op.acc, []), event]

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (zero_accumulator(op, self.machine.execute),)

    @impl(isa.LoadOp)
    def run_load(self, interpreter: Interpreter, op: isa.LoadOp, args: tuple[Any, ...]):
        self.machine.load(op)
        return ()

    @impl(isa.GemmOp)
    def run_gemm(self, interpreter: Interpreter, op: isa.GemmOp, args: tuple[Any, ...]):
        machine = self.machine
        lhs, _, acc = args
        (m0, m1), (n0, n1) = op.tile()
        k = _shape(op.lhs.type)[-1]
        passes = None
        if machine.execute:
            if op.rhs not in machine.codes:
                machine.codes[op.rhs] = weight_codes(op)
            codes, scale = machine.codes[op.rhs]
            y, stats = int_fp_matmul(lhs[m0:m1], codes[:, n0:n1], scale[n0:n1], machine.cfg)
            acc[m0:m1, n0:n1] = y
            machine.cluster_results += stats.clusters * (n1 - n0)
            machine.stats.merge(stats if n0 == 0 else _per_output_events(stats))
            machine.effectual_macs += int(np.count_nonzero(lhs[m0:m1])) * (n1 - n0)
            passes = stats.passes_per_row_group
        self._chain(op, machine.gemm_tile(op, passes, k))
        return (acc,)

    @impl(isa.FgemmOp)
    def run_fgemm(self, interpreter: Interpreter, op: isa.FgemmOp, args: tuple[Any, ...]):
        lhs, rhs, acc = args[:3]
        self._chain(op, self.machine.fgemm(op, _kept(args[3:])))
        if not self.machine.execute:
            return (None,)
        b = rhs[op.rhs_head.value.data]
        b = b.T if op.transpose_b is not None else b
        acc[op.head.value.data] = fp_mode_matmul(lhs[op.head.value.data], b)
        return (acc,)

    @impl(isa.WritebackOp)
    def run_writeback(self, interpreter: Interpreter, op: isa.WritebackOp,
                      args: tuple[Any, ...]):
        self.machine.writeback(op, self.pending.pop(op.acc, []))
        if not self.machine.execute:
            return (None,)
        return (round_to_dtype(args[0], dtype_of(op.result.type)),)

    @impl(isa.NonlinearOp)
    def run_nonlinear(self, interpreter: Interpreter, op: isa.NonlinearOp,
                      args: tuple[Any, ...]):
        kept = _kept(args[1:]) if op.kind.data == "softmax" else None
        self.machine.nonlinear_work(op, kept)
        if not self.machine.execute:
            return (None,)
        props = {k: v for k, v in plain_properties(op).items() if k not in ("kind", "order")}
        return (nonlinear(op.kind.data, list(args), props, op.order.value.data,
                          dtype_of(op.result.type)),)

    @impl(isa.KvLoadOp)
    def run_kv_load(self, interpreter: Interpreter, op: isa.KvLoadOp, args: tuple[Any, ...]):
        alive = args[1] if len(args) > 1 and args[1] is not None else None
        self.machine.kv_load(op, alive)
        if not self.machine.execute:
            return (None,)
        # Pruned tokens are not read: their (unread) values are never used, the attention
        # masks them; the values of the kept ones are the policy's.
        return (kv_compress_values(op, args[0], dtype_of(op.result.type)),)

    @impl(isa.PruneTokensOp)
    def run_prune_tokens(self, interpreter: Interpreter, op: isa.PruneTokensOp,
                         args: tuple[Any, ...]):
        if not self.machine.execute:
            self.machine.prune_tokens(op, None)
            return (None,)
        keep = prune_tokens_values(op, args[0], dtype_of(op.result.type))
        self.machine.prune_tokens(op, keep)
        return (keep,)

    @impl(isa.PruneOp)
    def run_prune(self, interpreter: Interpreter, op: isa.PruneOp, args: tuple[Any, ...]):
        return run_activation_prune(self.machine, op, args)

    @impl(isa.MoveOp)
    def run_move(self, interpreter: Interpreter, op: isa.MoveOp, args: tuple[Any, ...]):
        machine = self.machine
        if not machine.append_to_cache(op):
            machine.ready[op.result] = machine.timeline.issue(
                "pe_array", 0, after=[machine.ready.get(v) for v in op.inputs])
            machine.store_if_output(op.result, machine.ready[op.result])
        if not machine.execute:
            return (None,)
        props = {k: v for k, v in plain_properties(op).items() if k != "kind"}
        return (evaluate(op.kind.data, list(args), props, dtype_of(op.result.type)),)

