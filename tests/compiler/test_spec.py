"""Tests for the spec language: parsing, AST shape, semantic checks, located errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.compiler import spec as spec_mod
from sparsec.compiler.sources import materialize_kernel
from sparsec.compiler.spec import (
    OP_RULES,
    Assign,
    Bool,
    Call,
    CallValue,
    Decl,
    Ident,
    Kernel,
    ListValue,
    Loc,
    Number,
    Operand,
    Source,
    SpecError,
    String,
    TensorType,
    check_kernel,
    format_spec,
    load_params,
    parse_spec,
    parse_spec_file,
    random_params,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BAD_SPECS = Path(__file__).resolve().parent / "bad_specs"

CANONICAL = """\
# comment
kernel gemm {
  in    X: f32[128, 384] = random(seed=1)                 # runtime input
  param W: f32[384, 1536] = random(seed=2, density=0.5)  # compile-time constant
  Y = matmul(X, W)
  out Y
}
"""


def render_error(text: str, path: str = "t.sk") -> str:
    """The rendered SpecError that parsing ``text`` must raise."""
    with pytest.raises(SpecError) as info:
        parse_spec(text, path)
    assert str(info.value) == info.value.render()
    return info.value.render()


def kernel_text(*body: str) -> str:
    """A kernel ``k`` whose statements are ``body`` (one per line, indented)."""
    return "kernel k {\n" + "".join(f"  {line}\n" for line in body) + "}\n"


# --------------------------------------------------------------------------
# Well-formed specs
# --------------------------------------------------------------------------


def test_canonical_example_ast() -> None:
    spec = parse_spec(CANONICAL, "gemm.sk")
    assert spec.path == "gemm.sk"
    (k,) = spec.kernels
    assert k.name == "gemm"
    assert k.loc == Loc("gemm.sk", 2, 8, 12)
    x, w = k.decls
    assert x == Decl(
        "in", "X", TensorType("f32", (128, 384)), Source("random", (), {"seed": Number(1)})
    )
    assert w.role == "param"
    assert w.type == TensorType("f32", (384, 1536))
    assert random_params(w.source) == spec_mod.RandomParams(seed=2, density=0.5, dist="normal")
    assert w.source.loc == Loc("gemm.sk", 4, 29, 56)
    (a,) = k.assigns
    assert a == Assign("Y", Call("matmul", (Operand("X"), Operand("W")), {}))
    assert a.call.operands[1].loc == Loc("gemm.sk", 5, 17, 18)
    assert k.outs == ("Y",)
    assert k.out_names == ("Y",)
    assert k.types == {
        "X": TensorType("f32", (128, 384)),
        "W": TensorType("f32", (384, 1536)),
        "Y": TensorType("f32", (128, 1536)),
    }
    assert k.pipeline is None and k.target is None
    assert [d.name for d in k.inputs] == ["X"] and [d.name for d in k.params] == ["W"]


def test_operand_is_a_name() -> None:
    op = Operand("X", Loc("f", 1, 2))
    assert op == "X" and op.name == "X" and type(op.name) is str
    assert {"X": 1}[op] == 1
    assert op.loc == Loc("f", 1, 2)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.sk")), ids=lambda p: p.name)
def test_examples_parse_and_materialize(path: Path) -> None:
    """Every example parses; those whose data ships or is random also materialize (the
    ones whose data a `sparsec workload` command makes run in tests/test_examples.py)."""
    spec = parse_spec_file(path)
    assert spec.kernels
    if "sparsec workload" in path.read_text():
        return
    for kernel in spec.kernels:
        data = materialize_kernel(kernel)
        for name, array in data.items():
            assert array.shape == kernel.types[name].shape


def test_example_shapes() -> None:
    gemm = parse_spec_file(EXAMPLES / "gemm.sk").kernel()
    assert gemm.types["Y"] == TensorType("f32", (128, 1536))
    assert random_params(gemm.decl("W").source).density == 0.5
    small = parse_spec_file(EXAMPLES / "gemm_small.sk").kernel()
    assert small.types["Y"] == TensorType("f32", (64, 64))
    multi = parse_spec_file(EXAMPLES / "gemm_multi.sk")
    assert [k.name for k in multi.kernels] == ["gemm_tb", "gemm_bf16"]
    assert multi.kernel("gemm_tb").assigns[0].call.attrs["transpose_b"] == Bool(True)
    assert multi.kernel("gemm_tb").types["Y"] == TensorType("f32", (32, 64))
    assert multi.kernel("gemm_bf16").types["C"] == TensorType("bf16", (16, 48))
    big = parse_spec_file(EXAMPLES / "gemm_512.sk").kernel()
    assert big.types["C"] == TensorType("f32", (512, 512))
    assert all(d.role == "in" and d.source.kind == "random" for d in big.decls)


def test_pipeline_target_multiple_outs_and_comments() -> None:
    text = """\
