"""Cluster-aligned INT-FP arithmetic: AWSC equivalence, register widths and bounds
(exhaustive at small widths), clustering invariants, and the GEMM against exact sums."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsec.backends.bitllm.arith import (
    IntFpConfig,
    aligned_activation_gemm,
    apply_register,
    awsc_products,
    bf16_fields,
    bits_needed_signed,
    cluster_activations,
    cluster_exponents,
    int_fp_gemm,
    max_cluster_magnitude,
    register_error_bound,
    required_acc_bits,
)
from sparsec.tensors.dtypes import round_to_dtype

SMALL = [(m, w, s, g) for m in (1, 2, 3) for w in (2, 3) for s in (0, 1, 2) for g in (1, 2, 3)]


@pytest.mark.parametrize("act_bits, weight_bits, span", [(m, w, s) for m, w, s, _ in SMALL])
def test_awsc_equals_activation_alignment_exhaustively(act_bits, weight_bits, span):
    """m * (w << d) == (m << d) * w, and w << d fits W + d bits, for every small input."""
    m = np.arange(1 << act_bits)
    w = np.arange(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))
    d = np.arange(span + 1)
    mm, ww, dd = (a.ravel() for a in np.meshgrid(m, w, d, indexing="ij"))
    for sign in (0, 1):
        awsc = awsc_products(mm, np.full_like(mm, sign), ww, dd, weight_bits)
        aligned = np.where(sign, -(mm << dd), mm << dd) * ww
        assert np.array_equal(awsc, aligned)
    extended = ww << dd
    assert all(bits_needed_signed(int(v)) <= weight_bits + int(s)
               for v, s in zip(extended, dd, strict=True))


@pytest.mark.parametrize("act_bits, weight_bits, span, group", SMALL)
def test_required_width_is_tight_exhaustively(act_bits, weight_bits, span, group):
    """Enumerate every cluster of `group` elements (sign, significand, weight, shift with
    one shift 0): the largest |P| is the formula's and needs exactly the required width."""
    terms = [sgn * m * (w << d)
             for sgn in (1, -1) for m in range(1 << act_bits)
             for w in range(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))
             for d in range(span + 1)]
    base_terms = [sgn * m * w for sgn in (1, -1) for m in range(1 << act_bits)
                  for w in range(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1))]
    top, low = max(terms), min(terms)
    largest = max(max(base_terms) + (group - 1) * top, -(min(base_terms) + (group - 1) * low))
    assert largest == max_cluster_magnitude(act_bits, weight_bits, span, group)
    need = required_acc_bits(act_bits, weight_bits, span, group)
    assert bits_needed_signed(largest) == need
    assert bits_needed_signed(-largest) <= need


@pytest.mark.parametrize("mode", ["saturate", "wrap", "truncate"])
@pytest.mark.parametrize("act_bits, weight_bits, span, group", SMALL[::3])
def test_register_error_bound_holds_and_is_attained(mode, act_bits, weight_bits, span, group):
    """Over every reachable sum in [-max, max], |P - register(P)| <= the bound, with
    equality somewhere; a register of the required width never alters a sum."""
    need = required_acc_bits(act_bits, weight_bits, span, group)
    top = max_cluster_magnitude(act_bits, weight_bits, span, group)
    sums = np.arange(-top, top + 1)
    for bits in range(2, need + 1):
        held, altered = apply_register(sums, bits, need, mode)
        bound = register_error_bound(act_bits, weight_bits, span, group, bits, mode)
        error = np.abs(sums - held)
        assert error.max() <= bound
        if bits == need:
            assert bound == 0 and not altered.any()
        elif mode != "truncate" or need - bits > 0:
            assert error.max() == bound


