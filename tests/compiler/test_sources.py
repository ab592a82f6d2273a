"""Tests for data sources: random generation, file loading, dtype carriers, bf16 rounding."""

from __future__ import annotations

import json
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from sparsec.compiler.sources import (
    INT_RANDOM_RANGES,
    RANDOM_CHUNK,
    carrier_dtype,
    materialize,
    materialize_bytes,
    materialize_kernel,
    round_to_bf16,
    round_to_dtype,
)
from sparsec.compiler.spec import Kernel, Source, SpecError, TensorType, parse_spec


def decl_source(tmp_path: Path, decl: str, *extra: str) -> tuple[Source, TensorType]:
    """Parse a one-declaration kernel written to ``tmp_path/k.sk``; return its source and type."""
    text = "kernel k {\n  " + decl + "\n" + "".join(f"  {e}\n" for e in extra) + "  out X\n}\n"
    path = tmp_path / "k.sk"
    path.write_text(text)
    d = parse_spec(text, str(path)).kernel().decl("X")
    return d.source, d.type


def load_error(tmp_path: Path, decl: str) -> str:
    """The rendered SpecError that materializing ``decl`` must raise."""
    source, ttype = decl_source(tmp_path, decl)
    with pytest.raises(SpecError) as info:
        materialize(source, ttype)
    return info.value.render()


def expected_error(tmp_path: Path, decl: str, col: int, width: int, message: str) -> str:
    """A rendered error at line 2 of the kernel written by decl_source."""
    caret = " " * (col - 1) + "^" + "~" * (width - 1)
    return f"{tmp_path / 'k.sk'}:2:{col}: error: {message}\n    {decl}\n  {caret}"


# --------------------------------------------------------------------------
# Carriers and rounding
# --------------------------------------------------------------------------


def test_carrier_dtypes() -> None:
    assert {
        n: carrier_dtype(n).name for n in ("f64", "f32", "f16", "bf16", "i32", "i16", "i8")
    } == {
        "f64": "float64",
        "f32": "float32",
        "f16": "float16",
        "bf16": "float32",
        "i32": "int32",
        "i16": "int16",
        "i8": "int8",
    }
    with pytest.raises(ValueError):
        carrier_dtype("f8")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.0, 1.0),
        (1.00390625, 1.0),  # 1 + 2^-8: tie, rounds to even (down)
        (1.01171875, 1.015625),  # 1 + 3*2^-8: tie, rounds to even (up)
        (1.0078125, 1.0078125),  # exactly representable
        (1.005, 1.0078125),  # above the tie: up
        (-1.00390625, -1.0),
        (3.140625, 3.140625),
        (np.pi, 3.140625),
        (65504.0, 65536.0),
        (3.3895313892515355e38, 3.3895313892515355e38),  # bf16 max
        (3.4e38, np.inf),  # beyond bf16 max + half ulp
        (1e-45, 0.0),
        (2.0**-126, 2.0**-126),
        (0.0, 0.0),
    ],
)
def test_round_to_bf16_known_values(value: float, expected: float) -> None:
    for dtype in (np.float32, np.float64):
        got = round_to_bf16(np.array([value], dtype=dtype))
        assert got.dtype == np.float32
        assert got[0] == np.float32(expected), (value, dtype)


def test_round_to_bf16_special_values() -> None:
    got = round_to_bf16(np.array([np.inf, -np.inf, np.nan, -np.nan, -0.0], dtype=np.float32))
    assert got[0] == np.inf and got[1] == -np.inf
    assert np.isnan(got[2]) and np.isnan(got[3])
    assert np.signbit(got[3]) and np.signbit(got[4]) and got[4] == 0
    assert (got.view(np.uint32) & 0xFFFF == 0).all()


def test_round_to_bf16_no_double_rounding_from_f64() -> None:
    # Just above the bf16 tie 1 + 2^-8, but only by 2^-30: float32 would round
    # it onto the tie, and ties-to-even would then wrongly go down to 1.0.
    x = 1.0 + 2.0**-8 + 2.0**-30
    assert round_to_bf16(np.array([x]))[0] == np.float32(1.0 + 2.0**-7)
    assert round_to_bf16(np.array([-x]))[0] == np.float32(-(1.0 + 2.0**-7))


def test_round_to_bf16_keeps_shape_and_ints() -> None:
    got = round_to_bf16(np.arange(6, dtype=np.int64).reshape(2, 3) * 257)
    assert got.shape == (2, 3)
    assert got.tolist() == [
        [0.0, 256.0, 512.0],
        [772.0, 1024.0, 1288.0],
    ]  # 1028 ties to even, 1285 rounds up


