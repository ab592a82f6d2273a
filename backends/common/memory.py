"""Memory levels: capacity checks, traffic counters and transfer time from bandwidth."""

from __future__ import annotations

import math
from dataclasses import dataclass


class CapacityError(ValueError):
    """A tile does not fit a buffer; the message names buffer, need and capacity."""


@dataclass
class MemoryLevel:
    """One level of the memory hierarchy (an SRAM buffer, DRAM, HBM, ...).

    `capacity_bytes` None means unbounded (DRAM); `bytes_per_cycle` None means the level
    never limits time (SCALE-Sim's CALC mode for DRAM).
    """

    name: str
    capacity_bytes: int | None = None
    bytes_per_cycle: float | None = None
    read_pj_per_byte: float = 0.0
    write_pj_per_byte: float = 0.0
    read_bytes: int = 0
    write_bytes: int = 0

    def require_fits(self, nbytes: int, what: str) -> None:
        if self.capacity_bytes is not None and nbytes > self.capacity_bytes:
            raise CapacityError(
                f"{what} needs {nbytes} bytes but {self.name} holds {self.capacity_bytes}; "
                "use a larger buffer or a smaller array/tile")

    def read(self, nbytes: int) -> int:
        """Count a read; return the cycles it takes at this level's bandwidth."""
        self.read_bytes += nbytes
        return self.transfer_cycles(nbytes)

    def write(self, nbytes: int) -> int:
        """Count a write; return the cycles it takes at this level's bandwidth."""
        self.write_bytes += nbytes
        return self.transfer_cycles(nbytes)

    def transfer_cycles(self, nbytes: int) -> int:
        if self.bytes_per_cycle is None or nbytes == 0:
            return 0
        return math.ceil(nbytes / self.bytes_per_cycle)

    @property
    def energy_pj(self) -> float:
        return self.read_bytes * self.read_pj_per_byte + self.write_bytes * self.write_pj_per_byte

    def summary(self) -> dict[str, int]:
        return {"read": self.read_bytes, "write": self.write_bytes,
                "total": self.read_bytes + self.write_bytes}
