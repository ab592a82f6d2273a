"""Executes stc ISA on numpy values and accounts its cycles on the Timeline, wave by wave.

The GPU's block scheduler places one thread-block tile on each SM; `sms` consecutive
tiles form a wave, and a wave ends when its slowest tile does (the next tiles take the
freed SMs). Within a tile, K streams through double-buffered shared memory: the loads of
chunk k+1 overlap the mma of chunk k. Units: `hbm` and `l2` (busy = bytes moved at the
whole GPU's bandwidth), `tensor_cores` / `cuda_cores` (busy = math cycles averaged over
all SMs, so utilization is the fraction of peak), `stream` (busy = kernel launches: a
stream runs its kernels in order, each after its launch). Equations:
backends/stc/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls

from sparsec.backends.common.backend import Machine, dtype_of
from sparsec.backends.common.isa import zero_accumulator
from sparsec.backends.common.memory import MemoryLevel
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.timeline import Event, Timeline
from sparsec.backends.stc import isa
from sparsec.backends.stc.lowering import PRUNE, operand_name
from sparsec.backends.stc.spec import CUDA_CORE_DTYPES, StcSpec
from sparsec.tensors.datastore import DataStoreError
from sparsec.tensors.dtypes import ELEMENT_BYTES
from sparsec.tensors.numerics import (
    effectual_macs,
    finish,
    matmul_accumulate,
)

UNITS = ("stream", "hbm", "l2", "tensor_cores", "cuda_cores")
METADATA_BYTES_PER_BLOCK = 0.5
"""Two 2-bit indices per 4-block of the 2:4 operand."""


class NotTwoFourError(DataStoreError):
    """The stored values break the 2:4 format their tensor type declares."""


@dataclass
class TwoFour:
    """A 2:4 operand as the sparse tensor core holds it: S (rows x K, K = the blocked axis)
    as `values` (rows, K/4, 2) and 2-bit `indices` (rows, K/4, 2), K padded to 4.

    `dense` is the operand as stored, kept for counting effectual MACs; tiles compute
    from `values` and `indices` only. Without execution both are None.
    """

    dense: np.ndarray
    axis: int
    k: int
    values: np.ndarray | None = None
    indices: np.ndarray | None = None

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start:stop of S rebuilt from the kept values at their 2-bit positions."""
        assert self.values is not None and self.indices is not None
        values = self.values[start:stop]
        blocks = np.zeros((stop - start, values.shape[1], isa.BLOCK), dtype=values.dtype)
        np.put_along_axis(blocks, self.indices[start:stop].astype(np.intp), values, axis=2)
        return blocks.reshape(stop - start, -1)[:, : self.k]


def _blocks(dense: np.ndarray, axis: int) -> np.ndarray:
    """S = the operand as rows x K, cut into 4-blocks along K (zero-padded)."""
    s = dense if axis == 1 else dense.T
    pad = (-s.shape[1]) % isa.BLOCK
    if pad:
        s = np.pad(s, ((0, 0), (0, pad)))
    return s.reshape(s.shape[0], -1, isa.BLOCK)


def require_two_four(dense: np.ndarray, axis: int, kept: int, name: str) -> np.ndarray:
    """The operand's 4-blocks along `axis`; NotTwoFourError if one has over `kept` nonzeros."""
    blocks = _blocks(dense, axis)
    nnz = np.count_nonzero(blocks, axis=2)
    over = nnz > kept
    if not over.any():
        return blocks
    row, block = (int(v) for v in np.argwhere(over)[0])
    lo, hi = block * isa.BLOCK, min(dense.shape[axis], (block + 1) * isa.BLOCK)
    where = f"{name}[{lo}:{hi}, {row}]" if axis == 0 else f"{name}[{row}, {lo}:{hi}]"
    raise NotTwoFourError(
        f"stc.compress: operand {name} is not {kept}:4 sparse along dim {axis}: the 4-block "
        f"{where} has {int(nnz[row, block])} nonzeros ({int(over.sum())} of {over.size} "
        f"blocks have more than {kept}); run {PRUNE} on it, or use stc{{sparse=false}}")