# leading comment

kernel two {   # trailing comment
  pipeline "prune-nm{n=2 m=4},canonicalize"   # a # in a comment
  target "systolic{rows=16 cols=16}"
  # comment-only line

  in A: f16[4, 8]
  in B: f16[8, 2] = load("b.npy")
  C = matmul(A, B)
  D = matmul(A, B, transpose_a=false)
  out C, D
}
# the end"""
    k = parse_spec(text, "two.sk").kernel("two")
    assert k.pipeline == "prune-nm{n=2 m=4},canonicalize"
    assert k.target == "systolic{rows=16 cols=16}"
    assert k.pipeline_loc == Loc("two.sk", 4, 12, 44)
    assert k.out_names == ("C", "D")
    assert k.decl("A").source is None
    assert load_params(k.decl("B").source) == spec_mod.LoadParams("b.npy", None, False, "npy")


def test_values_of_every_kind_parse() -> None:
    """Later ops (attention, softmax...) need only a rule, not a grammar change."""
    seen = {}

    def attention_rule(types, attrs, call):
        seen.update(attrs)
        return types[0]

    real_rule = OP_RULES["attention"]
    OP_RULES["attention"] = attention_rule
    try:
        text = kernel_text(
            "in Q: f32[8, 4]",
            'S = attention(Q, Q, Q, scale=0.125, big=-1.5e3, n=64, s="p.npz", on=true, off=false,',
            '    mask=window(64), pat=pattern("p.npz", k=2), mode=causal, l=[1, 2, [3]],',
            ")",
            "out S",
        )
        k = parse_spec(text, "a.sk").kernel()
    finally:
        OP_RULES["attention"] = real_rule
    assert seen["scale"] == Number(0.125)
    assert seen["big"].value == -1500.0
    assert seen["n"].value == 64 and isinstance(seen["n"].value, int)
    assert seen["s"] == String("p.npz")
    assert seen["on"] == Bool(True) and seen["off"] == Bool(False)
    assert seen["mask"] == CallValue("window", (Number(64),), {})
    assert seen["pat"] == CallValue("pattern", (String("p.npz"),), {"k": Number(2)})
    assert seen["mode"] == Ident("causal")
    assert seen["l"].value == (1, 2, (3,))
    assert isinstance(seen["l"], ListValue)
    assert seen["mask"].loc.line == 4
    call = k.assigns[0].call
    assert call.operands == ("Q", "Q", "Q")
    assert call.attr_locs["scale"] == Loc("a.sk", 3, 26, 31)


def test_strings_escapes_and_single_quotes() -> None:
    text = kernel_text(r"""in X: f32[2] = load('d\\x "q".npy')""", "out X")
    src = parse_spec(text).kernel().decl("X").source
    assert src.args[0] == String('d\\x "q".npy')


