"""Hardware description of BitWave (Shi et al., HPCA 2024) as BitSim models it.

The paper's array size, SRAM sizes and clock were not recovered (research note 1.9);
the defaults are those of BitSim's `Bitwave` class (github yc2367/BitSim,
`sim/sim/bitwave.py`), the BBS authors' re-implementation (MICRO 2024): 32 x 16 PEs of 8
bit-serial lanes, the dynamic dataflow's seven PE shapes, a 16 x 18 KB weight SRAM and a
16 x 16 KB input SRAM of 64 bits per bank per cycle, a 64-bit DDR DRAM port, 800 MHz, and
its 28 nm energies per PE cycle. Values marked (A) in backends/bitwave/README.md are our
assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE, SRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

DATAFLOWS: tuple[tuple[int, int, int], ...] = (
    (8, 32, 16), (16, 32, 8), (32, 32, 4), (128, 8, 1), (16, 64, 1), (32, 32, 1), (16, 1, 16))
"""BitSim's dynamic dataflow: (lanes per PE, PE rows = output channels, PE columns =
tokens) of each PE shape the reconfigurable array can take (all fit 4096 lanes)."""

MODES = ("bitwave", "stripes")
"""`bitwave`: a weight tile takes as many cycles as the most kept magnitude columns
among its rows; `stripes`: bit-serial dense, every one of the 8 bits (Stripes-like)."""

DATAFLOW_CHOICES = ("dynamic", "fixed")

PE_PJ = 0.2475 * 1.5 * 1.1
"""BitSim: 0.2475 pJ per 8-way PE cycle (28 nm), x1.5 place & route, x1.1 for the
reconfigurable dataflow."""
STRIPES_PE_PJ = 0.28125 * 1.5
"""BitSim's Stripes PE: 0.28125 pJ per 8-way PE cycle, x1.5 place & route."""
SCHEDULER_PJ = 0.06575 * 1.5
"""BitSim: one weight scheduler (column-index priority encoder) per PE row, per cycle."""
SCHEDULERS = 128
"""BitSim charges 128 schedulers (one per row of the tallest dataflow) every cycle."""


@dataclass(frozen=True)
class BitwaveSpec(AcceleratorSpec):
    """A rows x cols array of bit-serial PEs with `lanes` 1b x 8b lanes each.

    Rows hold output channels and share one activation broadcast, so a weight tile
    (rows x lanes weights) advances in lock-step: its cycles are the most kept magnitude
    columns among its rows' lane groups. Columns hold tokens. `dataflow=dynamic` picks,
    per layer, the PE shape of DATAFLOWS with the fewest compute cycles (the array's
    lanes are regrouped, rows x cols x lanes <= the array's); `fixed` keeps
    lanes x rows x cols.
    """

    name: ClassVar[str] = "bitwave"
    summary: ClassVar[str] = ("BitWave: bit-column-serial PEs skipping zero sign-magnitude "
                              "columns (mode=stripes: bit-serial dense)")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "bitsim": {},
        "stripes": {"mode": "stripes", "dataflow": "fixed"},
    }

    mode: str = "bitwave"
    dataflow: str = "dynamic"
    rows: int = 32
    cols: int = 16
    lanes: int = 8
    group: int = 16
    clock_ghz: float = 0.8
    w_sram_kb: int = 288
    i_sram_kb: int = 256
    sram_bits_per_cycle: int = 1024
    dram_bytes_per_cycle: float = 16.0
    out_bytes: int = 1
    pe_pj: float = PE_PJ
    stripes_pe_pj: float = STRIPES_PE_PJ
    scheduler_pj: float = SCHEDULER_PJ
    schedulers: int = SCHEDULERS
    sram_pj_per_byte: float = SRAM_PJ_PER_BYTE
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE

    def prepare(self) -> str:
        """INT8 weights per channel, INT8 activations per tensor, bit columns of
        `group` along the reduction dimension."""
        return ("quantize{bits=8 per_channel=true},quantize{bits=8 operand=a},"
                f"sparsify{{format=bitcolumn group={self.group}}}")

    def validate(self) -> None:
        super().validate()
        self.require(self.mode in MODES, "mode", f"must be {' or '.join(MODES)}, got '{self.mode}'")
        self.require(self.dataflow in DATAFLOW_CHOICES, "dataflow",
                     f"must be dynamic or fixed, got '{self.dataflow}'")
        for option in ("rows", "cols", "lanes", "group", "w_sram_kb", "i_sram_kb",
                       "sram_bits_per_cycle", "out_bytes"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        for option in ("clock_ghz", "dram_bytes_per_cycle"):
            self.require(getattr(self, option) > 0, option, "must be > 0")

    @property
    def total_lanes(self) -> int:
        return self.rows * self.cols * self.lanes

    @property
    def pes(self) -> int:
        """PEs of `lanes_per_pe`-wide... counted as 8-lane PEs (BitSim's energy unit)."""
        return self.total_lanes // 8 if self.total_lanes >= 8 else 1

    @property
    def multipliers(self) -> int:
        """8-bit multipliers of equal capability: 8 bit-serial lanes = one."""
        return self.total_lanes // 8

    def shapes(self) -> tuple[tuple[int, int, int], ...]:
        """The PE shapes (lanes, rows, cols) a layer may run on."""
        if self.dataflow == "fixed":
            return ((self.lanes, self.rows, self.cols),)
        return tuple(s for s in DATAFLOWS if s[0] * s[1] * s[2] <= self.total_lanes)

    def pe_cycle_pj(self) -> float:
        """Energy of the whole array for one cycle: every 8-lane PE is clocked (no
        gating), plus BitWave's column schedulers."""
        if self.mode == "stripes":
            return self.stripes_pe_pj * self.pes
        return self.pe_pj * self.pes + self.scheduler_pj * self.schedulers
