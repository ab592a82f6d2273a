"""The transformer-block kernel ops end to end: spec -> kernel IR -> numpy reference and
systolic machine, each compared with numpy (tensors/block_ops and plain numpy) on
hypothesis-drawn shapes and data; spec mistakes give one located line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.backends.common.backend import run_reference
from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.compiler.spec import SpecError, parse_spec
from sparsec.tensors import block_ops

SETTINGS = settings(max_examples=12, deadline=None)
SYSTOLIC = "systolic{rows=4 cols=4 vector_lanes=4}"


def _decl(name: str, shape: tuple[int, ...], seed: int, role: str = "in") -> str:
    return f"  {role} {name}: f32[{', '.join(map(str, shape))}] = random(seed={seed})\n"


def _kernel(decls: str, call: str) -> str:
    return f"kernel k {{\n{decls}  Y = {call}\n  out Y\n}}\n"


def _run(text: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(inputs by name, reference output, systolic output) of kernel `k`."""
    kernel = compile_text(text, CompileOptions(lower=False))
    inputs = {key.split(".", 1)[1]: kernel.store.get(key) for key in kernel.store.keys()
              if key.startswith("k.") and "#" not in key}
    (reference,) = run_reference(kernel.module, kernel.store)["k"]
    lowered = compile_text(text, CompileOptions(target=SYSTOLIC))
    result = execute(lowered.module, lowered.store)
    assert result.reports[0].check.ok, result.reports[0].check
    return inputs, reference, result.outputs["k"][0]


def _close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


rows = st.integers(1, 6)
cols = st.integers(1, 12)
seeds = st.integers(0, 10_000)


@SETTINGS
@given(seeds, rows, cols, st.sampled_from([1e-5, 1e-2]))
def test_rmsnorm_equals_numpy(seed, r, c, eps):
    text = _kernel(_decl("X", (r, c), seed) + _decl("G", (c,), seed + 1, "param"),
                   f"rmsnorm(X, G, eps={eps})")
    x, ref, out = _run(text)
    want = block_ops.rmsnorm(x["X"], x["G"], eps)
    _close(ref, want)
    _close(out, want)
    manual = x["X"] / np.sqrt(np.mean(x["X"].astype(np.float64) ** 2, -1, keepdims=True) + eps)
    _close(out, manual * x["G"], rtol=1e-4, atol=1e-5)


@SETTINGS
@given(seeds, rows, st.integers(2, 12))
def test_layernorm_equals_numpy(seed, r, c):
    decls = (_decl("X", (r, c), seed) + _decl("G", (c,), seed + 1, "param")
             + _decl("B", (c,), seed + 2, "param"))
    x, ref, out = _run(_kernel(decls, "layernorm(X, G, B, eps=1e-5)"))
    want = block_ops.layernorm(x["X"], x["G"], x["B"], 1e-5)
    _close(ref, want)
    _close(out, want)


@SETTINGS
@given(seeds, rows, cols, st.sampled_from(["silu", "exp", "gelu", "gelu_tanh"]))
def test_activations_equal_numpy(seed, r, c, kind):
    call = {"gelu_tanh": "gelu(X, approximate=tanh)"}.get(kind, f"{kind}(X)")
    x, ref, out = _run(_kernel(_decl("X", (r, c), seed), call))
    want = {"silu": lambda v: block_ops.silu(v), "exp": np.exp,
            "gelu": lambda v: block_ops.gelu(v, "none"),
            "gelu_tanh": lambda v: block_ops.gelu(v, "tanh")}[kind](x["X"])
    _close(ref, want)
    _close(out, want)


broadcast_pairs = st.sampled_from([
    ((3, 5), (3, 5)), ((3, 5), (5,)), ((3, 1), (3, 5)), ((2, 3, 4), (3, 4)),
    ((2, 1, 4), (1, 3, 1)), ((4,), (2, 4)),
])


@SETTINGS
@given(seeds, broadcast_pairs, st.sampled_from(["add", "mul"]))
def test_add_and_mul_broadcast_like_numpy(seed, shapes, op):
    a, b = shapes
    x, ref, out = _run(_kernel(_decl("A", a, seed) + _decl("B", b, seed + 1), f"{op}(A, B)"))
    want = x["A"] + x["B"] if op == "add" else x["A"] * x["B"]
    assert out.shape == np.broadcast_shapes(a, b)
    np.testing.assert_array_equal(ref, want)
    np.testing.assert_array_equal(out, want)


@SETTINGS
@given(seeds, st.integers(1, 3), st.integers(1, 5), st.sampled_from([2, 4, 8]),
       st.integers(0, 40), st.sampled_from(["normal", "neox"]))
