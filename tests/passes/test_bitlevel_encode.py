"""bitlevel-encode and the bit-level code: terms, exactness, error bounds, exact storage."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import gemm_text
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.bitlevel import BitLevelAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.tensors.bitlevel import (
    decode,
    encode,
    index_bits,
    representable,
    signed_digits,
    term_storage_bits,
)

CODES = st.lists(st.integers(-128, 127), min_size=1, max_size=64)


@pytest.mark.parametrize("method", ["csd", "sm"])
def test_digits_sum_to_every_int8_code_and_csd_is_non_adjacent(method):
    q = np.arange(-128, 128)
    digits = signed_digits(q, 8, method)
    assert np.array_equal(decode(digits), q)
    if method == "csd":
        nonzero = digits != 0
        assert not (nonzero[:, 1:] & nonzero[:, :-1]).any()
        # NAF has the fewest nonzero digits: never more than the binary ones of |q|
        ones = np.array([bin(abs(int(v))).count("1") for v in q])
        assert (nonzero.sum(axis=1) <= ones).all()


@settings(max_examples=200, deadline=None)
@given(codes=CODES, k=st.integers(1, 4), method=st.sampled_from(["csd", "sm"]))
def test_encoding_keeps_at_most_k_terms_and_errs_below_the_last_kept_digit(codes, k, method):
    q = np.array(codes)
    coded = encode(q, 8, k, method)
    assert (coded.terms <= k).all()
    assert np.array_equal(decode(coded.digits), coded.codes)
    full = signed_digits(q, 8, method)
    fits = (full != 0).sum(axis=-1) <= k
    assert np.array_equal(coded.codes[fits], q[fits])            # exact when it fits
    for value, new, digits in zip(q, coded.codes, coded.digits, strict=True):
        kept = np.flatnonzero(digits)
        if kept.size:
            assert abs(int(value) - int(new)) < (1 << int(kept.min()))
    if method == "sm":
        assert (np.abs(coded.codes) <= np.abs(q)).all()          # truncation toward zero
    assert set(np.unique(coded.codes)) <= set(representable(8, k, method))


def test_storage_is_exact_on_a_hand_example():
    q = np.array([0, 1, -3])
    # sm: per weight 2 count bits + 1 sign; terms 0 + 1 + 2 at 3 position bits each
    assert encode(q, 8, 3, "sm", "terms").storage_bits == 3 * 3 + 3 * 3
    assert term_storage_bits(np.array([0, 1, 2]), 8, "sm", 3) == 18
    # csd: -3 = -4 + 1 (2 digits); per weight 2 count bits, per digit 1 sign + 4 position
    assert encode(q, 8, 3, "csd", "terms").storage_bits == 3 * 2 + 3 * 5
    assert index_bits(8, 3, "sm") == 7 and index_bits(8, 3, "csd") == 8
    assert representable(8, 3, "sm").size == 128 and representable(8, 3, "csd").size == 208
    assert encode(q, 8, 3, "csd").storage_bits == 3 * 8


def _param(compiled) -> ParamOp:
    return next(op for op in compiled.module.walk() if isinstance(op, ParamOp))


@pytest.mark.parametrize("method", ["csd", "sm"])
def test_pass_rewrites_codes_values_and_format_and_reports_the_error(method):
    compiled = compile_text(gemm_text(4, 8, 64, "bf16"), CompileOptions(
        pipeline=f"quantize{{bits=8 per_channel=true}},bitlevel-encode{{max_ones=2 method={method}}}",
        lower=False))
    param = _param(compiled)
    enc = param.result.type.encoding
    assert isinstance(enc, BitLevelAttr) and enc.max_ones == 2 and enc.method == method
    codes = compiled.store.get("g.B#q")
    scales = compiled.store.get("g.B#scale")
    assert (np.count_nonzero(signed_digits(codes, 8, method), axis=-1) <= 2).all()
    np.testing.assert_allclose(compiled.store.get("g.B"), codes * scales[None, :], rtol=8e-3)
    effect = param.effects.data[-1].data  # type: ignore[union-attr]
    assert effect["code_rel_error"].value.data > 0
    assert effect["storage_bits"].value.data == 64 * 8 * index_bits(8, 2, method)


def test_pass_error_is_zero_when_every_weight_fits(tmp_path):
    text = ("kernel g {\n  in A: i8[2, 4] = random(seed=1)\n"
            "  param B: i8[4, 3] = load(\"w.npy\")\n  C = matmul(A, B)\n  out C\n}\n")
    np.save(tmp_path / "w.npy", np.array([[0, 1, -2], [7, -128, 64], [96, 5, -3],
                                          [-127, 126, 3]], dtype=np.int8))
    compiled = compile_text(text, CompileOptions(pipeline="bitlevel-encode{max_ones=3}",
                                                 lower=False), path=str(tmp_path / "k.sk"))
    effect = _param(compiled).effects.data[-1].data  # type: ignore[union-attr]
    assert effect["changed_weights"].value.data == 0
    assert effect["code_rel_error"].value.data == 0.0


@pytest.mark.parametrize("pipeline,message", [
    ("bitlevel-encode", "needs integer codes: run quantize{bits=8} first"),
    ("quantize,bitlevel-encode{max_ones=0}", "max_ones must lie in [1, 16], got 0"),
    ("quantize,bitlevel-encode,bitlevel-encode", "is already bit-level coded"),
])
def test_refusals_name_the_rule(pipeline, message):
    pattern = message.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{").replace("}", r"\}")
    with pytest.raises(CompileError, match=pattern):
        compile_text(gemm_text(4, 4, 8, "bf16"), CompileOptions(pipeline=pipeline, lower=False))
