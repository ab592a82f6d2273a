"""SRAM buffer mechanisms of the systolic array, as SCALE-Sim 3.0.0 accounts them.

Three mechanisms set the cycles besides the folds themselves:
- the operand read buffers' initial fill (prefetch) from DRAM before compute starts;
- the fold length: stream T operand rows, plus fill/drain skew across the array;
- the output write buffer, which packs output words into lines of `cols` words and
  drains them to DRAM one line per cycle, in bursts when it is half full and at the end.
Each function below states its equation; backends/systolic/README.md explains why.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sparsec.backends.systolic.spec import SystolicSpec

SRAM_SETS = 100
"""SCALE-Sim splits a read SRAM into 100 sets (prefetch granularity)."""
ACTIVE_SETS = 50
"""Sets in the active half of a double-buffered read SRAM."""
CALC_FILL_WORDS_PER_CYCLE = 10
"""DRAM fill rate SCALE-Sim uses for the prefetch in CALC mode (its `Bandwidth` is ignored)."""


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def calc_prefetch(words: int, sram_words: int) -> tuple[int, int, bool]:
    """(cycles, words fetched, whole operand fetched) of an operand SRAM's initial fill.

    The fill is made of whole sets of `ips = sram_words // 100` words. An operand smaller
    than the active half (50 sets) is fetched whole, rounded up to sets, before the first
    fold: cycles = ceil(ceil(D / ips) * ips / 10). A larger one fills the active half,
    cycles = ceil(50 * ips / 10), timed to finish when the first fold first reads it.
    """
    ips = max(1, sram_words // SRAM_SETS)
    if words < ACTIVE_SETS * ips:
        fetched = cdiv(words, ips) * ips
        return cdiv(fetched, CALC_FILL_WORDS_PER_CYCLE), fetched, True
    fetched = ACTIVE_SETS * ips
    return cdiv(fetched, CALC_FILL_WORDS_PER_CYCLE), fetched, False


def fold_cycles(spec: SystolicSpec, temporal: int) -> int:
    """Cycles of one fold, partial or not (a partial fold is padded to the full array).

    os:     L = T + R + C - 2       (T rows streamed, skewed over R rows and C columns)
    ws, is: L = T + 2R + C - 2      (R cycles to load the stationary tile, T rows
                                     streamed, R - 1 rows of partial-sum travel, C - 1 skew)
    """
    r, c = spec.rows, spec.cols
    if spec.dataflow == "os":
        return temporal + r + c - 2
    return temporal + 2 * r + c - 2


class OfmapWriteBuffer:
    """SCALE-Sim's output write buffer, replayed one drain at a time (not per cycle).

    The buffer holds `capacity_words`; half is active and half drains. Words arrive from
    the array and are packed into lines of `line_words`. Whenever free space drops below
    the active half, a drain of n = ceil(half / line_words) lines is started: it first
    flushes the partly filled line as a padded line, and credits back n full lines minus
    the padding of the last line drained (SCALE-Sim's bookkeeping, reproduced as is).
    Whatever is left after the last word is written drains at one line per cycle.
    """

    def __init__(self, line_words: int, capacity_words: int):
        self.line = line_words
        self.capacity = capacity_words
        self.active = math.ceil(capacity_words * 0.5)
        self.lines_per_drain = cdiv(capacity_words - self.active, line_words)
        self.runs: list[list[int]] = []
        self.partial = 0

    def _push(self, fill: int, count: int) -> None:
        if self.runs and self.runs[-1][1] == fill:
            self.runs[-1][0] += count
        else:
            self.runs.append([count, fill])

    def _add(self, words: int) -> None:
        if self.partial:
            take = min(words, self.line - self.partial)
            self.partial += take
            words -= take
            if self.partial == self.line:
                self._push(self.line, 1)
                self.partial = 0
        full, rest = divmod(words, self.line)
        if full:
            self._push(self.line, full)
        if words:
            self.partial = rest

    def _drain(self) -> tuple[int, int]:
        """Remove up to n lines; (lines drained, fill of the last line drained)."""
        left = self.lines_per_drain
        last_fill = self.line
        while left and self.runs:
            count, fill = self.runs[0]
            take = min(count, left)
            left -= take
            last_fill = fill
            if take == count:
                self.runs.pop(0)
            else:
                self.runs[0][0] -= take
        return self.lines_per_drain - left, last_fill

    def replay(self, total_words: int) -> tuple[int, list[tuple[int, int]]]:
        """Write `total_words`; return (lines left at the end, [(word count, lines)]).

        Each drain is reported with the number of words written when it was triggered.
        """
        free = self.capacity
        written = 0
        drains: list[tuple[int, int]] = []
        while True:
            need = free - self.active + 1
            if written + need > total_words:
                break
            self._add(need)
            written += need
            free -= need
            if self.partial:
                self._push(self.partial, 1)
                self.partial = 0
            lines, last_fill = self._drain()
            free += lines * self.line - (self.line - last_fill)
            drains.append((written, lines))
        self._add(total_words - written)
        if self.partial:
            self._push(self.partial, 1)
            self.partial = 0
        return sum(count for count, _ in self.runs), drains


@functools.lru_cache(maxsize=64)
def fold_write_profile(dataflow: str, rows: int, length: int, rows_used: int,
                       cols_used: int, temporal: int) -> tuple[int, ...]:
    """Cumulative output words a fold has written after each of its `length` cycles.

    os: each PE column emits its rows_used results in the last rows_used of its
    T - 1 + R cycles (the padding rows drain first), skewed one cycle per column;
    ws/is: after 2R - 1 cycles of stationary load and travel, every streamed row writes
    one word per used column, skewed one cycle per column.
    """
    if dataflow == "os":
        rows_out = np.zeros(temporal - 1 + rows, dtype=np.int64)
        rows_out[temporal - 1 + rows - rows_used:] = 1
    else:
        rows_out = np.zeros(2 * rows - 1 + temporal, dtype=np.int64)
        rows_out[2 * rows - 1:] = 1
    per_cycle = np.convolve(rows_out, np.ones(cols_used, dtype=np.int64))[:length]
    return tuple(np.cumsum(per_cycle).tolist())


@dataclass(frozen=True)
class FoldRecord:
    """When a fold ran and what it wrote, for locating write-buffer drains in time."""

    start: int
    words: int
    rows_used: int
    cols_used: int


def cycle_of_word(word_count: int, folds: Sequence[FoldRecord], prefix: Sequence[int],
                  spec: SystolicSpec, length: int, temporal: int) -> int:
    """Cycle at which the array has written `word_count` output words in total.

    `prefix[i]` is the number of words written by folds before fold i.
    """
    i = bisect.bisect_left(prefix, word_count) - 1
    fold = folds[i]
    profile = fold_write_profile(spec.dataflow, spec.rows, length, fold.rows_used,
                                 fold.cols_used, temporal)
    return fold.start + bisect.bisect_left(profile, word_count - prefix[i])