def _bf16_neighbours(r: np.float32) -> tuple[float, float]:
    bits = int(np.array([r], dtype=np.float32).view(np.uint32)[0])
    up = np.array([bits + 0x10000], dtype=np.uint32).view(np.float32)[0]
    down = np.array([bits - 0x10000], dtype=np.uint32).view(np.float32)[0]
    return float(up), float(down)


finite_normal = st.floats(
    min_value=-3.3e38,
    max_value=3.3e38,
    allow_nan=False,
    allow_infinity=False,
    allow_subnormal=False,
).filter(lambda x: x == 0 or abs(x) >= 2.0**-126)


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_bf16_rounding_is_idempotent(x: float) -> None:
    once = round_to_bf16(np.array([x], dtype=np.float32))
    twice = round_to_bf16(once)
    assert np.array_equal(once.view(np.uint32), twice.view(np.uint32)) or (
        np.isnan(once[0]) and np.isnan(twice[0])
    )


@settings(max_examples=500, deadline=None)
@given(finite_normal)
def test_bf16_relative_error_at_most_half_ulp(x: float) -> None:
    r = float(round_to_bf16(np.array([x]))[0])
    assert abs(Fraction(r) - Fraction(x)) <= Fraction(abs(x)) * Fraction(1, 2**8)


@settings(max_examples=500, deadline=None)
@given(finite_normal.filter(lambda x: abs(x) < 3.38e38 and x != 0))
def test_bf16_is_nearest_ties_to_even(x: float) -> None:
    """Exact check against both bf16 neighbours, from a float64 input."""
    r = round_to_bf16(np.array([x]))[0]
    up, down = _bf16_neighbours(r)
    err = abs(Fraction(float(r)) - Fraction(x))
    for other in (up, down):
        if not np.isfinite(other):
            continue
        other_err = abs(Fraction(other) - Fraction(x))
        assert err <= other_err
        if err == other_err:  # a tie: the even mantissa wins
            assert (int(np.array([r], np.float32).view(np.uint32)[0]) >> 16) % 2 == 0


def test_round_to_dtype() -> None:
    x = np.array([1.5, 2.5, -1.5, 300.0, -300.0, np.nan])
    assert round_to_dtype(x, "i8").tolist() == [2, 2, -2, 127, -128, 0]
    assert round_to_dtype(x, "i8").dtype == np.int8
    assert round_to_dtype(np.array([70000]), "i16").tolist() == [32767]
    assert round_to_dtype(np.array([1 / 3]), "f16").dtype == np.float16
    assert round_to_dtype(np.array([1 / 3]), "f32")[0] == np.float32(1 / 3)
    assert round_to_dtype(np.array([1.00390625]), "bf16")[0] == 1.0
    assert round_to_dtype(np.array([True, False]), "i32").tolist() == [1, 0]
    assert round_to_dtype(np.array([1e6]), "f16")[0] == np.inf


# --------------------------------------------------------------------------
# random(...)
# --------------------------------------------------------------------------


def test_random_is_deterministic_and_seeded(tmp_path: Path) -> None:
    source, ttype = decl_source(tmp_path, "in X: f32[16, 8] = random(seed=7)")
    a, b = materialize(source, ttype), materialize(source, ttype)
    assert a.dtype == np.float32 and a.shape == (16, 8)
    assert np.array_equal(a, b)
    other, _ = decl_source(tmp_path, "in X: f32[16, 8] = random(seed=8)")
    assert not np.array_equal(a, materialize(other, ttype))
    default, _ = decl_source(tmp_path, "in X: f32[16, 8] = random()")
    zero, _ = decl_source(tmp_path, "in X: f32[16, 8] = random(seed=0)")
    assert np.array_equal(materialize(default, ttype), materialize(zero, ttype))


