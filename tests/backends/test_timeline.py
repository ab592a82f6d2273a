"""Timeline: in-order units, dependencies, overlap, busy/idle/waiting accounting."""

import pytest

from sparsec.backends.common.timeline import Timeline


def test_instructions_on_one_unit_run_back_to_back():
    tl = Timeline.with_units(["array"])
    a = tl.issue("array", 10)
    b = tl.issue("array", 5)
    assert (a.start, a.end, b.start, b.end) == (0, 10, 10, 15)
    assert tl.cycles == 15
    assert tl.summary()["array"]["busy"] == 15
    assert tl.summary()["array"]["idle"] == 0


def test_different_units_overlap_and_dependencies_delay():
    tl = Timeline.with_units(["dma", "array"])
    load0 = tl.issue("dma", 8)
    load1 = tl.issue("dma", 8)          # double buffering: overlaps compute of fold 0
    fold0 = tl.issue("array", 20, after=[load0])
    fold1 = tl.issue("array", 20, after=[load1])
    assert fold0.start == 8 and fold1.start == 28 and load1.end == 16
    assert tl.cycles == 48
    stats = tl.summary()
    assert stats["array"]["waiting"] == 8      # idle only before the first load landed
    assert stats["dma"]["utilization"] == pytest.approx(16 / 48)


def test_memory_bound_dependency_counts_waiting_cycles():
    tl = Timeline.with_units(["dma", "array"])
    for _ in range(3):
        load = tl.issue("dma", 30)
        tl.issue("array", 10, after=[load])
    # the array waits 30 before the first fold and 20 before each later one
    assert tl.summary()["array"]["waiting"] == 30 + 20 + 20
    assert tl.cycles == 100


def test_pipelined_latency_frees_the_unit_early():
    tl = Timeline.with_units(["fan"])
    a = tl.issue("fan", 1, latency=10)
    b = tl.issue("fan", 1, after=[])
    assert (a.end, b.start) == (10, 1)
    assert tl.cycles == 10


def test_multi_unit_instruction_waits_for_all_units():
    tl = Timeline.with_units(["a", "b"])
    tl.issue("a", 7)
    both = tl.issue(["a", "b"], 3)
    assert both.start == 7


def test_not_before_and_errors():
    tl = Timeline.with_units(["u"])
    assert tl.issue("u", 2, not_before=5).start == 5
    with pytest.raises(KeyError, match="unknown unit"):
        tl.issue("v", 1)
    with pytest.raises(ValueError, match="negative"):
        tl.issue("u", -1)