def test_crlf_and_tabs() -> None:
    text = "kernel k {\r\n\tin X: f32[2, 2]\r\n\tout X\r\n}\r\n"
    assert parse_spec(text).kernel().out_names == ("X",)
    err = render_error("kernel k {\r\n\tin X: f31[2, 2]\r\n\tout X\r\n}\r\n")
    assert err.splitlines()[1:] == ["  \tin X: f31[2, 2]", "  \t      ^~~"]


def test_format_round_trip() -> None:
    text = (EXAMPLES / "gemm_multi.sk").read_text()
    spec = parse_spec(text, "m.sk")
    printed = format_spec(spec)
    again = parse_spec(printed, "m.sk")
    assert format_spec(again) == printed
    assert [k.types for k in again.kernels] == [k.types for k in spec.kernels]
    assert again.kernels == spec.kernels


def test_check_kernel_on_built_ast() -> None:
    """check_kernel works on hand-built kernels too (no locations needed)."""
    k = Kernel(
        name="k",
        decls=(Decl("in", "A", TensorType("i8", (2, 3)), None),),
        assigns=(
            Assign("B", Call("matmul", (Operand("A"), Operand("A")), {"transpose_b": Bool(True)})),
        ),
        outs=(Operand("B"),),
    )
    assert check_kernel(k).types["B"] == TensorType("i32", (2, 2))  # i8 products return i32


def test_rank_up_to_four_and_more() -> None:
    k = parse_spec(kernel_text("in X: f32[2, 3, 4, 5]", "in Y: i16[7]", "out X, Y")).kernel()
    assert k.types["X"].rank == 4 and k.types["Y"].shape == (7,)


def test_tensor_type_validates() -> None:
    with pytest.raises(ValueError):
        TensorType("f31", (1,))
    with pytest.raises(ValueError):
        TensorType("f32", ())
    assert str(TensorType("bf16", (3, 4))) == "bf16[3, 4]"


# --------------------------------------------------------------------------
# Errors: one test per kind, full rendered message
# --------------------------------------------------------------------------

