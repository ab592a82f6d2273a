"""Bit columns (BitWave): sign-magnitude bit planes, column masks, exact storage,
bit-exact pack/unpack, and the bit-flip procedure's guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparsec.dialects.formats import bitcolumn, quantized
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors.quantization import quantize_values
from sparsec.tensors.storage import bitcolumn_codes, pack, unpack

CODES = arrays(np.int64, st.tuples(st.integers(1, 40), st.integers(1, 9)),
               elements=st.integers(-127, 127))


def test_sign_magnitude_bits_and_mask_by_hand() -> None:
    # group of 2 along axis 0, one channel: codes 5 = 0000101, -3 = 1|0000011
    bits = bc.column_bits(np.array([[[5, -3]]]))
    assert bits[0, 0].T.tolist() == [[0, 0, 0, 0, 0, 1, 0, 1], [1, 0, 0, 0, 0, 0, 1, 1]]
    mask = bc.masks_from_bits(bits)
    assert int(mask[0, 0]) == 0b1000_0111           # sign, 2^2, 2^1, 2^0 kept
    assert int(bc.kept_magnitude_columns(mask)[0, 0]) == 3
    assert int(bc.zero_columns(mask)[0, 0]) == 4
    # two's complement: -3 = 11111101 fills every high column
    tc = bc.masks_from_bits(bc.column_bits(np.array([[[5, -3]]]), sign_magnitude=False))
    assert int(tc[0, 0]) == 0b1111_1101


def test_histograms_sign_magnitude_beats_twos_complement_on_small_weights() -> None:
    codes = np.array([[1], [-1], [2], [-2]])           # K=4, one channel, group 4
    sm = bc.zero_column_histogram(codes, 4, 0, sign_magnitude=True)
    tc = bc.zero_column_histogram(codes, 4, 0, sign_magnitude=False)
    assert sm == [0, 0, 0, 0, 0, 1, 0, 0, 0]          # 5 of 8 columns zero
    assert tc == [1, 0, 0, 0, 0, 0, 0, 0, 0]          # -1 = 11111111


def test_storage_bits_are_mask_plus_kept_columns() -> None:
    codes = np.zeros((32, 3), dtype=np.int64)
    codes[0, 0] = 3          # channel 0, group 0: columns 2^1, 2^0
    codes[20, 2] = -64       # channel 2, group 1: sign and 2^6
    packed = pack(codes.astype(np.int8), bitcolumn(16, 0), value_bits=8)
    groups = 3 * 2
    assert packed.bits == 8 * groups + 16 * 4
    assert packed.buffer_bits() == {"col_mask": 8 * groups, "columns": 64}
    assert np.array_equal(unpack(packed), codes)


@settings(max_examples=60, deadline=None)
@given(CODES, st.sampled_from([1, 3, 8, 16]), st.integers(0, 1), st.booleans())
def test_pack_unpack_round_trip_is_bit_exact(codes: np.ndarray, group: int, axis: int,
                                             sign_magnitude: bool) -> None:
    packed = bc.pack_columns(codes, group, axis, sign_magnitude=sign_magnitude)
    assert np.array_equal(bc.unpack_columns(packed), codes)
    groups = codes.shape[1 - axis] * bc.num_groups(codes.shape[axis], group)
    assert packed.bits == 8 * groups + group * packed.kept_columns


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 40), st.integers(1, 6)),
              elements=st.floats(-4, 4, allow_nan=False)), st.sampled_from([4, 16]))
def test_quantized_bitcolumn_tensor_round_trips(values: np.ndarray, group: int) -> None:
    q = quantize_values(values, 8, True, 1)
    dequantized = q.values(1)
    encoding = quantized(8, axis=1, symmetric=True, layout=bitcolumn(group, 0))
    packed = pack(dequantized, encoding, value_bits=64, aux={"scale": q.scale})
    assert np.array_equal(bitcolumn_codes(packed), q.codes)
    assert np.array_equal(unpack(packed), dequantized)


def test_minus_128_does_not_fit_sign_magnitude() -> None:
    with pytest.raises(ValueError, match="does not fit 8-bit sign-magnitude"):
        pack(np.array([[-128], [0]], dtype=np.int8), bitcolumn(2, 0), value_bits=8)


def test_flip_by_hand() -> None:
    # group (5, 6, 1, 0), Z = 2: columns 1..4 (2^6..2^3) are already zero, so p = 8 - 2
    # + 4 = 10 >= 8: the group already has >= 2 zero columns and stays.
    group = np.array([[5, 6, 1, 0]])
    assert np.array_equal(bc.flip_groups(group, 2), group)
    # group (100, 37, -9, 80): only column 2^1 is zero, below the cut; Z = 3 -> p = 5,
    # t = 1: round to multiples of 2^3 = 8 (100 is a tie: down), saturating at 120.
    group = np.array([[100, 37, -9, 80]])
    assert bc.flip_groups(group, 3).tolist() == [[96, 40, -8, 80]]
    # with 80 -> 64 the 2^4 column is zero too (j = 3 < p): p = 6, t = 4, so only the
    # low 4 bits round, to multiples of 4: 37 -> 36 keeps the 2^4 column zero
    group = np.array([[100, 37, -9, 64]])
    assert bc.flip_groups(group, 3).tolist() == [[100, 36, -8, 64]]
    # the 2^6 column is zero and counts towards Z = 2: p = 7, t = 2, so only the 2^0
    # column is cut: multiples of 2, saturating at 62 (no carry into 2^6), 1 ties down
    group = np.array([[63, 1, 2, 6]])
    assert bc.flip_groups(group, 2).tolist() == [[62, 0, 2, 6]]


@settings(max_examples=80, deadline=None)
@given(CODES, st.integers(0, 7), st.sampled_from([2, 8, 16]))
def test_flip_error_bound_and_zero_columns(codes: np.ndarray, zero_cols: int,
                                           group: int) -> None:
    flipped = bc.bit_flip(codes, zero_cols, group, 0)
    assert np.max(np.abs(flipped - codes), initial=0) <= bc.flip_error_bound(zero_cols)
    assert np.all(np.sign(flipped) * np.sign(codes) >= 0)        # no sign changes
    before = bc.column_masks(codes, group, 0)
    after = bc.column_masks(flipped, group, 0)
    magnitude_kept = bc.kept_magnitude_columns(after)
    assert np.all(magnitude_kept <= bc.MAGNITUDE_BITS - zero_cols)
    assert np.all((after & bc.MAX_MAGNITUDE & ~before) == 0)      # zero columns stay zero
    if zero_cols == 0:
        assert np.array_equal(flipped, codes)


def test_flip_is_idempotent_on_flipped_groups() -> None:
    rng = np.random.default_rng(3)
    codes = np.clip(np.round(rng.normal(0, 20, (64, 8))), -127, 127).astype(np.int64)
    once = bc.bit_flip(codes, 3, 16, 0)
    assert np.array_equal(bc.bit_flip(once, 3, 16, 0), once)


def test_sparsify_records_the_histograms_of_the_stored_codes() -> None:
    from sparsec.compiler.driver import CompileOptions, compile_text
    from sparsec.dialects.sparsec import ParamOp

    text = ("kernel k {\n  in X: f32[2, 40] = random(seed=1)\n"
            "  param W: f32[40, 6] = random(seed=2, dist=normal)\n"
            "  Y = matmul(X, W)\n  out Y\n}\n")
    compiled = compile_text(text, CompileOptions(
        pipeline="quantize{bits=8 per_channel=true},bit-flip{zero_cols=2 group=8},"
                 "sparsify{format=bitcolumn group=8}", lower=False))
    param = next(op for op in compiled.module.walk() if isinstance(op, ParamOp))
    effect = param.effect_list()[-1]
    codes = compiled.store.get("k.W#q")
    for name, sign_magnitude in (("sm", True), ("tc", False)):
        expected = bc.zero_column_histogram(codes, 8, 0, sign_magnitude=sign_magnitude)
        assert effect[f"zero_cols_hist_{name}"] == " ".join(map(str, expected))
    assert sum(int(v) for v in str(effect["zero_cols_hist_sm"]).split()[:2]) == 0   # >= 2 zero columns
    groups = 6 * 5
    kept = int(bc.popcount(bc.column_masks(codes, 8, 0)).sum())
    assert effect["storage_bits"] == 8 * groups + 8 * kept + 32 * 6