@pytest.mark.parametrize("density", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("dtype", ["f64", "f32", "f16", "bf16", "i32", "i16", "i8"])
def test_random_density_gives_exact_nonzero_count(
    tmp_path: Path, dtype: str, density: float
) -> None:
    source, ttype = decl_source(
        tmp_path, f"in X: {dtype}[30, 7] = random(seed=3, density={density})"
    )
    a = materialize(source, ttype)
    assert a.dtype == carrier_dtype(dtype)
    assert np.count_nonzero(a) == int(np.floor(density * 210 + 0.5))


def test_random_lower_density_keeps_a_subset_of_values(tmp_path: Path) -> None:
    dense_src, ttype = decl_source(tmp_path, "in X: f32[20, 20] = random(seed=5)")
    sparse_src, _ = decl_source(tmp_path, "in X: f32[20, 20] = random(seed=5, density=0.3)")
    dense, sparse = materialize(dense_src, ttype), materialize(sparse_src, ttype)
    kept = sparse != 0
    assert np.array_equal(sparse[kept], dense[kept])


@pytest.mark.parametrize("dtype", ["i32", "i16", "i8"])
def test_random_int_range(tmp_path: Path, dtype: str) -> None:
    source, ttype = decl_source(tmp_path, f"in X: {dtype}[64, 64] = random(seed=1)")
    a = materialize(source, ttype)
    lo, hi = INT_RANDOM_RANGES[dtype]
    assert a.min() == lo and a.max() == hi  # 4096 draws cover the range
    assert np.count_nonzero(a) == a.size


def test_random_dists(tmp_path: Path) -> None:
    uni, ttype = decl_source(tmp_path, "in X: f64[100, 100] = random(seed=1, dist=uniform)")
    a = materialize(uni, ttype)
    assert a.min() >= -1.0 and a.max() < 1.0 and abs(a.mean()) < 0.05
    norm, _ = decl_source(tmp_path, 'in X: f64[100, 100] = random(seed=1, dist="normal")')
    b = materialize(norm, ttype)
    assert abs(b.std() - 1.0) < 0.05 and b.max() > 2.0


def _whole_draw(seed: int, dtype: str, numel: int, dist: str, std: float,
                density: float) -> np.ndarray:
    """`random(...)` as one whole float64 draw, then rounded: what the chunked draw
    (RANDOM_CHUNK values at a time) must reproduce bit for bit."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(-1.0, 1.0, size=numel) if dist == "uniform" else \
        rng.standard_normal(size=numel)
    raw *= std
    values = round_to_dtype(raw, dtype)
    tiny = np.finfo(np.float16 if dtype == "f16" else values.dtype).tiny
    zero = values == 0
    values[zero] = np.copysign(tiny, raw[zero]).astype(values.dtype)
    if density < 1.0:
        mask = np.zeros(numel, dtype=bool)
        mask[rng.choice(numel, size=int(np.floor(density * numel + 0.5)),
                        replace=False)] = True
        values[~mask] = 0
    return values


@pytest.mark.parametrize(("dtype", "args", "dist", "std", "density"), [
    ("f32", "seed=4", "normal", 1.0, 1.0),
    ("f64", "seed=5, dist=uniform", "uniform", 1.0, 1.0),
    ("f16", "seed=6, std=300.0", "normal", 300.0, 1.0),
    ("bf16", "seed=7, std=1e-30", "normal", 1e-30, 1.0),
    ("f32", "seed=8, density=0.3", "normal", 1.0, 0.3),
    ("f16", "seed=9, dist=uniform, std=1e-7, density=0.6", "uniform", 1e-7, 0.6),
])
def test_random_chunked_draw_equals_one_whole_draw(tmp_path: Path, dtype: str, args: str,
                                                   dist: str, std: float,
                                                   density: float) -> None:
    """Floats are drawn RANDOM_CHUNK at a time (no float64 copy of the tensor); across
    chunk boundaries (3 chunks and 5 values) the values, the zero replacement and the
    density mask drawn after them equal one whole draw's."""
    numel = 3 * RANDOM_CHUNK + 5
    source, ttype = decl_source(tmp_path, f"in X: {dtype}[{numel}] = random({args})")
    drawn = materialize(source, ttype)
    seed = int(args.split(",")[0].removeprefix("seed="))
    expected = _whole_draw(seed, dtype, numel, dist, std, density)
    assert drawn.dtype == expected.dtype and drawn.shape == (numel,)
    assert np.array_equal(drawn.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize(("decl", "per_element"), [
    ("in X: f32[100, 30] = random(seed=1)", 4),            # the result only
    ("in X: f16[100, 30] = random(density=0.5)", 2 + 17),  # + choice's int64s, mask
    ("in X: i8[100, 30] = random()", 1 + 9),               # int64 draw + bool, converted
    ("in X: i16[100, 30] = random(density=0.99)", 2 + 9 + 17),
])
def test_materialize_bytes_is_the_measured_peak(tmp_path: Path, decl: str,
                                                per_element: int) -> None:
    """The memory guard's estimate per element; for a large tensor the measured peak
    of the draw (tracemalloc: numpy reports its buffers) stays within it."""
    import tracemalloc

    source, ttype = decl_source(tmp_path, decl)
    assert materialize_bytes(source, ttype) == 3000 * per_element
    big = TensorType(ttype.dtype, (1000, 3000))
    tracemalloc.start()
    try:
        materialize(source, big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= materialize_bytes(source, big) * 1.05 + 2 * 8 * RANDOM_CHUNK


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_random_values_are_representable(tmp_path: Path, dtype: str) -> None:
    source, ttype = decl_source(tmp_path, f"in X: {dtype}[32, 32] = random(seed=2)")
    a = materialize(source, ttype)
    assert np.array_equal(round_to_dtype(a, dtype), a)


# --------------------------------------------------------------------------
# load(...)
# --------------------------------------------------------------------------


def test_load_npy(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.arange(12, dtype=np.float64).reshape(3, 4))
    source, ttype = decl_source(tmp_path, 'param X: f32[3, 4] = load("w.npy")')
    a = materialize(source, ttype)
    assert a.dtype == np.float32 and a.tolist() == np.arange(12).reshape(3, 4).tolist()


def test_load_npy_transposed_into_bf16(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.array([[1.00390625, 2.0, 3.0], [4.0, 5.0, 1.01171875]]))
    source, ttype = decl_source(tmp_path, 'param X: bf16[3, 2] = load("w.npy", transpose=true)')
    a = materialize(source, ttype)
    assert a.dtype == np.float32 and a.flags.c_contiguous
    assert a.tolist() == [[1.0, 4.0], [2.0, 5.0], [3.0, 1.015625]]


def test_load_npz_with_and_without_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "many.npz", a=np.ones((2, 2)), b=np.full((2, 2), 3, dtype=np.int64))
    np.savez(tmp_path / "one.npz", only=np.eye(2))
    source, ttype = decl_source(tmp_path, 'param X: i16[2, 2] = load("many.npz", "b")')
    a = materialize(source, ttype)
    assert a.dtype == np.int16 and a.tolist() == [[3, 3], [3, 3]]
    source, ttype = decl_source(tmp_path, 'param X: f64[2, 2] = load("one.npz")')
    assert materialize(source, ttype).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_load_mtx_general_pattern_symmetric(tmp_path: Path) -> None:
    scipy.io.mmwrite(
        tmp_path / "g.mtx", scipy.sparse.coo_matrix(np.array([[1.0, 0.0, 2.5], [0.0, -3.0, 0.0]]))
    )
    (tmp_path / "p.mtx").write_text(
        "%%MatrixMarket matrix coordinate pattern general\n2 3 2\n1 2\n2 3\n"
    )
    (tmp_path / "s.mtx").write_text(
        "%%MatrixMarket matrix coordinate real symmetric\n3 3 3\n1 1 4.0\n2 1 1.5\n3 2 -2.0\n"
    )
    def load(decl: str) -> list[list[float]]:
        source, ttype = decl_source(tmp_path, decl)
        loaded = materialize(source, ttype)
        assert scipy.sparse.issparse(loaded)          # never densified: memory ~ nnz
        return loaded.toarray().tolist()

    assert load('param X: f32[2, 3] = load("g.mtx")') == [[1.0, 0.0, 2.5], [0.0, -3.0, 0.0]]
    assert load('param X: f32[2, 3] = load("p.mtx")') == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert load('param X: f64[3, 3] = load("s.mtx")') == [
        [4.0, 1.5, 0.0],
        [1.5, 0.0, -2.0],
        [0.0, -2.0, 0.0],
    ]
    assert load('param X: f32[3, 2] = load("g.mtx", transpose=true)') == [
        [1.0, 0.0], [0.0, -3.0], [2.5, 0.0]]


def test_load_safetensors(tmp_path: Path) -> None:
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_file({"w": w, "b": np.ones(3, dtype=np.float16)}, str(tmp_path / "m.safetensors"))
    save_file({"only": w}, str(tmp_path / "one.safetensors"))
    source, ttype = decl_source(
        tmp_path, 'param X: f32[3, 2] = load("m.safetensors", "w", transpose=true)'
    )
    assert materialize(source, ttype).tolist() == w.T.tolist()
    source, ttype = decl_source(tmp_path, 'param X: f16[3] = load("m.safetensors", "b")')
    assert materialize(source, ttype).dtype == np.float16
    source, ttype = decl_source(tmp_path, 'param X: f64[2, 3] = load("one.safetensors")')
    assert materialize(source, ttype).tolist() == w.tolist()


def test_load_safetensors_bf16(tmp_path: Path) -> None:
    """numpy has no bfloat16; BF16 tensors are decoded from the raw file."""
    values = np.array([1.0, -2.5, 0.15625, 3.0], dtype=np.float32)
    halves = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    (tmp_path / "bf.safetensors").write_bytes(
        struct.pack("<Q", len(header)) + header + halves.tobytes()
    )
    source, ttype = decl_source(tmp_path, 'param X: bf16[2, 2] = load("bf.safetensors", "w")')
    a = materialize(source, ttype)
    assert a.dtype == np.float32 and a.tolist() == [[1.0, -2.5], [0.15625, 3.0]]


def test_load_resolves_against_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "w.npy", np.ones((2, 2)))
    source, ttype = decl_source(tmp_path, 'param X: f32[2, 2] = load("data/w.npy")')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert materialize(source, ttype).sum() == 4
    assert materialize(source, ttype, base_dir=tmp_path).sum() == 4
    with pytest.raises(SpecError):
        materialize(source, ttype, base_dir=elsewhere)


def test_load_absolute_path(tmp_path: Path) -> None:
    np.save(tmp_path / "abs.npy", np.zeros(3, dtype=np.int8))
    source, ttype = decl_source(tmp_path, f'param X: i8[3] = load("{tmp_path / "abs.npy"}")')
    assert materialize(source, ttype, base_dir="/nonexistent").tolist() == [0, 0, 0]


def test_materialize_kernel_skips_inputs_without_source(tmp_path: Path) -> None:
    text = "kernel k {\n  in A: f32[2, 2]\n  param B: f32[2, 2] = random()\n  C = matmul(A, B)\n  out C\n}\n"
    kernel: Kernel = parse_spec(text, str(tmp_path / "k.sk")).kernel()
    assert sorted(materialize_kernel(kernel)) == ["B"]
    assert materialize_kernel(kernel, roles=("in",)) == {}


# --------------------------------------------------------------------------
# Data errors: SpecError at the source expression
# --------------------------------------------------------------------------


def test_error_file_not_found(tmp_path: Path) -> None:
    decl = 'param X: f32[2, 2] = load("nope.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 24, 16, "load: file not found: 'nope.npy'"
    )


