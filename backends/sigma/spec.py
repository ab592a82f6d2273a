"""Hardware description of SIGMA (Qin et al., HPCA 2020) as STONNE models it.

SIGMA is a flat array of multipliers fed by a Benes distribution network (DN) that
multicasts one value to any set of multipliers, and reduced by the Forwarding Adder
Network (FAN): a binary adder tree with extra forwarding links between neighbouring
adders, so several dot products of any sizes reduce at once. The stationary operand's
nonzeros sit in the multipliers as variable-size dot-product groups ("virtual neurons",
VNs); the other operand streams past them one vector per iteration step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE, MAC_PJ, SRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec

STATIONARY = ("a", "b", "auto")
"""Which operand stays in the multipliers: `a` (MK_STA_KN_STR in STONNE: the rows of A),
`b` (MK_STR_KN_STA: the columns of B), or `auto` (the lowering picks the faster)."""


def is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


@dataclass(frozen=True)
class SigmaSpec(AcceleratorSpec):
    """`multipliers` multiplier switches, a DN with `dn_bw` read ports (each port feeds
    multipliers / dn_bw multipliers through its own Benes subtree, one value per cycle)
    and a FAN whose adders reach the global buffer through `rn_bw` write ports (collection
    bus lines, one value per cycle each).

    `flex_dpe` is the number of multipliers of one Flex-DPE (0: one FAN spans the whole
    array, as in STONNE); a dot product that fits a Flex-DPE is never split between two.
    `min_cluster` is the fewest multipliers a stationary vector occupies: STONNE's
    SparseGEMM front end marks at least 3 entries of every stationary vector in the
    bitmap (padding short vectors with explicit zeros), so the default mirrors it.
    """

    summary: ClassVar[str] = (
        "SIGMA: bitmap sparse GEMM on Flex-DPEs, Benes DN + FAN (STONNE's SIGMA accounting)")

    name: ClassVar[str] = "sigma"
    dram_model: ClassVar[str] = "boundary"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # The configuration of the shared STONNE reference figures
        # (tests/data/reference/stonne_sigma_dev.csv): 1024 multipliers, full bandwidth.
        "stonne": {},
        # The paper's evaluated SIGMA: 128 Flex-DPEs of 128 multipliers (16384), one DN
        # input and one FAN output per multiplier.
        "paper": {"multipliers": 16384, "dn_bw": 16384, "rn_bw": 16384, "flex_dpe": 128,
                  "min_cluster": 1},
    }

    multipliers: int = 1024
    dn_bw: int = 1024
    rn_bw: int = 1024
    stationary: str = "a"
    flex_dpe: int = 0
    min_cluster: int = 3
    word_bytes: int = 4
    clock_ghz: float = 1.0
    mac_pj: float = MAC_PJ["f32"]
    sram_pj_per_byte: float = SRAM_PJ_PER_BYTE
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE

    def validate(self) -> None:
        super().validate()
        self.require(is_power_of_two(self.multipliers) and self.multipliers >= 2,
                     "multipliers", f"must be a power of two >= 2 (the DN and FAN are binary "
                     f"trees), got {self.multipliers}")
        for option in ("dn_bw", "rn_bw"):
            value = getattr(self, option)
            self.require(is_power_of_two(value) and value <= self.multipliers, option,
                         f"must be a power of two <= multipliers ({self.multipliers}), "
                         f"got {value}")
        self.require(self.stationary in STATIONARY, "stationary",
                     f"must be one of {', '.join(STATIONARY)}, got '{self.stationary}'")
        self.require(self.flex_dpe == 0 or (is_power_of_two(self.flex_dpe)
                                            and self.flex_dpe <= self.multipliers),
                     "flex_dpe", f"must be 0 (one FAN) or a power of two <= multipliers, "
                     f"got {self.flex_dpe}")
        self.require(self.min_cluster >= 1, "min_cluster", "must be >= 1")
        self.require(self.word_bytes >= 1, "word_bytes", "must be >= 1")
        self.require(self.clock_ghz > 0, "clock_ghz", "must be > 0")

    @property
    def dpe_size(self) -> int:
        """Multipliers of one Flex-DPE (the whole array when flex_dpe is 0)."""
        return self.flex_dpe or self.multipliers

    @property
    def port_fanout(self) -> int:
        """Multipliers behind one DN read port."""
        return self.multipliers // self.dn_bw