ERROR_CASES = {
    "syntax: unexpected token": (
        kernel_text("in X f32[4]", "out X"),
        "t.sk:2:8: error: unexpected name 'f32', expected ':'\n    in X f32[4]\n         ^~~",
    ),
    "syntax: unexpected character": (
        kernel_text("in X: f32[4] $", "out X"),
        (
            "t.sk:2:16: error: unexpected character '$', expected '=' or end of line\n"
            "    in X: f32[4] $\n"
            "                 ^"
        ),
    ),
    "syntax: unexpected end of line": (
        kernel_text("in X: f32[4, 4]", "Y = matmul(X, X   # comment", "out Y"),
        (
            "t.sk:3:18: error: unexpected end of line, expected ')' or ','\n"
            "    Y = matmul(X, X   # comment\n"
            "                   ^"
        ),
    ),
    "syntax: unexpected end of file": (
        "kernel k {\n  in X: f32[4]\n  out X\n\n# trailing\n",
        (
            "t.sk:3:8: error: unexpected end of file, expected '}' to close the kernel\n"
            "    out X\n"
            "         ^"
        ),
    ),
    "syntax: unexpected keyword at top level": (
        "out X\n",
        "t.sk:1:1: error: unexpected 'out', expected 'kernel' or end of file\n  out X\n  ^~~",
    ),
    "syntax: missing value": (
        kernel_text("in X: f32[4] =", "out X"),
        (
            "t.sk:2:17: error: unexpected end of line, expected a value\n"
            "    in X: f32[4] =\n"
            "                  ^"
        ),
    ),
    "syntax: unterminated string": (
        kernel_text('in X: f32[4] = load("x.npy)', "out X"),
        (
            "t.sk:2:23: error: unterminated string\n"
            '    in X: f32[4] = load("x.npy)\n'
            "                        ^"
        ),
    ),
    "unknown element type": (
        kernel_text("in X: float[4]", "out X"),
        (
            "t.sk:2:9: error: unknown element type 'float'; expected f64, f32, f16, bf16, i32, i16 or i8\n"
            "    in X: float[4]\n"
            "          ^~~~~"
        ),
    ),
    "bad dimension": (
        kernel_text("in X: f32[4, 2.5]", "out X"),
        (
            "t.sk:2:16: error: dimension must be a positive integer, got 2.5\n"
            "    in X: f32[4, 2.5]\n"
            "                 ^~~"
        ),
    ),
    "unknown op": (
        kernel_text("in X: f32[4, 4]", "Y = gemm(X, X)", "out Y"),
        "t.sk:3:7: error: unknown op 'gemm'; known ops: add, attention, concat, exp, gelu, heads, layernorm, matmul, merge_heads, mul, rmsnorm, rope, sddmm, silu, softmax, spmm\n    Y = gemm(X, X)\n        ^~~~",
    ),
    "not an op call": (
        kernel_text("in X: f32[4, 4]", "Y = 3", "out Y"),
        "t.sk:3:7: error: expected an op call like matmul(A, B), got 3\n    Y = 3\n        ^",
    ),
    "unknown source kind": (
        kernel_text("in X: f32[4] = zeros()", "out X"),
        (
            "t.sk:2:18: error: unknown source 'zeros'; expected random(...) or load(...)\n"
            "    in X: f32[4] = zeros()\n"
            "                   ^~~~~"
        ),
    ),
    "not a source": (
        kernel_text("in X: f32[4] = 0", "out X"),
        (
            't.sk:2:18: error: expected a data source like random(...) or load("file.npy"), got 0\n'
            "    in X: f32[4] = 0\n"
            "                   ^"
        ),
    ),
    "random: density out of range": (
        kernel_text("param W: f32[4] = random(density=-0.1)", "out W"),
        (
            "t.sk:2:36: error: random: density must be a number in [0, 1], got -0.1\n"
            "    param W: f32[4] = random(density=-0.1)\n"
            "                                     ^~~~"
        ),
    ),
    "random: unknown dist": (
        kernel_text('param W: f32[4] = random(dist="cauchy")', "out W"),
        (
            't.sk:2:33: error: random: unknown dist "cauchy"; expected normal or uniform\n'
            '    param W: f32[4] = random(dist="cauchy")\n'
            "                                  ^~~~~~~~"
        ),
    ),
    "random: seed not an int": (
        kernel_text("param W: f32[4] = random(seed=1.0)", "out W"),
        (
            "t.sk:2:33: error: random: seed must be a non-negative integer, got 1.0\n"
            "    param W: f32[4] = random(seed=1.0)\n"
            "                                  ^~~"
        ),
    ),
    "random: unknown argument": (
        kernel_text("param W: f32[4] = random(sparsity=0.5)", "out W"),
        (
            "t.sk:2:28: error: random: unknown keyword 'sparsity'; expected seed, density, dist or std\n"
            "    param W: f32[4] = random(sparsity=0.5)\n"
            "                             ^~~~~~~~"
        ),
    ),
    "random: positional argument": (
        kernel_text("param W: f32[4] = random(7)", "out W"),
        (
            "t.sk:2:28: error: random: takes only keyword arguments (seed=, density=, dist=)\n"
            "    param W: f32[4] = random(7)\n"
            "                             ^"
        ),
    ),
    "load: missing path": (
        kernel_text("param W: f32[4] = load(transpose=false)", "out W"),
        (
            't.sk:2:21: error: load: missing file name, e.g. load("weights.npy")\n'
            "    param W: f32[4] = load(transpose=false)\n"
            "                      ^~~~~~~~~~~~~~~~~~~~~"
        ),
    ),
    "load: path not a string": (
        kernel_text("param W: f32[4] = load(w)", "out W"),
        (
            "t.sk:2:26: error: load: file name must be a string, got w\n"
            "    param W: f32[4] = load(w)\n"
            "                           ^"
        ),
    ),
    "load: unsupported file type": (
        kernel_text('param W: f32[4] = load("w.pt")', "out W"),
        (
            "t.sk:2:26: error: load: unsupported file type '.pt'; expected .npy, .npz, .mtx, .mtx.gz or .safetensors\n"
            '    param W: f32[4] = load("w.pt")\n'
            "                           ^~~~~~"
        ),
    ),
    "load: key for a single-array file": (
        kernel_text('param W: f32[4] = load("w.npy", "w")', "out W"),
        (
            "t.sk:2:35: error: load: .npy files hold a single array; remove the key\n"
            '    param W: f32[4] = load("w.npy", "w")\n'
            "                                    ^~~"
        ),
    ),
    "load: key not a string": (
        kernel_text('param W: f32[4] = load("w.npz", 3)', "out W"),
        (
            "t.sk:2:35: error: load: key must be a string, got 3\n"
            '    param W: f32[4] = load("w.npz", 3)\n'
            "                                    ^"
        ),
    ),
    "load: too many arguments": (
        kernel_text('param W: f32[4] = load("w.npz", "a", "b")', "out W"),
        (
            "t.sk:2:40: error: load: takes a file name and at most one key\n"
            '    param W: f32[4] = load("w.npz", "a", "b")\n'
            "                                         ^~~"
        ),
    ),
    "load: unknown keyword": (
        kernel_text('param W: f32[4] = load("w.npy", mmap=true)', "out W"),
        (
            "t.sk:2:35: error: load: unknown keyword 'mmap'; expected transpose or index\n"
            '    param W: f32[4] = load("w.npy", mmap=true)\n'
            "                                    ^~~~"
        ),
    ),
    "load: transpose of a vector": (
        kernel_text('param W: f32[4] = load("w.npy", transpose=true)', "out W"),
        (
            "t.sk:2:45: error: load: transpose=true needs rank 2 or more, but the tensor is f32[4]\n"
            '    param W: f32[4] = load("w.npy", transpose=true)\n'
            "                                              ^~~~"
        ),
    ),
    "load: matrix market into a vector": (
        kernel_text('param W: f32[4] = load("w.mtx")', "out W"),
        (
            "t.sk:2:26: error: load: Matrix Market files hold matrices, but the tensor is f32[4]\n"
            '    param W: f32[4] = load("w.mtx")\n'
            "                           ^~~~~~~"
        ),
    ),
    "param without source": (
        kernel_text("param W: f32[4]", "out W"),
        (
            "t.sk:2:9: error: param 'W' needs a source, e.g. = random(seed=0) or = load(\"file.npy\")\n"
            "    param W: f32[4]\n"
            "          ^"
        ),
    ),
    "duplicate tensor name (decl)": (
        kernel_text("in X: f32[4]", "param X: f32[4] = random()", "out X"),
        (
            "t.sk:3:9: error: duplicate tensor name 'X' (first defined on line 2)\n"
            "    param X: f32[4] = random()\n"
            "          ^"
        ),
    ),
    "duplicate tensor name (assign)": (
        kernel_text("in X: f32[4, 4]", "Y = matmul(X, X)", "Y = matmul(Y, X)", "out Y"),
        (
            "t.sk:4:3: error: duplicate tensor name 'Y' (first defined on line 3)\n"
            "    Y = matmul(Y, X)\n"
            "    ^"
        ),
    ),
    "unknown tensor": (
        kernel_text("in X: f32[4, 4]", "Y = matmul(X, Z)", "out Y"),
        "t.sk:3:17: error: unknown tensor 'Z'\n    Y = matmul(X, Z)\n                  ^",
    ),
    "unknown tensor with suggestion": (
        kernel_text("in weight: f32[4, 4]", "Y = matmul(weight, wieght)", "out Y"),
        (
            "t.sk:3:22: error: unknown tensor 'wieght' (did you mean 'weight'?)\n"
            "    Y = matmul(weight, wieght)\n"
            "                       ^~~~~~"
        ),
    ),
    "used before definition": (
        kernel_text("Y = matmul(X, X)", "in X: f32[4, 4]", "out Y"),
        (
            "t.sk:2:14: error: tensor 'X' is used before its definition on line 3\n"
            "    Y = matmul(X, X)\n"
            "               ^"
        ),
    ),
    "out of an undefined name": (
        kernel_text("in X: f32[4]", "out X, Y"),
        "t.sk:3:10: error: out: unknown tensor 'Y'\n    out X, Y\n           ^",
    ),
    "out listed twice": (
        kernel_text("in X: f32[4]", "out X", "out X"),
        "t.sk:4:7: error: out: tensor 'X' is listed twice\n    out X\n        ^",
    ),
    "kernel without out": (
        kernel_text("in X: f32[4]"),
        "t.sk:1:8: error: kernel 'k' has no 'out' statement\n  kernel k {\n         ^",
    ),
    "no kernel at all": (
        "# nothing here\n",
        (
            "t.sk:1:1: error: no kernel in spec file; expected 'kernel NAME { ... }'\n"
            "  # nothing here\n"
            "  ^"
        ),
    ),
    "duplicate kernel name": (
        kernel_text("in X: f32[4]", "out X") + kernel_text("in Y: f32[4]", "out Y"),
        (
            "t.sk:5:8: error: duplicate kernel name 'k' (first defined on line 1)\n"
            "  kernel k {\n"
            "         ^"
        ),
    ),
    "duplicate target line": (
        kernel_text('target "a"', 'target "b"', "in X: f32[4]", "out X"),
        (
            "t.sk:3:3: error: duplicate 'target' line (first given on line 2)\n"
            '    target "b"\n'
            "    ^~~~~~~~~~"
        ),
    ),
    "matmul: inner dimensions disagree": (
        kernel_text("in X: f32[128, 384]", "in W: f32[256, 1536]", "Y = matmul(X, W)", "out Y"),
        (
            "t.sk:4:17: error: matmul: inner dimensions disagree: "
            "X is f32[128, 384] (K=384) but W is f32[256, 1536] (K=256)\n"
            "    Y = matmul(X, W)\n"
            "                  ^"
        ),
    ),
    "matmul: inner dimensions disagree with transpose_a": (
        kernel_text(
            "in X: f32[128, 384]",
            "in W: f32[384, 16]",
            "Y = matmul(X, W, transpose_a=true)",
            "out Y",
        ),
        (
            "t.sk:4:17: error: matmul: inner dimensions disagree: "
            "X is f32[128, 384] (K=128, transposed) but W is f32[384, 16] (K=384)\n"
            "    Y = matmul(X, W, transpose_a=true)\n"
            "                  ^"
        ),
    ),
    "matmul: element types disagree": (
        kernel_text("in X: f32[4, 4]", "in W: f16[4, 4]", "Y = matmul(X, W)", "out Y"),
        (
            "t.sk:4:17: error: matmul: element types disagree: X is f32[4, 4] but W is f16[4, 4]\n"
            "    Y = matmul(X, W)\n"
            "                  ^"
        ),
    ),
    "matmul: operand not a matrix": (
        kernel_text("in X: f32[4, 4]", "in v: f32[4]", "Y = matmul(X, v)", "out Y"),
        (
            "t.sk:4:17: error: matmul: v must be a matrix (rank 2), but it is f32[4]\n"
            "    Y = matmul(X, v)\n"
            "                  ^"
        ),
    ),
    "matmul: wrong operand count": (
        kernel_text("in X: f32[4, 4]", "Y = matmul(X)", "out Y"),
        (
            "t.sk:3:7: error: matmul: expected 2 operands (a, b), got 1\n"
            "    Y = matmul(X)\n"
            "        ^~~~~~~~~"
        ),
    ),
    "unknown keyword for an op": (
        kernel_text("in X: f32[4, 4]", "Y = matmul(X, X, alpha=2)", "out Y"),
        (
            "t.sk:3:20: error: matmul: unknown keyword 'alpha'; expected transpose_a or transpose_b\n"
            "    Y = matmul(X, X, alpha=2)\n"
            "                     ^~~~~"
        ),
    ),
    "bad keyword value": (
        kernel_text("in X: f32[4, 4]", 'Y = matmul(X, X, transpose_a="yes")', "out Y"),
        (
            't.sk:3:32: error: matmul: transpose_a must be true or false, got "yes"\n'
            '    Y = matmul(X, X, transpose_a="yes")\n'
            "                                 ^~~~~"
        ),
    ),
    "duplicate keyword": (
        kernel_text("param W: f32[4] = random(seed=1, seed=2)", "out W"),
        (
            "t.sk:2:36: error: random: keyword 'seed' given twice\n"
            "    param W: f32[4] = random(seed=1, seed=2)\n"
            "                                     ^~~~"
        ),
    ),
    "positional after keyword": (
        kernel_text("in X: f32[4, 4]", "Y = matmul(X, transpose_a=true, X)", "out Y"),
        (
            "t.sk:3:35: error: matmul: positional argument after keyword argument\n"
            "    Y = matmul(X, transpose_a=true, X)\n"
            "                                    ^"
        ),
    ),
    "operand not a tensor name": (
        kernel_text("in X: f32[4, 4]", 'Y = matmul(X, "X")', "out Y"),
        (
            't.sk:3:17: error: matmul: positional arguments must be tensor names, got "X"; '
            "write attributes as name=value\n"
            '    Y = matmul(X, "X")\n'
            "                  ^~~"
        ),
    ),
}


