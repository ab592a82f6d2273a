"""Hardware description of SpARC (Cho, Kim, Hwang and Park, "SpARC: Token Similarity-Aware
Sparse Attention Transformer Accelerator via Row-wise Clustering", DAC 2024).

What the paper states (as available to us: the abstract and the design summary this
project was given): a matrix unit of 16 vector processors with 64 INT16 MACs each; a
divider, a Taylor-series exponent unit, an L1-distance unit and a cluster unit; a
32 KB centroid cache with LRU replacement; a fully pipelined datapath (V is handled
while the rows are being clustered). Every other figure below (unit widths, buffer
size, bandwidths, clock, energy per action) is our assumption, named as such in
backends/sparc/README.md, because the paper's full text was not available to us.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE, MAC_PJ, SRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

INT16_ADD_PJ = 0.05
"""A 16-bit integer add, between Horowitz's (ISSCC 2014) 8-bit (0.03 pJ) and 32-bit (0.1 pJ)."""
CACHE_PJ_PER_BYTE = 2.5
"""A 32 KB SRAM: 20 pJ per 64-bit access (Horowitz, ISSCC 2014) = 2.5 pJ per byte."""

DEFAULT_PREPARE = "cluster-rows{threshold=0.2 rank=0.15 block=64}"
"""What a kernel needs before it runs on SpARC: row-clustered queries (see prepare())."""


@dataclass(frozen=True)
class SparcSpec(AcceleratorSpec):
    """SpARC: a matrix unit of `vps` x `macs_per_vp` INT16 MACs, clustering units (L1
    distance, cluster), a Taylor exponent unit, a divider, a `cache_kb` LRU centroid
    cache and a `buffer_kb` global buffer fed from DRAM.

    A vector processor computes 64 products of one output row per cycle: 64 output
    columns of one reduction step, or one output column of 64 reduction steps (an adder
    tree), whichever finishes the row sooner (`matrix_cycles`).
    """

    summary: ClassVar[str] = (
        "SpARC: row-clustered approximate attention, 16x64 INT16 MACs, LRU centroid cache")

    name: ClassVar[str] = "sparc"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # The paper's configuration: 16 VPs x 64 INT16 MACs, 32 KB LRU centroid cache.
        # The dataclass defaults are that configuration plus our assumptions.
        "paper": {},
    }

    vps: int = 16
    macs_per_vp: int = 64
    word_bits: int = 16
    clock_ghz: float = 1.0
    l1_lanes: int = 1024
    cluster_lanes: int = 64
    exp_lanes: int = 64
    taylor_terms: int = 4
    divider_lanes: int = 16
    divider_latency: int = 16
    cache_kb: int = 32
    cache_line_words: int = 64
    buffer_kb: int = 256
    buffer_bytes_per_cycle: int = 64
    dram_bytes_per_cycle: float = 64.0
    mac_pj: float = MAC_PJ["i16"]
    l1_pj: float = 2 * INT16_ADD_PJ
    exp_pj: float = 4 * MAC_PJ["i16"]
    divide_pj: float = 16 * INT16_ADD_PJ
    cache_pj_per_byte: float = CACHE_PJ_PER_BYTE
    buffer_pj_per_byte: float = SRAM_PJ_PER_BYTE
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE

    def prepare(self) -> str:
        """SpARC runs attention whose query is row-clustered (`cluster-rows`)."""
        return DEFAULT_PREPARE

    def validate(self) -> None:
        super().validate()
        for option in ("vps", "macs_per_vp", "l1_lanes", "cluster_lanes", "exp_lanes",
                       "taylor_terms", "divider_lanes", "divider_latency", "cache_kb",
                       "cache_line_words", "buffer_kb", "buffer_bytes_per_cycle"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        self.require(self.word_bits in (8, 16, 32), "word_bits",
                     f"must be 8, 16 or 32 (INT16 in the paper), got {self.word_bits}")
        for option in ("clock_ghz", "dram_bytes_per_cycle"):
            self.require(getattr(self, option) > 0, option, "must be > 0")
        self.require(self.cache_line_bytes <= self.cache_bytes, "cache_line_words",
                     f"must fit the cache: {self.cache_line_words} words of "
                     f"{self.word_bytes} bytes exceed cache_kb={self.cache_kb}")

    @property
    def word_bytes(self) -> int:
        """Bytes of one datapath word (2 for INT16)."""
        return self.word_bits // 8

    @property
    def macs_per_cycle(self) -> int:
        return self.vps * self.macs_per_vp

    @property
    def cache_bytes(self) -> int:
        return self.cache_kb * 1024

    @property
    def buffer_bytes(self) -> int:
        return self.buffer_kb * 1024

    def matrix_cycles(self, rows: int, cols: int, depth: int) -> int:
        """Cycles of a [rows x depth] . [depth x cols] product on the matrix unit.

        ceil(rows / vps) row groups; each VP finishes its row in ceil(cols / 64) * depth
        cycles (64 columns at a time) or cols * ceil(depth / 64) (64-deep dot products),
        whichever is fewer.
        """
        if rows == 0 or cols == 0 or depth == 0:
            return 0
        lanes = self.macs_per_vp
        per_row = min(-(-cols // lanes) * depth, cols * -(-depth // lanes))
        return -(-rows // self.vps) * per_row

    @property
    def cache_line_bytes(self) -> int:
        """One centroid-cache line: one cluster's state (its query sum, then its
        attention output row), up to `cache_line_words` words."""
        return self.cache_line_words * self.word_bytes

    @property
    def cache_lines(self) -> int:
        """Lines the centroid cache holds: 32 KB / 128 B = 256 by default."""
        return self.cache_bytes // self.cache_line_bytes
