"""Differential tests: `#sparse_tensor.encoding` as printed by sparsec must be
accepted by LLVM 22's `mlir-opt-22` and printed back byte-identically, and what
mlir-opt-22 rejects, sparsec rejects with the same message.

Skipped when `mlir-opt-22` is not on PATH (Debian: `apt-get install
mlir-22-tools`), unless SPARSEC_REQUIRE_TOOLS=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin
from xdsl.dialects.complex import Complex
from xdsl.dialects.func import Func
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from sparsec.dialects.sparse_tensor import (
    LevelType,
    SparseTensor,
    SparseTensorEncodingAttr,
    bsr,
    coo,
    csc,
    csr,
    dcsc,
    dcsr,
    nm,
)

MLIR_OPT = "mlir-opt-22"


@pytest.fixture(scope="module")
def mlir_opt() -> str:
    path = shutil.which(MLIR_OPT)
    if path is not None:
        return path
    if os.environ.get("SPARSEC_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{MLIR_OPT} is not on PATH and SPARSEC_REQUIRE_TOOLS=1")
    pytest.skip(f"{MLIR_OPT} is not on PATH (Debian package mlir-22-tools)")


def _context() -> Context:
    ctx = Context()
    for dialect in (Builtin, Func, Complex, SparseTensor):
        ctx.load_dialect(dialect)
    return ctx


CTX = _context()


def ours(text: str) -> SparseTensorEncodingAttr:
    attr = Parser(CTX, text).parse_attribute()
    assert isinstance(attr, SparseTensorEncodingAttr)
    return attr


def run_mlir_opt(path: str, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [path, "--allow-unregistered-dialect", "--mlir-print-local-scope", "-"],
        input=source,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mlir_round_trip(path: str, encodings: list[str]) -> list[str]:
    """Print each encoding through mlir-opt-22 (as an attribute of an
    unregistered op, so no tensor shape is involved) and return its text."""
    source = "".join(f'"test.op"() {{e = {text}}} : () -> ()\n' for text in encodings)
    result = run_mlir_opt(path, source)
    assert result.returncode == 0, result.stderr
    printed = re.findall(r"\{e = (.*)\} : \(\) -> \(\)", result.stdout)
    assert len(printed) == len(encodings)
    return printed


def mlir_error(path: str, source: str) -> str:
    result = run_mlir_opt(path, source)
    assert result.returncode != 0, f"mlir-opt-22 accepted:\n{source}"
    match = re.search(r"error: (.*)", result.stderr)
    assert match is not None, result.stderr
    return match.group(1)


def enc(body: str) -> str:
    return "#sparse_tensor.encoding<{ " + body + " }>"


BUILT: dict[str, SparseTensorEncodingAttr] = {
    "csr": csr(),
    "dcsr": dcsr(),
    "csc": csc(),
    "dcsc": dcsc(),
    "coo": coo(),
    "coo3": coo(3),
    "coo3_soa": coo(3, soa=True),
    "bsr_2x3": bsr(2, 3),
    "bsr_4x4_widths": bsr(4, 4, pos_width=32, crd_width=32),
    "nv_2_4_crd8": nm(2, 4, crd_width=8),
    "nm_4_8": nm(4, 8),
    "batch": SparseTensorEncodingAttr.from_levels(["batch", "dense", "compressed"]),
    "loose_compressed": SparseTensorEncodingAttr.from_levels(["dense", "loose_compressed"]),
    "loose_coo": SparseTensorEncodingAttr.from_levels(
        [LevelType.loose_compressed(unique=False), LevelType.singleton(ordered=False)]
    ),
    "widths_64_16": csr(pos_width=64, crd_width=16),
    "widths_8_0": csc(pos_width=8),
    "slices": csr().with_dim_slices([(1, 4, 1), (0, None, 2)]),
}

PARSED_TEXTS = [
    enc("map = [s0](i, j) -> (i + s0 : dense, j : compressed)"),
    enc("map = {l0, l1} (d0 = l0, d1 = l1) -> (l0 = d0 : dense, l1 = d1 : compressed)"),
    enc(
        "map = (d0, d1) -> (d0 : dense, d1 : compressed), explicitVal = 1.0 : f32, implicitVal = 0.0 : f32"
    ),
    enc(
        "map = (d0, d1) -> (d0 : dense, d1 : compressed), explicitVal = 5, implicitVal = 0 : index"
    ),
    enc(
        "map = (d0, d1) -> (d0 : dense, d1 : compressed), implicitVal = #complex.number<:f64 0.0, 0.0> : complex<f64>"
    ),
    enc("map = (d0, d1) -> (d0 : dense, d1 : structured[300, 400])"),
    enc("map = (i, j, k) -> (i floordiv 2 : dense, j : compressed, i mod 2 : dense)"),
]


@pytest.mark.parametrize("name", sorted(BUILT))
def test_mlir_opt_prints_our_text_back(mlir_opt: str, name: str) -> None:
    text = str(BUILT[name])
    assert mlir_round_trip(mlir_opt, [text]) == [text]


def test_mlir_opt_agrees_on_parsed_inputs(mlir_opt: str) -> None:
    expected = mlir_round_trip(mlir_opt, PARSED_TEXTS)
    assert [str(ours(text)) for text in PARSED_TEXTS] == expected


def test_mlir_opt_accepts_our_tensor_types(mlir_opt: str) -> None:
    shapes = {"batch": "2x8x8", "coo3": "4x4x4", "coo3_soa": "4x4x4"}
    args = ", ".join(f"tensor<{shapes.get(n, '8x8')}xf32, {BUILT[n]}>" for n in sorted(BUILT))
    result = run_mlir_opt(mlir_opt, f"func.func private @f({args})\n")
    assert result.returncode == 0, result.stderr
    assert f"func.func private @f({args})" in result.stdout


def _random_expr(rng: random.Random, depth: int = 0) -> str:
    atoms = ["d0", "d1", "d2", "s0", "s1", str(rng.randrange(0, 9))]
    if depth > 2 or rng.random() < 0.3:
        return rng.choice(atoms)
    a, b = _random_expr(rng, depth + 1), _random_expr(rng, depth + 1)
    factor = rng.choice(["2", "3", "-1", "-4", "s0", "s1"])
    return rng.choice(
        [
            f"{a} + {b}",
            f"{a} - {b}",
            f"({a}) * {factor}",
            f"{factor} * ({a})",
            f"({a}) floordiv {factor}",
            f"({a}) ceildiv {factor}",
            f"({a}) mod {rng.choice(['2', '3', '4', 's0'])}",
            f"-({a})",
            f"{a} - (({a}) floordiv 4) * 4",
            f"({a} + {b} + s0) + ({a}) floordiv 2 * -2",
        ]
    )


def test_random_affine_maps_print_like_mlir_opt(mlir_opt: str) -> None:
    rng = random.Random(2024)
    texts = []
    for _ in range(300):
        levels = ", ".join(f"{_random_expr(rng)} : dense" for _ in range(3))
        texts.append(enc(f"map = [s0, s1](d0, d1, d2) -> ({levels})"))
    expected = mlir_round_trip(mlir_opt, texts)
    assert [str(ours(text)) for text in texts] == expected


# Encodings mlir-opt-22 rejects; sparsec must reject them with the same message.
REJECTED = [
    "map = (d0, d1) -> (d0 : dense, d1 : compressed), posWidth = 7",
    "map = (d0, d1) -> (d0 : dense, d1 : compressed), crdWidth = 12",
    "map = (d0, d1) -> (d0 : dense, d1 : singleton)",
    "map = (d0, d1, d2) -> (d0 : compressed(nonunique), d1 : singleton(nonunique), d2 : singleton(soa))",
    "map = (d0, d1) -> (d0 : dense, d1 : batch)",
    "map = (d0, d1) -> (d0 : compressed(soa), d1 : singleton)",
    "map = (d0, d1) -> (d0 : structured[2, 4], d1 : dense)",
    "map = (d0, d1) -> (d0 : compressed, d1 : structured[2, 4])",
    "map = (i, j) -> (i : dense, j floordiv 4 : dense, j mod 3 : structured[2, 4])",
    "map = (i, j) -> (i floordiv 2 : dense, j floordiv 4 : dense, i mod 2 : dense, j mod 4 : structured[2, 4])",
    "map = (i, j) -> (i : dense, j floordiv 4 : dense, j mod 4 : structured[2, 8])",
    "map = (d0, d1) -> ()",
    "map = (d0, d1) -> (d0 : dense, d1 : compressed), map = (d0, d1) -> (d1 : dense, d0 : compressed)",
    "map = (d0, d1) -> (d0 : dense)",
    "map = {l0, l1} (d0 = l1, d1 = l0) -> (l0 = d0 : dense, l1 = d1 : compressed)",
    "map = [s0](d0, d1) -> (d0 : dense)",
    "map = (d0 : #sparse_tensor<slice(1, 4, 1)>, d1) -> (d0 floordiv 2 : dense, d1 : compressed, d0 mod 2 : dense)",
    "map = (d0 : #sparse_tensor<slice(1, 0, 1)>, d1) -> (d0 : dense, d1 : compressed)",
    "map = (d0, d1) -> (d0 : dense, d1 : compressed), foo = 8",
    "map = (d0, d1) -> (d0 : dense, d1 : foo)",
    "map = (d0, d1) -> (d0 : dense(nonunique), d1 : compressed)",
    "map = (d0, d1) -> (d0 : dense, d1 : structured[4, 2])",
    "map = (d0, d0) -> (d0 : dense, d0 : compressed)",
    "map = {l0, l1} (d0 = l0, d1 = l1) -> (l1 = d0 : dense, l0 = d1 : compressed)",
    "map = [s0](d0, d1) -> (d0 * d1 : dense, d1 : compressed)",
]


@pytest.mark.parametrize("body", REJECTED)
def test_rejected_with_mlir_opt_message(mlir_opt: str, body: str) -> None:
    text = enc(body)
    message = mlir_error(mlir_opt, f'"test.op"() {{e = {text}}} : () -> ()\n')
    with pytest.raises((VerifyException, ParseError)) as info:
        ours(text)
    error = info.value
    assert (error.msg if isinstance(error, ParseError) else str(error)) == message


@pytest.mark.parametrize(
    ("tensor", "encoding", "element"),
    [
        ("tensor<8xf32, {}>", csr(), "f32"),
        ("tensor<f32, {}>", csr(), "f32"),
        (
            "tensor<8x8xf64, {}>",
            ours(enc("map = (d0, d1) -> (d0 : dense, d1 : compressed), explicitVal = 1.0 : f32")),
            "f64",
        ),
        (
            "tensor<8x8xf32, {}>",
            ours(enc("map = (d0, d1) -> (d0 : dense, d1 : compressed), implicitVal = 1.0 : f32")),
            "f32",
        ),
        (
            "tensor<8x8xi32, {}>",
            ours(enc("map = (d0, d1) -> (d0 : dense, d1 : compressed), implicitVal = 0 : i64")),
            "i32",
        ),
    ],
)
def test_shape_rules_match_mlir_opt(
    mlir_opt: str, tensor: str, encoding: SparseTensorEncodingAttr, element: str
) -> None:
    message = mlir_error(mlir_opt, f"func.func private @f({tensor.format(encoding)})\n")
    type_text = tensor.format(encoding)
    tensor_type = Parser(CTX, type_text).parse_type()
    with pytest.raises(VerifyException) as info:
        encoding.verify_tensor_type(tensor_type)  # type: ignore[arg-type]
    assert str(info.value) == message
    assert element in type_text