@pytest.mark.parametrize("case", list(ERROR_CASES), ids=list(ERROR_CASES))
def test_error_rendering(case: str) -> None:
    text, expected = ERROR_CASES[case]
    assert render_error(text) == expected


def _bad_spec_files() -> list[Path]:
    return sorted(BAD_SPECS.glob("*.sk"))


def test_bad_specs_exist() -> None:
    assert len(_bad_spec_files()) >= 30


@pytest.mark.parametrize("path", _bad_spec_files(), ids=lambda p: p.name)
def test_bad_spec_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bad spec's ``# ERROR:`` line is the first rendered line; caret is under LINE:COL."""
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ERROR: "), (
        "bad spec must start with '# ERROR: <rendered first line>'"
    )
    expected = first[len("# ERROR: ") :]
    monkeypatch.chdir(path.parent)
    with pytest.raises(SpecError) as info:
        spec = parse_spec_file(path.name)
        for kernel in spec.kernels:
            materialize_kernel(kernel)  # data errors show up only when loading
    rendered = info.value.render().splitlines()
    assert rendered[0] == expected
    line, col = map(int, re.match(r"[^:]+:(\d+):(\d+): error: ", expected).groups())
    source_line = (
        path.read_text().splitlines()[line - 1]
        if line <= len(path.read_text().splitlines())
        else ""
    )
    assert rendered[1] == "  " + source_line
    assert rendered[2].index("^") == 2 + col - 1
    assert set(rendered[2][2 + col :]) <= {"~"}


