"""The Timeline: hardware units, instruction occupancy, dependencies and overlap.

Every backend's interpreter issues each instruction to the units it occupies. An
instruction starts when all of its units are free (units execute in order) and all the
instructions it depends on have finished. Instructions on different units overlap,
which is how double buffering and pipelines appear. The Timeline accumulates, per unit,
busy cycles, idle cycles and the cycles a free unit spent waiting for a dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """One issued instruction: when it occupied its units and when its result is ready."""

    start: int
    end: int
    units: tuple[str, ...]


@dataclass
class UnitStats:
    """Busy and dependency-wait cycles of one unit, and how many instructions it ran."""

    busy: int = 0
    waiting: int = 0
    instructions: int = 0
    free_at: int = 0


@dataclass
class Timeline:
    """In-order units with occupancy; `issue` places an instruction and returns its Event."""

    units: dict[str, UnitStats] = field(default_factory=dict)
    end: int = 0

    @classmethod
    def with_units(cls, names: Iterable[str]) -> Timeline:
        return cls(units={name: UnitStats() for name in names})

    def issue(self, units: str | Sequence[str], cycles: int, *,
              after: Iterable[Event | None] = (), not_before: int = 0,
              latency: int | None = None) -> Event:
        """Occupy `units` for `cycles`, starting once they are free and `after` is done.

        `latency` (default: `cycles`) is when the result is ready, counted from the start:
        a pipelined unit accepts the next instruction after `cycles` but its result
        arrives `latency` cycles after the start.
        """
        names = (units,) if isinstance(units, str) else tuple(units)
        if cycles < 0:
            raise ValueError(f"instruction on {names} has negative duration {cycles}")
        unknown = [u for u in names if u not in self.units]
        if unknown:
            raise KeyError(f"unknown unit(s) {unknown}; the timeline has {list(self.units)}")
        ready = max([not_before, *(e.end for e in after if e is not None)])
        free = max(self.units[u].free_at for u in names)
        start = max(ready, free)
        finish = start + (cycles if latency is None else latency)
        for u in names:
            stats = self.units[u]
            stats.waiting += max(0, ready - stats.free_at)
            stats.busy += cycles
            stats.instructions += 1
            stats.free_at = start + cycles
        self.end = max(self.end, finish, start + cycles)
        return Event(start, finish, names)

    @property
    def cycles(self) -> int:
        """Cycles from the first instruction's start (time 0) to the last one's end."""
        return self.end

    def utilization(self, unit: str) -> float:
        return self.units[unit].busy / self.end if self.end else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        """Per unit: busy, idle and waiting cycles, utilization, instruction count."""
        return {
            name: {
                "busy": s.busy,
                "idle": max(0, self.end - s.busy),
                "waiting": s.waiting,
                "utilization": self.utilization(name),
                "instructions": s.instructions,
            }
            for name, s in self.units.items()
        }
