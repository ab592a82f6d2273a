"""Hardware description of a HotTiles machine: hot and cold workers sharing DRAM.

HotTiles (Gerogiannis, Aananthakrishnan, Torrellas, Hur, HPCA 2024) runs SpMM
Dout = A . Din on a heterogeneous accelerator: hot workers for the denser tiles of A
(compute bound), cold workers for the sparser ones (memory bound), one shared DRAM.
The presets are the paper's machines (Table III, Table IV, Sec. VI-A):

- `spade-sextans-1/2/4/8` (4 is the default): SPADE PEs (cold: COO, Din reuse None,
  Dout Inter-tile, Din through a 32 KB L1, 1 SIMD MAC/cycle) and one Sextans (hot: COO,
  Din streamed into its scratchpad, Dout Inter-tile, 5-40 SIMD MAC/cycle, 0.5-4 MB),
  0.8 GHz, 205 GB/s DRAM, private outputs merged after a parallel run;
- `piuma`: 4 MTPs (cold, CSR) and 2 STPs (hot, CSR, scratchpad, Dout on demand) with an
  atomic engine (both update one output: no merge, parallel only).

Values the paper does not give are options marked (A) in backends/hottiles/README.md.
The partitioner (`tile-hot-cold`, a pass) does not import this module: it asks the
entry point `sparsec.hardware_models:hottiles` (`hardware_model` below) for the traits.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from sparsec.backends.common.energy import DRAM_PJ_PER_BYTE
from sparsec.backends.common.spec import AcceleratorSpec, parse_target_string
from sparsec.backends.hottiles.fitted import VIS_LAT

POLICIES = ("hottiles", "hotonly", "coldonly", "best", "iunaware")
"""hottiles: the model-driven split (four heuristics, eq. 8); hotonly / coldonly: every
tile on one worker type of the same machine (the other idles); best: whichever of those
the model predicts faster; iunaware: tiles split at random in the roofline ratio (eq. 1)."""
HEURISTICS = ("auto", "mintime-par", "mintime-ser", "minbyte-par", "minbyte-ser")
REUSE = ("inter", "stream", "demand", "none")
FORMATS = ("coo", "csr")
TASKS = ("a", "din", "dout", "mac", "wb")


def _sextans(scale: int) -> dict[str, Any]:
    """Table IV: scale s has 4s SPADE PEs, one Sextans with 5s SIMD MAC/cycle and s/2 MB."""
    return {"cold_workers": 4 * scale, "hot_workers": 1, "hot_simd_per_cycle": 5 * scale,
            "hot_spad_kb": 512 * scale, "hot_mlp": 32 * scale}


PIUMA = {
    "hot_workers": 2, "cold_workers": 4, "atomic": True, "clock_ghz": 1.0, "dram_gbps": 64.0,
    "hot_format": "csr", "cold_format": "csr", "hot_din_reuse": "stream",
    "hot_dout_reuse": "demand", "hot_dout_first": "demand", "cold_din_reuse": "none",
    "cold_dout_reuse": "inter", "cold_dout_first": "demand", "hot_simd_per_cycle": 1,
    "hot_simd_lanes": 8, "hot_spad_kb": 256, "hot_mlp": 32, "cold_simd_per_cycle": 1,
    "cold_simd_lanes": 1, "cold_mlp": 64, "cold_l1_kb": 16,
}
"""PIUMA (Table III, Sec. VII-A): 4 MTPs, 2 STPs, atomic engine; fp64 comes from the
kernel's element type. Clock, bandwidth, SIMD widths, scratchpad and MLP are (A)."""


