"""Hardware description of EIE (Han et al., "EIE: Efficient Inference Engine on Compressed
Deep Neural Network", ISCA 2016).

The paper's chip: 64 PEs at 800 MHz (45 nm), each with a 128 KB sparse-matrix SRAM
(8-bit entries: a 4-bit codebook index and a 4-bit relative row index, read 64 bits at
a time), a 32 KB pointer SRAM (16-bit column pointers, two banks so a column's start and
end pointers come in one cycle), a 2 KB activation SRAM, 64-entry source and destination
activation register files, an 8-entry activation FIFO, and 16-bit fixed-point
arithmetic. Energy per action is derived from the paper's Table II (power of one PE by
module at 800 MHz); backends/eie/README.md writes out each derivation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

PAPER_CLOCK_GHZ = 0.8
"""EIE's clock (the critical path is 1.15 ns; the paper runs it at 800 MHz)."""

TABLE2_MW: dict[str, float] = {
    "Act_queue": 0.112, "PtrRead": 1.807, "SpmatRead": 4.955, "ArithmUnit": 1.162,
    "ActRW": 1.122,
}
"""EIE Table II: power (mW) of one PE by module at 800 MHz; the total is 9.157 mW."""

LNZD_MW = 0.023
"""Power of one leading-nonzero-detection node (paper, Sec. V); 64 PEs need 16 + 4 + 1 = 21."""

LNZD_NODES_PER_64_PES = 21

STEADY_STATE_SRAM_PERIOD = 8
"""The paper: in steady state the Spmat and Ptr SRAMs are each read once every 64 / 8 = 8
cycles (one 64-bit Spmat word holds 8 entries)."""


def _pj_per_cycle(module: str) -> float:
    """Energy of one 800 MHz cycle of a Table II module, in pJ (mW / GHz = pJ per cycle)."""
    return TABLE2_MW[module] / PAPER_CLOCK_GHZ


MAC_PJ = _pj_per_cycle("ArithmUnit")
"""1.4525 pJ: the arithmetic unit does one 16-bit MAC (and one codebook lookup) per cycle."""
ACT_RW_PJ = _pj_per_cycle("ActRW")
"""1.4025 pJ: one read-modify-write of a destination activation register per MAC."""
SPMAT_PJ_PER_BYTE = _pj_per_cycle("SpmatRead") * STEADY_STATE_SRAM_PERIOD / 8
"""6.19375 pJ per byte: one 64-bit Spmat read (49.55 pJ) every 8 cycles."""
PTR_PJ_PER_BYTE = _pj_per_cycle("PtrRead") * STEADY_STATE_SRAM_PERIOD / 4
"""4.5175 pJ per byte: one pointer-pair read (two 16-bit pointers, 18.07 pJ) every 8 cycles."""
QUEUE_PJ = _pj_per_cycle("Act_queue")
"""0.14 pJ per activation pushed into one PE's FIFO."""
LNZD_PJ = LNZD_MW * LNZD_NODES_PER_64_PES / PAPER_CLOCK_GHZ
"""0.60375 pJ per broadcast nonzero activation (21 LNZD nodes active for one cycle)."""


