"""`tile-hot-cold`: HotTiles' hot/cold partition of the sparse `param` A of an SpMM.

For every `C = matmul(A, B)` whose lhs A is a `param` (a `.mtx` load stays a scipy CSR
matrix and is never densified), the pass cuts A into a grid of tile_rows x tile_cols
tiles, counts each tile's nonzeros (integer division of the coordinates, `np.unique`),
prices every non-empty tile on a hot and on a cold worker with HotTiles' model, splits
the tiles between the worker types with the policy's rule (HotTiles' heuristic, one
type only, or a heterogeneity-unaware split) and deals each type's tiles to its workers
(backends/hottiles/model.py; equations in backends/hottiles/README.md).

The values are unchanged (the pass is lossless). A gets the type
`tensor<MxKxT, #sparsec.tiled<tile = [r, c], workers = [H, C], hot = h, cold = c,
policy = p>>`; the per-tile labels, workers and model estimates go to the DataStore
(`<kernel>.<A>#tile_ids`, `#tile_kind`, `#tile_worker`, `#tile_nnz`,
`#tile_model_cycles`, `#tile_model_bytes`, `#model_cycles`), since large constants are
never attributes. The options are those of the `hottiles` target (the machine the
partition is for); `lower-hottiles` runs this pass itself when A is not yet tiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass

from sparsec.backends.hottiles import model
from sparsec.backends.hottiles.spec import HottilesSpec
from sparsec.dialects.formats import TiledAttr, describe
from sparsec.dialects.sparse_tensor import SparseTensorEncodingAttr
from sparsec.dialects.sparsec import MatmulOp, element_type_name
from sparsec.passes.common import Target, encoding_of, fail, set_type, targets, with_encoding
from sparsec.tensors.datastore import DataStoreError, current_store
from sparsec.tensors.dtypes import ELEMENT_BYTES

MAX_TILES = 250_000
"""Most non-empty tiles a partition may have: the interpreter replays every tile on the
Timeline, one Python step each (a few seconds at this count)."""


def _check(target: Target, pass_name: str) -> MatmulOp:
    """The matmul whose lhs is the target; refuse what HotTiles cannot partition."""
    user = target.user
    assert isinstance(user, MatmulOp)
    if user.transpose_a is not None or user.transpose_b is not None:
        raise fail(pass_name, target, "HotTiles runs C = A . B; transpose_a / transpose_b "
                   "are not supported (store A and B in the orientation of the product)")
    if not target.is_param:
        raise fail(pass_name, target, "A is a runtime input; the partition is made at compile "
                   "time from A's nonzeros, so A must be a `param`")
    encoding = encoding_of(target.ttype)
    if encoding is not None and not isinstance(encoding, (SparseTensorEncodingAttr, TiledAttr)):
        raise fail(pass_name, target, f"A has the encoding {describe(encoding)}; HotTiles tiles "
                   "a plain (or MLIR sparse-layout) matrix")
    return user


def problem_of(user: MatmulOp, spec: HottilesSpec, nonzeros: model.Nonzeros) -> model.Problem:
    """Shapes, element sizes and tile of the SpMM `user` computes."""
    a_type, b_type, c_type = user.lhs.type, user.rhs.type, user.result.type
    assert isinstance(a_type, TensorType) and isinstance(b_type, TensorType)
    assert isinstance(c_type, TensorType)
    rows, cols = a_type.get_shape()
    return model.Problem(
        rows=rows, cols=cols, n=b_type.get_shape()[1],
        value_bytes=ELEMENT_BYTES[element_type_name(a_type.element_type)],
        out_bytes=ELEMENT_BYTES[element_type_name(c_type.element_type)],
        tile=model.auto_tile(nonzeros, rows, cols, spec))


def summary(part: model.Partition, problem: model.Problem) -> str:
    """One line for reports: tiles, the split and the model's prediction."""
    hot_nnz = int(part.nnz[part.kind == model.HOT].sum())
    share = hot_nnz / max(1, int(part.nnz.sum()))
    hot_workers, cold_workers = part.workers
    return (f"{part.count} non-empty {problem.tile[0]}x{problem.tile[1]} tiles ({part.policy}): "
            f"{part.hot_tiles} hot ({share:.1%} of nnz) on {hot_workers} hot "
            f"worker{'s' * (hot_workers != 1)}, {part.count - part.hot_tiles} cold on "
            f"{cold_workers} cold worker{'s' * (cold_workers != 1)}; model: "
            f"{part.predicted:,.0f} cycles")


@dataclass(frozen=True)
class TileHotColdPass(HottilesSpec, ModulePass):
    """Partition the sparse lhs of every matmul into hot and cold tiles for a HotTiles
    machine (the options are the `hottiles` target's), e.g.
    `tile-hot-cold{tile_rows=256 tile_cols=256 policy=hottiles}`.
    """

    name: ClassVar[str] = "tile-hot-cold"

    def hardware(self) -> HottilesSpec:
        return HottilesSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        for target in list(targets(op, "a", self.name)):
            self.tile(target, spec)

    def tile(self, target: Target, spec: HottilesSpec) -> None:
        """Partition one param, store the labels, retype it, record what was done."""
        user = _check(target, self.name)
        try:
            store = current_store()
        except DataStoreError as err:
            raise fail(self.name, target, str(err)) from None
        nonzeros = model.nonzeros(store.get(target.key))
        problem = problem_of(user, spec, nonzeros)
        part = model.partition(nonzeros, problem, spec)
        if part.count > MAX_TILES:
            raise fail(self.name, target, f"{part.count} non-empty {problem.tile[0]}x"
                       f"{problem.tile[1]} tiles exceed {MAX_TILES}; choose larger tile_rows / "
                       "tile_cols (or leave them 0 for the automatic tile)")
        part.save(store, target.key)
        encoding = TiledAttr(problem.tile, part.workers, part.hot_tiles,
                             part.count - part.hot_tiles, part.policy)
        set_type(target, with_encoding(target.ttype, encoding))
        hot_nnz = int(part.nnz[part.kind == model.HOT].sum())
        target.op.record_effect({
            "pass": f"tile-hot-cold{{policy={part.policy}}}",
            "format": describe(encoding),
            "tiles": part.count, "hot_tiles": part.hot_tiles,
            "cold_tiles": part.count - part.hot_tiles,
            "hot_nnz_share": hot_nnz / max(1, int(np.sum(part.nnz))),
            "predicted_cycles": int(round(part.predicted)),
            "note": summary(part, problem),
        })