@dataclass(frozen=True)
class HottilesSpec(AcceleratorSpec):
    """Hot and cold workers sharing DRAM; the defaults are `preset=spade-sextans-4`."""

    summary: ClassVar[str] = ("SpMM on hot (Sextans / PIUMA STP) + cold (SPADE PE / PIUMA MTP) "
                              "workers sharing DRAM, HotTiles' partitioner")

    name: ClassVar[str] = "hottiles"
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "spade-sextans-1": _sextans(1), "spade-sextans-2": _sextans(2),
        "spade-sextans-4": _sextans(4), "spade-sextans-8": _sextans(8), "piuma": PIUMA,
    }

    policy: str = "hottiles"
    heuristic: str = "auto"
    hot_workers: int = 1
    cold_workers: int = 16
    clock_ghz: float = 0.8
    dram_gbps: float = 205.0
    dram_efficiency: float = 161.0 / 205.0
    dram_latency_ns: float = 100.0
    line_bytes: int = 64
    index_bytes: int = 4
    atomic: bool = False
    merger_lanes: int = 16
    hot_simd_per_cycle: int = 20
    hot_simd_lanes: int = 32
    hot_spad_kb: int = 2048
    hot_dout_spad_kb: int = 0
    hot_mlp: int = 128
    hot_format: str = "coo"
    hot_din_reuse: str = "stream"
    hot_dout_reuse: str = "inter"
    hot_dout_first: str = "stream"
    hot_overlap: str = "a-din-dout-mac-wb"
    hot_vis_lat: float = 0.0
    hot_shared_port: bool = True
    cold_simd_per_cycle: int = 1
    cold_simd_lanes: int = 16
    cold_l1_kb: int = 32
    cold_mlp: int = 16
    cold_format: str = "coo"
    cold_din_reuse: str = "none"
    cold_dout_reuse: str = "inter"
    cold_dout_first: str = "demand"
    cold_overlap: str = "a-din-dout-mac-wb"
    cold_vis_lat: float = 0.0
    cold_shared_port: bool = True
    tile_rows: int = 0
    tile_cols: int = 0
    seed: int = 0
    balance: bool = True
    fitted: bool = True
    dram_pj_per_byte: float = DRAM_PJ_PER_BYTE

    def validate(self) -> None:
        super().validate()
        self.require(self.policy in POLICIES, "policy",
                     f"must be one of {', '.join(POLICIES)}, got '{self.policy}'")
        self.require(self.heuristic in HEURISTICS, "heuristic",
                     f"must be one of {', '.join(HEURISTICS)}, got '{self.heuristic}'")
        self.require(self.hot_workers + self.cold_workers >= 1, "hot_workers/cold_workers",
                     "must give at least one worker")
        if self.policy == "hotonly":
            self.require(self.hot_workers >= 1, "hot_workers", "must be >= 1 for hotonly")
        if self.policy == "coldonly":
            self.require(self.cold_workers >= 1, "cold_workers", "must be >= 1 for coldonly")
        for option in ("hot_simd_per_cycle", "hot_simd_lanes", "cold_simd_per_cycle",
                       "cold_simd_lanes", "hot_mlp", "cold_mlp", "line_bytes", "index_bytes",
                       "merger_lanes"):
            self.require(getattr(self, option) >= 1, option, "must be >= 1")
        for option in ("clock_ghz", "dram_gbps", "dram_efficiency", "dram_latency_ns"):
            self.require(getattr(self, option) > 0, option, "must be > 0")
        self.require(self.dram_efficiency <= 1, "dram_efficiency", "must be <= 1")
        for kind in ("hot", "cold"):
            fmt, overlap = getattr(self, f"{kind}_format"), getattr(self, f"{kind}_overlap")
            self.require(fmt in FORMATS, f"{kind}_format", f"must be coo or csr, got '{fmt}'")
            for reuse in ("din_reuse", "dout_reuse"):
                value = getattr(self, f"{kind}_{reuse}")
                self.require(value in REUSE, f"{kind}_{reuse}",
                             f"must be one of {', '.join(REUSE)}, got '{value}'")
            self.require(getattr(self, f"{kind}_dout_first") in ("stream", "demand"),
                         f"{kind}_dout_first", "must be stream or demand")
            bad = [t for g in overlap.split("_") for t in g.split("-") if t and t not in TASKS]
            self.require(not bad, f"{kind}_overlap",
                         f"names tasks {', '.join(TASKS)} joined by - (groups by _), got "
                         f"'{overlap}'")

    # -- derived figures ------------------------------------------------------------------

    @property
    def bandwidth(self) -> float:
        """Sustained DRAM bytes per cycle shared by all workers."""
        return self.dram_gbps * self.dram_efficiency / self.clock_ghz

    @property
    def latency_cycles(self) -> float:
        return self.dram_latency_ns * self.clock_ghz

    def port(self, kind: str) -> float:
        """Bytes per cycle one worker sustains alone: its outstanding lines over the
        DRAM latency (Little's law), at most the DRAM bandwidth."""
        mlp = getattr(self, f"{kind}_mlp")
        return min(self.bandwidth, mlp * self.line_bytes / self.latency_cycles)

    def vis_lat(self, kind: str) -> float:
        """Visible latency per byte of a worker (cycles): the option; else, with `fitted`,
        the value benchmarks/hottiles_calibrate.py fitted for the preset (fitted.py);
        else 1 / port (Little's law)."""
        chosen = getattr(self, f"{kind}_vis_lat")
        if chosen:
            return chosen
        preset = "spade-sextans-4" if self.preset == "default" else self.preset
        if self.fitted and preset in VIS_LAT:
            return VIS_LAT[preset][kind]
        return 1.0 / self.port(kind)

    def flops_per_cycle(self, kind: str) -> float:
        return 2.0 * getattr(self, f"{kind}_simd_per_cycle") * getattr(self, f"{kind}_simd_lanes")

    def workers(self, policy: str | None = None) -> tuple[int, int]:
        """(hot, cold) workers a partition by `policy` uses."""
        policy = policy or self.policy
        if policy == "hotonly":
            return self.hot_workers, 0
        if policy == "coldonly":
            return 0, self.cold_workers
        return self.hot_workers, self.cold_workers

    def allowed_workers(self) -> set[tuple[int, int]]:
        if self.policy == "best":
            return {m for m in (self.workers("hotonly"), self.workers("coldonly")) if sum(m)}
        return {self.workers()}

    # -- what the partitioner sees --------------------------------------------------------

    def changed_options(self) -> str:
        """The options that differ from the defaults, as `k=v` words."""
        words = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            words.append(f"{f.name}={str(value).lower() if isinstance(value, bool) else value}")
        return " ".join(words)

    def prepare(self) -> str:
        """The partition this machine runs: `tile-hot-cold` for this target."""
        from xdsl.utils.arg_spec import ArgSpec

        return str(ArgSpec("tile-hot-cold", {"hardware": ("hottiles",),
                                             "options": (self.changed_options(),)}))

    def traits(self) -> dict[str, Any]:
        """HotTiles' user-set traits (Sec. IV-VI) for `sparsec.passes.hardware`."""
        def worker(kind: str, count: int) -> dict[str, Any]:
            overlap = getattr(self, f"{kind}_overlap")
            return {"count": count, "flops_per_cycle": self.flops_per_cycle(kind),
                    "sparse_format": getattr(self, f"{kind}_format"),
                    "din_reuse": getattr(self, f"{kind}_din_reuse"),
                    "dout_reuse": getattr(self, f"{kind}_dout_reuse"),
                    "dout_first": getattr(self, f"{kind}_dout_first"),
                    "overlap": [g.split("-") for g in overlap.split("_") if g],
                    "vis_lat": self.vis_lat(kind),
                    "shared_port": getattr(self, f"{kind}_shared_port"),
                    "din_spad_bytes": self.hot_spad_kb * 1024 if kind == "hot" else 0,
                    "dout_spad_bytes": self.hot_dout_spad_kb * 1024 if kind == "hot" else 0}

        return {"hot": worker("hot", self.hot_workers), "cold": worker("cold", self.cold_workers),
                "bandwidth": self.bandwidth, "atomic": self.atomic,
                "index_bytes": self.index_bytes, "policy": self.policy,
                "heuristic": self.heuristic, "seed": self.seed, "tile_rows": self.tile_rows,
                "tile_cols": self.tile_cols, "balance": self.balance}


def hardware_model(options: str) -> dict[str, Any]:
    """Entry point `sparsec.hardware_models:hottiles`: the traits of `hottiles{options}`."""
    text = f"hottiles{{{options}}}" if options.strip() else "hottiles"
    return HottilesSpec.from_spec(parse_target_string(text)).traits()
