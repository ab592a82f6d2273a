"""Attention ops: spec typing, IR, numpy semantics, masks, decompose-attention."""

import numpy as np
import pytest

from sparsec.backends.common.backend import run_reference
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.compiler.spec import SpecError, parse_spec
from sparsec.tensors.attention import mask_matrix

SPEC = """kernel att {{
  in Q: {dt}[2, 6, 4] = random(seed=1)
  in K: {dt}[2, 9, 4] = random(seed=2)
  in V: {dt}[2, 9, 5] = random(seed=3)
  O = attention(Q, K, V, scale=0.5, mask={mask})
  out O
}}
"""


def _independent_attention(q, k, v, scale, allowed):
    """Textbook attention in float64 with -inf masking (no shared code with sparsec)."""
    out = np.zeros((q.shape[0], q.shape[1], v.shape[2]))
    for h in range(q.shape[0]):
        scores = scale * q[h].astype(np.float64) @ k[h].astype(np.float64).T
        scores = np.where(allowed, scores, -np.inf)
        for i in range(scores.shape[0]):
            row = scores[i]
            if np.all(np.isinf(row)):
                continue
            e = np.exp(row - row.max())
            out[h, i] = (e / e.sum()) @ v[h].astype(np.float64)
    return out


@pytest.mark.parametrize("mask,allowed", [
    ("none", np.ones((6, 9), bool)),
    ("causal", np.arange(6)[:, None] + 3 >= np.arange(9)[None, :]),
    ("window(1)", np.abs(np.arange(6)[:, None] + 3 - np.arange(9)[None, :]) <= 1),
])
def test_attention_reference_matches_textbook_attention(mask, allowed):
    compiled = compile_text(SPEC.format(dt="f32", mask=mask), CompileOptions(lower=False))
    (out,) = run_reference(compiled.module, compiled.store)["att"]
    q, k, v = (compiled.store.get(f"att.{n}") for n in "QKV")
    np.testing.assert_allclose(out, _independent_attention(q, k, v, 0.5, allowed),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dt", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("mask", ["none", "causal", "window(2)"])
def test_decomposition_is_bit_identical(dt, mask):
    text = SPEC.format(dt=dt, mask=mask)
    whole = compile_text(text, CompileOptions(lower=False))
    split = compile_text(text, CompileOptions(pipeline="decompose-attention", lower=False))
    names = [op.name for op in split.module.walk()]
    assert "sparsec.attention" not in names
    assert names.count("sparsec.sddmm") == names.count("sparsec.softmax") == 1
    (a,) = run_reference(whole.module, whole.store)["att"]
    (b,) = run_reference(split.module, split.store)["att"]
    np.testing.assert_array_equal(a, b)


def test_pattern_mask_is_bound_as_a_param(tmp_path):
    pattern = np.eye(6, 9, k=3, dtype=np.int8) + np.eye(6, 9, k=2, dtype=np.int8)
    np.savez(tmp_path / "p.npz", band=pattern)
    spec = tmp_path / "a.sk"
    spec.write_text(SPEC.format(dt="f32", mask='pattern("p.npz", "band")'))
    from sparsec.compiler.driver import compile_spec

    compiled = compile_spec(spec, CompileOptions(pipeline="decompose-attention", lower=False))
    np.testing.assert_array_equal(compiled.store.get("att.O_mask"), pattern)
    (out,) = run_reference(compiled.module, compiled.store)["att"]
    q, k, v = (compiled.store.get(f"att.{n}") for n in "QKV")
    np.testing.assert_allclose(out, _independent_attention(q, k, v, 0.5, pattern != 0),
                               rtol=1e-5, atol=1e-6)


def test_masks():
    assert mask_matrix("none", 2, 3) is None
    assert mask_matrix("causal", 2, 3).tolist() == [[True, True, False], [True, True, True]]
    assert mask_matrix("window", 3, 3, window=0).tolist() == np.eye(3, dtype=bool).tolist()


@pytest.mark.parametrize("body,message", [
    ("O = attention(Q, K, V, mask=diagonal)", "mask must be none, causal, window(w)"),
    ("O = attention(Q, K, V, mask=window(-1))", "window(w) takes one integer w >= 0"),
    ("O = attention(Q, K, Q)", "Q disagrees in its rows (S): 6 != 9"),
    ("O = attention(Q, V, V)", "disagrees in its last dimension (d)"),
    ("O = attention(Q, K, V, scale=0)", "scale must be > 0"),
    ("O = attention(Q, K, V, mask=pattern(\"p.txt\"))", "expected a .npz or .npy file"),
    ("O = spmm(Q, V)", "V disagrees in its rows (S)"),
    ("O = softmax(Q, K)", "expected 1 operand"),
])
def test_spec_errors_are_located(body, message):
    text = ("kernel att {\n  in Q: f32[2, 6, 4] = random()\n  in K: f32[2, 9, 4] = random()\n"
            f"  in V: f32[2, 9, 5] = random()\n  {body}\n  out O\n}}\n")
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_spec(text, "a.sk")
    assert err.value.loc.line == 5