def test_rope_equals_numpy(seed, heads, t, d, start, convention):
    call = f"rope(X, base=100000, start={start}, convention={convention})"
    x, ref, out = _run(_kernel(_decl("X", (heads, t, d), seed), call))
    want = block_ops.rope(x["X"], np.arange(start, start + t), 100000.0, convention=convention)
    _close(ref, want)
    _close(out, want)
    # A rotation keeps each pair's norm.
    _close(np.linalg.norm(out, axis=-1), np.linalg.norm(x["X"], axis=-1), rtol=1e-4)


@SETTINGS
@given(seeds, st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
def test_heads_and_merge_heads_are_numpy_reshapes(seed, h, t, d):
    x, ref, out = _run(_kernel(_decl("X", (t, h * d), seed), f"heads(X, heads={h})"))
    want = x["X"].reshape(t, h, d).transpose(1, 0, 2)
    np.testing.assert_array_equal(out, want)
    text = (f"kernel k {{\n{_decl('X', (t, h * d), seed)}  H = heads(X, heads={h})\n"
            "  Y = merge_heads(H)\n  out Y\n}\n")
    x, ref, out = _run(text)
    np.testing.assert_array_equal(out, x["X"])


@SETTINGS
@given(seeds, st.integers(1, 3), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2))
def test_concat_equals_numpy(seed, a, b, c, axis):
    shape_a, shape_b = [2, 3, 4], [2, 3, 4]
    shape_a[axis], shape_b[axis] = a, b
    x, ref, out = _run(_kernel(_decl("A", tuple(shape_a), seed) + _decl("B", tuple(shape_b), 9),
                               f"concat(A, B, axis={axis})"))
    np.testing.assert_array_equal(out, np.concatenate([x["A"], x["B"]], axis=axis))


@SETTINGS
@given(seeds, st.sampled_from([(1, 1), (2, 1), (4, 2), (3, 3), (6, 2)]), st.integers(1, 5),
       st.integers(0, 6), st.sampled_from([2, 4]), st.booleans())
