"""The DataStore: every tensor value of a program, by symbol, outside the IR.

IR ops name a value by a symbol (`sparsec.param @W` inside `func.func @gemm` is the
store key `gemm.W`); passes that change data (pruning, quantizing) rewrite the store
and the IR together. A compiled program is its IR text plus this store saved as `.npz`.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

META_KEY = "__sparsec_meta__"
"""npz entry holding the JSON metadata (element type name of every array)."""

SPARSE_PARTS = ("data", "indices", "indptr")
"""A scipy CSR value is saved as `<key>#csr.data`, `#csr.indices`, `#csr.indptr`."""

DENSIFY_LIMIT = 1 << 27
"""Largest element count a sparse value may be densified to (512 MiB of f32)."""


def is_sparse(value: Any) -> bool:
    """Whether a stored value is a scipy sparse matrix (a large .mtx, say)."""
    return hasattr(value, "tocsr") and hasattr(value, "nnz")


def dense(value: Any, what: str) -> np.ndarray:
    """A stored value as a dense array; refuse (naming `what`) one too large to densify."""
    if not is_sparse(value):
        return value
    rows, cols = value.shape
    if rows * cols > DENSIFY_LIMIT:
        raise DataStoreError(f"{what} is a {rows}x{cols} sparse matrix ({value.nnz} nonzeros): "
                             "too large to densify; use a target that streams sparse data "
                             "(hottiles)")
    return value.toarray()


class DataStoreError(Exception):
    """A missing symbol or an unreadable bundle; the message says what to do."""


def store_key(kernel: str, symbol: str) -> str:
    """The store key of `symbol` in `kernel` (`gemm`, `W` -> `gemm.W`)."""
    return f"{kernel}.{symbol}"


@dataclass(frozen=True)
class Deferred:
    """A value known by its shape (and nonzero count) but not made yet: `--no-execute`
    defers the data a spec generates until something reads it (issue 10, item 10), so
    accounting from shapes never allocates a `f32[100000, 100000]`."""

    shape: tuple[int, ...]
    nnz: int
    """Nonzeros the value will hold (a `random` source draws exactly this many)."""
    make: Callable[[], Any] = field(compare=False, repr=False)
    """Makes the value (with the memory guard of `sparsec.compiler.sources`)."""


@dataclass
class DataStore:
    """Arrays by key, each with the spec element type it holds (bf16 is held in f32).

    A `Deferred` entry is made on first `get` and kept; `peek` sees it unmade."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)

    def put(self, key: str, array: Any, dtype: str) -> None:
        """Store `array` (or a `Deferred` value) under `key`, declared as spec element
        type `dtype`."""
        self.arrays[key] = array
        self.dtypes[key] = dtype

    def get(self, key: str) -> Any:
        """The value under `key`: a numpy array, or a scipy CSR matrix for large sparse
        data (see `dense`); a deferred value is made now."""
        value = self._get(key)
        if isinstance(value, Deferred):
            value = self.arrays[key] = value.make()
        return value

    def peek(self, key: str) -> Any:
        """The value under `key` as it stands: a `Deferred` value stays unmade."""
        return self._get(key)

    def _get(self, key: str) -> Any:
        if key not in self.arrays:
            known = ", ".join(sorted(self.arrays)) or "none"
            raise DataStoreError(f"no data for symbol '{key}' (the store has: {known}); "
                                 "was the .npz written by the same `sparsec compile`?")
        return self.arrays[key]

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    def keys(self) -> list[str]:
        return list(self.arrays)

    def save(self, path: str | Path) -> None:
        """Write the store as one .npz, atomically (a failed write leaves no file).

        Sparse values are written as their CSR arrays, so size stays proportional to nnz.
        """
        path = Path(path)
        payload: dict[str, np.ndarray] = {}
        sparse: dict[str, list[int]] = {}
        for key in list(self.arrays):
            value = self.get(key)  # a bundle holds the data: deferred values are made
            if not is_sparse(value):
                payload[key] = value
                continue
            csr = value.tocsr()
            sparse[key] = list(csr.shape)
            for part in SPARSE_PARTS:
                payload[f"{key}#csr.{part}"] = getattr(csr, part)
        meta = json.dumps({"dtypes": self.dtypes, "sparse": sparse})
        payload[META_KEY] = np.frombuffer(meta.encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, **payload)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | Path) -> DataStore:
        path = Path(path)
        if not path.is_file():
            raise DataStoreError(f"{path}: data bundle not found; `sparsec compile` writes "
                                 "it next to the .mlir")
        try:
            with np.load(path, allow_pickle=False) as bundle:
                arrays = {k: bundle[k] for k in bundle.files}
        except (OSError, ValueError) as err:
            raise DataStoreError(f"{path}: not a readable .npz data bundle ({err})") from None
        meta_bytes = arrays.pop(META_KEY, None)
        if meta_bytes is None:
            raise DataStoreError(f"{path}: not a sparsec data bundle (no {META_KEY} entry)")
        meta = json.loads(meta_bytes.tobytes().decode())
        for key, shape in meta.get("sparse", {}).items():
            arrays[key] = _csr_from_parts(arrays, key, tuple(shape))
        return cls(arrays=arrays, dtypes=dict(meta["dtypes"]))


def _csr_from_parts(arrays: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> Any:
    import scipy.sparse

    data, indices, indptr = (arrays.pop(f"{key}#csr.{part}") for part in SPARSE_PARTS)
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=shape)


_ACTIVE: contextvars.ContextVar[DataStore | None] = contextvars.ContextVar(
    "sparsec_active_store", default=None)


@contextlib.contextmanager
def active_store(store: DataStore) -> Iterator[DataStore]:
    """Make `store` the one passes and interpreters see while the block runs."""
    token = _ACTIVE.set(store)
    try:
        yield store
    finally:
        _ACTIVE.reset(token)


def current_store() -> DataStore:
    """The store of the program being compiled or run.

    Passes need it to rewrite data; under plain `xdsl-opt` there is none, and passes
    that only read shapes must not call this.
    """
    store = _ACTIVE.get()
    if store is None:
        raise DataStoreError("this pass needs the program's data: run it through "
                             "`sparsec compile`, which provides the DataStore")
    return store


def enclosing_kernel(op: Any) -> str:
    """Name of the func.func an op belongs to (its DataStore namespace)."""
    return enclosing_function(op).sym_name.data


def enclosing_function(op: Any) -> Any:
    """The func.func (a kernel) an op belongs to."""
    # Imported here: the DataStore (and `Deferred`) load with the spec front end, before
    # xDSL (docs/decisions.md, "Start-up").
    from xdsl.dialects import func

    parent = op.parent_op()
    while parent is not None and not isinstance(parent, func.FuncOp):
        parent = parent.parent_op()
    assert parent is not None, f"{op.name} is not inside a func.func"
    return parent
