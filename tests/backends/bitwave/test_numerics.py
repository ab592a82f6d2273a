"""bitwave's whole-model numerics (`eval llm --row bitwave@zZ`) compute what its
interpreter computes for the same weights and activations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_text
from sparsec.backends.bitwave.numerics import numerics
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors.hooks import Linear


@pytest.mark.parametrize("zero_cols", [0, 3])
def test_numerics_equal_the_interpreter(tmp_path: Path, zero_cols: int) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (6, 48))
    w = rng.normal(0, 0.05, (48, 20))                      # K x N
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    text = ("kernel k {\n"
            f"  in X: f64[6, 48] = load(\"{tmp_path / 'x.npy'}\")\n"
            f"  param W: f64[48, 20] = load(\"{tmp_path / 'w.npy'}\")\n"
            "  Y = matmul(X, W)\n  out Y\n}\n")
    pipeline = (f"quantize{{bits=8 per_channel=true}},bit-flip{{zero_cols={zero_cols} group=16}},"
                "quantize{bits=8 operand=a},sparsify{format=bitcolumn group=16}")
    outputs, report = run_text(text, "bitwave", pipeline=pipeline)
    assert report.details["int_exact"] is True
    hooks = numerics(f"z{zero_cols}")
    linear = hooks.prepare_weight(Linear("blk.0.ffn_up", w.T.astype(np.float32)))
    ours = hooks.gemm(x.astype(np.float32), linear)
    np.testing.assert_allclose(ours, outputs[0], rtol=1e-5, atol=1e-6)
    kept = bc.kept_magnitude_columns(bc.column_masks(linear.aux["codes"].astype(np.int64), 16, 1))
    assert kept.max() <= 7 - zero_cols


def test_weights_only_rows_keep_float_activations() -> None:
    w = np.random.default_rng(1).normal(0, 1, (4, 32)).astype(np.float32)
    x = np.random.default_rng(2).normal(0, 1, (3, 32)).astype(np.float32)
    hooks = numerics("z2w")
    linear = hooks.prepare_weight(Linear("blk.0.attn_q", w))
    np.testing.assert_allclose(hooks.gemm(x, linear), x @ linear.matrix.T, rtol=1e-5)
    assert hooks.name == "bitwave W8 z2"


def test_bad_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="give @z0 .. @z7"):
        numerics("bf16")