def test_grouped_query_attention_equals_numpy(seed, heads, t, extra, d, causal):
    hq, hkv = heads
    s = t + extra
    start = extra if causal else None
    mask = f", mask=causal, start={start}" if causal else ""
    decls = (_decl("Q", (hq, t, d), seed) + _decl("K", (hkv, s, d), seed + 1)
             + _decl("V", (hkv, s, d), seed + 2))
    if not causal and hq == hkv:
        return  # plain attention: tests/backends/systolic/test_systolic_attention.py
    x, ref, out = _run(_kernel(decls, f"attention(Q, K, V, scale=0.5{mask})"))
    want, _ = block_ops.gqa_attention(x["Q"], x["K"], x["V"], hq, hkv, start or 0, 0.5,
                                      causal=causal)
    _close(ref, want)
    _close(out, want)
    # Query head h reads key/value head h // (hq / hkv): per head, plain softmax attention.
    group = hq // hkv
    for h in range(hq):
        scores = 0.5 * x["Q"][h].astype(np.float64) @ x["K"][h // group].T
        if causal:
            scores[np.arange(s)[None, :] > start + np.arange(t)[:, None]] = -np.inf
        p = np.exp(scores - scores.max(-1, keepdims=True))
        _close(out[h], (p / p.sum(-1, keepdims=True)) @ x["V"][h // group], rtol=1e-4,
               atol=1e-5)


def test_decode_step_reads_the_cache_and_the_new_key():
    """One query row at position 5 over 5 cached keys plus its own: concat then attend."""
    decls = (_decl("Q", (4, 1, 8), 1) + _decl("Kc", (2, 5, 8), 2, "param")
             + _decl("Vc", (2, 5, 8), 3, "param") + _decl("Kn", (2, 1, 8), 4)
             + _decl("Vn", (2, 1, 8), 5))
    text = (f"kernel k {{\n{decls}  K = concat(Kc, Kn, axis=1)\n  V = concat(Vc, Vn, axis=1)\n"
            "  Y = attention(Q, K, V, mask=causal, start=5)\n  out Y\n}\n")
    x, ref, out = _run(text)
    k = np.concatenate([x["Kc"], x["Kn"]], axis=1)
    v = np.concatenate([x["Vc"], x["Vn"]], axis=1)
    want, probs = block_ops.gqa_attention(x["Q"], k, v, 4, 2, 5)
    _close(out, want)
    assert probs.shape == (4, 1, 6) and np.all(probs > 0)


def test_gqa_ir_names_the_op_and_its_start():
    text = _kernel(_decl("Q", (4, 2, 8), 1) + _decl("K", (2, 6, 8), 2),
                   "attention(Q, K, K, mask=causal, start=3)")
    ir = str(compile_text(text, CompileOptions(lower=False)).module)
    assert 'sparsec.gqa_attention %Q, %K, %K {scale = 0.35355339059327373 : f64, ' \
           'mask = "causal", start = 3 : i64}' in ir


SPEC_ERRORS = {
    "rmsnorm(X, X)": "rmsnorm: X must be a vector of X's last dimension [8], but it is f32[4, 8]",
    "rmsnorm(X, G, eps=0)": "rmsnorm: eps must be > 0, got 0",
    "rmsnorm(X, G, epsilon=1)": "rmsnorm: unknown keyword 'epsilon'",
    "layernorm(X, G)": "layernorm: expected 3 operands (X, gain, bias), got 2",
    "silu(I)": "silu: I must be floating point, but it is i8[4, 8]",
    "gelu(X, approximate=erf)": "gelu: approximate must be none or tanh, got erf",
    "exp(X, approximate=tanh)": "exp: unknown keyword 'approximate'",
    "add(X, W)": "add: f32[4, 8] and f32[4, 3] do not broadcast",
    "mul(X, H16)": "mul: element types disagree: X is f32[4, 8] but H16 is f16[4, 8]",
    "rope(W)": "rope: W must be [T, d] or [heads, T, d] with d even, but it is f32[4, 3]",
    "rope(X, start=-1)": "rope: start must be at least 0, got -1",
    "rope(X, convention=gptj)": "rope: convention must be normal or neox, got gptj",
    "heads(X)": "heads: needs heads=H (the number of heads)",
    "heads(X, heads=3)": "heads: heads=3 must divide X's 8 columns",
    "merge_heads(X)": "merge_heads: X must be a tensor (rank 3), but it is f32[4, 8]",
    "concat(X, W, axis=0)": "concat: f32[4, 8] and f32[4, 3] must agree in every dimension but "
                            "axis 0",
    "concat(X, X, axis=2)": "concat: axis must be < rank 2",
    "attention(Q3, K2, K2)": "attention: K2 disagrees in heads (or a divisor of Q's heads): 2 != 3",
    "attention(Q, K2, K2, mask=window(2))": "attention: grouped-query attention takes mask=none "
                                            "or mask=causal",
    "attention(Q, K, K, start=2)": "attention: start places the queries of a causal mask; add "
                                   "mask=causal",
    "attention(Q, K, K, mask=causal, start=5)": "attention: queries at positions 5..6 need 7 "
                                                "keys, but K has 6",
    "attention(X, X, X, mask=causal, start=0)": "attention: start needs [heads, T, d] operands",
}


@pytest.mark.parametrize("call", list(SPEC_ERRORS), ids=list(SPEC_ERRORS))
def test_spec_mistakes_are_located_one_liners(call):
    text = ("kernel k {\n  in X: f32[4, 8]\n  in I: i8[4, 8]\n  in H16: f16[4, 8]\n"
            "  in W: f32[4, 3]\n  in G: f32[8]\n  in Q: f32[4, 2, 8]\n  in Q3: f32[3, 2, 8]\n"
            "  in K: f32[4, 6, 8]\n  in K2: f32[2, 6, 8]\n"
            f"  Y = {call}\n  out Y\n}}\n")
    with pytest.raises(SpecError) as info:
        parse_spec(text, "t.sk")
    first = info.value.render().splitlines()[0]
    assert first.startswith("t.sk:11:"), first
    assert SPEC_ERRORS[call] in first, first


@pytest.mark.parametrize("target", ["sigma", "eie", "asadi", "sparc", "stc"])
def test_targets_without_the_block_ops_refuse_them_by_name(target):
    from sparsec.compiler.driver import CompileError

    text = _kernel(_decl("Q", (4, 2, 8), 1) + _decl("K", (2, 6, 8), 2),
                   "attention(Q, K, K, mask=causal, start=3)")
    with pytest.raises(CompileError, match=f"{target} cannot run sparsec.gqa_attention; "
                                           "targets that can: systolic"):
        compile_text(text, CompileOptions(target=target))
    text = _kernel(_decl("X", (4, 8), 1) + _decl("G", (8,), 2, "param"), "rmsnorm(X, G)")
    with pytest.raises(CompileError, match=f"{target} cannot run sparsec.rmsnorm"):
        compile_text(text, CompileOptions(target=target))
