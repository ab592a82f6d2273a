"""`tile-hot-cold`: HotTiles' hot/cold partition of the sparse `param` A of an SpMM.

For every `C = matmul(A, B)` whose lhs A is a `param` (a `.mtx` load stays a scipy CSR
matrix and is never densified), the pass asks the hardware model named by `hardware`
(entry-point group `sparsec.hardware_models`, see passes/hardware.py) for the machine's
traits, cuts A into tiles (width from the hot worker's Din scratchpad, height searched
by predicted time), prices every non-empty tile on both worker types with HotTiles'
model (Table I bytes, five tasks, overlap) and splits the tiles by the policy (the four
heuristics and the serial/parallel choice, one type only, or IUnaware), then deals each
type's row panels to its workers (passes/hotcold_model.py).

The values are unchanged (the pass is lossless). A gets the type
`tensor<MxKxT, #sparsec.tiled<tile = [r, c], workers = [H, C], hot = h, cold = c,
policy = p>>`; the per-tile labels, workers and model estimates go to the DataStore
(`<kernel>.<A>#tile_ids`, `#tile_kind`, `#tile_worker`, `#tile_nnz`,
`#tile_model_cycles`, `#tile_model_bytes`, `#model`), never to attributes. A target adds
this pass itself (`hottiles` prepares `tile-hot-cold{hardware=hottiles options="..."}`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass

from sparsec.dialects.formats import TiledAttr, describe
from sparsec.dialects.sparse_tensor import SparseTensorEncodingAttr
from sparsec.dialects.sparsec import MatmulOp, element_type_name
from sparsec.passes import hotcold_model
from sparsec.passes.common import Target, encoding_of, fail, set_type, targets, with_encoding
from sparsec.passes.hardware import (
    HEURISTICS,
    HardwareModelError,
    HeterogeneousModel,
    heterogeneous_model,
)
from sparsec.tensors.datastore import DataStoreError, current_store
from sparsec.tensors.dtypes import ELEMENT_BYTES
from sparsec.tensors.tiles import HOT, SERIAL, Partition, nonzeros

MAX_TILES = 250_000
"""Most non-empty tiles a partition may have: the machine replays every tile on its
Timeline, one Python step each."""


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


def problem_of(user: MatmulOp) -> hotcold_model.Problem:
    """K (dense columns of B) and element sizes of the SpMM `user` computes."""
    b_type, c_type = user.rhs.type, user.result.type
    assert isinstance(b_type, TensorType) and isinstance(c_type, TensorType)
    return hotcold_model.Problem(
        k=b_type.get_shape()[1],
        value_bytes=ELEMENT_BYTES[element_type_name(b_type.element_type)],
        out_bytes=ELEMENT_BYTES[element_type_name(c_type.element_type)])


def summary(part: Partition) -> str:
    """One line for reports: tiles, the split, the schedule and the prediction."""
    hot_nnz = int(part.nnz[part.kind == HOT].sum())
    share = hot_nnz / max(1, int(part.nnz.sum()))
    hot_workers, cold_workers = part.workers
    how = (HEURISTICS[part.heuristic] if part.heuristic >= 0
           else "homogeneous" if part.policy == "hottiles" else part.policy)
    schedule = "serial" if part.schedule == SERIAL else "parallel"
    return (f"{part.count} non-empty tiles ({how}, {schedule}): {part.hot_tiles} hot "
            f"({share:.1%} of nnz) on {hot_workers} hot worker{'s' * (hot_workers != 1)}, "
            f"{part.count - part.hot_tiles} cold on {cold_workers} cold "
            f"worker{'s' * (cold_workers != 1)}; model: {part.predicted:,.0f} cycles")


@dataclass(frozen=True)
class TileHotColdPass(ModulePass):
    """Partition the sparse lhs of every matmul into hot and cold tiles for the machine
    `hardware` describes with `options` (that target's options), e.g.
    `tile-hot-cold{hardware=hottiles options="preset=spade-sextans-4 policy=iunaware"}`.
    """

    name: ClassVar[str] = "tile-hot-cold"

    hardware: str = "hottiles"
    options: str = ""

    def machine(self) -> HeterogeneousModel:
        try:
            return heterogeneous_model(self.hardware, self.options)
        except (HardwareModelError, ValueError) as err:
            raise fail(self.name, None, f"hardware={self.hardware} options=\"{self.options}\": "
                       f"{err}") from None

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        machine = self.machine()
        for target in list(targets(op, "a", self.name)):
            if isinstance(encoding_of(target.ttype), TiledAttr):
                continue
            self.tile(target, machine)

    def tile(self, target: Target, machine: HeterogeneousModel) -> None:
        """Partition one param, store the labels, retype it, record what was done."""
        user = _check(target, self.name)
        try:
            store = current_store()
        except DataStoreError as err:
            raise fail(self.name, target, str(err)) from None
        nz = nonzeros(store.get(target.key))
        part, tiles = hotcold_model.partition(machine, nz, problem_of(user))
        if part.count > MAX_TILES:
            raise fail(self.name, target, f"{part.count} non-empty {tiles.tile[0]}x"
                       f"{tiles.tile[1]} tiles exceed {MAX_TILES}; choose larger tile_rows / "
                       "tile_cols (or leave them 0 for the automatic tile)")
        part.save(store, target.key)
        encoding = TiledAttr(tiles.tile, part.workers, part.hot_tiles,
                             part.count - part.hot_tiles, part.policy)
        set_type(target, with_encoding(target.ttype, encoding))
        hot_nnz = int(part.nnz[part.kind == HOT].sum())
        target.op.record_effect({
            "pass": f"tile-hot-cold{{policy={part.policy}}}",
            "format": describe(encoding),
            "tiles": part.count, "hot_tiles": part.hot_tiles,
            "cold_tiles": part.count - part.hot_tiles,
            "hot_nnz_share": hot_nnz / max(1, int(np.sum(part.nnz))),
            "heuristic": HEURISTICS[part.heuristic] if part.heuristic >= 0 else None,
            "schedule": "serial" if part.schedule == SERIAL else "parallel",
            "predicted_cycles": int(round(part.predicted)),
            "note": summary(part),
        })
