"""Executes the BitWave ISA on numpy values and accounts its cycles on the Timeline.

Units: `dram` (one port, `dram_bytes_per_cycle`), `pe_array` (the R x C PEs of L
lanes). A weight row tile first brings its compressed weights (column masks + kept
columns) from DRAM into the weight SRAM, then runs on the array; the next tile's
weights load while this one computes (double buffering: a load waits for the compute
two tiles back). The activations come from DRAM once (or before every tile with
`reload_act`); the result goes back at the end. Equations: backends/bitwave/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from sparsec.backends.bitwave import isa, model
from sparsec.backends.bitwave.lowering import weight_codes
from sparsec.backends.bitwave.spec import BitwaveSpec
from sparsec.backends.common.backend import Machine, dtype_of
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.dialects.formats import QuantizedAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors.datastore import current_store, enclosing_kernel, store_key
from sparsec.tensors.dtypes import round_to_dtype

UNITS = ("dram", "pe_array")
ACT_QMAX = 127


@dataclass
class BitWeights:
    """A weight as the weight SRAM holds it: its bit columns, the signed bit planes
    rebuilt from the kept columns only, and its scales."""

    codes: np.ndarray
    masks: np.ndarray          # (N, K/G) 8-bit masks of the storage groups
    group: int
    planes: np.ndarray | None  # (7, K, N) float64: sign(w) * bit of 2^(6-c), c = 0..6
    scale: np.ndarray          # (N,) or (1,)

    def tile_bytes(self, n0: int, n1: int) -> int:
        """Compressed bytes of channels n0:n1: 8 mask bits per group + G bits per kept
        column (sign included)."""
        masks = self.masks[n0:n1]
        bits = bc.MASK_BITS * masks.size + self.group * int(bc.popcount(masks).sum())
        return math.ceil(bits / 8)


def signed_planes(packed_codes: np.ndarray, masks: np.ndarray, columns: np.ndarray,
                  group: int, shape: tuple[int, int]) -> np.ndarray:
    """(7, K, N) float64 planes of the magnitude columns, negated where the sign bit is
    set, rebuilt from the stored mask and kept columns (absent columns are zero)."""
    channels, groups = masks.shape
    shifts = np.arange(bc.WORD_BITS - 1, -1, -1)
    kept = ((masks[..., None].astype(np.int64) >> shifts) & 1).astype(bool)
    bits = np.zeros((channels, groups, bc.WORD_BITS, group), dtype=np.float64)
    bits[kept] = columns.reshape(-1, group)
    sign = 1.0 - 2.0 * bits[:, :, 0, :]                          # (N, groups, G)
    magnitude = bits[:, :, 1:, :] * sign[:, :, None, :]          # (N, groups, 7, G)
    k = shape[0]
    planes = magnitude.transpose(2, 1, 3, 0).reshape(bc.MAGNITUDE_BITS, groups * group, channels)
    return np.ascontiguousarray(planes[:, :k, :])


class BitwaveMachine(Machine):
    """One run of a BitWave program: Timeline, DRAM/SRAM counters, cycles and energy."""

    spec: BitwaveSpec

    def __init__(self, spec: BitwaveSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.dram = MemoryLevel("dram", None, spec.dram_bytes_per_cycle, spec.dram_pj_per_byte,
                                spec.dram_pj_per_byte)
        self.w_sram = MemoryLevel("w_sram", spec.w_sram_kb * 1024, None, spec.sram_pj_per_byte,
                                  spec.sram_pj_per_byte)
        self.i_sram = MemoryLevel("i_sram", spec.i_sram_kb * 1024, None, spec.sram_pj_per_byte,
                                  spec.sram_pj_per_byte)
        self.computes: list[Event] = []
        self.act_event: Event | None = None
        self.compute_cycles = 0
        self.dense_macs = 0
        self.effectual_macs = 0
        self.layers: list[dict[str, Any]] = []
        self.int_exact: list[bool] = []

    def functions(self) -> InterpreterFunctions:
        return BitwaveFunctions(self)

    # -- accounting ------------------------------------------------------------------

    def load_tile(self, weights: BitWeights, op: isa.TileOp, m: int, k: int) -> Event:
        """DRAM -> SRAM for one row tile: its compressed weights (and the activations)."""
        n0, n1 = op.channel_range()
        w_bytes = weights.tile_bytes(n0, n1)
        self.w_sram.require_fits(2 * w_bytes, f"two row tiles of weights (channels {n0}:{n1}, "
                                 "double-buffered)")
        cycles = self.dram.read(w_bytes)
        self.w_sram.write(w_bytes)
        first = op.index.value.data == 0
        if first or op.reload_act is not None:
            self.i_sram.require_fits(min(m * k, self.i_sram.capacity_bytes or m * k),
                                     "the activation block")
            cycles += self.dram.read(m * k)
            self.i_sram.write(m * k)
        previous = self.computes[-2] if len(self.computes) >= 2 else None
        return self.timeline.issue("dram", cycles, after=[previous])

    def run_tile(self, weights: BitWeights, op: isa.TileOp, m: int, loaded: Event) -> int:
        """Compute cycles of one row tile from its real bit columns; SRAM reads."""
        lanes, rows, cols = op.pe_shape()
        n0, n1 = op.channel_range()
        kept = model.kept_columns(weights.codes[:, n0:n1], lanes)
        per_block = int(model.row_tile_sums(kept, rows, self.spec.mode).sum())
        blocks = math.ceil(m / cols)
        cycles = per_block * blocks
        self.w_sram.read(math.ceil(cycles * (n1 - n0) * lanes / 8))
        self.i_sram.read(blocks * kept.shape[1] * min(cols, m) * lanes)
        event = self.timeline.issue("pe_array", cycles, after=[loaded])
        self.computes.append(event)
        self.compute_cycles += cycles
        return cycles

    def report(self, kernel: str) -> Report:
        spec = self.spec
        memories = [self.dram, self.w_sram, self.i_sram]
        energy = {mem.name: mem.energy_pj for mem in memories}
        energy["pe_array"] = spec.pe_cycle_pj() * self.compute_cycles
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=self.timeline.cycles,
            stall_cycles=self.timeline.cycles - self.compute_cycles,
            units=self.timeline.summary(),
            bytes={mem.name: mem.summary() for mem in memories},
            macs={"effectual": self.effectual_macs, "dense": self.dense_macs},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "compute_cycles": self.compute_cycles,
                "mode": spec.mode,
                "layers": self.layers,
                "int_exact": all(self.int_exact) if self.int_exact else None,
                "energy_breakdown_pj": energy,
            },
        )


def _weight_scale(op: ParamOp) -> np.ndarray:
    store = current_store()
    key = store_key(enclosing_kernel(op), op.sym_name)
    return np.asarray(store.get(f"{key}#scale"), dtype=np.float64).ravel()


def activation_codes(values: np.ndarray, ttype: Any) -> tuple[np.ndarray, float]:
    """INT8 codes and scale of activations that arrived quantized per tensor."""
    encoding = ttype.encoding
    assert isinstance(encoding, QuantizedAttr)
    scale = encoding.scale_value
    qmax = (1 << (encoding.bit_width - 1)) - 1
    if scale is None:
        peak = float(np.max(np.abs(values), initial=0.0))
        scale = peak / qmax if peak > 0 else 1.0
    codes = np.rint(values.astype(np.float64) / scale)
    return np.clip(codes, -qmax - 1, qmax), scale


@register_impls
class BitwaveFunctions(InterpreterFunctions):
    """numpy semantics of the BitWave ISA, with accounting by the machine."""

    def __init__(self, machine: BitwaveMachine):
        self.machine = machine

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        """Exact integer sums (|sum| < 2^53) held in float64, whatever the result type."""
        if not self.machine.execute:
            return (None,)
        return (np.zeros(tuple(op.result.type.get_shape()), dtype=np.float64),)  # type: ignore[union-attr]

    @impl(isa.EncodeOp)
    def run_encode(self, interpreter: Interpreter, op: isa.EncodeOp, args: tuple[Any, ...]):
        owner = op.source.owner
        assert isinstance(owner, ParamOp)
        layout = isa.bitcolumn_layout(op.source.type)
        assert layout is not None
        codes = weight_codes(owner)
        packed = bc.pack_columns(codes, layout.group_size, 0)
        planes = None
        if self.machine.execute:
            planes = signed_planes(codes, packed.masks, packed.columns, layout.group_size,
                                   codes.shape)
        k, n = codes.shape
        machine = self.machine
        machine.layers.append({
            "weight": owner.sym_name, "k": k, "n": n, "group": layout.group_size,
            "storage_bits": packed.bits, "dense_bits": 8 * codes.size,
            "kept_mag_cols_mean": float(bc.kept_magnitude_columns(packed.masks).mean()),
            "zero_col_fraction": float(bc.zero_columns(packed.masks).mean() / bc.WORD_BITS),
        })
        return (BitWeights(codes, packed.masks, layout.group_size, planes, _weight_scale(owner)),)

    @impl(isa.TileOp)
    def run_tile(self, interpreter: Interpreter, op: isa.TileOp, args: tuple[Any, ...]):
        x, weights, acc = args
        machine = self.machine
        m, k = op.act.type.get_shape()  # type: ignore[union-attr]
        n0, n1 = op.channel_range()
        loaded = machine.load_tile(weights, op, m, k)
        cycles = machine.run_tile(weights, op, m, loaded)
        machine.dense_macs += m * k * (n1 - n0)
        machine.effectual_macs += m * int(np.count_nonzero(weights.codes[:, n0:n1]))
        layer = machine.layers[-1]
        layer["shape"] = "x".join(str(v) for v in op.pe_shape())
        layer["compute_cycles"] = layer.get("compute_cycles", 0) + cycles
        if not machine.execute:
            return (None,)
        codes, _ = activation_codes(x, op.act.type)
        out = acc.copy()
        block = np.zeros((m, n1 - n0), dtype=np.float64)
        for column in range(bc.MAGNITUDE_BITS):          # 7 bit planes, 2^6 .. 2^0
            plane = weights.planes[column, :, n0:n1]
            if plane.any():
                block += float(1 << (bc.MAGNITUDE_BITS - 1 - column)) * (codes @ plane)
        out[:, n0:n1] += block.astype(out.dtype)
        return (out,)

    @impl(isa.StoreOp)
    def run_store(self, interpreter: Interpreter, op: isa.StoreOp, args: tuple[Any, ...]):
        acc, weights, x = args
        machine = self.machine
        m, n = op.result.type.get_shape()  # type: ignore[union-attr]
        cycles = machine.dram.write(m * n * machine.spec.out_bytes)
        machine.timeline.issue("dram", cycles, after=machine.computes[-1:])
        if not machine.execute:
            return (None,)
        codes, act_scale = activation_codes(x, op.act.type)
        exact = codes.astype(np.int64) @ weights.codes.astype(np.int64)
        machine.int_exact.append(bool(np.array_equal(exact, acc.astype(np.int64))))
        values = act_scale * acc.astype(np.float64) * weights.scale[None, :]
        return (round_to_dtype(values, dtype_of(op.result.type)),)