def test_render_without_source_line_and_without_loc() -> None:
    assert SpecError(None, "boom").render() == "error: boom"
    assert (
        SpecError(Loc("x.sk", 0, 0), "spec file not found").render()
        == "x.sk: error: spec file not found"
    )
    # Swapped argument order is tolerated.
    assert SpecError("boom", Loc("x.sk", 0, 0)).render() == "x.sk: error: boom"


def test_render_reads_line_from_disk(tmp_path: Path) -> None:
    f = tmp_path / "s.sk"
    f.write_text("line one\n  line two\n")
    err = SpecError(Loc(str(f), 2, 3, 7), "bad")
    assert err.render() == f"{f}:2:3: error: bad\n    line two\n    ^~~~"


def test_spec_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sk"
    with pytest.raises(SpecError) as info:
        parse_spec_file(missing)
    assert info.value.render() == f"{missing}: error: spec file not found"


def test_spec_file_not_utf8(tmp_path: Path) -> None:
    f = tmp_path / "bin.sk"
    f.write_bytes(b"kernel k {\n  in \xff: f32[1]\n}\n")
    with pytest.raises(SpecError) as info:
        parse_spec_file(f)
    assert info.value.render() == f"{f}:2:1: error: spec file is not valid UTF-8 (byte 0xff)"