def test_error_directory(tmp_path: Path) -> None:
    (tmp_path / "d.npy").mkdir()
    decl = 'param X: f32[2, 2] = load("d.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 24, 13, "load: cannot read 'd.npy': it is a directory"
    )


def test_error_shape_mismatch(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones((2, 3)))
    decl = 'param X: f32[3, 3] = load("w.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 24, 13, "load: data has shape [2, 3] but the tensor is f32[3, 3]"
    )


def test_error_shape_mismatch_after_transpose(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones((2, 3)))
    decl = 'param X: f32[2, 3] = load("w.npy", transpose=true)'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path,
        decl,
        24,
        29,
        "load: data has shape [3, 2] after transpose but the tensor is f32[2, 3]",
    )


def test_error_transpose_of_1d_data(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones(4))
    decl = 'param X: f32[2, 2] = load("w.npy", transpose=true)'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path,
        decl,
        24,
        29,
        "load: transpose=true needs 2 or more dimensions, but the data has shape [4]",
    )


def test_error_float_data_into_int(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones((2, 2), dtype=np.float32))
    decl = 'param X: i8[2, 2] = load("w.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 23, 13, "load: cannot convert float32 data to i8 (integer type)"
    )


def test_error_complex_data(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.ones((2, 2), dtype=np.complex64))
    decl = 'param X: f32[2, 2] = load("w.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 24, 13, "load: cannot convert complex64 data to f32"
    )


