"""numpy semantics of the attention-family ops (masks, SDDMM, masked softmax, SpMM).

The reference every backend's attention is checked against. Intermediates are rounded
to the declared element type after each op (scores, probabilities, output), so
`attention` equals its decomposition `spmm(softmax(sddmm))` bit for bit.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.numerics import accumulate_dtype


def mask_matrix(kind: str, t: int, s: int, window: int | None = None,
                pattern: np.ndarray | None = None, start: int | None = None
                ) -> np.ndarray | None:
    """Boolean [T, S] of the (query i, key j) pairs attention may use; None for all.

    Query i sits at position start + i (start defaults to S - T: the queries are the last
    keys' positions). causal: j <= start + i; window: |start + i - j| <= window;
    pattern: the given 0/1 matrix.
    """
    if kind == "none":
        return None
    if kind == "pattern":
        assert pattern is not None
        return np.asarray(pattern) != 0
    first = s - t if start is None else start
    offset = np.arange(t)[:, None] + first - np.arange(s)[None, :]
    if kind == "causal":
        return offset >= 0
    if kind == "window":
        assert window is not None
        return np.abs(offset) <= window
    raise ValueError(f"unknown mask kind '{kind}'")


def sddmm(q: np.ndarray, k: np.ndarray, scale: float, mask: np.ndarray | None,
          dtype: str) -> np.ndarray:
    """scale * Q K^T on the mask (0 elsewhere), per head, rounded to `dtype`."""
    acc = accumulate_dtype(dtype)
    scores = np.matmul(q.astype(acc), np.swapaxes(k.astype(acc), -1, -2)) * acc(scale)
    if mask is not None:
        scores = np.where(mask, scores, acc(0))
    return round_to_dtype(scores, dtype)


def masked_softmax(scores: np.ndarray, mask: np.ndarray | None, dtype: str) -> np.ndarray:
    """Row softmax over the allowed entries; 0 elsewhere and on rows with none allowed."""
    acc = accumulate_dtype(dtype)
    x = scores.astype(acc)
    allowed = np.ones(x.shape, dtype=bool) if mask is None else np.broadcast_to(mask, x.shape)
    shifted = np.where(allowed, x, -np.inf)
    row_max = np.max(shifted, axis=-1, keepdims=True)
    row_max = np.where(np.isfinite(row_max), row_max, 0)
    e = np.where(allowed, np.exp(shifted - row_max), acc(0))
    total = np.sum(e, axis=-1, keepdims=True)
    probs = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return round_to_dtype(probs, dtype)


def spmm(p: np.ndarray, v: np.ndarray, dtype: str) -> np.ndarray:
    """P V per head, accumulated in the accumulator type, rounded to `dtype`."""
    acc = accumulate_dtype(dtype)
    return round_to_dtype(np.matmul(p.astype(acc), v.astype(acc)), dtype)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float,
              mask: np.ndarray | None, dtype: str) -> np.ndarray:
    """spmm(softmax(sddmm(Q, K)), V) with the same intermediate roundings."""
    return spmm(masked_softmax(sddmm(q, k, scale, mask, dtype), mask, dtype), v, dtype)


QUERY_FORMAT_SEMANTICS: dict[str, tuple[str, str]] = {
    "sparsec.row_clustered": ("sparsec.tensors.row_clustering", "clustered_attention"),
}
"""Query encodings that redefine what attention computes (approximate attention): the
encoding's attribute name -> (module, function) of its numpy semantics, called as
`function(encoding, q, k, v, scale, mask, dtype)`; imported only when used."""


def query_format_semantics(query_type: Any) -> Any | None:
    """The attention semantics a query's encoding defines, or None for plain attention."""
    entry = QUERY_FORMAT_SEMANTICS.get(getattr(getattr(query_type, "encoding", None), "name", ""))
    if entry is None:
        return None
    return getattr(importlib.import_module(entry[0]), entry[1])
