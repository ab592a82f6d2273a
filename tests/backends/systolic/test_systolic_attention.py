"""Dense attention on the systolic array: GEMM folds per head plus the vector unit."""

import numpy as np
import pytest

from conftest import run_text
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.tensors.attention import attention, mask_matrix

SPEC = """kernel att {{
  in Q: f32[{h}, {t}, {d}] = random(seed=1)
  in K: f32[{h}, {s}, {d}] = random(seed=2)
  in V: f32[{h}, {s}, {d}] = random(seed=3)
  O = attention(Q, K, V, scale=0.5, mask={mask})
  out O
}}
"""


@pytest.mark.parametrize("mask", ["none", "causal", "window(2)"])
@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_attention_output_equals_numpy(mask, dataflow):
    text = SPEC.format(h=3, t=10, s=12, d=6, mask=mask)
    (out,), report = run_text(text, f"systolic{{rows=4 cols=8 dataflow={dataflow}}}")
    store = compile_text(text, CompileOptions(lower=False)).store
    q, k, v = (store.get(f"att.{n}") for n in "QKV")
    kind, window = (mask, None) if "(" not in mask else ("window", 2)
    expected = attention(q, k, v, 0.5, mask_matrix(kind, 10, 12, window), "f32")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert report.check.ok


def test_hand_checked_single_head_attention_cycles():
    # One head, T = S = d = 4 on a 4x4 os array (SCALE-Sim accounting per GEMM):
    #   QK^T: one fold of L = 4 + 4 + 4 - 2 = 10 cycles, then the scale-and-mask epilogue
    #         on the 4-lane vector unit: ceil(16 / 4) = 4 cycles.
    #   softmax on the vector unit (16 elements, 4 rows, 4 lanes, SFU 4 cycles):
    #         ALU 4 ops/element (max, subtract, sum, multiply): ceil(64 / 4) = 16;
    #         SFU exp per element + reciprocal per row: 4 * ceil(20 / 4) = 20;
    #         two row reductions through a log2(4) = 2-level tree: 4  -> 40 cycles.
    #   PV: one fold of 10 cycles.
    text = SPEC.format(h=1, t=4, s=4, d=4, mask="none").replace("[1, ", "[")
    _, report = run_text(text, "systolic{rows=4 cols=4}")
    assert report.details["folds"] == 2
    assert report.units["array"]["busy"] == 10 + 10
    assert report.units["vector"]["busy"] == 4 + 40
    assert report.details["vector_unit"]["softmax"]["cycles"] == 40


def test_approximate_attention_is_refused_not_silently_made_exact():
    from sparsec.compiler.driver import CompileError

    text = SPEC.format(h=2, t=64, s=64, d=8, mask="none")
    with pytest.raises(CompileError, match="sparsec.row_clustered .*run it on its own target"):
        run_text(text, "systolic", pipeline="cluster-rows{clusters=8},decompose-attention")
