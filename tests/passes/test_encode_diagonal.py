"""`encode-diagonal` and the `#sparsec.diagonal` format: ASADI's bubble placement on hand
examples, pack/unpack round trips (hypothesis), exact storage, the pass's IR, data and
recorded effects, the reference of the executed program, options and refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.formats import DiagonalAttr, describe, layout_of
from sparsec.tensors.attention import attention, mask_matrix
from sparsec.tensors.storage import (
    band_offsets,
    overflow_offsets,
    pack,
    place_diagonals,
    storage_bits,
    unpack,
)


def fig7_mask() -> np.ndarray:
    """6 x 6: the main diagonal without (2, 2) and (4, 4), plus (0, 3) and (5, 1)."""
    mask = np.eye(6, dtype=bool)
    mask[2, 2] = mask[4, 4] = False
    mask[0, 3] = mask[5, 1] = True
    return mask


# -- the band and the bubble-placement rule -------------------------------------------------

def test_band_is_centred_and_clamped() -> None:
    assert band_offsets(512, 512, 64).tolist() == list(range(-32, 32))
    assert band_offsets(6, 6, 3).tolist() == [-1, 0, 1]
    # S > T: centred on S - T = 4 (queries aligned with the last keys)
    assert band_offsets(4, 8, 3).tolist() == [3, 4, 5]
    # too wide: capped at T + S - 1 and shifted inside
    assert band_offsets(2, 3, 9).tolist() == [-1, 0, 1, 2]
    assert band_offsets(4, 4, 2).tolist() == [-1, 0]


def test_overflow_diagonals_are_the_free_offsets_nearest_the_band() -> None:
    # band [-1, 1] of a 6 x 6 matrix: then 2 (above), -2 (below), 3, -3, ...
    assert overflow_offsets(np.array([-1, 0, 1]), 4, 6, 6).tolist() == [2, -2, 3, -3]


def test_fig7_off_band_elements_move_to_the_nearest_bubble_of_their_column() -> None:
    placement = place_diagonals(fig7_mask(), 3)
    layout = placement.layout
    assert layout.offsets.tolist() == [-1, 0, 1]
    # (0, 3) is above the band: column 3's band slots are rows 2 (offset 1), 3, 4; the
    # topmost bubble is row 2, on diagonal 2 (offset 1): R_d = 2, R_o = 0.
    # (5, 1) is below: column 1's slots are rows 0, 1, 2; the bottommost bubble is row 2,
    # on diagonal 0 (offset -1): R_d = 2, R_o = 5.
    assert layout.moved.tolist() == [[0, 1, 5], [2, 3, 0]]
    assert placement.off_band == 2 and placement.into_bubbles == 2
    assert placement.dropped.size == 0
    rows = layout.slot_rows()
    assert rows[0, 1] == 5 and rows[2, 3] == 0          # the moved slots hold R_o
    assert rows[1].tolist() == [0, 1, 2, 3, 4, 5]        # the main diagonal is natural
    assert rows[2, 0] == -1 and rows[0, 5] == -1         # outside the matrix: padding
    assert np.array_equal(layout.covered() & fig7_mask(), fig7_mask())


def test_nearest_element_takes_the_nearest_bubble() -> None:
    # Column 3 of a 6 x 6 matrix with an empty band (rows 2, 3, 4) and two elements above
    # it: (1, 3) at distance 1 takes the top bubble (row 2, offset 1), (0, 3) at distance
    # 2 the next one (row 3, offset 0).
    mask = np.zeros((6, 6), dtype=bool)
    mask[0, 3] = mask[1, 3] = True
    layout = place_diagonals(mask, 3).layout
    assert layout.moved.tolist() == [[1, 3, 0], [2, 3, 1]]


def test_above_wins_a_tie_and_the_loser_overflows() -> None:
    # 5 x 5, band = the main diagonal only. Column 2 has one bubble, (2, 2); (1, 2) above
    # and (3, 2) below are both at distance 1: the one above takes it.
    mask = np.zeros((5, 5), dtype=bool)
    mask[1, 2] = mask[3, 2] = True
    extend = place_diagonals(mask, 1)
    # The loser goes to the first overflow diagonal (offset 1, nearest above the band),
    # in its own column's slot.
    assert extend.layout.offsets.tolist() == [0, 1]
    assert extend.layout.moved.tolist() == [[0, 2, 1], [1, 2, 3]]
    drop = place_diagonals(mask, 1, "drop")
    assert drop.layout.offsets.tolist() == [0]
    assert drop.layout.moved.tolist() == [[0, 2, 1]]
    assert drop.dropped.tolist() == [[3, 2]]


def test_nearer_element_below_beats_a_farther_one_above() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[0, 2] = True          # offset 2: distance 2 above
    mask[3, 2] = True          # offset -1: distance 1 below
    drop = place_diagonals(mask, 1, "drop")
    assert drop.layout.moved.tolist() == [[0, 2, 3]]
    assert drop.dropped.tolist() == [[0, 2]]


def test_extend_falls_back_to_all_diagonals_when_overflow_would_not_fit() -> None:
    # A full column 0 of a 4 x 4 matrix with w = 1 needs 3 overflow diagonals beyond
    # what 7 - 1 free offsets allow only if ... here 1 + 3 <= 7, so it fits:
    mask = np.zeros((4, 4), dtype=bool)
    mask[:, 0] = True
    assert place_diagonals(mask, 1).layout.count == 4
    # A dense 2 x 2 with w = 1: column 0 and 1 overflow by one each -> 2 diagonals <= 3.
    full = np.ones((3, 3), dtype=bool)
    layout = place_diagonals(full, 1).layout
    assert layout.count <= 5
    assert layout.covered().all()


def test_storage_bits_by_hand() -> None:
    layout = place_diagonals(fig7_mask(), 3).layout
    packed = pack(fig7_mask().astype(np.int8), DiagonalAttr(3, 3), value_bits=8,
                  aux=layout.aux())
    # offsets 3 x ceil(log2 11) = 12; values 3 diagonals x 6 slots x 8 = 144;
    # moved_ptr (3 + 1) x ceil(log2 3) = 8; moved_col and moved_row 2 x ceil(log2 6) = 6 each
    assert packed.buffer_bits() == {"offsets": 12, "values": 144, "moved_ptr": 8,
                                    "moved_col": 6, "moved_row": 6}
    assert packed.bits == 176
    assert packed.meta["moved"] == 2
    assert packed.buffers["moved_col"].tolist() == [1, 3]     # R_d = col - offset: 2, 2
    assert packed.buffers["moved_row"].tolist() == [5, 0]     # R_o
    assert storage_bits(fig7_mask().astype(np.int8), DiagonalAttr(3, 3), 8) == 176


def test_pack_refuses_data_the_layout_cannot_hold() -> None:
    layout = place_diagonals(np.eye(4, dtype=bool), 1).layout
    data = np.eye(4, dtype=np.float32)
    data[0, 3] = 2.0
    with pytest.raises(ValueError, match=r"element \(0, 3\) is nonzero but no diagonal"):
        pack(data, DiagonalAttr(1, 1), value_bits=32, aux=layout.aux())
    with pytest.raises(ValueError, match="holds 1 diagonals .* but the data needs 2"):
        pack(data, DiagonalAttr(1, 1), value_bits=32)


def test_describe_and_layout() -> None:
    attr = DiagonalAttr(64, 80)
    assert describe(attr) == "diagonal (DIA), 64 central diagonals + 16 overflow"
    assert layout_of(attr) is attr
    assert str(attr) == "#sparsec.diagonal<w = 64, diagonals = 80>"


# -- hypothesis: round trips and placement invariants --------------------------------------

SHAPES = hst.tuples(hst.integers(1, 9), hst.integers(1, 9))


@settings(max_examples=60, deadline=None)
@given(shape=SHAPES, heads=hst.integers(0, 2), density=hst.sampled_from((0.0, 0.2, 0.6, 1.0)),
       w=hst.integers(1, 20), seed=hst.integers(0, 10_000))
def test_round_trip(shape: tuple[int, int], heads: int, density: float, w: int,
                    seed: int) -> None:
    rng = np.random.default_rng(seed)
    full = (heads, *shape) if heads else shape
    x = rng.standard_normal(full).astype(np.float32)
    x[rng.random(full) >= density] = 0
    pattern = (x != 0).reshape(-1, *shape).any(axis=0)
    layout = place_diagonals(pattern, w).layout
    encoding = DiagonalAttr(layout.band, layout.count)
    for aux in (layout.aux(), None):
        packed = pack(x, encoding, value_bits=32, aux=aux)
        assert np.array_equal(unpack(packed), x)
        t, s = shape
        m = layout.num_moved
        expected = (layout.count * max(1, int(np.ceil(np.log2(t + s - 1)))) if t + s > 2
                    else layout.count)
        expected += x.size // (t * s) * layout.count * s * 32
        expected += (layout.count + 1) * (max(1, int(np.ceil(np.log2(m + 1)))) if m else 1)
        expected += m * ((max(1, int(np.ceil(np.log2(s)))) if s > 1 else 1)
                         + (max(1, int(np.ceil(np.log2(t)))) if t > 1 else 1))
        assert packed.bits == expected


@settings(max_examples=60, deadline=None)
@given(shape=SHAPES, density=hst.sampled_from((0.1, 0.3, 0.7)), w=hst.integers(1, 12),
       overflow=hst.sampled_from(("extend", "drop")), seed=hst.integers(0, 10_000))
def test_placement_invariants(shape: tuple[int, int], density: float, w: int, overflow: str,
                              seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    placement = place_diagonals(mask, w, overflow)
    layout = placement.layout
    rows = layout.slot_rows()
    live = rows >= 0
    cols = np.broadcast_to(np.arange(shape[1]), rows.shape)
    held = rows[live] * shape[1] + cols[live]
    assert np.unique(held).size == held.size                     # no element held twice
    kept = mask.copy()
    kept[placement.dropped[:, 0], placement.dropped[:, 1]] = False
    assert np.array_equal(layout.covered() & mask, kept)        # kept = covered
    for k, j, origin in layout.moved:
        assert mask[origin, j]                                  # a real element, same column
        if k < layout.band:
            assert not mask[j - layout.offsets[k], j]           # ... moved into a bubble
    if overflow == "extend":
        assert placement.dropped.size == 0
    else:
        assert layout.count == min(w, sum(shape) - 1)


# -- the pass --------------------------------------------------------------------------------

def attention_spec(mask: str = "causal", t: int = 8, dtype: str = "f64",
                   heads: int = 2, d: int = 4) -> str:
    shape = f"{heads}, {t}, {d}" if heads else f"{t}, {d}"
    return (f"kernel a {{\n"
            f"  in Q: {dtype}[{shape}] = random(seed=1)\n"
            f"  in K: {dtype}[{shape}] = random(seed=2)\n"
            f"  in V: {dtype}[{shape}] = random(seed=3)\n"
            f"  O = attention(Q, K, V, mask={mask})\n"
            f"  out O\n}}\n")


def compiled(text: str, pipeline: str):
    return compile_text(text, CompileOptions(pipeline=pipeline, lower=False))


def param_of(module, name: str):
    return next(op for op in module.walk() if getattr(op, "sym_name", None) == name)


def test_causal_mask_becomes_a_diagonal_pattern_param() -> None:
    c = compiled(attention_spec(), "encode-diagonal{w=3}")
    text = str(c.module)
    assert ('%O_mask = sparsec.param @O_mask' in text and
            'tensor<8x8xi8, #sparsec.diagonal<w = 3, diagonals = ' in text)
    assert 'sparsec.attention %Q, %K, %V pattern %O_mask {scale = 5.000000e-01 : f64, ' \
           'mask = "pattern"}' in text
    mask = c.store.get("a.O_mask")
    assert np.array_equal(mask != 0, mask_matrix("causal", 8, 8))   # lossless
    effect = param_of(c.module, "O_mask").effect_list()[0]
    assert effect["pass"] == "encode-diagonal{w=3 overflow=extend}"
    assert effect["w"] == 3 and effect["dropped"] == 0 and effect["rel_error"] == 0.0
    # 36 nonzeros; the band [-1, 1] holds 8 + 7 of them. Its bubbles are the offset-1
    # slots of columns 1..7 (rows j - 1 > j is masked); column j has 6 - j elements below
    # the band, so columns 1..5 each move their nearest one (row j + 2) up, and column 0
    # (no bubble: its offset-1 slot lies above row 0) and the rest overflow.
    assert effect["off_band"] == 36 - 15 and effect["moved"] == 5
    assert effect["overflowed"] == 36 - 15 - 5
    assert "a.O_mask#offsets" in c.store and "a.O_mask#moved" in c.store
    layout_count = c.store.get("a.O_mask#offsets").size
    assert effect["diagonals"] == layout_count
    assert effect["storage_bits"] == storage_bits(mask, DiagonalAttr(3, layout_count), 8,
                                                  {"offsets": c.store.get("a.O_mask#offsets"),
                                                   "moved": c.store.get("a.O_mask#moved")})


def test_drop_narrows_the_mask_and_the_reference_follows_it() -> None:
    c = compile_text(attention_spec(), CompileOptions(pipeline="encode-diagonal{w=2 "
                                                              "overflow=drop}", lower=False))
    mask = c.store.get("a.O_mask") != 0
    causal = mask_matrix("causal", 8, 8)
    effect = param_of(c.module, "O_mask").effect_list()[0]
    assert effect["dropped"] == int(causal.sum() - mask.sum()) > 0
    assert effect["diagonals"] == 2 and effect["overflowed"] == 0
    assert 0 < effect["rel_error"] < 1
    q, k, v = (c.store.get(f"a.{n}") for n in "QKV")
    expected = attention(q, k, v, 0.5, mask, "f64")
    assert np.array_equal(c.store.get("a.O#reference"), expected)
    original = attention(q, k, v, 0.5, causal, "f64")
    assert np.array_equal(c.store.get("a.O#original"), original)


def quantize4(x: np.ndarray) -> np.ndarray:
    """Symmetric per-tensor 4-bit rounding, written out independently of the pass."""
    scale = np.abs(x).max() / 7
    return np.clip(np.round(x / scale), -8, 7) * scale


def test_threshold_predicts_the_mask_from_4_bit_q_and_k() -> None:
    c = compiled(attention_spec("none", t=16), "encode-diagonal{w=4 threshold=0.1}")
    q, k = c.store.get("a.Q"), c.store.get("a.K")
    scores = quantize4(q) @ np.swapaxes(quantize4(k), -1, -2) * 0.5
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = (probs >= 0.1).any(axis=0)
    assert np.array_equal(c.store.get("a.O_mask") != 0, expected)
    effect = param_of(c.module, "O_mask").effect_list()[0]
    assert effect["pass"] == "encode-diagonal{w=4 overflow=extend threshold=0.1 bits=4}"
    assert effect["density"] == pytest.approx(expected.mean())


def test_decomposed_chain_is_encoded_once_and_scores_carry_the_format() -> None:
    c = compiled(attention_spec("window(1)"), "decompose-attention,encode-diagonal{w=3}")
    text = str(c.module)
    assert text.count("sparsec.param @O_scores_mask") == 1
    assert ("-> tensor<2x8x8xf64, #sparsec.diagonal<w = 3, diagonals = 3>>" in text)
    assert 'sparsec.softmax %O_scores pattern %O_scores_mask {mask = "pattern"} : ' \
           '(tensor<2x8x8xf64, #sparsec.diagonal<w = 3, diagonals = 3>>' in text
    effect = param_of(c.module, "O_scores_mask").effect_list()[0]
    assert effect["off_band"] == 0 and effect["diagonals"] == 3


def test_existing_pattern_param_is_rewritten_in_place(tmp_path) -> None:
    pattern = np.eye(6, dtype=np.int8)
    pattern[0, 5] = 1
    np.save(tmp_path / "p.npy", pattern)
    text = attention_spec('pattern("p.npy")', t=6)
    c = compile_text(text, CompileOptions(pipeline="encode-diagonal{w=1 overflow=drop}",
                                          lower=False), str(tmp_path / "a.sk"))
    # (0, 5) has offset 5; column 5's only band slot, (5, 5), holds an element: dropped.
    assert (c.store.get("a.O_mask") != 0).sum() == 6
    effect = param_of(c.module, "O_mask").effect_list()[0]
    assert effect["dropped"] == 1 and effect["moved"] == 0


def test_operand_selects_one_mask_by_name() -> None:
    text = ("kernel a {\n  in Q: f64[8, 4] = random(seed=1)\n  in K: f64[8, 4] = random(seed=2)\n"
            "  S1 = sddmm(Q, K, mask=causal)\n  S2 = sddmm(Q, K, mask=window(1))\n"
            "  out S1\n  out S2\n}\n")
    c = compiled(text, "encode-diagonal{w=3 operand=S2}")
    assert "a.S2_mask" in c.store and "a.S1_mask" not in c.store
    with pytest.raises(CompileError, match="no attention mask or spmm operand matches "
                                           "operand=Z"):
        compiled(text, "encode-diagonal{operand=Z}")


def test_standalone_spmm_param_lhs_is_encoded_and_dropped_values_zeroed() -> None:
    text = ("kernel s {\n  param P: f64[6, 6] = random(seed=4, density=0.5)\n"
            "  in V: f64[6, 2] = random(seed=5)\n  O = spmm(P, V)\n  out O\n}\n")
    before = compiled(text, "").store.get("s.P")
    c = compiled(text, "encode-diagonal{w=1 overflow=drop}")
    after = c.store.get("s.P")
    assert "tensor<6x6xf64, #sparsec.diagonal<w = 1, diagonals = 1>>" in str(c.module)
    placement = place_diagonals(before != 0, 1, "drop")
    expected = before.copy()
    expected[placement.dropped[:, 0], placement.dropped[:, 1]] = 0
    assert np.array_equal(after, expected)
    effect = param_of(c.module, "P").effect_list()[0]
    assert effect["rel_error"] == pytest.approx(np.linalg.norm(before - after)
                                                / np.linalg.norm(before))


@pytest.mark.parametrize("options,message", [
    ("w=-1", "encode-diagonal: w must be >= 0 (0: T // 8), got -1"),
    ("overflow=spill", "encode-diagonal: overflow must be extend or drop, got 'spill'"),
    ("threshold=1.5", "encode-diagonal: threshold must lie in [0, 1), got 1.5"),
    ("bits=1", "encode-diagonal: bits must lie in [2, 16], got 1"),
])
def test_option_validation(options: str, message: str) -> None:
    with pytest.raises(CompileError, match=re.escape(f"pass 'encode-diagonal' failed: {message}")):
        compiled(attention_spec(), f"encode-diagonal{{{options}}}")


def test_threshold_needs_q_and_k() -> None:
    text = ("kernel s {\n  in S: f64[4, 4] = random(seed=1)\n  P = softmax(S, mask=causal)\n"
            "  out P\n}\n")
    with pytest.raises(CompileError, match="threshold needs the scores' Q and K, but the mask "
                                           "of sparsec.softmax P has no sddmm or attention op"):
        compiled(text, "encode-diagonal{threshold=0.1}")


def test_default_band_is_an_eighth_of_t() -> None:
    c = compiled(attention_spec("none", t=32, heads=0), "encode-diagonal{overflow=drop}")
    assert "#sparsec.diagonal<w = 4, diagonals = 4>" in str(c.module)
