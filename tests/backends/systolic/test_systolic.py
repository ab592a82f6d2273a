"""Systolic backend: outputs equal numpy, cycle equations on hand-checked cases, IR."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import gemm_text, run_text
from sparsec.backends.common.spec import SpecError
from sparsec.backends.systolic.buffers import OfmapWriteBuffer, calc_prefetch, fold_cycles
from sparsec.backends.systolic.spec import SystolicSpec
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.tensors.dtypes import round_to_dtype


def _numpy_gemm(m, n, k, dtype="f32", ta=False, tb=False, density=1.0):
    """The spec's operands recomputed independently and multiplied in float64."""
    compiled = compile_text(gemm_text(m, n, k, dtype, transpose_a=ta, transpose_b=tb,
                                      density=density), CompileOptions(lower=False))
    a = compiled.store.get("g.A").astype(np.float64)
    b = compiled.store.get("g.B").astype(np.float64)
    return (a.T if ta else a) @ (b.T if tb else b)


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("shape", [(64, 64, 64), (37, 53, 71), (1, 40, 9), (100, 3, 1)])
def test_output_equals_numpy(dataflow, shape):
    m, n, k = shape
    (out,), report = run_text(gemm_text(m, n, k), f"systolic{{rows=8 cols=16 dataflow={dataflow}}}")
    np.testing.assert_allclose(out, _numpy_gemm(m, n, k), rtol=1e-5, atol=1e-4)
    assert report.check.ok and report.check.rel_err < 1e-6
    assert report.macs["dense"] == m * n * k
    assert 0 < report.macs["effectual"] <= m * n * k


def test_effectual_macs_count_real_zeros():
    # B has density 0.25 and A none: about a quarter of the dense MACs are useful
    _, report = run_text(gemm_text(64, 64, 64, density=0.25), "systolic")
    assert report.macs["dense"] == 64**3
    assert report.macs["effectual"] == 64 * round(0.25 * 64 * 64)


def test_user_mode_stationary_tile_must_fit():
    from sparsec.backends.common.memory import CapacityError

    target = "systolic{rows=32 cols=32 dataflow=ws mode=user word_bytes=4 filter_sram_kb=1}"
    with pytest.raises(CapacityError, match="stationary filter tile of fold 0 needs 4096 bytes"):
        run_text(gemm_text(64, 64, 64), target)


@pytest.mark.parametrize("ta,tb", [(True, False), (False, True), (True, True)])
def test_transposed_operands(ta, tb):
    (out,), report = run_text(gemm_text(20, 30, 40, transpose_a=ta, transpose_b=tb),
                              "systolic{rows=8 cols=8 dataflow=ws}")
    np.testing.assert_allclose(out, _numpy_gemm(20, 30, 40, "f32", ta, tb), rtol=1e-5, atol=1e-4)
    assert report.check.ok


@pytest.mark.parametrize("dtype,tol", [("f16", 2e-3), ("bf16", 1.6e-2), ("f64", 1e-12)])
def test_reduced_precision_rounds_once_to_the_declared_type(dtype, tol):
    (out,), report = run_text(gemm_text(48, 40, 96, dtype), "systolic{rows=16 cols=16}")
    exact = _numpy_gemm(48, 40, 96, dtype)
    assert report.check.ok
    # f32 accumulation then one rounding: within half an ulp of the exact product's rounding
    np.testing.assert_allclose(out, round_to_dtype(exact, dtype), rtol=tol)
    assert np.array_equal(out, round_to_dtype(out, dtype))


@pytest.mark.parametrize("dtype", ["i8", "i16", "i32"])
def test_integer_gemm_is_exact_and_returns_i32(dtype):
    (out,), report = run_text(gemm_text(33, 17, 70, dtype), "systolic{rows=8 cols=8 dataflow=is}")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, _numpy_gemm(33, 17, 70, dtype).astype(np.int64))
    assert report.check.ok and report.check.max_abs_err == 0


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 40), n=st.integers(1, 40), k=st.integers(1, 40),
       rows=st.integers(1, 9), cols=st.integers(1, 9),
       dataflow=st.sampled_from(["os", "ws", "is"]), density=st.sampled_from([1.0, 0.5, 0.1]))
def test_property_output_equals_numpy(m, n, k, rows, cols, dataflow, density):
    target = f"systolic{{rows={rows} cols={cols} dataflow={dataflow}}}"
    (out,), report = run_text(gemm_text(m, n, k, density=density), target)
    np.testing.assert_allclose(out, _numpy_gemm(m, n, k, density=density), rtol=1e-5, atol=1e-4)
    assert report.check.ok


