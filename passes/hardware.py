"""Hardware models that passes may consult, without importing a backend.

A pass that partitions work for a machine (`tile-hot-cold`) needs that machine's traits:
worker counts, peak rates, reuse types, scratchpads, memory bandwidth. Backends publish
them through the entry-point group `sparsec.hardware_models`: each entry is a callable
taking the target's option text (`"preset=spade-sextans-4 policy=coldonly"`) and
returning a plain dict, which `heterogeneous_model` checks and turns into the dataclasses
below. Tests may `register` a model directly.

The fields are HotTiles' user-set traits (Gerogiannis et al., HPCA 2024, Sec. IV-VI): per
worker type the count, peak FLOP/cycle, sparse format, Din and Dout reuse types, which of
the five tasks overlap, the visible latency per byte and the scratchpads; per machine the
shared DRAM bandwidth and whether an atomic engine lets both types update one output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

GROUP = "sparsec.hardware_models"
TASKS = ("a", "din", "dout", "mac", "wb")
"""HotTiles' five tasks of a tile: read A, read Din, read Dout, SIMD MAC, write back Dout."""
REUSE = ("inter", "stream", "demand", "none")
"""Table I reuse types: Inter-tile, Intra-tile (stream), Intra-tile (demand), None."""
FORMATS = ("coo", "csr")
POLICIES = ("hottiles", "hotonly", "coldonly", "best", "iunaware")
HEURISTICS = ("mintime-par", "mintime-ser", "minbyte-par", "minbyte-ser")
"""The four subproblems, in the order of `Partition.heuristic`."""

_REGISTERED: dict[str, Callable[[str], dict[str, Any]]] = {}


class HardwareModelError(ValueError):
    """An unknown model or a trait out of range; the message names it."""


@dataclass(frozen=True)
class WorkerModel:
    """One worker type as the partitioner sees it."""

    count: int
    flops_per_cycle: float
    sparse_format: str
    din_reuse: str
    dout_reuse: str
    dout_first: str
    overlap: tuple[tuple[str, ...], ...]
    vis_lat: float
    din_spad_bytes: int = 0
    dout_spad_bytes: int = 0
    shared_port: bool = False
    """Memory tasks of one overlap group share one port: their times add, and the sum
    overlaps the group's other tasks (A)."""

    def check(self, kind: str) -> None:
        if self.count < 0 or self.flops_per_cycle <= 0 or self.vis_lat < 0:
            raise HardwareModelError(f"{kind} worker: count >= 0, flops_per_cycle > 0 and "
                                     "vis_lat >= 0 are required")
        if self.sparse_format not in FORMATS:
            raise HardwareModelError(f"{kind} worker: sparse_format must be one of "
                                     f"{', '.join(FORMATS)}, got '{self.sparse_format}'")
        for name in ("din_reuse", "dout_reuse"):
            if getattr(self, name) not in REUSE:
                raise HardwareModelError(f"{kind} worker: {name} must be one of "
                                         f"{', '.join(REUSE)}, got '{getattr(self, name)}'")
        if self.dout_first not in ("stream", "demand"):
            raise HardwareModelError(f"{kind} worker: dout_first must be stream or demand")
        for group in self.overlap:
            for task in group:
                if task not in TASKS:
                    raise HardwareModelError(f"{kind} worker: unknown task '{task}' in overlap "
                                             f"(tasks: {', '.join(TASKS)})")


@dataclass(frozen=True)
class HeterogeneousModel:
    """A machine of hot and cold workers sharing DRAM, and how to partition for it."""

    hot: WorkerModel
    cold: WorkerModel
    bandwidth: float
    atomic: bool
    index_bytes: int
    policy: str = "hottiles"
    heuristic: str = "auto"
    seed: int = 0
    tile_rows: int = 0
    tile_cols: int = 0
    tile_row_candidates: tuple[int, ...] = (256, 1024, 4096, 16384)
    max_tiles: int = 250_000
    balance: bool = True
    """Predict th_total / tc_total as the busiest worker once panels are dealt (True, (A))
    or as eq. 2's even share sum / N (False, the paper's)."""

    def check(self) -> None:
        self.hot.check("hot")
        self.cold.check("cold")
        if self.bandwidth <= 0:
            raise HardwareModelError("bandwidth must be > 0 bytes per cycle")
        if self.policy not in POLICIES:
            raise HardwareModelError(f"policy must be one of {', '.join(POLICIES)}, got "
                                     f"'{self.policy}'")
        if self.heuristic not in ("auto", *HEURISTICS):
            raise HardwareModelError(f"heuristic must be auto or one of "
                                     f"{', '.join(HEURISTICS)}, got '{self.heuristic}'")
        if self.hot.count + self.cold.count == 0:
            raise HardwareModelError("the machine has no worker")


def register(name: str, factory: Callable[[str], dict[str, Any]]) -> None:
    """Make `factory` the model called `name` (in addition to the entry points)."""
    _REGISTERED[name] = factory


def known_models() -> list[str]:
    return sorted({*_REGISTERED, *(ep.name for ep in entry_points(group=GROUP))})


def _factory(name: str) -> Callable[[str], dict[str, Any]]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            return ep.load()
    raise HardwareModelError(f"unknown hardware model '{name}' (known: "
                             f"{', '.join(known_models()) or 'none installed'})")


def _worker(traits: dict[str, Any]) -> WorkerModel:
    overlap = tuple(tuple(group) for group in traits.pop("overlap"))
    return WorkerModel(overlap=overlap, **traits)


def heterogeneous_model(name: str, options: str = "") -> HeterogeneousModel:
    """The model `name` publishes, for the target options `options`; checked."""
    traits = dict(_factory(name)(options))
    try:
        model = HeterogeneousModel(hot=_worker(dict(traits.pop("hot"))),
                                   cold=_worker(dict(traits.pop("cold"))),
                                   **{k: tuple(v) if isinstance(v, list) else v
                                      for k, v in traits.items()})
    except (KeyError, TypeError) as err:
        raise HardwareModelError(f"hardware model '{name}' returned malformed traits: {err}"
                                 ) from None
    model.check()
    return model