@given(st.lists(st.integers(-30, 30), min_size=1, max_size=32), st.integers(0, 4))
@settings(max_examples=200, deadline=None)
def test_clusters_respect_span_and_cover_every_nonzero(exponents, span):
    e = np.array(exponents, dtype=np.int64)[None, :]
    nonzero = np.ones_like(e, dtype=bool)
    cluster, base, needed = cluster_exponents(e, nonzero, span)
    assert (cluster >= 0).all()
    for j in range(int(needed[0])):
        members = e[0][cluster[0] == j]
        assert members.size and members.min() == base[0, j]
        assert members.max() - members.min() <= span
    # greedy from the top is optimal for interval covering: no cover uses fewer clusters
    distinct = np.unique(e)
    count, top = 0, None
    for value in distinct[::-1]:
        if top is None or value < top - span:
            count, top = count + 1, value
    assert needed[0] == count


def test_bf16_fields_reconstruct_every_bf16_value():
    """All 65536 BF16 bit patterns but inf/NaN: (-1)^s m 2^E == x exactly."""
    top = np.arange(1 << 16, dtype=np.uint32)
    x = (top << 16).view(np.float32)
    x = x[np.isfinite(x)]
    sign, m, e = bf16_fields(x)
    assert (m < 256).all()
    back = np.where(sign == 1, -1.0, 1.0) * np.ldexp(m.astype(np.float64), e)
    assert np.array_equal(back, x.astype(np.float64))


def _bf16(rng, shape, spread):
    values = rng.normal(size=shape) * np.exp2(rng.integers(-spread, spread + 1, size=shape))
    return round_to_dtype(values.astype(np.float32), "bf16")


@given(st.integers(0, 2**31), st.integers(1, 5), st.integers(1, 70), st.integers(1, 6),
       st.integers(0, 6))
@settings(max_examples=40, deadline=None)
def test_gemm_cluster_sums_equal_activation_alignment(seed, rows, k, n, spread):
    """With the required register width, AWSC's per-cluster integer sums equal the
    activation-aligned ones, and the output differs from the exact product only by the
    float32 accumulation (<= terms * 2^-24 * sum|terms|)."""
    rng = np.random.default_rng(seed)
    x = _bf16(rng, (rows, k), spread)
    x[rng.random((rows, k)) < 0.2] = 0.0
    w = rng.integers(-128, 128, size=(k, n))
    cfg = IntFpConfig(clusters=2, span=1)
    y, stats = int_fp_gemm(x, w, 1.0, cfg)
    exact = x.astype(np.float64) @ w
    slack = np.abs(x.astype(np.float64)) @ np.abs(w)
    terms = stats.clusters / max(1, rows) + 1
    assert np.all(np.abs(y - exact) <= terms * 2.0**-23 * slack + 1e-300)
    assert stats.register_events == 0 and stats.dropped_elements == 0
    sums = aligned_activation_gemm(x, w, cfg)
    act = cluster_activations(x, cfg)
    for j in range(sums.shape[2]):
        member = act.cluster == j
        awsc = np.einsum("mgi,mgin->mgn", np.where(member, act.signed, 0),
                         _shifted_weights(w, act.shift, cfg.group))
        assert np.array_equal(awsc, sums[:, :, j, :])


def _shifted_weights(w: np.ndarray, shift: np.ndarray, group: int) -> np.ndarray:
    """[M, G, g, N]: each row's weights zero-extended and shifted by that row's d."""
    rows, groups, _ = shift.shape
    padded = np.zeros((groups * group, w.shape[1]), dtype=np.int64)
    padded[: w.shape[0]] = w
    wg = padded.reshape(groups, group, -1)
    return wg[None, :, :, :] << shift[:, :, :, None]


def test_spill_counts_passes_and_drop_counts_lost_elements():
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, :8] = np.ldexp(1.0, np.arange(8) * 4)  # 8 exponents 4 apart: 8 clusters at S=3
    w = np.ones((32, 2), dtype=np.int64)
    y, stats = int_fp_gemm(x, w, 1.0, IntFpConfig())
    assert stats.cluster_histogram[-1] == 1 and len(stats.cluster_histogram) == 8
    assert stats.passes == 2 and stats.extra_passes == 1 and stats.spilled_groups == 1
    assert np.allclose(y, x.sum())
    y_drop, dropped = int_fp_gemm(x, w, 1.0, IntFpConfig(overflow="drop"))
    assert dropped.dropped_elements == 4 and dropped.passes == 1
    assert np.allclose(y_drop, x[0, 4:8].sum())