def test_hand_checked_fold_equations():
    spec = SystolicSpec(rows=4, cols=4, dataflow="os")
    assert fold_cycles(spec, 10) == 10 + 4 + 4 - 2
    spec = SystolicSpec(rows=4, cols=8, dataflow="ws")
    assert fold_cycles(spec, 10) == 10 + 2 * 4 + 8 - 2


def test_hand_checked_small_gemm_cycles():
    # 8x8x8 on 4x4 os: F = 2*2 folds of L = 8+4+4-2 = 14 -> compute = 4*14 - 1 = 55.
    # Prefetch: 64 words < 50 sets of ips = 65536 // 100 = 655 words -> one set, fetched
    # at 10 words/cycle: ceil(655 / 10) = 66 cycles before compute.
    # Tail: 64 output words <= half the ofmap SRAM -> ceil(64 / 4) = 16 lines, one per
    # cycle from the last compute cycle: stop = 55 + 16 - 1 = 70. Total = 70 + 66 = 136.
    _, report = run_text(gemm_text(8, 8, 8), "systolic{rows=4 cols=4 dataflow=os}")
    assert report.details["compute_cycles"] == 55
    assert report.details["folds"] == 4
    assert report.cycles == 136
    assert calc_prefetch(64, 65536) == (66, 655, True)


def test_write_buffer_drains_when_half_full():
    buffer = OfmapWriteBuffer(line_words=4, capacity_words=64)
    lines_left, drains = buffer.replay(100)
    assert drains and drains[0] == (33, 8)      # free space below half after 33 words
    assert lines_left > 0
    assert OfmapWriteBuffer(line_words=4, capacity_words=64).replay(20) == (5, [])


def test_no_execute_accounts_the_same_cycles_without_values():
    text = gemm_text(70, 50, 90)
    (out,), report = run_text(text, "systolic{rows=16 cols=8 dataflow=ws}", execute_values=False)
    _, executed = run_text(text, "systolic{rows=16 cols=8 dataflow=ws}")
    assert out is None and report.check.skipped
    assert report.cycles == executed.cycles


@pytest.mark.parametrize("target,message", [
    ("systolic{dataflow=rs}", "dataflow must be one of os, ws, is"),
    ("systolic{rows=0}", "rows/cols must be >= 1"),
    ("systolic{preset=tpu9}", "unknown preset 'tpu9'"),
    ("systolic{colz=4}", "colz"),
    ("systolic{rows=abc}", "rows"),
])
def test_bad_target_options_are_named(target, message):
    with pytest.raises(SpecError, match=message):
        run_text(gemm_text(4, 4, 4), target)


def test_preset_then_overrides():
    from sparsec.compiler.driver import Target

    spec = Target.parse("systolic{preset=tpu-v1 dataflow=os}").spec
    assert (spec.rows, spec.cols, spec.dataflow, spec.clock_ghz) == (256, 256, "os", 0.7)


def test_user_mode_hand_checked_double_buffering():
    # 8x4x4 on a 4x4 os array: 2 folds of L = 4 + 4 + 4 - 2 = 10 cycles, 1 word/cycle.
    # Fold 0 waits for its 16-word ifmap and filter tiles (16 cycles, in parallel): fill.
    # Fold 1's ifmap tile loads while fold 0 computes (16..32); the filter tile is reused.
    # Fold 1 starts at 32, not 26: 6 stall cycles. 32 output words drain one per cycle
    # from fold 1's last cycle (41): end 73, reported as SCALE-Sim does, 73 - 1 = 72.
    _, report = run_text(gemm_text(8, 4, 4), "systolic{rows=4 cols=4 mode=user bandwidth=1}")
    assert report.details["fill_cycles"] == 16
    assert report.stall_cycles == 6
    assert report.cycles == 72
    assert report.bytes["dram"]["read"] == 16 + 16 + 16


def test_user_mode_stalls_fall_as_bandwidth_rises():
    text = gemm_text(128, 128, 128)
    stalls = []
    for bandwidth in (1, 4, 16, 1024):
        _, report = run_text(text, f"systolic{{mode=user bandwidth={bandwidth}}}",
                             execute_values=False)
        stalls.append(report.stall_cycles)
    assert stalls == sorted(stalls, reverse=True) and stalls[0] > stalls[-1]
    assert stalls[-1] == 0