@pytest.mark.parametrize(
    "text",
    [
        "kernel k {\n  in X: f32[4]\n  out X",
        "kernel k {\n  in X: f32[4]\n  out X\n",
        "kernel k {\n  in X: f32[4]\n  out X  # no brace",
        "kernel k {\n  out X\n  in X: f32[4]",
    ],
)
def test_missing_closing_brace_at_eof(text: str) -> None:
    first = render_error(text).splitlines()[0]
    assert first.endswith("error: unexpected end of file, expected '}' to close the kernel")


def test_errors_never_mention_lark_terminal_names() -> None:
    texts = [
        "kernel",
        "kernel k",
        "kernel k {",
        "kernel k { in",
        "kernel k {\n in X",
        "kernel k {\n in X:",
        "kernel k {\n in X: f32",
        "kernel k {\n in X: f32[",
        "kernel k {\n in X: f32[1",
        "kernel k {\n in X: f32[1,",
        "kernel k {\n Y = m(",
        "kernel k {\n Y = m(a=",
        "kernel k {\n Y = m([1,",
        "kernel k {\n pipeline x\n}",
        "kernel k {\n out\n}",
        "kernel k {\n out X,\n}",
        "kernel 3 {}",
        "}",
    ]
    for text in texts:
        message = render_error(text)
        assert "__ANON" not in message and "$END" not in message and "_NL" not in message, message
        assert "RPAR" not in message and "NAME" not in message and "LBRACE" not in message, message