def test_narrow_register_events_are_counted_and_bounded():
    rng = np.random.default_rng(3)
    x = _bf16(rng, (8, 64), 1)
    w = np.full((64, 4), -128)
    exact_cfg = IntFpConfig()
    y_exact, _ = int_fp_gemm(x, w, 1.0, exact_cfg)
    for mode in ("saturate", "wrap", "truncate"):
        cfg = IntFpConfig(acc_bits=16, acc_mode=mode)
        y, stats = int_fp_gemm(x, w, 1.0, cfg)
        assert stats.register_events > 0
        bound = register_error_bound(8, 8, 3, 32, 16, mode)
        assert stats.register_error_lsb <= bound
        assert not np.array_equal(y, y_exact)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="BF16"):
        int_fp_gemm(np.array([[1.0000001]], dtype=np.float32), np.ones((1, 1)), 1.0,
                    IntFpConfig())
    with pytest.raises(ValueError, match="codes"):
        int_fp_gemm(np.ones((1, 1), dtype=np.float32), np.array([[300]]), 1.0, IntFpConfig())
    with pytest.raises(ValueError, match="acc_mode"):
        IntFpConfig(acc_mode="round")


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=50))
@settings(max_examples=100, deadline=None)
def test_signed_bits_matches_python(values):
    from sparsec.backends.bitllm.arith import signed_bits

    assert signed_bits(np.array(values)).tolist() == [bits_needed_signed(v) for v in values]


def test_sum_bits_histogram_says_which_widths_overflow():
    rng = np.random.default_rng(5)
    x = _bf16(rng, (6, 64), 2)
    w = rng.integers(-128, 128, size=(64, 5))
    _, exact = int_fp_gemm(x, w, 1.0, IntFpConfig())
    hist = np.array(exact.sum_bits_histogram)
    for bits in (12, 16, 20):
        _, narrow = int_fp_gemm(x, w, 1.0, IntFpConfig(acc_bits=bits))
        assert narrow.register_events == hist[bits + 1:].sum()


def test_csd_rounding_up_to_plus_128_is_within_the_bound():
    """CSD with one digit codes 127 as +128: |w| = 2^(W-1) is what max |P| assumes."""
    from sparsec.tensors.bitlevel import encode

    coded = encode(np.array([127, -128, 96]), 8, 1, "csd").codes
    assert coded.tolist() == [128, -128, 128]
    x = np.full((1, 32), 255 / 128, dtype=np.float32)  # m = 255 everywhere
    w = np.full((32, 1), 128)
    y, stats = int_fp_gemm(x, w, 1.0, IntFpConfig())
    assert stats.register_events == 0 and y[0, 0] == pytest.approx(32 * 255)


@pytest.mark.parametrize("cfg", [IntFpConfig(), IntFpConfig(overflow="drop"),
                                 IntFpConfig(acc_bits=14, acc_mode="wrap")])
def test_column_blocks_change_nothing(cfg, monkeypatch):
    """Wide outputs are computed in column blocks (PRODUCT_BYTES): blocks of 1, 7 and all
    columns give the same bits and the same events."""
    from sparsec.backends.bitllm import arith

    rng = np.random.default_rng(11)
    x = round_to_dtype(rng.standard_normal((9, 70)) * np.exp(2 * rng.standard_normal((9, 70))),
                       "bf16")
    w = rng.integers(-128, 129, size=(70, 23))
    results = []
    for columns in (1, 7, 23):
        groups = -(-70 // cfg.group)
        monkeypatch.setattr(arith, "PRODUCT_BYTES", 8 * groups * 9 * columns)
        y, stats = int_fp_gemm(x, w, 0.5, cfg)
        results.append((y.view(np.uint32), stats.as_dict(), stats.passes_per_row_group))
    for y, stats, passes in results[1:]:
        assert np.array_equal(y, results[0][0]) and stats == results[0][1]
        assert np.array_equal(passes, results[0][2])
