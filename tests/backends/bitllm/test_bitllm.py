"""bitllm backend: interpreter == numpy reference of the same arithmetic (bit for bit),
cycle formulas on hand-checked cases, nonlinear unit errors within their bounds, events."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.backends.bitllm import nonlinear as nl
from sparsec.backends.bitllm.arith import IntFpConfig, int_fp_gemm
from sparsec.backends.bitllm.interpreter import tile_cycles
from sparsec.backends.bitllm.numerics import nonlinear, to_bf16
from sparsec.backends.bitllm.spec import BitllmSpec
from sparsec.backends.common.spec import SpecError
from sparsec.compiler.driver import CompileOptions, compile_text


def _gemm_spec(m: int, k: int, n: int, seed: int = 1) -> str:
    return (f"kernel g {{\n  in X: bf16[{m}, {k}] = random(seed={seed})\n"
            f"  param W: bf16[{n}, {k}] = random(seed={seed + 1}, std=0.05)\n"
            f"  Y = matmul(X, W, transpose_b=true)\n  out Y\n}}\n")


@settings(max_examples=6, deadline=None)
@given(m=st.integers(1, 20), k=st.integers(1, 90), n=st.integers(1, 40),
       target=st.sampled_from(["bitllm", "bitllm{clusters=1 span=1 tile_n=16}",
                               "bitllm{acc_bits=14 acc_mode=wrap max_ones=2 method=sm}",
                               "bitllm{overflow=drop clusters=2 pe_rows=3}"]))
def test_interpreter_is_bit_exact_with_the_numpy_arithmetic(m, k, n, target):
    """Tiles of the machine reproduce int_fp_gemm on the whole matrix, bit for bit."""
    text = _gemm_spec(m, k, n)
    compiled = compile_text(text, CompileOptions(target=target, target_passes=True))
    from sparsec.compiler.driver import execute

    result = execute(compiled.module, compiled.store)
    (y,) = result.outputs["g"]
    store = compiled.store
    codes = store.get("g.W#q").astype(np.int64).T
    scale = store.get("g.W#scale").astype(np.float32)
    spec = _spec(target)
    x = to_bf16(store.get("g.X"))
    expected, stats = int_fp_gemm(x, codes, scale, spec.int_fp_config())
    from sparsec.tensors.dtypes import round_to_dtype

    assert np.array_equal(y, round_to_dtype(expected, "bf16"))
    events = result.reports[0].details["int_fp_events"]
    assert events["register_events"] == stats.register_events
    assert events["passes"] == stats.passes


def _spec(target: str) -> BitllmSpec:
    from sparsec.backends.common.spec import parse_target_string

    return BitllmSpec.from_spec(parse_target_string(target))


def test_tile_cycles_by_hand():
    passes = np.array([[1, 2, 1], [1, 1, 3]])
    queue, lockstep = BitllmSpec(fill_cycles=4), BitllmSpec(scheduler="lockstep", fill_cycles=4)
    # queue: rows run ahead: max(1+2+1, 1+1+3) = 5; two column folds
    assert tile_cycles(passes, 2, queue) == 2 * (5 + 4)
    # lockstep: each group waits for its slowest row: 1 + 2 + 3 = 6
    assert tile_cycles(passes, 2, lockstep) == 2 * (6 + 4)


def test_gemm_cycles_and_traffic_on_a_hand_case():
    """8 x 64 by 64 x 32 with one cluster per group: 2 groups, 2 column folds of 16:
    2 * (2 + 4) = 12 cycles of array; weights 64 x 32 codes at 8 bits + 32 scales."""
    text = ("kernel g {\n  in X: bf16[8, 64] = load(\"x.npy\")\n"
            "  param W: bf16[32, 64] = random(seed=2, std=0.05)\n"
            "  Y = matmul(X, W, transpose_b=true)\n  out Y\n}\n")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", np.full((8, 64), 1.5, dtype=np.float32))
        compiled = compile_text(text, CompileOptions(target="bitllm{max_ones=0}",
                                                     target_passes=True),
                                path=str(Path(tmp) / "k.sk"))
        from sparsec.compiler.driver import execute

        report = execute(compiled.module, compiled.store).reports[0]
    assert report.details["gemm_cycles"] == 2 * (2 + 4)
    assert report.details["int_fp_events"]["passes"] == 8 * 2
    # DRAM: X (8 x 64 BF16) + W (64 x 32 INT8 + 32 fp32 scales) in; Y (8 x 32 BF16) out
    assert report.bytes["dram"]["read"] == 8 * 64 * 2 + 64 * 32 + 32 * 4
    assert report.bytes["dram"]["write"] == 8 * 32 * 2


@pytest.mark.parametrize("function", nl.FUNCTIONS)
@pytest.mark.parametrize("order", [1, 3, 6])
def test_polynomials_stay_within_their_lagrange_bound(function, order):
    ranges = {"exp": (-30, 5), "reciprocal": (1e-3, 1e4), "rsqrt": (1e-4, 1e3),
              "sigmoid": (-12, 12), "silu": (-12, 12), "gelu": (-8, 8)}
    x = np.linspace(*ranges[function], 4001).astype(np.float32)
    got = nl.EVALUATORS[function](x, order).astype(np.float64)
    want = nl.exact(function, x)
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-30)
    floor = 64 * 2.0**-24  # float32 range reduction and Horner rounding
    assert rel.max() <= nl.lagrange_relative_bound(function, order) + floor
    if order >= 3:
        assert rel.max() > 0


def test_error_falls_with_order_and_horner_costs_order_ops():
    x = np.linspace(-10, 0, 1000).astype(np.float32)
    errors = [np.abs(nl.poly_exp(x, p) - np.exp(x.astype(np.float64))).max() for p in (1, 3, 6)]
    assert errors[0] > errors[1] > errors[2]
    assert nl.ops_per_element("exp", 6) - nl.ops_per_element("exp", 2) == 4
    assert nl.block_work("softmax", (4, 8), 6).total(32) == 32 * (4 + 9) + 4 * 9


def test_softmax_rows_sum_to_one_and_respect_the_causal_mask():
    s = np.random.default_rng(0).normal(size=(2, 5, 5)).astype(np.float32) * 4
    p = nonlinear("softmax", [s], {"scale": 0.5, "mask": "causal", "start": 0}, 6, "f32")
    # rows sum to 1 up to the reciprocal's (and exp's) polynomial error, not exactly
    slack = nl.lagrange_relative_bound("reciprocal", 6) + nl.lagrange_relative_bound("exp", 6)
    assert np.all(np.abs(p.sum(-1) - 1.0) <= slack + 1e-6)
    assert (p[:, 0, 1:] == 0).all()


def test_block_example_runs_and_passes_its_check():
    from pathlib import Path

    path = Path(__file__).parents[3] / "examples" / "smollm2_block_prefill_bitllm.sk"
    from sparsec.compiler.driver import execute

    compiled = compile_text(path.read_text(), CompileOptions(target="bitllm",
                                                             target_passes=True))
    report = execute(compiled.module, compiled.store).reports[0]
    assert report.check.ok, report.check
    assert report.details["nonlinear"]["softmax"]["instructions"] == 1
    assert report.energy_pj > 0 and report.cycles > report.details["gemm_cycles"] / 2


@pytest.mark.parametrize("target,message", [
    ("bitllm{acc_mode=round}", "acc_mode must be one of saturate, wrap, truncate"),
    ("bitllm{taylor_order=0}", "taylor_order must lie in [1, 16]"),
    ("bitllm{fp_mode_ratio=5}", "fp_mode_ratio must divide group"),
])
def test_bad_options_name_the_rule(target, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _spec(target)


def test_matmul_without_int_weights_is_refused():
    text = ("kernel g {\n  in X: bf16[4, 8] = random(seed=1)\n  in W: bf16[8, 4] = random(seed=2)\n"
            "  Y = matmul(X, W)\n  out Y\n}\n")
    from sparsec.compiler.driver import CompileError

    with pytest.raises(CompileError, match="INT8-coded param"):
        compile_text(text, CompileOptions(target="bitllm", target_passes=False))


def test_peak_matches_the_chip_within_a_few_percent():
    assert BitllmSpec().peak_tops == pytest.approx(3.58, rel=0.06)
    assert IntFpConfig().register_bits == 24


def test_eval_rows_take_bitllm_options():
    from sparsec.compiler.eval_llm import EvalError, parse_row

    assert parse_row("bitllm{taylor_order=3 max_ones=2}").label == \
        "bitllm{taylor_order=3 max_ones=2}"
    with pytest.raises(EvalError, match="BF16 activations"):
        parse_row("bitllm@f16")
    with pytest.raises(EvalError, match="takes no options"):
        parse_row("systolic{rows=4}")


def test_whole_model_hooks_run_the_same_arithmetic():
    """The eval hooks' GEMM equals the interpreter's function on the same codes."""
    from sparsec.backends.bitllm.numerics import Events, int8_codes, int_fp_matmul, numerics
    from sparsec.tensors.hooks import Linear

    rng = np.random.default_rng(2)
    weight = (rng.normal(size=(24, 40)) * 0.05).astype(np.float32)
    x = rng.normal(size=(5, 40)).astype(np.float32)
    events = Events()
    hooks = numerics(None, BitllmSpec(max_ones=2), events=events)
    prepared = hooks.prepare_weight(Linear("blk.0.attn_q.weight", weight))
    codes, scale = int8_codes(weight.T, 2, "csd")
    expected, _ = int_fp_matmul(x, codes, scale, BitllmSpec().int_fp_config())
    assert np.array_equal(hooks.gemm(x, prepared), expected)
    assert events.gemms == 1 and events.gemm.groups == 5 * 2
