"""Tests of `sparsec.tensors.storage`: pack/unpack round trips for every format
(hypothesis), hand-computed storage sizes, the buffers against scipy's CSR/CSC, and
the errors raised for data a format cannot hold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as hst
from xdsl.ir import Attribute

from sparsec.dialects import sparse_tensor as st
from sparsec.dialects.formats import bitmap, codebook, quantized, rcsc
from sparsec.dialects.sparse_tensor import SparseTensorEncodingAttr as Enc
from sparsec.tensors.storage import (
    INDEX_BITS,
    SCALE_BITS,
    Packed,
    dequantize,
    pack,
    rcsc_pe,
    storage_bits,
    unpack,
)

DENSITIES = (0.0, 0.05, 0.5, 1.0)


def random_matrix(rng: np.random.Generator, shape: tuple[int, ...], density: float) -> np.ndarray:
    """Nonzero normal values kept with probability `density`."""
    values = rng.standard_normal(shape).astype(np.float32)
    values[values == 0] = 1.0
    values[rng.random(shape) >= density] = 0.0
    return values


def prune_nm(x: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep at most n of every m consecutive elements of each row (zero the rest)."""
    rows, cols = x.shape
    padded = np.zeros((rows, -(-cols // m) * m), dtype=x.dtype)
    padded[:, :cols] = x
    blocks = padded.reshape(rows, -1, m)
    drop = np.argsort(-np.abs(blocks), axis=2, kind="stable")[:, :, n:]
    np.put_along_axis(blocks, drop, 0, axis=2)
    return blocks.reshape(rows, -1)[:, :cols].copy()


# ----------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------

RANK2_LAYOUTS: dict[str, Attribute | None] = {
    "dense": None,
    "all-dense": Enc(["dense", "dense"]),
    "CSR": st.csr(),
    "CSR-32-16": st.csr(32, 16),
    "CSC": st.csc(),
    "DCSR": st.dcsr(),
    "DCSC": st.dcsc(),
    "COO": st.coo(2),
    "COO-soa": st.coo(2, soa=True),
    "BSR-2x2": st.bsr(2, 2),
    "BSR-2x3": st.bsr(2, 3),
    "loose_compressed": Enc(["dense", "loose_compressed"]),
    "loose-COO": Enc(["loose_compressed(nonunique)", "singleton"]),
    "batch": Enc(["batch", "compressed"]),
    "batch-loose": Enc(["batch", "loose_compressed"]),
    "bitmap-row": bitmap("row"),
    "bitmap-col": bitmap("col"),
    **{f"rcsc-{p}-{b}": rcsc(p, b, 32) for p in (1, 4, 64) for b in (2, 4)},
}

RANK3_LAYOUTS: dict[str, Attribute | None] = {
    "dense": None,
    "all-dense": Enc(["dense", "dense", "dense"]),
    "COO": st.coo(3),
    "COO-soa": st.coo(3, soa=True),
    "CSF": Enc(["compressed", "compressed", "compressed"]),
    "batch-CSR": Enc(["batch", "dense", "compressed"]),
    "batch-DCSR": Enc(["batch", "compressed", "compressed"]),
    "batch-batch": Enc(["batch", "batch", "compressed"]),
    "batch-COO": Enc(["batch", "compressed(nonunique)", "singleton"]),
    "bitmap": bitmap(),
}

NM_LAYOUTS = {"2:4": (2, 4), "1:4": (1, 4)}

SHAPE2 = hst.tuples(hst.integers(1, 40), hst.integers(1, 40))
SHAPE3 = hst.tuples(hst.integers(1, 8), hst.integers(1, 8), hst.integers(1, 8))
SEEDS = hst.integers(0, 2**32 - 1)


def assert_round_trip(x: np.ndarray, encoding: Attribute | None, **kwargs: object) -> Packed:
    packed = pack(x, encoding, value_bits=32, **kwargs)  # type: ignore[arg-type]
    back = unpack(packed)
    assert back.dtype == x.dtype and back.shape == x.shape
    np.testing.assert_array_equal(back, x)
    assert packed.bits == sum(b.size * packed.widths[k] for k, b in packed.buffers.items())
    assert packed.bytes == -(-packed.bits // 8)
    return packed


@pytest.mark.parametrize("name", sorted(RANK2_LAYOUTS))
@settings(max_examples=25, deadline=None)
@given(shape=SHAPE2, density=hst.sampled_from(DENSITIES), seed=SEEDS)
def test_round_trip_rank2(name: str, shape: tuple[int, int], density: float, seed: int) -> None:
    x = random_matrix(np.random.default_rng(seed), shape, density)
    packed = assert_round_trip(x, RANK2_LAYOUTS[name])
    assert packed.nnz == np.count_nonzero(x)


@pytest.mark.parametrize("name", sorted(RANK3_LAYOUTS))
@settings(max_examples=25, deadline=None)
@given(shape=SHAPE3, density=hst.sampled_from(DENSITIES), seed=SEEDS)
def test_round_trip_rank3(name: str, shape: tuple[int, int, int], density: float, seed: int) -> None:
    x = random_matrix(np.random.default_rng(seed), shape, density)
    assert_round_trip(x, RANK3_LAYOUTS[name])


@pytest.mark.parametrize("name", sorted(NM_LAYOUTS))
@settings(max_examples=40, deadline=None)
@given(shape=SHAPE2, density=hst.sampled_from(DENSITIES), seed=SEEDS)
def test_round_trip_nm(name: str, shape: tuple[int, int], density: float, seed: int) -> None:
    n, m = NM_LAYOUTS[name]
    x = prune_nm(random_matrix(np.random.default_rng(seed), shape, density), n, m)
    packed = assert_round_trip(x, st.nm(n, m))
    blocks = shape[0] * -(-shape[1] // m)
    assert packed.buffers["values"].size == blocks * n
    assert packed.widths["coordinates[2]"] == 2
    kept = packed.coordinates(2).reshape(blocks, n).astype(int)
    assert np.all(np.diff(kept, axis=1) > 0) and kept.max(initial=0) < m


CODEBOOK_LAYOUTS: dict[str, Attribute | None] = {
    "dense": None,
    "CSR": st.csr(),
    "BSR-2x3": st.bsr(2, 3),
    "bitmap": bitmap(),
    "rcsc": rcsc(4, 2, 16),
    "batch": Enc(["batch", "compressed"]),
}


@pytest.mark.parametrize("name", sorted(CODEBOOK_LAYOUTS))
@settings(max_examples=20, deadline=None)
@given(shape=SHAPE2, density=hst.sampled_from(DENSITIES), seed=SEEDS, bits=hst.sampled_from((2, 4)))
def test_round_trip_codebook(name: str, shape: tuple[int, int], density: float, seed: int,
                             bits: int) -> None:
    rng = np.random.default_rng(seed)
    table = (rng.permutation(np.arange(1, 2**bits)) * 0.125 - 1.0).astype(np.float32)
    table[table == 0] = 7.0  # nonzero entries; the one free slot holds 0.0
    x = table[rng.integers(0, table.size, shape)]
    x[rng.random(shape) >= density] = 0.0
    encoding = codebook(bits, CODEBOOK_LAYOUTS[name])
    packed = assert_round_trip(x, encoding, aux={"codebook": table})
    assert packed.widths["indices"] == bits
    assert packed.buffers["codebook"].size == 2**bits


QUANT_LAYOUTS: dict[str, Attribute | None] = {
    "dense": None,
    "CSC": st.csc(),
    "BSR-2x2": st.bsr(2, 2),
    "bitmap": bitmap("col"),
    "rcsc": rcsc(4, 4, 16),
    "COO": st.coo(2),
}


@pytest.mark.parametrize("name", sorted(QUANT_LAYOUTS))
@settings(max_examples=25, deadline=None)
@given(shape=SHAPE2, density=hst.sampled_from(DENSITIES), seed=SEEDS, per_channel=hst.booleans(),
       symmetric=hst.booleans(), axis=hst.sampled_from((0, 1)), bits=hst.sampled_from((4, 8)))
def test_round_trip_quantized(name: str, shape: tuple[int, int], density: float, seed: int,
                              per_channel: bool, symmetric: bool, axis: int, bits: int) -> None:
    rng = np.random.default_rng(seed)
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)
    layout = QUANT_LAYOUTS[name]
    if per_channel:
        channels = shape[axis]
        scale = rng.uniform(0.001, 0.1, channels)
        zero_point = np.zeros(channels, int) if symmetric else rng.integers(low, high + 1, channels)
        encoding = quantized(bits, axis=axis, symmetric=symmetric, layout=layout)
        aux = {"scale": scale, "zero_point": zero_point}
        bshape = [1, 1]
        bshape[axis] = channels
        scale_b, zp_b = scale.reshape(bshape), zero_point.reshape(bshape)
    else:
        scale_b, zp_b = 0.05, 0 if symmetric else int(rng.integers(low, high + 1))
        encoding = quantized(bits, scale=scale_b, zero_point=zp_b, symmetric=symmetric, layout=layout)
        aux = None
    codes = rng.integers(low, high + 1, shape)
    codes = np.where(rng.random(shape) < density, codes, zp_b)
    x = dequantize(codes, scale_b, zp_b).astype(np.float32)
    packed = assert_round_trip(x, encoding, aux=aux)
    assert packed.widths["codes"] == bits
    assert packed.buffers["scale"].size == (shape[axis] if per_channel else 1)
    assert ("zero_point" in packed.buffers) == (not symmetric)


# ----------------------------------------------------------------------------
# Buffers and storage sizes computed by hand
# ----------------------------------------------------------------------------

EXAMPLE = np.array(
    [[1, 0, 0, 2],
     [0, 0, 0, 0],
     [0, 3, 0, 0],
     [4, 0, 5, 0]], dtype=np.float32)


def test_csr_storage_by_hand() -> None:
    packed = pack(EXAMPLE, st.csr(32, 16), value_bits=32)
    assert packed.positions(1).tolist() == [0, 2, 2, 3, 5]
    assert packed.coordinates(1).tolist() == [0, 3, 1, 0, 2]
    assert packed.buffers["values"].tolist() == [1, 2, 3, 4, 5]
    assert packed.widths == {"positions[1]": 32, "coordinates[1]": 16, "values": 32}
    assert packed.bits == 5 * 32 + 5 * 16 + 5 * 32
    assert packed.bytes == 50
    assert storage_bits(EXAMPLE, st.csr(32, 16), 32) == 400


def test_index_width_zero_counts_as_64_bits() -> None:
    packed = pack(EXAMPLE, st.csr(), value_bits=16)
    assert INDEX_BITS == 64
    assert packed.bits == 5 * 64 + 5 * 64 + 5 * 16


def test_csc_and_dcsc_by_hand() -> None:
    csc = pack(EXAMPLE, st.csc(), value_bits=32)
    assert csc.positions(1).tolist() == [0, 2, 3, 4, 5]
    assert csc.coordinates(1).tolist() == [0, 3, 2, 3, 0]
    assert csc.buffers["values"].tolist() == [1, 4, 3, 5, 2]
    dcsc = pack(EXAMPLE, st.dcsc(), value_bits=32)
    assert dcsc.positions(0).tolist() == [0, 4]
    assert dcsc.coordinates(0).tolist() == [0, 1, 2, 3]


def test_dcsr_skips_empty_rows() -> None:
    packed = pack(EXAMPLE, st.dcsr(8, 8), value_bits=8)
    assert packed.positions(0).tolist() == [0, 3]
    assert packed.coordinates(0).tolist() == [0, 2, 3]
    assert packed.positions(1).tolist() == [0, 2, 3, 5]
    assert packed.bits == (2 + 3 + 4) * 8 + 5 * 8 + 5 * 8


def test_coo_aos_stores_one_coordinate_buffer() -> None:
    aos = pack(EXAMPLE, st.coo(2, pos_width=32, crd_width=16), value_bits=32)
    assert aos.positions(0).tolist() == [0, 5]
    assert aos.coordinates(0).tolist() == [[0, 0], [0, 3], [2, 1], [3, 0], [3, 2]]
    assert "coordinates[1]" not in aos.buffers
    soa = pack(EXAMPLE, st.coo(2, soa=True, pos_width=32, crd_width=16), value_bits=32)
    assert soa.coordinates(0).tolist() == [0, 0, 2, 3, 3]
    assert soa.coordinates(1).tolist() == [0, 3, 1, 0, 2]
    assert aos.bits == soa.bits == 2 * 32 + 10 * 16 + 5 * 32


def test_loose_compressed_stores_position_pairs() -> None:
    packed = pack(EXAMPLE, Enc(["dense", "loose_compressed"], pos_width=8), value_bits=32)
    assert packed.positions(1).tolist() == [0, 2, 2, 2, 2, 3, 3, 5]
    assert packed.widths["positions[1]"] == 8


def test_bsr_stores_dense_blocks() -> None:
    packed = pack(EXAMPLE, st.bsr(2, 2, 32, 32), value_bits=32)
    assert packed.positions(1).tolist() == [0, 2, 4]
    assert packed.coordinates(1).tolist() == [0, 1, 0, 1]
    assert packed.buffers["values"].size == 4 * 4
    assert packed.stored == 16 and packed.nnz == 5
    assert packed.bits == 3 * 32 + 4 * 32 + 16 * 32


def test_bsr_partial_blocks_are_padded() -> None:
    x = np.arange(1, 16, dtype=np.float32).reshape(3, 5)
    packed = assert_round_trip(x, st.bsr(2, 3))
    assert packed.buffers["values"].size == 2 * 2 * 6


def test_batch_buffers_are_rectangular() -> None:
    x = np.zeros((2, 3, 4), dtype=np.float32)
    x[0, 0, 1] = 1
    x[0, 2, 3] = 2
    x[0, 2, 0] = 3
    x[1, 1, 2] = 4
    packed = assert_round_trip(x, Enc(["batch", "dense", "compressed"], pos_width=32, crd_width=32))
    assert packed.positions(2).tolist() == [[0, 1, 1, 3], [0, 0, 1, 1]]
    assert packed.coordinates(2).tolist() == [[1, 0, 3], [2, 0, 0]]
    assert packed.buffers["values"].tolist() == [[1, 3, 2], [4, 0, 0]]
    assert packed.bits == 8 * 32 + 6 * 32 + 6 * 32


def test_two_four_by_hand() -> None:
    x = np.array([[0, 5, 0, 6, 7, 0, 0, 0]], dtype=np.float32)
    packed = pack(x, st.nm(2, 4), value_bits=16)
    assert packed.coordinates(2).tolist() == [1, 3, 0, 1]
    assert packed.buffers["values"].tolist() == [5, 6, 7, 0]
    assert packed.bits == 4 * 16 + 4 * 2


def test_bitmap_by_hand() -> None:
    row = pack(EXAMPLE, bitmap("row"), value_bits=32)
    col = pack(EXAMPLE, bitmap("col"), value_bits=32)
    assert row.buffers["values"].tolist() == [1, 2, 3, 4, 5]
    assert col.buffers["values"].tolist() == [1, 4, 3, 5, 2]
    assert row.widths["bitmap"] == 1
    assert row.bits == col.bits == 16 + 5 * 32


def test_rcsc_gap_of_twenty_needs_one_padding_entry() -> None:
    x = np.zeros((30, 3), dtype=np.float32)
    x[0, 0] = 1.0
    x[21, 0] = 2.0  # 20 zero rows between the two entries: 20 > 15
    x[5, 2] = 3.0
    packed = assert_round_trip(x, rcsc(pes=1, index_bits=4, ptr_bits=16))
    assert packed.padding == 1
    assert packed.buffers["values"].tolist() == [1, 0, 2, 3]
    assert packed.buffers["rel_index"].tolist() == [0, 15, 4, 5]
    assert packed.buffers["col_ptr"].tolist() == [[0, 3, 3, 4]]
    assert packed.bits == 4 * (32 + 4) + 1 * (3 + 1) * 16


def test_rcsc_interleaves_rows_over_pes() -> None:
    x = np.zeros((8, 2), dtype=np.float32)
    x[[1, 5, 2, 7], [0, 0, 1, 1]] = [1, 2, 3, 4]  # PE 1 holds local rows 0, 2 | 3
    packed = pack(x, rcsc(pes=2, index_bits=2, ptr_bits=8), value_bits=8)
    pe0, pe1 = rcsc_pe(packed, 0), rcsc_pe(packed, 1)
    assert pe0["values"].tolist() == [3] and pe0["rel_index"].tolist() == [1]
    assert pe0["col_ptr"].tolist() == [0, 0, 1]
    assert pe1["values"].tolist() == [1, 2, 4] and pe1["rel_index"].tolist() == [0, 1, 3]
    assert pe1["col_ptr"].tolist() == [0, 2, 3]
    assert packed.bits == 4 * (8 + 2) + 2 * 3 * 8


def test_rcsc_long_gap_needs_gap_div_sixteen_padding() -> None:
    x = np.zeros((100, 1), dtype=np.float32)
    x[99, 0] = 1.0  # 99 zeros before it: 99 // 16 = 6 padding entries
    packed = assert_round_trip(x, rcsc(pes=1, index_bits=4))
    assert packed.padding == 6
    assert packed.buffers["rel_index"].tolist() == [15] * 6 + [99 % 16]


def test_codebook_storage_by_hand() -> None:
    table = np.arange(6, dtype=np.float32)  # 6 of the 8 entries of a 3-bit codebook
    packed = pack(EXAMPLE, codebook(3, st.csr(32, 32)), value_bits=32, aux={"codebook": table})
    assert packed.buffers["indices"].tolist() == [1, 2, 3, 4, 5]
    assert packed.buffers["codebook"].tolist() == [0, 1, 2, 3, 4, 5, 0, 0]
    assert packed.widths["indices"] == 3
    assert packed.bits == 5 * 32 + 5 * 32 + 5 * 3 + 8 * 32


def test_quantized_storage_by_hand() -> None:
    per_tensor = pack(np.array([[0.0, 0.5], [1.0, 0.0]], dtype=np.float32),
                      quantized(8, scale=0.5, zero_point=2), value_bits=32)
    assert per_tensor.buffers["codes"].tolist() == [2, 3, 4, 2]
    assert per_tensor.bits == 4 * 8 + SCALE_BITS + 8
    per_channel = pack(np.array([[0.0, 0.5], [1.0, 0.0]], dtype=np.float32),
                       quantized(4, axis=1, symmetric=True, layout=st.csr(32, 32)),
                       value_bits=32, aux={"scale": np.array([1.0, 0.5])})
    assert per_channel.buffers["codes"].tolist() == [1, 1]
    assert per_channel.bits == 3 * 32 + 2 * 32 + 2 * 4 + 2 * SCALE_BITS


def test_positions_and_coordinates_match_scipy() -> None:
    x = random_matrix(np.random.default_rng(7), (37, 23), 0.2)
    csr, csc = sp.csr_matrix(x), sp.csc_matrix(x)
    packed = pack(x, st.csr(), value_bits=32)
    np.testing.assert_array_equal(packed.positions(1), csr.indptr)
    np.testing.assert_array_equal(packed.coordinates(1), csr.indices)
    np.testing.assert_array_equal(packed.buffers["values"], csr.data)
    packed = pack(x, st.csc(), value_bits=32)
    np.testing.assert_array_equal(packed.positions(1), csc.indptr)
    np.testing.assert_array_equal(packed.coordinates(1), csc.indices)


# ----------------------------------------------------------------------------
# Data a format cannot hold, and missing aux arrays
# ----------------------------------------------------------------------------

ERRORS: list[tuple[str, Callable[[], object], str]] = [
    ("nm", lambda: pack(np.array([[1, 2, 3, 0]], np.float32), st.nm(2, 4), value_bits=32),
     r"does not satisfy 2:4 structured sparsity: block 0 .* holds 3 nonzeros, at most 2 allowed"),
    ("nm-later-block", lambda: pack(np.array([[1, 0, 0, 0, 1, 1, 0, 0], [0] * 4 + [1, 1, 1, 1]], np.float32),
                                    st.nm(2, 4), value_bits=32),
     r"block 3 \(level coordinates \(1, 1\), starting at element \(1, 4\)\) holds 4 nonzeros"),
    ("codebook-aux", lambda: pack(EXAMPLE, codebook(4), value_bits=32),
     r"missing aux\['codebook'\]: give the 16-entry codebook"),
    ("codebook-value", lambda: pack(EXAMPLE, codebook(4, st.csr()), value_bits=32,
                                    aux={"codebook": np.array([1.0, 2.0, 3.0, 4.0])}),
     r"value 5 at element \(3, 2\) is not in the codebook"),
    ("codebook-no-zero", lambda: pack(EXAMPLE, codebook(2), value_bits=32,
                                      aux={"codebook": np.array([1.0, 2.0, 3.0, 4.0])}),
     r"value 0 at element \(0, 1\) is not in the codebook"),
    ("codebook-too-long", lambda: pack(EXAMPLE, codebook(1), value_bits=32,
                                       aux={"codebook": np.array([0.0, 1.0, 2.0])}),
     "the codebook has 3 entries but 1-bit indices address only 2"),
    ("scale-aux", lambda: pack(EXAMPLE, quantized(8, axis=0), value_bits=32),
     r"missing aux\['scale'\]: give the 4 per-channel scales"),
    ("scale-count", lambda: pack(EXAMPLE, quantized(8, axis=0), value_bits=32, aux={"scale": np.ones(3)}),
     "needs 4 scales and zero points"),
    ("off-grid", lambda: pack(EXAMPLE * 1.01, quantized(8, scale=1.0), value_bits=32),
     r"value 1.01 at element \(0, 0\) is not representable by .*quantize the tensor first"),
    ("out-of-range", lambda: pack(EXAMPLE, quantized(2, scale=1.0, symmetric=True), value_bits=32),
     r"value 2 at element \(0, 3\) is not representable"),
    ("pos-width", lambda: pack(np.ones((1, 300), np.float32), st.csr(8, 16), value_bits=32),
     r"positions\[1\] \(posWidth = 8\) holds 300, which does not fit in 8 bits"),
    ("crd-width", lambda: pack(np.ones((1, 300), np.float32), st.csr(16, 8), value_bits=32),
     r"coordinates\[1\] \(crdWidth = 8\) holds 299"),
    ("ptr-width", lambda: pack(np.ones((300, 1), np.float32), rcsc(1, 4, 8), value_bits=32),
     r"col_ptr \(ptr_bits = 8\) holds 300"),
    ("rank", lambda: pack(np.ones((2, 2, 2), np.float32), st.csr(), value_bits=32),
     "array of rank 3 does not match the encoding's 2 dimensions"),
    ("rcsc-rank", lambda: pack(np.ones(4, np.float32), rcsc(), value_bits=32),
     r"sparsec.rcsc: expected a rank-2 array"),
    ("value-bits", lambda: pack(EXAMPLE, st.csr(), value_bits=0), "value_bits must be >= 1"),
]


@pytest.mark.parametrize("name,call,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_pack_error(name: str, call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_unique_compressed_above_a_singleton_rejects_shared_coordinates() -> None:
    encoding = Enc(["compressed", "singleton"])
    with pytest.raises(ValueError, match="level 0 is unique but coordinate 0 has several children"):
        pack(EXAMPLE, encoding, value_bits=32)
    diagonal = np.diag(np.arange(1, 5, dtype=np.float32))
    assert_round_trip(diagonal, encoding)
