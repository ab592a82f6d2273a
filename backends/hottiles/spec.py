"""Hardware description of a HotTiles machine: H hot and C cold workers sharing DRAM.

HotTiles (Gerogiannis, Aananthakrishnan, Torrellas, Hur, HPCA 2024) runs SpMM C = A . B on
a heterogeneous accelerator: hot workers suited to the denser regions of A (compute
bound) and cold workers to the sparser ones (memory bound), all sharing main memory.
This spec models one such machine (backends/hottiles/README.md derives every field):

- a hot worker is a `hot_rows x hot_cols` weight-stationary systolic array: a tile's
  non-empty rows are streamed as dense rows through the B rows held stationary; its
  memory port streams `hot_bytes_per_cycle`;
- a cold worker streams a tile row by row (CSR, Gustavson): `cold_lanes` MACs multiply
  one nonzero by its B row, B rows come through a `cold_cache_kb` cache; its port
  sustains `cold_bytes_per_cycle` (random row gathers: memory bound);
- all workers share `dram_bytes_per_cycle` of DRAM bandwidth.

The machines compared at equal area (`policy`): the heterogeneous one has
`hot_workers` + `cold_workers`; the area budget is what they occupy,
budget = hot_workers * hot_area + cold_workers * cold_area, and a homogeneous machine
gets as many workers of its one type as the budget holds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec
from sparsec.dialects.formats import TILED_POLICIES

POLICIES = TILED_POLICIES
"""hottiles: HotTiles' model-driven split; hotonly / coldonly: every tile on one worker
type (the budget spent on that type); best: whichever of those two the model predicts
faster for this matrix; random / roundrobin: a heterogeneous machine that ignores
intra-matrix heterogeneity (each tile to a random / the next worker of either type)."""

HETEROGENEOUS = ("hottiles", "random", "roundrobin")
"""Policies that run on the heterogeneous machine (hot_workers + cold_workers)."""


@dataclass(frozen=True)
class HottilesSpec(AcceleratorSpec):
    """H hot (systolic) workers and C cold (streaming CSR) workers sharing DRAM.

    `tile_rows` / `tile_cols` 0 choose the tile automatically: the smallest power of two,
    at least `min_tile`, that cuts A into at most `max_tiles` non-empty tiles (README,
    "Tiles").
    """

    summary: ClassVar[str] = ("SpMM on hot (systolic) + cold (streaming CSR) workers sharing "
                              "DRAM, hot/cold tiles (HotTiles)")

    name: ClassVar[str] = "hottiles"
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    policy: str = "hottiles"
    hot_workers: int = 2
    cold_workers: int = 24
    hot_area: float = 4.0
    cold_area: float = 1.0
    tile_rows: int = 0
    tile_cols: int = 0
    max_tiles: int = 65536
    hot_rows: int = 16
    hot_cols: int = 16
    hot_bytes_per_cycle: float = 64.0
    cold_lanes: int = 8
    cold_cache_kb: int = 64
    cold_row_cycles: int = 1
    cold_bytes_per_cycle: float = 16.0
    index_bytes: int = 4
    dram_bytes_per_cycle: float = 1024.0
    seed: int = 0
    clock_ghz: float = 1.0
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE

    def validate(self) -> None:
        super().validate()
        self.require(self.policy in POLICIES, "policy",
                     f"must be one of {', '.join(POLICIES)}, got '{self.policy}'")
        self.require(self.hot_workers + self.cold_workers >= 1, "hot_workers/cold_workers",
                     "must give at least one worker")
        for option in ("hot_rows", "hot_cols", "cold_lanes", "index_bytes", "max_tiles"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        for option in ("hot_area", "cold_area", "dram_bytes_per_cycle", "hot_bytes_per_cycle",
                       "cold_bytes_per_cycle", "clock_ghz"):
            self.require(getattr(self, option) > 0, option, "must be > 0")
        self.require(any(sum(machine) for machine in self.allowed_workers()), "policy",
                     f"{self.policy} gets no worker from an area budget of {self.area_budget:g} "
                     f"(hot_area {self.hot_area:g}, cold_area {self.cold_area:g})")

    def prepare(self) -> str:
        """The partition this machine runs: `tile-hot-cold` with the options this spec
        sets (those that differ from the defaults)."""
        from xdsl.utils.arg_spec import ArgSpec

        changed = {f.name: (getattr(self, f.name),) for f in dataclasses.fields(self)
                   if getattr(self, f.name) != f.default}
        return str(ArgSpec("tile-hot-cold", changed))

    @property
    def area_budget(self) -> float:
        """Area of the heterogeneous machine, which every policy's machine gets."""
        return self.hot_workers * self.hot_area + self.cold_workers * self.cold_area

    def workers(self, policy: str | None = None) -> tuple[int, int]:
        """(hot, cold) workers of the machine `policy` runs on, at equal area.

        `best` has two candidate machines (`homogeneous`); here it reports the hot-only one.
        """
        policy = policy or self.policy
        if policy in HETEROGENEOUS:
            return self.hot_workers, self.cold_workers
        if policy in ("hotonly", "best"):
            return math.floor(self.area_budget / self.hot_area + 1e-9), 0
        return 0, math.floor(self.area_budget / self.cold_area + 1e-9)

    def allowed_workers(self) -> set[tuple[int, int]]:
        """Worker counts a partition for this machine may have (two for `best`)."""
        if self.policy == "best":
            return {m for m in (self.workers("hotonly"), self.workers("coldonly")) if sum(m)}
        return {self.workers()}

    @property
    def min_tile(self) -> int:
        """Smallest automatic tile side: four hot-array sides, a power of two (a hot fold
        then streams at least 4R rows against its 2R + C - 2 cycles of fill and drain)."""
        return 1 << math.ceil(math.log2(4 * max(self.hot_rows, self.hot_cols)))

    @property
    def cold_cache_bytes(self) -> int:
        return self.cold_cache_kb * 1024
