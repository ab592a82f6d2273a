"""Executes sigma ISA on numpy values and accounts its cycles on the Timeline.

`sigma.pack` really packs the stationary matrix into `#sparsec.bitmap` (compiler/storage.py)
and every `sigma.iteration` computes from that packed form. Each iteration's cycles come
from its real bitmap block through `timing.iteration_cost` (backends/sigma/README.md).
Units: `controller` (configuring the DN and FAN, one cycle per iteration),
`distribution` (the DN read ports: weights, streaming packages, partial sums) and
`reduction` (multipliers, FAN, collection bus and write FIFO until the iteration's last
output is stored). Iterations do not overlap: STONNE's controller configures the next
one only once every output of the current one is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from sparsec.backends.common.backend import Machine, dtype_of
from sparsec.backends.common.isa import zero_accumulator
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.backends.sigma import isa, timing
from sparsec.backends.sigma.spec import SigmaSpec
from sparsec.dialects.formats import BitmapAttr
from sparsec.tensors.dtypes import ELEMENT_BYTES
from sparsec.tensors.numerics import (
    effectual_macs,
    finish,
    matmul_accumulate,
)
from sparsec.tensors.storage import Packed, pack

UNITS = ("controller", "distribution", "reduction")


class SigmaMappingError(ValueError):
    """An iteration's vectors no longer fit the multipliers (the data changed since
    lowering)."""


@dataclass
class PackedStationary:
    """The stationary matrix S (vectors x K) in bitmap form, plus what the controller
    derives from it: the padded bitmap it maps and each vector's offset into `values`."""

    packed: Packed
    bits: np.ndarray
    offsets: np.ndarray

    def block(self, v0: int, v1: int, k0: int, k1: int) -> np.ndarray:
        """S[v0:v1, k0:k1] rebuilt from the bitmap and the packed nonzero values."""
        present = self.packed.buffers["bitmap"].reshape(self.bits.shape)[v0:v1]
        rows = np.zeros(present.shape, dtype=self.packed.buffers["values"].dtype)
        rows[present] = self.packed.buffers["values"][self.offsets[v0]:self.offsets[v1]]
        return rows[:, k0:k1]


def _keeps_orientation(op: isa.IterationOp) -> bool:
    """Whether the streaming operand as stored is already n_str x K."""
    return (op.transpose_streaming is not None) == (op.stationary.data == "a")


