"""Hardware description of the bit-level weight-compressed LLM accelerator (ISSCC'25 23.8).

Paper figures (via ISSCC'26 31.1's comparison table): 28 nm, 384 KB SRAM, 50-460 MHz,
W INT8 / A BF16, 3.58 TOPS dense peak, 88.36 TOPS/W. Everything else is sparsec's reading,
marked (A) in backends/bitllm/README.md: the array shape, the FP mode's throughput, the
nonlinear unit's lanes and the 28 nm energy table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.spec import AcceleratorSpec

ACC_MODES = ("saturate", "wrap", "truncate")
OVERFLOWS = ("spill", "drop")
SCHEDULERS = ("queue", "lockstep")
METHODS = ("csd", "sm")


@dataclass(frozen=True)
class BitllmSpec(AcceleratorSpec):
    """pe_rows x pe_cols cluster-aligned INT-FP PEs of `group` lanes each, a polynomial
    nonlinear unit on the same MAC datapath, one SRAM, a DRAM interface.

    Numerics: groups of `group` BF16 activations, at most `clusters` exponent clusters of
    span <= `span` per pass, a cluster register of `acc_bits` (0 = exact width) in
    `acc_mode`, overflow clusters `spill` (extra pass) or `drop`; Taylor order
    `taylor_order` for exp/reciprocal/rsqrt. `max_ones` / `method`: the weight code
    prepare() asks bitlevel-encode for (0 = plain INT8). `kv_dequant_ops`: FP
    multiply-adds per integer KV-cache element a policy-compressed cache costs to
    dequantize on the nonlinear unit (1: q * scale + min as one fused multiply-add, A).
    """

    name: ClassVar[str] = "bitllm"
    summary: ClassVar[str] = ("bit-level weight-compressed LLM chip: cluster-aligned INT8 x BF16 "
                              "GEMM with weight-shift compensation, Taylor/Horner nonlinear unit")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # The chip as reported: 460 MHz top clock, 384 KB SRAM.
        "isscc25": {},
        # The 50 MHz / 0.63 V end of the range: energies scale with V^2 (0.63 / 0.9)^2 (A).
        "isscc25-lowv": {"clock_ghz": 0.05, "mac_pj": 0.0245, "fp_add_pj": 0.196,
                         "nlu_pj": 0.98, "sram_pj_per_byte": 0.61},
    }

    pe_rows: int = 8
    pe_cols: int = 16
    group: int = 32
    clusters: int = 4
    span: int = 3
    acc_bits: int = 0
    acc_mode: str = "saturate"
    overflow: str = "spill"
    scheduler: str = "queue"
    taylor_order: int = 6
    max_ones: int = 3
    method: str = "csd"
    tile_n: int = 128
    fp_mode_ratio: int = 4
    fill_cycles: int = 4
    nlu_lanes: int = 0
    kv_dequant_ops: int = 1
    sram_kb: int = 384
    clock_ghz: float = 0.46
    dram_gbps: float = 12.8
    mac_pj: float = 0.05
    fp_add_pj: float = 0.4
    nlu_pj: float = 2.0
    sram_pj_per_byte: float = 1.25
    dram_pj_per_byte: float = 40.0

    def validate(self) -> None:
        super().validate()
        for option in ("pe_rows", "pe_cols", "group", "clusters", "tile_n", "fp_mode_ratio",
                       "sram_kb", "kv_dequant_ops"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        self.require(self.acc_mode in ACC_MODES, "acc_mode",
                     f"must be one of {', '.join(ACC_MODES)}, got '{self.acc_mode}'")
        self.require(self.overflow in OVERFLOWS, "overflow",
                     f"must be one of {', '.join(OVERFLOWS)}, got '{self.overflow}'")
        self.require(self.scheduler in SCHEDULERS, "scheduler",
                     f"must be one of {', '.join(SCHEDULERS)}, got '{self.scheduler}'")
        self.require(self.method in METHODS, "method",
                     f"must be one of {', '.join(METHODS)}, got '{self.method}'")
        self.require(1 <= self.taylor_order <= 16, "taylor_order", "must lie in [1, 16]")
        self.require(self.acc_bits == 0 or 2 <= self.acc_bits <= 52, "acc_bits",
                     "must be 0 (exact width) or lie in [2, 52]")
        self.require(self.max_ones <= 16, "max_ones", "must lie in [0, 16] (0: plain INT8)")
        self.require(self.span <= 16, "span", "must lie in [0, 16]")
        self.require(self.group % self.fp_mode_ratio == 0, "fp_mode_ratio",
                     "must divide group (BF16 lanes per PE = group / ratio)")
        self.require(self.clock_ghz > 0 and self.dram_gbps > 0, "clock_ghz/dram_gbps",
                     "must be > 0")

    @property
    def pes(self) -> int:
        return self.pe_rows * self.pe_cols

    @property
    def lanes(self) -> int:
        """Lanes of the nonlinear unit: one FP multiply-add per PE per cycle unless set."""
        return self.nlu_lanes or self.pes

    @property
    def dram_bytes_per_cycle(self) -> float:
        return self.dram_gbps / self.clock_ghz

    @property
    def peak_tops(self) -> float:
        """Dense peak: 2 ops per MAC, pes x group MACs per cycle."""
        return 2 * self.pes * self.group * self.clock_ghz / 1e3

    def int_fp_config(self) -> Any:
        from sparsec.backends.bitllm.arith import IntFpConfig

        return IntFpConfig(group=self.group, clusters=self.clusters, span=self.span,
                           acc_bits=self.acc_bits, acc_mode=self.acc_mode,
                           overflow=self.overflow)

    def prepare(self) -> str:
        """INT8 per-channel weight codes (where a weight has none yet), then the bit-level
        code unless max_ones = 0; a no-op on kernels without matmuls."""
        return (f"bitlevel-encode{{max_ones={self.max_ones} method={self.method} "
                "quantize=true}")