def test_error_int_out_of_range(tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.array([[-200, 1], [2, 300]]))
    decl = 'param X: i8[2, 2] = load("w.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 23, 13, "load: values in [-200, 300] do not fit i8 [-128, 127]"
    )


def test_error_missing_npz_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", w=np.ones(2), b=np.ones(2))
    decl = 'param X: f32[2] = load("a.npz", "q")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 21, 18, "load: no array 'q' in 'a.npz' (it has: b, w)"
    )


def test_error_ambiguous_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", w=np.ones(2), b=np.ones(2))
    decl = 'param X: f32[2] = load("a.npz")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path,
        decl,
        21,
        13,
        'load: \'a.npz\' holds 2 arrays (b, w); name one, e.g. load("a.npz", "b")',
    )


def test_error_missing_safetensors_key(tmp_path: Path) -> None:
    save_file({"w": np.ones(2, dtype=np.float32)}, str(tmp_path / "m.safetensors"))
    decl = 'param X: f32[2] = load("m.safetensors", "bias")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 21, 29, "load: no tensor 'bias' in 'm.safetensors' (it has: w)"
    )


def test_load_gzipped_mtx_stays_sparse(tmp_path: Path) -> None:
    import gzip

    with gzip.open(tmp_path / "g.mtx.gz", "wt") as fh:
        fh.write("%%MatrixMarket matrix coordinate real general\n2 3 2\n1 3 2.5\n2 1 -1\n")
    source, ttype = decl_source(tmp_path, 'param X: f32[2, 3] = load("g.mtx.gz")')
    loaded = materialize(source, ttype)
    assert scipy.sparse.issparse(loaded)
    assert loaded.toarray().tolist() == [[0.0, 0.0, 2.5], [-1.0, 0.0, 0.0]]