class SigmaMachine(Machine):
    """One run of a sigma program: Timeline, global-buffer counters, MACs and energy."""

    spec: SigmaSpec

    def __init__(self, spec: SigmaSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.sram = MemoryLevel("global_buffer", None, None, spec.sram_pj_per_byte,
                                spec.sram_pj_per_byte)
        self.dram = MemoryLevel("dram", None, None, spec.dram_pj_per_byte, spec.dram_pj_per_byte)
        """Boundary traffic: the bitmap-compressed stationary operand and the dense streaming
        operand are read once into the global buffer, the result written once (no time:
        STONNE's SIGMA, which the cycles follow, assumes the operands on chip)."""
        self.last: Event | None = None
        self.effectual_macs = 0
        self.dense_macs = 0
        self.products = 0
        self.iterations = 0
        self.vns = 0
        self.folds = 0
        self.multiplier_cycles = 0
        self.distribution_cycles = 0
        self.gemms: list[dict[str, Any]] = []

    def functions(self) -> InterpreterFunctions:
        return SigmaFunctions(self)

    # -- accounting, one method per instruction ------------------------------------------

    def pack(self, op: isa.PackOp, source: np.ndarray) -> PackedStationary:
        """Bitmap-compress S (offline, as STONNE receives the bitmap: no cycles)."""
        matrix = source.T if op.transpose is not None else source
        value_bits = 8 * ELEMENT_BYTES[dtype_of(op.source.type)]
        packed = pack(np.ascontiguousarray(matrix), BitmapAttr("row"), value_bits=value_bits)
        nonzero = packed.buffers["bitmap"].reshape(matrix.shape)
        offsets = np.concatenate(([0], np.cumsum(nonzero.sum(axis=1))))
        bits = timing.stationary_bits(nonzero, self.spec.min_cluster)
        self.dram.read(-(-packed.bits // 8))
        self.gemms.append({"stationary": op.stationary.data, "vectors": matrix.shape[0],
                           "k": matrix.shape[1], "bitmap_bits": packed.bits,
                           "mapped_ones": int(bits.sum())})
        return PackedStationary(packed, bits, offsets)

    def iteration(self, op: isa.IterationOp, stationary: PackedStationary) -> None:
        """One stationary iteration on the Timeline (README, "One iteration")."""
        (v0, v1), (k0, k1) = op.ranges()
        n_str, _ = op.streaming_matrix_shape()
        block = stationary.bits[v0:v1, k0:k1]
        fold = op.fold is not None
        used = int(block.sum()) + int(fold) * int(block.any(axis=1).sum())
        if used > self.spec.multipliers or (fold and v1 - v0 != 1):
            raise SigmaMappingError(
                f"sigma.iteration {op.index.value.data}: vectors {v0}:{v1} (k {k0}:{k1}) need "
                f"{used} multipliers but the array has {self.spec.multipliers}; the "
                "stationary operand's nonzero pattern changed since lowering: recompile")
        cost = timing.iteration_cost(block, fold, n_str, self.spec)
        control = self.timeline.issue("controller", 1, after=[self.last])
        self.timeline.issue("distribution", cost.distribution_cycles, after=[control])
        self.last = self.timeline.issue("reduction", cost.cycles - 1, after=[control])
        word = self.spec.word_bytes
        self.sram.read((cost.weight_reads + cost.stream_reads + cost.psum_reads) * word)
        self.sram.write(cost.output_writes * word)
        self.products += cost.products
        self.iterations += 1
        self.vns += cost.vns
        self.folds += int(fold)
        self.multiplier_cycles += cost.multipliers_used * n_str
        self.distribution_cycles += cost.distribution_cycles
        self.dense_macs += (v1 - v0) * (k1 - k0) * n_str

    def count_effectual(self, stationary: PackedStationary, streaming: np.ndarray) -> None:
        """Useful MACs of the GEMM (nonzero times nonzero), from the real zeros."""
        nonzero = stationary.packed.buffers["bitmap"].reshape(stationary.bits.shape)
        self.effectual_macs += effectual_macs(nonzero, (streaming != 0).T)
        self.dram.read(streaming.size * self.spec.word_bytes)

    def store(self, op: isa.StoreOp) -> None:
        """The finished result leaves for DRAM."""
        self.dram.write(math.prod(op.result.type.get_shape()) * ELEMENT_BYTES[dtype_of(op.result.type)])

    def report(self, kernel: str) -> Report:
        spec = self.spec
        span = self.timeline.cycles
        energy = {"global_buffer": self.sram.energy_pj, "dram": self.dram.energy_pj,
                  "macs": self.products * spec.mac_pj}
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=span,
            stall_cycles=max(0, span - self.iterations - self.distribution_cycles),
            units=self.timeline.summary(),
            bytes={"global_buffer": self.sram.summary(), "dram": self.dram.summary()},
            macs={"effectual": self.effectual_macs, "dense": self.dense_macs,
                  "executed": self.products},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "iterations": self.iterations,
                "folded_iterations": self.folds,
                "vns": self.vns,
                "multiplier_utilization": (self.multiplier_cycles / (spec.multipliers * span)
                                           if span else 0.0),
                "distribution_cycles": self.distribution_cycles,
                "gemms": self.gemms,
                "energy_breakdown_pj": energy,
            },
        )


@register_impls
class SigmaFunctions(InterpreterFunctions):
    """numpy semantics of the sigma ISA, with accounting by the machine."""

    def __init__(self, machine: SigmaMachine):
        self.machine = machine

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (zero_accumulator(op, self.machine.execute),)

    @impl(isa.PackOp)
    def run_pack(self, interpreter: Interpreter, op: isa.PackOp, args: tuple[Any, ...]):
        return (self.machine.pack(op, np.asarray(args[0])),)

    @impl(isa.IterationOp)
    def run_iteration(self, interpreter: Interpreter, op: isa.IterationOp,
                      args: tuple[Any, ...]):
        stationary, streaming, acc = args
        self.machine.iteration(op, stationary)
        matrix = np.asarray(streaming)
        matrix = matrix if _keeps_orientation(op) else matrix.T
        if op.index.value.data == 0:
            self.machine.count_effectual(stationary, matrix)
        if not self.machine.execute:
            return (None,)
        (v0, v1), (k0, k1) = op.ranges()
        block = stationary.block(v0, v1, k0, k1)
        partial = matmul_accumulate(block, matrix[:, k0:k1].T, dtype_of(op.streaming.type))
        if op.stationary.data == "a":
            acc[v0:v1, :] += partial
        else:
            acc[:, v0:v1] += partial.T
        return (acc,)

    @impl(isa.StoreOp)
    def run_store(self, interpreter: Interpreter, op: isa.StoreOp, args: tuple[Any, ...]):
        (acc,) = args
        self.machine.store(op)
        if not self.machine.execute:
            return (None,)
        return (finish(acc, dtype_of(op.result.type)),)
