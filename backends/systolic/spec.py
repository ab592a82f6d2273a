"""Hardware description of the dense systolic array (SCALE-Sim's model of a TPU-like array)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE, SRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

DATAFLOWS = ("os", "ws", "is")
MODES = ("calc", "user")


@dataclass(frozen=True)
class SystolicSpec(AcceleratorSpec):
    """A rows x cols array of MAC PEs with three operand SRAMs and a DRAM interface.

    Sizes follow SCALE-Sim: SRAMs in kB of `word_bytes`-byte words (SCALE-Sim counts
    1-byte words); a vector unit of `vector_lanes` lanes (default: one per column) runs
    softmax, the SDDMM scale-and-mask epilogue and the block ops (normalization,
    activations, elementwise, RoPE) with per-lane ALU and SFU costs; `mode=calc` is SCALE-Sim's
    `InterfaceBandwidth: CALC` (DRAM never stalls the array), `mode=user` limits DRAM to
    `bandwidth` words per cycle per operand buffer, with double-buffered SRAMs.
    """

    summary: ClassVar[str] = "dense R x C systolic array, dataflows os/ws/is (SCALE-Sim 3.0.0 accounting)"

    name: ClassVar[str] = "systolic"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # SCALE-Sim's example configuration (tests/data/reference/scalesim_config_example.cfg).
        "scalesim": {},
        # Google TPU v1 (Jouppi et al., ISCA 2017): 256x256 8-bit MACs at 700 MHz,
        # weight-stationary, 24 MiB unified buffer (activations), 4 x 64 KiB weight FIFO,
        # 4 MiB accumulators, 34 GB/s DDR3 (~48 bytes per cycle).
        "tpu-v1": {"rows": 256, "cols": 256, "dataflow": "ws", "ifmap_sram_kb": 24576,
                   "filter_sram_kb": 256, "ofmap_sram_kb": 4096, "clock_ghz": 0.7,
                   "mode": "user", "bandwidth": 48},
    }

    rows: int = 32
    cols: int = 32
    dataflow: str = "os"
    ifmap_sram_kb: int = 64
    filter_sram_kb: int = 64
    ofmap_sram_kb: int = 64
    word_bytes: int = 1
    mode: str = "calc"
    bandwidth: int = 10
    clock_ghz: float = 1.0
    vector_lanes: int = 0
    vector_alu_cycles: int = 1
    vector_sfu_cycles: int = 4
    vector_alu_pj: float = 2.3
    vector_sfu_pj: float = 13.8
    mac_pj: float = 0.23
    sram_pj_per_byte: float = SRAM_PJ_PER_BYTE
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE

    def validate(self) -> None:
        super().validate()
        self.require(self.rows >= 1 and self.cols >= 1, "rows/cols", "must be >= 1")
        self.require(self.dataflow in DATAFLOWS, "dataflow",
                     f"must be one of {', '.join(DATAFLOWS)}, got '{self.dataflow}'")
        self.require(self.mode in MODES, "mode",
                     f"must be one of {', '.join(MODES)}, got '{self.mode}'")
        self.require(self.bandwidth >= 1, "bandwidth", "must be >= 1 word per cycle")
        self.require(self.word_bytes >= 1, "word_bytes", "must be >= 1")
        for option in ("ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1 kB")
        self.require(self.clock_ghz > 0, "clock_ghz", "must be > 0")
        self.require(self.vector_lanes >= 0, "vector_lanes", "must be >= 0 (0: one per column)")
        for option in ("vector_alu_cycles", "vector_sfu_cycles"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1 cycle")
        for option in ("vector_alu_pj", "vector_sfu_pj"):
            self.require(getattr(self, option) >= 0, option, "must be >= 0")

    @property
    def lanes(self) -> int:
        """Lanes of the vector unit beside the array (softmax, SDDMM epilogue); 0 = cols."""
        return self.vector_lanes or self.cols

    def sram_words(self, operand: str) -> int:
        """Capacity of an operand's SRAM in words (`ifmap`, `filter` or `ofmap`)."""
        return getattr(self, f"{operand}_sram_kb") * 1024 // self.word_bytes
