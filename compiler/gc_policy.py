"""When CPython's cycle collector runs while sparsec compiles: rarely (issue 10, item 13)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_GENERATION_THRESHOLD = 100_000
"""Allocations between young-generation collections while compiling (CPython's default
is 700); see `long_lived_allocations`."""


@contextlib.contextmanager
def long_lived_allocations() -> Iterator[None]:
    """Collect cycles rarely while a compile allocates: nearly everything it makes (the
    AST, IR ops, attributes) lives to the end, so CPython's generational collector,
    tuned for short-lived objects, rescanned the growing heap over and over; a 6,400-
    kernel spec spent a third of its compile time in the collector (issue 10, item 13).
    The collector still runs (garbage cycles stay bounded), 140x less often for the
    young generation, and almost never a full collection; the previous thresholds
    return on exit. mypy raises its threshold for the same reason."""
    previous = gc.get_threshold()
    _BEFORE.append(previous)
    gc.set_threshold(max(previous[0], YOUNG_GENERATION_THRESHOLD), max(previous[1], 50),
                     max(previous[2], 100))
    try:
        yield
    finally:
        _BEFORE.pop()
        gc.set_threshold(*previous)


_BEFORE: list[tuple[int, int, int]] = []
"""Thresholds each open `long_lived_allocations` replaced, outermost first."""


@contextlib.contextmanager
def usual_collection() -> Iterator[None]:
    """The thresholds in force before sparsec raised them, for work that makes garbage
    cycles as it goes (an LLM evaluation, a sweep): with full collections almost never
    running, cycles promoted to the oldest generation would stay until exit."""
    if not _BEFORE:
        yield
        return
    raised = gc.get_threshold()
    gc.set_threshold(*_BEFORE[0])
    try:
        yield
    finally:
        gc.set_threshold(*raised)
