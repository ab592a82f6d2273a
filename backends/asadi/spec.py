"""Hardware description of ASADI (Li, Li, Bai, Mitra, HPCA 2024): sparse attention computed
in situ in ReRAM crossbars, on the diagonal (DIA) format of the attention mask.

The `paper` preset is the digital module of one encoder PE (Table I and Sec. VI): 12
Tiles (one per attention head), each with 512 ReRAM arrays of 1024 x 1024 one-bit cells
at 1 GHz holding Q, K, V and the DIA scores as 32-bit floats, one element per array row,
every row computing in parallel. The in-situ arithmetic (float32 multiply, add, divide
as NOT/NOR sequences over all rows at once) takes the cycle and gate counts of AritPIM's
bit-parallel algorithms (Leitersdorf et al., IEEE TETC 2023; repository results/floating/
latency.csv and energy.csv, IEEE 32); the in-situ maximum and 2^x take 32 cycles (ASADI
Sec. IV-D); one array row is written or read per cycle (ASADI Sec. V-C: the Q, K, V of one
embedding are written in one cycle). backends/asadi/README.md derives every constant.

`diagonal=false` (preset `csr`) is the same hardware running the CSR paradigm of ASADI's
Fig. 9(b) and 11(b), the paper's CSR-ASADI sister system: `sparsec compare` on the two
shows what the diagonal format buys on identical crossbars.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import SRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

AritPIM = dict[str, int]

ARITPIM_PARALLEL_FP32: AritPIM = {"mul_cycles": 1407, "add_cycles": 1359, "div_cycles": 3963,
                                  "mul_gates": 16887, "add_gates": 10186, "div_gates": 44530}
"""AritPIM bit-parallel IEEE-754 single precision (NOT/NOR, 1-INIT): cycles (latency.csv)
and gates (energy.csv) of one multiply, signed add, divide, every row in parallel."""

ARITPIM_SERIAL_FP32: AritPIM = {"mul_cycles": 11586, "add_cycles": 3997, "div_cycles": 19909,
                                "mul_gates": 11586, "add_gates": 3997, "div_gates": 19909}
"""AritPIM bit-serial IEEE-754 single precision: one gate per cycle per row."""

GATE_FJ = 6.4
"""Energy of one in-array gate (or cell write/read) per row: AritPIM's TOPS/W figures with
RACER's parameters give 1 / (0.271e12 * 577) = 6.39 fJ per gate for the bit-serial fixed
add and 1 / (0.115e12 * 1359) = 6.40 fJ for the bit-parallel one."""

PERIPHERY_MW = 20.89 + 11.47 + 25.62 + 7.8
"""Power of one Tile's digital-module periphery while it works (ASADI Table I): input
register 20.89 mW, output register 11.47 mW, shift-and-add units 25.62 mW, controller
7.8 mW. The arrays' and drivers' energy is counted per operation instead."""

PARADIGMS = ("dia", "csr")


@dataclass(frozen=True)
class AsadiSpec(AcceleratorSpec):
    """One ASADI encoder PE's digital modules: `tiles` Tiles (heads in parallel), each of
    `arrays` ReRAM arrays of `rows` x `cols` cells, `value_bits`-bit floats stored one per
    array row (bit-sliced over `value_bits` / `bits_per_cell` cells of the row).

    Vector operations work on whole array columns, every row at once: an op costs its
    cycles whatever the vector length, and `gates` x `gate_fj` per row it touches. Row
    writes and reads go one row per cycle. On-chip transfers between arrays run at
    `oci_gbps`. `diagonal` selects ASADI's DIA paradigm (true) or the CSR paradigm on the
    same hardware (false).
    """

    summary: ClassVar[str] = "ASADI ReRAM in-situ sparse attention: DIA (or CSR) SDDMM/softmax/SpMM per Tile"

    name: ClassVar[str] = "asadi"
    dram_level: ClassVar[str] = "oci"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # ASADI Table I / Sec. VI with AritPIM's bit-parallel float32: the defaults.
        "paper": {},
        # CSR-ASADI (Sec. VI "Sisters of ASADI"): the same crossbars, CSR paradigm.
        "csr": {"diagonal": False},
        # Bit-serial in-situ float32 arithmetic (AritPIM), fewer cells per operation.
        "serial": dict(ARITPIM_SERIAL_FP32),
    }

    diagonal: bool = True
    tiles: int = 12
    arrays: int = 512
    rows: int = 1024
    cols: int = 1024
    bits_per_cell: int = 1
    value_bits: int = 32
    clock_ghz: float = 1.0
    mul_cycles: int = ARITPIM_PARALLEL_FP32["mul_cycles"]
    add_cycles: int = ARITPIM_PARALLEL_FP32["add_cycles"]
    div_cycles: int = ARITPIM_PARALLEL_FP32["div_cycles"]
    mul_gates: int = ARITPIM_PARALLEL_FP32["mul_gates"]
    add_gates: int = ARITPIM_PARALLEL_FP32["add_gates"]
    div_gates: int = ARITPIM_PARALLEL_FP32["div_gates"]
    max_cycles: int = 32
    exp2_cycles: int = 32
    write_cycles: int = 1
    read_cycles: int = 1
    gate_fj: float = GATE_FJ
    oci_gbps: float = 1000.0
    oci_pj_per_byte: float = SRAM_PJ_PER_BYTE
    periphery_mw: float = PERIPHERY_MW

    def prepare(self) -> str:
        """Both paradigms run a pattern mask; the diagonal encoding places it (the CSR
        paradigm ignores the placement but runs the same, possibly narrowed, pattern)."""
        return "encode-diagonal"

    def validate(self) -> None:
        super().validate()
        for option in ("tiles", "arrays", "rows", "cols", "bits_per_cell", "value_bits",
                       "mul_cycles", "add_cycles", "div_cycles", "max_cycles", "exp2_cycles",
                       "write_cycles", "read_cycles"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        for option in ("clock_ghz", "oci_gbps"):
            self.require(getattr(self, option) > 0, option, "must be > 0")
        self.require(self.value_bits % self.bits_per_cell == 0, "bits_per_cell",
                     f"must divide value_bits ({self.value_bits}), got {self.bits_per_cell}")
        self.require(self.cells_per_value <= self.cols, "cols",
                     f"must hold one value per row ({self.cells_per_value} cells), got "
                     f"{self.cols}")

    @property
    def paradigm(self) -> str:
        return "dia" if self.diagonal else "csr"

    @property
    def cells_per_value(self) -> int:
        """Cells of one array row a value occupies (bit slices)."""
        return self.value_bits // self.bits_per_cell

    @property
    def tile_bits(self) -> int:
        """Capacity of one Tile's digital module in bits."""
        return self.arrays * self.rows * self.cols * self.bits_per_cell

    @property
    def oci_bytes_per_cycle(self) -> float:
        return self.oci_gbps / self.clock_ghz

    @property
    def copy_cycles(self) -> int:
        """Moving one array row to another: a read and a write."""
        return self.read_cycles + self.write_cycles

    def segments(self, length: int) -> int:
        """Arrays one vector of `length` elements spans (one element per row)."""
        return max(1, math.ceil(length / self.rows))

    def vector_slots(self, length: int) -> int:
        """Vectors of `length` elements the Tile operates on at once (one per array)."""
        return max(1, self.arrays // self.segments(length))

    def waves(self, heads: int) -> int:
        """Rounds the Tiles need for `heads` heads (one head per Tile)."""
        return math.ceil(heads / self.tiles)

    def transfer_cycles(self, nbytes: float) -> int:
        return math.ceil(nbytes / self.oci_bytes_per_cycle) if nbytes > 0 else 0
