"""Arithmetic in the declared element types, fast.

Float products run through float32 (or float64) BLAS and round once to the declared
type: numpy's float16 matmul is slow, and hardware with f16/bf16 multipliers
accumulates in f32 too. Integer products are exact: they run through float64 BLAS when
every partial sum is provably below 2^53 (then float64 is exact), else through numpy's
integer matmul.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparsec.tensors.datastore import is_sparse
from sparsec.tensors.dtypes import carrier_dtype, round_to_dtype

ACCUMULATOR: dict[str, type] = {
    "f64": np.float64, "f32": np.float32, "f16": np.float32, "bf16": np.float32,
    "i32": np.int64, "i16": np.int64, "i8": np.int64,
}
"""numpy type partial sums are kept in, by operand element type."""


def is_integer(dtype: str) -> bool:
    return dtype.startswith("i")


def accumulate_dtype(dtype: str) -> type:
    return ACCUMULATOR[dtype]


def matmul_accumulate(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    """a @ b in the accumulator type of `dtype` (no final rounding).

    Either operand may be a scipy sparse matrix (a large .mtx); the product is dense.
    """
    acc = ACCUMULATOR[dtype]
    if is_sparse(a) or is_sparse(b):
        wide = np.float64 if is_integer(dtype) else acc
        product = a.astype(wide) @ b.astype(wide)
        product = np.asarray(product.toarray() if is_sparse(product) else product)
        return product.astype(np.int64) if is_integer(dtype) else product
    if not is_integer(dtype):
        return np.matmul(a.astype(acc, copy=False), b.astype(acc, copy=False))
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[1]), dtype=np.int64)
    bound = float(np.max(np.abs(a), initial=0)) * float(np.max(np.abs(b), initial=0))
    if bound * a.shape[1] < 2.0**53:
        exact = np.matmul(a.astype(np.float64), b.astype(np.float64))
        return exact.astype(np.int64)
    return np.matmul(a.astype(np.int64), b.astype(np.int64))


def finish(acc: np.ndarray, result_dtype: str) -> np.ndarray:
    """Round (floats) or wrap to 32 bits (integers) an accumulator into the result type."""
    if is_integer(result_dtype):
        return acc.astype(np.int64).astype(carrier_dtype(result_dtype))
    return round_to_dtype(acc, result_dtype)


def matmul(a: np.ndarray, b: np.ndarray, dtype: str, result_dtype: str) -> np.ndarray:
    """The numpy reference of `sparsec.matmul`: accumulate, then round once."""
    return finish(matmul_accumulate(a, b, dtype), result_dtype)


def effectual_macs(a: np.ndarray, b: np.ndarray) -> int:
    """Products a[.., i, k] * b[.., k, j] with both factors nonzero: the useful work of a @ b
    (per head for rank-3 operands).

    sum_k nnz(a[.., :, k]) * nnz(b[.., k, :]), counted from the real zeros of the operands.
    """
    per_k_a = _nonzeros(a, axis=-2)
    per_k_b = _nonzeros(b, axis=-1)
    return int(np.sum(per_k_a * per_k_b))


def _nonzeros(x: Any, axis: int) -> np.ndarray:
    """Nonzeros along `axis` of a dense array or a scipy sparse matrix."""
    if is_sparse(x):
        csr = x.tocsr()
        csr.eliminate_zeros()
        return np.asarray(csr.getnnz(axis=axis % 2), dtype=np.int64)
    return np.count_nonzero(x, axis=axis).astype(np.int64)
