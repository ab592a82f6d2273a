"""`prune-nm`: N:M structured magnitude pruning along the reduction dimension.

In every 1 x m block of consecutive elements along the reduction (K) dimension, keep
the n largest in magnitude and zero the rest; the tensor gets MLIR's structured encoding
(`k floordiv m : dense, k mod m : structured[n, m]`, with k the reduction dimension).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.dialects.sparse_tensor import SparseTensorEncodingAttr, nm
from sparsec.passes.common import (
    Target,
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


def prune_nm_values(values: np.ndarray, n: int, m: int, axis: int) -> np.ndarray:
    """Keep the n largest-magnitude entries of every 1 x m block along `axis`.

    Ties keep the earlier element (a stable sort on -|x|), so pruning is deterministic.
    """
    moved = np.moveaxis(values, axis, -1)
    blocks = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    order = np.argsort(-np.abs(blocks), axis=-1, kind="stable")
    keep = np.zeros(blocks.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    pruned = np.where(keep, blocks, np.zeros((), dtype=values.dtype)).reshape(moved.shape)
    return np.moveaxis(pruned, -1, axis)


def is_nm(values: np.ndarray, n: int, m: int, axis: int) -> bool:
    """Whether every 1 x m block along `axis` has at most n nonzeros."""
    moved = np.moveaxis(values, axis, -1)
    if moved.shape[-1] % m:
        return False
    blocks = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m)
    return bool(np.all(np.count_nonzero(blocks, axis=-1) <= n))


@dataclass(frozen=True)
class PruneNmPass(ModulePass):
    """Prune a matmul operand to n:m along K, e.g. `prune-nm{n=2 m=4 operand=b}`.

    `operand` is a (lhs), b (rhs) or a tensor's name; `crd_width` sets the encoding's
    crdWidth (0: MLIR's default index width).
    """

    name: ClassVar[str] = "prune-nm"

    n: int = 2
    m: int = 4
    operand: str = "b"
    crd_width: int = 0

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not 0 < self.n <= self.m:
            raise fail(self.name, None, f"needs 0 < n <= m, got n={self.n} m={self.m}")
        effect: dict[str, float | int | str] = {"pass": f"prune-nm{{n={self.n} m={self.m}}}"}
        for target in list(targets(op, self.operand, self.name)):
            self._check(target)
            encoding = nm(self.n, self.m, crd_width=self.crd_width, axis=target.reduction_axis)
            if not target.is_param:
                set_type(target, with_encoding(target.ttype, encoding))
                record_format_only(target, effect)
                continue
            store = current_store()
            values = param_values(store, target)
            pruned = prune_nm_values(values, self.n, self.m, target.reduction_axis)
            update_param_values(target, store, pruned, effect)
            set_type(target, with_encoding(target.ttype, encoding))

    def _check(self, target: Target) -> None:
        shape = target.ttype.get_shape()
        if len(shape) != 2:
            raise fail(self.name, target, f"n:m pruning needs a matrix, got rank {len(shape)}")
        k = shape[target.reduction_axis]
        if k % self.m:
            raise fail(self.name, target,
                       f"the reduction dimension K={k} is not a multiple of m={self.m}")
        encoding = encoding_of(target.ttype)
        if encoding is not None and not isinstance(encoding, SparseTensorEncodingAttr):
            raise fail(self.name, target, f"already has the format {encoding}; prune before "
                       "quantizing or sharing weights")