# --------------------------------------------------------------------------
# Robustness: any input gives a SpecFile or a SpecError, never another exception
# --------------------------------------------------------------------------


def _parse_or_spec_error(text: str) -> None:
    try:
        parse_spec(text, "fuzz.sk")
    except SpecError as err:
        rendered = err.render()
        assert rendered.startswith("fuzz.sk:")
        assert len(rendered.splitlines()) in (1, 3)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list("kernl {}()[]:=,#\"'\n\t 0123456789.-eXYWfi_pamouts")),
        max_size=80,
    )
)
def test_fuzz_random_text(text: str) -> None:
    _parse_or_spec_error(text)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_canonical(data: st.DataObject) -> None:
    text = CANONICAL
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        char = data.draw(st.sampled_from(list('{}()[]:=,#"\n 0-.xW@\t')))
        if action == "delete":
            text = text[:pos] + text[pos + 1 :]
        elif action == "insert":
            text = text[:pos] + char + text[pos:]
        else:
            text = text[:pos] + char + text[pos + 1 :]
    _parse_or_spec_error(text)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(
        st.integers(-(10**12), 10**12).map(Number),
        st.floats(allow_nan=False, allow_infinity=False).map(Number),
        st.text(max_size=10).filter(lambda s: "\r" not in s).map(String),
        st.booleans().map(Bool),
        st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
        .filter(lambda s: s not in ("true", "false"))
        .map(Ident),
    )
)
def test_values_round_trip_through_text(value) -> None:
    """Printing a value and parsing it back gives the same value."""
    seen = {}

    def rule(types, attrs, call):
        seen.update(attrs)
        return types[0]

    OP_RULES["probe"] = rule
    try:
        parse_spec(kernel_text("in X: f32[1]", f"Y = probe(X, v={value})", "out Y"))
    finally:
        del OP_RULES["probe"]
    assert seen["v"] == value
