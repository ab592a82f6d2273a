"""Whole-model numerics of BitWave (`sparsec eval llm --row bitwave`, `--row bitwave@z3`,
`--row bitwave@z3w` for the weights alone).

BitWave multiplies INT8 weights (per output channel, symmetric, sign-magnitude bit
columns) by INT8 activations and accumulates exactly; the interpreter's `bitwave.tile`
and `bitwave.store` compute the same thing. Here, per projection:

    weights:      codes q_w = round(W / s_w), s_w = max |W[n, :]| / 127 per output row n,
                  then `@zZ` flips every group of 16 along K to Z zero magnitude columns
                  (BBS-MICRO's procedure, sparsec.tensors.bitcolumn.bit_flip); codes stay
                  on their grid, so the flipped program is exactly what the array runs;
    activations:  q_x = round(x / s_x), s_x = max |x| / 127 per GEMM call (per tensor,
                  as the `quantize{operand=a}` the target adds: dynamic on arrival);
    output:       s_x * s_w[n] * (q_x . q_w^T), the integer sum exact (float64).

The attention products, norms, RoPE, softmax and SiLU stay float32 (the array runs the
weight GEMMs; BitWave has no activation-activation mode) (A). The tied LM head keeps
float32, as `eval llm` leaves it dense for every target (A).
"""

from __future__ import annotations

import re

import numpy as np

from sparsec.tensors.bitcolumn import bit_flip
from sparsec.tensors.hooks import FLOAT, Linear, Numerics

GROUP = 16
_ZERO_COLS = re.compile(r"^z([0-7])(w?)$")


def _codes(matrix: np.ndarray, zero_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """INT8 codes of a weight [N, K] per output row, flipped along K; and the scales."""
    w = matrix.astype(np.float64)
    scale = np.max(np.abs(w), axis=1) / 127
    scale = np.where(scale > 0, scale, 1.0)
    codes = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int64)
    if zero_cols:
        codes = bit_flip(codes, zero_cols, GROUP, 1)
    return codes, scale


def numerics(dtype: str | None = None) -> Numerics:
    """`dtype` None or `zZ` (Z = 0..7 zero columns per group of 16 after bit flips);
    `zZw`: the weights only (activations stay float32), which isolates the flips' cost."""
    match = _ZERO_COLS.match(dtype or "z0")
    if match is None:
        raise ValueError(f"bitwave computes in INT8; give @z0 .. @z7 (zero columns per group "
                         f"of {GROUP} after bit flips; @z3w: weights only), not '@{dtype}'")
    zero_cols, weights_only = int(match.group(1)), bool(match.group(2))

    def prepare(linear: Linear) -> Linear:
        if linear.name == "output":
            return linear
        codes, scale = _codes(linear.matrix, zero_cols)
        values = (codes * scale[:, None]).astype(np.float32)
        prepared = linear.with_matrix(values)
        prepared.aux.update({"codes": codes.astype(np.float64), "scale": scale})
        return prepared

    def gemm(x: np.ndarray, linear: Linear) -> np.ndarray:
        if "codes" not in linear.aux or weights_only:
            return FLOAT.gemm(x, linear)
        peak = float(np.max(np.abs(x), initial=0.0))
        act_scale = peak / 127 if peak > 0 else 1.0
        q = np.rint(x.astype(np.float64) / act_scale)
        exact = q @ linear.aux["codes"].T
        return (act_scale * exact * linear.aux["scale"][None, :]).astype(np.float32)

    label = f"bitwave W8{'' if weights_only else 'A8'} z{zero_cols}"
    return FLOAT.replace(label, prepare_weight=prepare, gemm=gemm)
