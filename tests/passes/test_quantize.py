"""quantize and share-weights: codes, scales, codebooks, IR formats, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import gemm_text, run_text
from sparsec.compiler.driver import CompileError, CompileOptions, compile_text
from sparsec.dialects.formats import CodebookAttr, QuantizedAttr
from sparsec.dialects.sparsec import ParamOp
from sparsec.passes.quantize import quantize_values
from sparsec.passes.share_weights import kmeans_1d

MATRICES = arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                  elements=st.floats(-50, 50, width=32))


@settings(max_examples=60, deadline=None)
@given(values=MATRICES, bits=st.integers(2, 10), symmetric=st.booleans(),
       axis=st.sampled_from([None, 0, 1]))
def test_quantization_error_is_at_most_half_a_step(values, bits, symmetric, axis):
    q = quantize_values(values, bits, symmetric, axis)
    low, high = ((-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1))
    assert q.codes.min() >= low and q.codes.max() <= high
    restored = q.values(axis)
    scale = q.scale if axis is None else np.expand_dims(q.scale, 1 - axis)
    assert np.all(np.abs(restored - values) <= scale / 2 + 1e-9 * np.abs(values).max(initial=1))
    if symmetric:
        assert np.all(restored[values == 0] == 0)          # pruned zeros stay zero


def test_symmetric_int8_hand_example():
    q = quantize_values(np.array([[-1.27, 0.0, 0.5, 1.27]]), 8, True, None)
    assert q.scale[0] == pytest.approx(0.01)
    assert q.codes.tolist() == [[-127, 0, 50, 127]]


@settings(max_examples=40, deadline=None)
@given(values=arrays(np.float64, st.integers(1, 200), elements=st.floats(-5, 5)),
       clusters=st.sampled_from([2, 4, 16]))
def test_kmeans_assigns_every_value_to_its_nearest_centroid(values, clusters):
    centroids, index = kmeans_1d(values, clusters)
    assert np.all(np.diff(centroids) >= 0)
    nearest = np.abs(values[:, None] - centroids[None, :]).min(axis=1)
    assert np.allclose(np.abs(values - centroids[index]), nearest)


def _param(compiled) -> ParamOp:
    return next(op for op in compiled.module.walk() if isinstance(op, ParamOp))


def test_quantize_pass_keeps_the_layout_and_stores_codes():
    compiled = compile_text(gemm_text(8, 16, 32), CompileOptions(
        pipeline="prune-nm{n=2 m=4},quantize{bits=8 per_channel=true}", lower=False))
    enc = _param(compiled).result.type.encoding
    assert isinstance(enc, QuantizedAttr)
    assert "structured[2, 4]" in str(enc) and "axis = 1" in str(enc)
    store = compiled.store
    codes, scales = store.get("g.B#q"), store.get("g.B#scale")
    assert scales.shape == (16,)
    np.testing.assert_allclose(store.get("g.B"), codes * scales[None, :], rtol=1e-6)
    assert np.all(np.abs(codes) <= 127)


def test_share_weights_uses_exactly_the_codebook():
    compiled = compile_text(gemm_text(8, 16, 32), CompileOptions(
        pipeline="prune-magnitude{sparsity=0.5},share-weights{bits=3}", lower=False))
    assert isinstance(_param(compiled).result.type.encoding, CodebookAttr)
    w = compiled.store.get("g.B")
    book = compiled.store.get("g.B#codebook")
    assert book.size == 8 and book[0] == 0.0           # entry 0 is reserved for zeros
    assert set(np.unique(w[w != 0])) <= set(book.astype(np.float32))
    np.testing.assert_array_equal(w[w != 0], book[compiled.store.get("g.B#index")[w != 0]])


def test_lossy_pipeline_runs_exactly_and_reports_the_loss():
    _, report = run_text(gemm_text(16, 16, 32), "systolic{rows=8 cols=8}",
                         pipeline="quantize{bits=4}")
    assert report.check.ok
    assert 0 < report.error_vs_original["rel_err"] < 0.2
    assert report.passes["B"][0]["bits"] == 4


@pytest.mark.parametrize("pipeline,message", [
    ("quantize{bits=1}", "bits must lie in [2, 16], got 1"),
    ("quantize,quantize", "is already sparsec.quantized; quantize once"),
    ("share-weights{bits=9}", "bits must lie in [1, 8], got 9"),
    ("quantize,share-weights", "is already sparsec.quantized"),
])
def test_refusals_name_the_rule(pipeline, message):
    with pytest.raises(CompileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_text(gemm_text(4, 4, 8), CompileOptions(pipeline=pipeline, lower=False))