def test_error_mtx_gz_that_is_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "plain.mtx.gz").write_text("%%MatrixMarket matrix coordinate real general\n")
    decl = 'param X: f32[2, 2] = load("plain.mtx.gz")'
    first = load_error(tmp_path, decl).splitlines()[0]
    assert first.endswith("error: load: 'plain.mtx.gz' is not a gzip file")


@pytest.mark.parametrize("name", ["bad.npy", "bad.npz", "bad.safetensors", "bad.mtx",
                                  "bad.mtx.gz"])
def test_error_unreadable_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"\x00\x01 definitely not the right format \xff" * 3)
    decl = f'param X: f32[2, 2] = load("{name}")'
    rendered = load_error(tmp_path, decl)
    first = rendered.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'k.sk'}:2:24: error: load: ")
    assert f"'{name}'" in first
    assert rendered.splitlines()[2] == "  " + " " * 23 + "^" + "~" * (len(name) + 7)


def test_error_npy_holding_an_archive(tmp_path: Path) -> None:
    np.savez(tmp_path / "z.npy", a=np.ones(2))  # savez appends .npz ...
    (tmp_path / "z.npy.npz").rename(tmp_path / "z.npy")  # ... so force the misleading name
    decl = 'param X: f32[2] = load("z.npy")'
    assert load_error(tmp_path, decl) == expected_error(
        tmp_path, decl, 21, 13, "load: 'z.npy' is a .npz archive, not a .npy array file"
    )


def test_error_pickled_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    decl = 'param X: f32[1] = load("o.npy")'
    first = load_error(tmp_path, decl).splitlines()[0]
    assert first.startswith(f"{tmp_path / 'k.sk'}:2:21: error: load: cannot read 'o.npy' as npy: ")


def test_materialize_checks_arguments_of_hand_built_sources(tmp_path: Path) -> None:
    """Sources built without the parser are validated the same way."""
    with pytest.raises(SpecError, match="unknown source 'zeros'"):
        materialize(Source("zeros"), TensorType("f32", (2,)), tmp_path)
    with pytest.raises(SpecError, match="missing file name"):
        materialize(Source("load"), TensorType("f32", (2,)), tmp_path)


def test_load_index_picks_one_entry_of_the_first_axis(tmp_path: Path) -> None:
    steps = np.arange(3 * 2 * 4, dtype=np.float32).reshape(3, 2, 4)
    np.savez(tmp_path / "steps.npz", h=steps)
    source, ttype = decl_source(tmp_path, 'in X: f32[2, 4] = load("steps.npz", "h", index=2)')
    np.testing.assert_array_equal(materialize(source, ttype), steps[2])
    source, ttype = decl_source(tmp_path, 'in X: f32[4, 2] = load("steps.npz", "h", index=1, '
                                          'transpose=true)')
    np.testing.assert_array_equal(materialize(source, ttype), steps[1].T)
    assert "load: index=3 is out of range for data of shape [3, 2, 4]" in load_error(
        tmp_path, 'in X: f32[2, 4] = load("steps.npz", "h", index=3)')
    assert "load: data has shape [2, 4] at index 0 but the tensor is f32[4, 2]" in load_error(
        tmp_path, 'in X: f32[4, 2] = load("steps.npz", "h", index=0)')
    with pytest.raises(SpecError, match="load: index must be an integer >= 0, got -1"):
        decl_source(tmp_path, 'in X: f32[2, 4] = load("steps.npz", "h", index=-1)')