def compress_two_four(dense: np.ndarray, axis: int, kept: int, name: str,
                      values: bool = True) -> TwoFour:
    """Check and compress an operand whose 4-blocks run along `axis`.

    indices = the nonzero positions of each block, then its zero positions, first two,
    ascending; values = the block's entries at those positions.
    """
    blocks = require_two_four(dense, axis, kept, name)
    k = dense.shape[axis]
    if not values:
        return TwoFour(dense, axis, k)
    key = np.where(blocks != 0, 0, isa.BLOCK) + np.arange(isa.BLOCK, dtype=np.int64)
    indices = np.sort(np.argsort(key, axis=2, kind="stable")[:, :, : isa.KEPT], axis=2)
    kept_values = np.take_along_axis(blocks, indices, axis=2)
    return TwoFour(dense, axis, k, kept_values, indices.astype(np.uint8))


def unpadded_extent(op: isa.TileOp) -> tuple[int, int]:
    """(M, N) of the matmul a tile belongs to: its accumulator's, less the rows (columns)
    stc.pad added to its dense lhs (rhs)."""
    m, n = op.acc.type.get_shape()  # type: ignore[union-attr]
    lhs, rhs = op.lhs.owner, op.rhs.owner
    if isinstance(lhs, isa.PadOp):
        m = lhs.source.type.get_shape()[lhs.dim.value.data]  # type: ignore[union-attr]
    if isinstance(rhs, isa.PadOp):
        n = rhs.source.type.get_shape()[rhs.dim.value.data]  # type: ignore[union-attr]
    return m, n


def _dense(value: Any) -> np.ndarray:
    return value.dense if isinstance(value, TwoFour) else value


@dataclass
class TileLoad:
    """What one tile reads (its A and B panels over the whole K) and writes (its C tile)."""

    a_panel: tuple[str, int]
    a_bytes: float
    b_panel: tuple[str, int]
    b_bytes: float
    c_bytes: int


@dataclass
class GemmState:
    """The GEMM whose tiles are being issued: per-tile constants and the current wave."""

    m: int
    n: int
    k: int
    dtype: str
    sparse: str | None
    tile: tuple[int, int, int]
    k_chunks: int
    tile_math: float
    a_row_bytes: float
    b_col_bytes: float
    out_bytes: int
    unit: str
    wave: list[TileLoad] = field(default_factory=list)
    resident: dict[tuple[str, int], float] = field(default_factory=dict)
    tiles: int = 0
    waves: int = 0
    tail_tiles: int = 0
    first_wave: dict[str, Any] = field(default_factory=dict)
    start: int | None = None