@dataclass(frozen=True)
class EieSpec(AcceleratorSpec):
    """`pes` processing elements fed by one broadcaster of nonzero activations.

    Output neuron (row) i of the (out, in) weight matrix lives on PE i mod pes; each PE
    keeps its rows column by column in relative-indexed CSC (`#sparsec.rcsc`) with
    `weight_bits`-bit codebook indices and `index_bits`-bit relative row indices, and
    `ptr_bits`-bit column pointers. Activations, codebook entries and accumulators are
    `word_bits`-bit fixed point; the accumulator's 16-bit range is the output format
    with `acc_frac_bits` fraction bits (Q(word_bits-1-acc_frac_bits).acc_frac_bits).
    SRAM sizes are per PE.
    """

    summary: ClassVar[str] = "EIE: rcsc + 4-bit codebook weights, nonzero-activation broadcast, per-PE FIFOs"

    name: ClassVar[str] = "eie"
    dram_model: ClassVar[str] = "boundary"
    weights_preloaded: ClassVar[bool] = True
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # The chip of the paper (Sec. V): 64 PEs, 800 MHz, FIFO depth 8, 128 KB Spmat,
        # 32 KB Ptr and 2 KB activation SRAM per PE. These are also the defaults.
        "paper": {},
    }

    pes: int = 64
    fifo_depth: int = 8
    clock_ghz: float = PAPER_CLOCK_GHZ
    spmat_sram_kb: int = 128
    ptr_sram_kb: int = 32
    act_sram_kb: int = 2
    act_regs: int = 64
    spmat_width_bits: int = 64
    weight_bits: int = 4
    index_bits: int = 4
    ptr_bits: int = 16
    word_bits: int = 16
    acc_frac_bits: int = 8
    mac_pj: float = MAC_PJ
    act_rw_pj: float = ACT_RW_PJ
    spmat_pj_per_byte: float = SPMAT_PJ_PER_BYTE
    ptr_pj_per_byte: float = PTR_PJ_PER_BYTE
    queue_pj: float = QUEUE_PJ
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE
    lnzd_pj: float = LNZD_PJ

    def validate(self) -> None:
        super().validate()
        for option in ("pes", "fifo_depth", "spmat_sram_kb", "ptr_sram_kb", "act_sram_kb",
                       "act_regs"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        self.require(self.clock_ghz > 0, "clock_ghz", "must be > 0")
        self.require(2 <= self.word_bits <= 32, "word_bits",
                     f"must lie in [2, 32] (fixed-point width), got {self.word_bits}")
        self.require(0 <= self.acc_frac_bits < self.word_bits, "acc_frac_bits",
                     f"must lie in [0, word_bits - 1 = {self.word_bits - 1}], got "
                     f"{self.acc_frac_bits}")
        for option in ("weight_bits", "index_bits"):
            self.require(1 <= getattr(self, option) <= 8, option,
                         f"must lie in [1, 8], got {getattr(self, option)}")
        self.require(1 <= self.ptr_bits <= 32, "ptr_bits",
                     f"must lie in [1, 32], got {self.ptr_bits}")
        entry = self.entry_bits
        self.require(self.spmat_width_bits >= entry and self.spmat_width_bits % entry == 0,
                     "spmat_width_bits", f"must be a positive multiple of one entry "
                     f"(weight_bits + index_bits = {entry} bits), got {self.spmat_width_bits}")

    @property
    def entry_bits(self) -> int:
        """Bits of one sparse-matrix entry: codebook index + relative row index."""
        return self.weight_bits + self.index_bits

    @property
    def entries_per_word(self) -> int:
        """Entries one Spmat SRAM read returns (8 for 64-bit words of 8-bit entries)."""
        return self.spmat_width_bits // self.entry_bits

    @property
    def word_range(self) -> tuple[int, int]:
        """The smallest and largest `word_bits`-bit two's-complement integer."""
        return -(1 << (self.word_bits - 1)), (1 << (self.word_bits - 1)) - 1

    def spmat_bytes(self) -> int:
        return self.spmat_sram_kb * 1024

    def ptr_bytes(self) -> int:
        return self.ptr_sram_kb * 1024

    def act_sram_words(self) -> int:
        """Activations (word_bits each) one PE's activation SRAM holds."""
        return self.act_sram_kb * 1024 * 8 // self.word_bits

    def prepare(self) -> str:
        """EIE runs magnitude-pruned, weight-shared rcsc weights on 16-bit activations."""
        return (f"prune-magnitude{{sparsity=0.9}},share-weights{{bits={self.weight_bits} "
                f"frac_bits=12}},sparsify{{format=rcsc pes={self.pes} "
                f"index_bits={self.index_bits}}},quantize{{bits={self.word_bits} operand=a}}")
