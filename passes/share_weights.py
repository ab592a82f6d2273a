"""`share-weights`: k-means weight sharing with a 2^bits-entry codebook (Deep Compression).

Entry 0 of the codebook is 0.0 (EIE's padding entries and any stored zero use it); the
nonzero weights are clustered into the other 2^bits - 1 shared values by 1-D k-means
with linear initialization between their min and max (Han et al. found linear init
best: it keeps the rare large weights), and every nonzero weight becomes its centroid.
The codebook and the per-weight indices go to the DataStore (`#codebook`, `#index`); the
tensor gets `#sparsec.codebook<bits = b, layout = ...>` around its layout.
With `frac_bits=F` the centroids are rounded to multiples of 2^-F (a fixed-point
codebook, as EIE's 16-bit weight decoder holds it); a weight whose centroid rounds to 0
becomes a zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.dialects.formats import CodebookAttr, QuantizedAttr, codebook
from sparsec.passes.common import (
    encoding_of,
    fail,
    param_values,
    record_format_only,
    set_type,
    targets,
    update_param_values,
    with_encoding,
)
from sparsec.tensors.datastore import current_store
from sparsec.tensors.dtypes import round_to_dtype

MAX_ITERATIONS = 100


def kmeans_1d(values: np.ndarray, clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted centroids, index of each value's centroid) by Lloyd's algorithm in 1-D.

    Linear initialization; assignment by binary search between centroid midpoints
    (exact nearest-centroid in 1-D); an emptied cluster keeps its previous centroid.
    """
    if values.size == 0:
        return np.zeros(clusters), np.zeros(0, dtype=np.int64)
    x = values.astype(np.float64)
    centroids = np.linspace(x.min(), x.max(), clusters)
    index = np.zeros(x.size, dtype=np.int64)
    for _ in range(MAX_ITERATIONS):
        index = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, x)
        sums = np.bincount(index, weights=x, minlength=clusters)
        counts = np.bincount(index, minlength=clusters)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = np.sort(updated)
    index = np.searchsorted((centroids[1:] + centroids[:-1]) / 2, x)
    return centroids, index


@dataclass(frozen=True)
class ShareWeightsPass(ModulePass):
    """Share weights through a 2^bits codebook, e.g. `share-weights{bits=4 operand=b}`."""

    name: ClassVar[str] = "share-weights"

    bits: int = 4
    operand: str = "b"
    frac_bits: int = -1

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not 1 <= self.bits <= 8:
            raise fail(self.name, None, f"bits must lie in [1, 8], got {self.bits}")
        if self.frac_bits > 62:
            raise fail(self.name, None, f"frac_bits must lie in [0, 62], got {self.frac_bits}")
        fixed = f" frac_bits={self.frac_bits}" if self.frac_bits >= 0 else ""
        effect: dict[str, float | int | str] = {
            "pass": f"share-weights{{bits={self.bits}{fixed}}}", "bits": self.bits}
        for target in list(targets(op, self.operand, self.name)):
            layout = encoding_of(target.ttype)
            if isinstance(layout, (QuantizedAttr, CodebookAttr)):
                raise fail(self.name, target, f"is already {layout.name}; share weights of "
                           "unquantized values")
            encoding = codebook(self.bits, layout)
            if not target.is_param:
                set_type(target, with_encoding(target.ttype, encoding))
                record_format_only(target, effect)
                continue
            store = current_store()
            values = param_values(store, target)
            nonzero = values != 0
            centroids, index = kmeans_1d(values[nonzero], 2**self.bits - 1)
            dtype = store.dtypes[target.key]
            if self.frac_bits >= 0:
                centroids = np.ldexp(np.rint(np.ldexp(centroids, self.frac_bits)), -self.frac_bits)
            book = np.concatenate([[0.0], round_to_dtype(centroids, dtype).astype(np.float64)])
            codes = np.where(book[index + 1] != 0, index + 1, 0)
            shared = np.zeros_like(values)
            shared[nonzero] = book[codes]
            indices = np.zeros(values.shape, dtype=np.uint8)
            indices[nonzero] = codes
            store.put(f"{target.key}#codebook", book, "f64")
            store.put(f"{target.key}#index", indices, "i8")
            update_param_values(target, store, shared, effect)
            set_type(target, with_encoding(target.ttype, encoding))