class StcMachine(Machine):
    """One run of an stc program: Timeline, HBM/L2/SMEM counters, MACs and energy."""

    spec: StcSpec

    def __init__(self, spec: StcSpec, execute: bool):  # type: ignore[override]
        super().__init__(spec, execute)
        self.timeline = Timeline.with_units(UNITS)
        self.hbm = MemoryLevel("hbm", None, spec.hbm_bytes_per_clk, spec.hbm_pj_per_byte,
                               spec.hbm_pj_per_byte)
        self.l2 = MemoryLevel("l2", spec.l2_mb * 1024 * 1024, spec.l2_bytes_per_clk,
                              spec.l2_pj_per_byte, spec.l2_pj_per_byte)
        self.smem = MemoryLevel("smem", spec.smem_kb * 1024, None, spec.smem_pj_per_byte,
                                spec.smem_pj_per_byte)
        self.gemm: GemmState | None = None
        self.last: Event | None = None
        self.gemms: list[dict[str, Any]] = []
        self.effectual_macs = 0
        self.dense_macs = 0
        self.executed_macs = 0
        self.mac_energy_pj = 0.0
        self.compute_cycles = 0
        self.stall_cycles = 0
        self.compressed: list[dict[str, Any]] = []
        self.kernels: list[dict[str, Any]] = []
        self.kernel_start = 0

    def functions(self) -> InterpreterFunctions:
        return StcFunctions(self)

    # -- accounting, one method per instruction ------------------------------------------

    def compress(self, op: isa.CompressOp, dense: np.ndarray) -> TwoFour:
        """Check the operand really is 2:4 and compress it (offline, as cuSPARSELt does:
        no cycles)."""
        layout = isa.nm_layout(op.source.type)
        assert layout is not None
        kept, _, axis = layout
        name = operand_name(op.source, "operand")
        compressed = compress_two_four(dense, axis, kept, name, values=self.execute)
        rows = dense.shape[1 - axis]
        blocks = -(-dense.shape[axis] // isa.BLOCK)
        element = ELEMENT_BYTES[dtype_of(op.source.type)]
        self.compressed.append({
            "operand": name, "dense_bytes": dense.size * element,
            "values_bytes": rows * blocks * isa.KEPT * element,
            "metadata_bytes": int(rows * blocks * METADATA_BYTES_PER_BLOCK),
        })
        return compressed

    def launch(self, op: isa.LaunchOp) -> None:
        """Launch the next kernel: after the previous kernel's last instruction, the
        stream spends `launch_cycles`; the kernel's instructions follow it."""
        self._close_kernel()
        cycles = self.spec.launch_cycles
        self.last = self.timeline.issue("stream", cycles, after=[self.last])
        self.kernel_start = self.last.end
        self.kernels.append({"kernel": op.kernel.data, "launch_cycles": cycles, "cycles": 0})

    def pad(self, op: isa.PadOp, source: np.ndarray | None) -> np.ndarray | None:
        """Zero-pad the operand: one kernel streaming the source in and the padded copy
        out at HBM bandwidth. Without execution the source stands in for its padded copy
        (only the nonzeros of an operand are read then, and padding adds none)."""
        element = ELEMENT_BYTES[dtype_of(op.source.type)]
        read = math.prod(op.source.type.get_shape()) * element  # type: ignore[union-attr]
        write = math.prod(op.result.type.get_shape()) * element  # type: ignore[union-attr]
        self._stream_kernel(read, write)
        if not self.execute or source is None:
            return source
        rows, cols = source.shape
        out_rows, out_cols = op.result.type.get_shape()  # type: ignore[union-attr]
        return np.pad(source, ((0, out_rows - rows), (0, out_cols - cols)))

    def copy_out(self, op: isa.CopyOutOp) -> None:
        """The result in the user's layout: free as a view, else one kernel reading the
        library's (padded, transposed) output and writing the M x N result."""
        if op.view is not None:
            return
        read = math.prod(op.source.type.get_shape())  # type: ignore[union-attr]
        write = math.prod(op.result.type.get_shape())  # type: ignore[union-attr]
        element = ELEMENT_BYTES[dtype_of(op.result.type)]
        self._stream_kernel(read * element, write * element)

    def _stream_kernel(self, read: int, write: int) -> None:
        """A memory-bound kernel (pad, copy): (read + write) bytes at HBM bandwidth."""
        cycles = math.ceil((read + write) / self.spec.hbm_bytes_per_clk)
        self.hbm.read(read)
        self.hbm.write(write)
        self.last = self.timeline.issue("hbm", cycles, after=[self.last])

    def _close_kernel(self) -> None:
        """Record how long the last launched kernel ran, from its launch to its last
        instruction's end."""
        if not self.kernels or self.last is None:
            return
        self.kernels[-1]["cycles"] = self.last.end - self.kernel_start

    def tile(self, op: isa.TileOp) -> None:
        """Queue one thread-block tile on the current wave; issue the wave when full."""
        gemm = self.gemm if self.gemm is not None else self._start_gemm(op)
        (m0, m1), (n0, n1) = op.ranges()
        rows, cols = (n1 - n0, m1 - m0) if gemm.sparse == "rhs" else (m1 - m0, n1 - n0)
        row_key, col_key = (n0, m0) if gemm.sparse == "rhs" else (m0, n0)
        gemm.wave.append(TileLoad(("a", row_key), rows * gemm.a_row_bytes,
                                  ("b", col_key), cols * gemm.b_col_bytes,
                                  rows * cols * gemm.out_bytes))
        gemm.tiles += 1
        tm, tn, _ = gemm.tile
        m_real, n_real = unpadded_extent(op)
        self.dense_macs += (max(0, min(m1, m_real) - m0) * max(0, min(n1, n_real) - n0)
                            * gemm.k)
        executed = tm * tn * gemm.k_chunks * gemm.tile[2] // (2 if gemm.sparse else 1)
        self.executed_macs += executed
        self.mac_energy_pj += executed * self.spec.mac_pj(gemm.dtype)
        if len(gemm.wave) == self.spec.sms:
            self._issue_wave(gemm)

    def store(self, op: isa.StoreOp) -> Event | None:
        """End of a GEMM: issue the tail wave and record the GEMM's figures."""
        gemm = self.gemm
        if gemm is None:
            return self.last
        if gemm.wave:
            self._issue_wave(gemm)
        self.gemms.append(self._gemm_details(gemm))
        self.gemm = None
        return self.last

    def count_effectual(self, a: np.ndarray, b: np.ndarray) -> None:
        """Useful MACs of a GEMM (nonzero times nonzero), from the real zeros."""
        self.effectual_macs += effectual_macs(a, b)

    # -- the wave model ----------------------------------------------------------------------

    def _start_gemm(self, op: isa.TileOp) -> GemmState:
        """Per-tile constants of the GEMM this first tile belongs to."""
        spec = self.spec
        dtype = isa.math_dtype(op.lhs.type, op.rhs.type)
        element = ELEMENT_BYTES[dtype]
        acc_shape = op.acc.type.get_shape()  # type: ignore[union-attr]
        k = op.problem_k()
        tm, tn, tk = op.tile_shape()
        sparse = op.sparse_operand
        k_chunks = max(1, -(-k // tk))
        rate = spec.macs_per_clock(dtype, sparse is not None)
        a_row = (-(-k // isa.BLOCK) * (isa.KEPT * element + METADATA_BYTES_PER_BLOCK)
                 if sparse else k * element)
        gemm = GemmState(
            m=acc_shape[0], n=acc_shape[1], k=k, dtype=dtype, sparse=sparse,
            tile=(tm, tn, tk), k_chunks=k_chunks,
            tile_math=tm * tn * k_chunks * tk / rate, a_row_bytes=a_row,
            b_col_bytes=k * element, out_bytes=ELEMENT_BYTES[dtype_of(op.result.type)],
            unit="cuda_cores" if dtype in CUDA_CORE_DTYPES else "tensor_cores")
        self.gemm = gemm
        return gemm

    def _issue_wave(self, gemm: GemmState) -> None:
        """Place one wave on the Timeline (README, "A wave").

        memory = max(HBM bytes of the wave's new panels / HBM B/clk,
                      the largest tile's L2->SMEM bytes / (L2 B/clk / sms))
        main   = memory/nk + math/nk + (nk - 1) * max(memory, math)/nk
        store  = max(C bytes of the wave / HBM B/clk, largest C tile / (L2 B/clk / sms))
        """
        spec = self.spec
        wave, gemm.wave = gemm.wave, []
        hbm_bytes = self._hbm_panel_bytes(gemm, wave)
        l2_bytes = sum(t.a_bytes + t.b_bytes for t in wave)
        c_bytes = sum(t.c_bytes for t in wave)
        per_sm = spec.l2_bytes_per_clk_per_sm
        hbm_time = hbm_bytes / spec.hbm_bytes_per_clk
        l2_time = max(t.a_bytes + t.b_bytes for t in wave) / per_sm
        memory = max(hbm_time, l2_time)
        nk = gemm.k_chunks
        chunk_memory, chunk_math = memory / nk, gemm.tile_math / nk
        main = math.ceil(chunk_memory + chunk_math + (nk - 1) * max(chunk_memory, chunk_math))
        store = math.ceil(max(c_bytes / spec.hbm_bytes_per_clk,
                              max(t.c_bytes for t in wave) / per_sm))
        first = math.ceil(chunk_memory)
        stream = math.ceil(nk * chunk_memory)

        l2_fill = self.l2.write(math.ceil(hbm_bytes))
        hbm_busy = self.hbm.read(math.ceil(hbm_bytes))
        l2_busy = max(self.l2.read(math.ceil(l2_bytes)), l2_fill)
        self.smem.write(math.ceil(l2_bytes))
        self.smem.read(math.ceil(l2_bytes))
        loads = [self.timeline.issue("hbm", hbm_busy, after=[self.last], latency=stream),
                 self.timeline.issue("l2", l2_busy, after=[self.last], latency=stream)]
        start = loads[0].start
        if gemm.start is None:
            gemm.start = start
        math_busy = math.ceil(len(wave) / spec.sms * gemm.tile_math)
        compute = self.timeline.issue(gemm.unit, math_busy, not_before=start + first,
                                      latency=max(main - first, math_busy))
        stores = [self.timeline.issue("hbm", self.hbm.write(c_bytes), after=[compute],
                                      latency=store),
                  self.timeline.issue("l2", self.l2.write(c_bytes), after=[compute],
                                      latency=store)]
        self.last = max(stores, key=lambda e: e.end)
        tile_math = math.ceil(gemm.tile_math)
        self.compute_cycles += tile_math
        self.stall_cycles += max(0, main - tile_math)
        gemm.waves += 1
        gemm.tail_tiles = len(wave)
        if not gemm.first_wave:
            gemm.first_wave = self._wave_figures(gemm, wave, hbm_time, l2_time, main, store)

    def _hbm_panel_bytes(self, gemm: GemmState, wave: list[TileLoad]) -> float:
        """HBM bytes of a wave: each distinct A and B panel once (the SMs sharing a panel
        run in lockstep through K, so the later readers hit in L2), minus the panels the
        previous wave read if both waves' panels fit in L2 together."""
        panels: dict[tuple[str, int], float] = {}
        for t in wave:
            panels[t.a_panel] = t.a_bytes
            panels[t.b_panel] = t.b_bytes
        union = {**gemm.resident, **panels}
        capacity = self.l2.capacity_bytes or 0
        resident = gemm.resident if sum(union.values()) <= capacity else {}
        gemm.resident = panels
        return sum(b for key, b in panels.items() if key not in resident)

    def _wave_figures(self, gemm: GemmState, wave: list[TileLoad], hbm_time: float,
                      l2_time: float, main: int, store: int) -> dict[str, Any]:
        """Cycles of the first (full) wave, whole K, for the report."""
        memory = max(hbm_time, l2_time)
        bound = "math" if gemm.tile_math >= memory else ("hbm" if hbm_time >= l2_time else "l2")
        return {"tiles": len(wave), "math_cycles": math.ceil(gemm.tile_math),
                "hbm_cycles": math.ceil(hbm_time), "l2_cycles": math.ceil(l2_time),
                "main_loop_cycles": main, "store_cycles": store, "bound": bound}

    def _gemm_details(self, gemm: GemmState) -> dict[str, Any]:
        end = self.last.end if self.last is not None else 0
        cycles = end - (gemm.start or 0)
        spec = self.spec
        seconds = cycles / (spec.clock_ghz * 1e9) if cycles else float("inf")
        flops = 2 * gemm.m * gemm.n * gemm.k
        tm, tn, tk = gemm.tile
        return {
            "m": gemm.m, "n": gemm.n, "k": gemm.k, "dtype": gemm.dtype,
            "mma": f"sparse ({gemm.sparse} is 2:4)" if gemm.sparse else "dense",
            "transposed": gemm.sparse == "rhs", "unit": gemm.unit,
            "tile": [tm, tn, tk], "k_chunks": gemm.k_chunks, "tiles": gemm.tiles,
            "waves": gemm.waves, "tail_wave_tiles": gemm.tail_tiles,
            "tile_compute_cycles": math.ceil(gemm.tile_math),
            "tile_memory_cycles": max(gemm.first_wave["hbm_cycles"],
                                      gemm.first_wave["l2_cycles"]),
            "bound": gemm.first_wave["bound"], "first_wave": gemm.first_wave,
            "cycles": cycles, "achieved_tflops": flops / seconds / 1e12,
            "peak_tflops": spec.peak_tflops(gemm.dtype, gemm.sparse is not None),
        }

    def report(self, kernel: str) -> Report:
        self._close_kernel()
        spec = self.spec
        span = self.timeline.cycles
        memories = [self.hbm, self.l2, self.smem]
        energy = {m.name: m.energy_pj for m in memories}
        energy["macs"] = self.mac_energy_pj
        seconds = span / (spec.clock_ghz * 1e9) if span else float("inf")
        return Report(
            target=spec.target_string(),
            kernel=kernel,
            config=spec.config(),
            cycles=span,
            stall_cycles=self.stall_cycles,
            units=self.timeline.summary(),
            bytes={m.name: m.summary() for m in memories},
            macs={"effectual": self.effectual_macs, "dense": self.dense_macs},
            energy_pj=sum(energy.values()),
            check=Check.skipped_because("not checked yet"),
            clock_ghz=spec.clock_ghz,
            label=spec.label(),
            details={
                "compute_cycles": self.compute_cycles,
                "tiles": sum(g["tiles"] for g in self.gemms),
                "waves": sum(g["waves"] for g in self.gemms),
                "executed_macs": self.executed_macs,
                "achieved_tflops": 2 * self.dense_macs / seconds / 1e12,
                "gemms": self.gemms,
                "compressed": self.compressed,
                "path": spec.path,
                "launch_cycles": sum(k["launch_cycles"] for k in self.kernels),
                "kernels": self.kernels,
                "energy_breakdown_pj": energy,
            },
        )


@register_impls
class StcFunctions(InterpreterFunctions):
    """numpy semantics of the stc ISA, with accounting by the machine."""

    def __init__(self, machine: StcMachine):
        self.machine = machine

    @impl(isa.ZerosOp)
    def run_zeros(self, interpreter: Interpreter, op: isa.ZerosOp, args: tuple[Any, ...]):
        return (zero_accumulator(op, self.machine.execute),)

    @impl(isa.CompressOp)
    def run_compress(self, interpreter: Interpreter, op: isa.CompressOp,
                     args: tuple[Any, ...]):
        (dense,) = args
        return (self.machine.compress(op, dense),)

    @impl(isa.TileOp)
    def run_tile(self, interpreter: Interpreter, op: isa.TileOp, args: tuple[Any, ...]):
        self.machine.tile(op)
        lhs, rhs, acc = args
        a_dense, b_dense = _dense(lhs), _dense(rhs)
        a_full = a_dense.T if op.transpose_a else a_dense
        b_full = b_dense.T if op.transpose_b else b_dense
        if op.index.value.data == 0:
            self.machine.count_effectual(a_full, b_full)
        if not self.machine.execute:
            return (None,)
        (m0, m1), (n0, n1) = op.ranges()
        dtype = dtype_of(op.lhs.type)
        if op.sparse_operand == "lhs":
            acc[m0:m1, n0:n1] += matmul_accumulate(lhs.rows(m0, m1), b_full[:, n0:n1], dtype)
        elif op.sparse_operand == "rhs":
            transposed = matmul_accumulate(rhs.rows(n0, n1), a_full[m0:m1, :].T, dtype)
            acc[m0:m1, n0:n1] += transposed.T
        else:
            acc[m0:m1, n0:n1] += matmul_accumulate(a_full[m0:m1, :], b_full[:, n0:n1], dtype)
        return (acc,)

    @impl(isa.StoreOp)
    def run_store(self, interpreter: Interpreter, op: isa.StoreOp, args: tuple[Any, ...]):
        self.machine.store(op)
        (acc,) = args
        if not self.machine.execute:
            return (None,)
        result = finish(acc, dtype_of(op.result.type))
        return (result.T if op.transpose else result,)

    @impl(isa.LaunchOp)
    def run_launch(self, interpreter: Interpreter, op: isa.LaunchOp, args: tuple[Any, ...]):
        self.machine.launch(op)
        return ()

    @impl(isa.PadOp)
    def run_pad(self, interpreter: Interpreter, op: isa.PadOp, args: tuple[Any, ...]):
        (source,) = args
        return (self.machine.pad(op, source),)

    @impl(isa.CopyOutOp)
    def run_copy_out(self, interpreter: Interpreter, op: isa.CopyOutOp,
                     args: tuple[Any, ...]):
        self.machine.copy_out(op)
        (source,) = args
        if not self.machine.execute:
            return (None,)
        rows, cols = op.result.type.get_shape()  # type: ignore[union-attr]
        layout = source.T if op.transpose else source
        return (np.ascontiguousarray(layout[:rows, :cols]),)
