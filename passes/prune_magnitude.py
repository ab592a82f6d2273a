"""`prune-magnitude`: unstructured magnitude pruning of a param (Han et al., Deep Compression).

Zeroes the smallest-magnitude entries of the whole tensor: the given fraction
(`sparsity`), or every entry with |w| below `threshold` when a threshold is given. The
format is unchanged (the zeros are stored); `sparsify{format=...}` then compresses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.passes.common import (
    fail,
    param_values,
    record_format_only,
    targets,
    update_param_values,
)
from sparsec.tensors.datastore import current_store


def prune_to_sparsity(values: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero exactly round(sparsity * size) entries, the smallest in magnitude first.

    Already-zero entries count towards the target; ties drop the earlier element first.
    """
    drop = round(sparsity * values.size)
    order = np.argsort(np.abs(values), axis=None, kind="stable")
    pruned = values.copy()
    pruned.reshape(-1)[order[:drop]] = 0
    return pruned


def prune_below(values: np.ndarray, threshold: float) -> np.ndarray:
    """Zero every entry with |w| < threshold."""
    return np.where(np.abs(values) < threshold, np.zeros((), dtype=values.dtype), values)


@dataclass(frozen=True)
class PruneMagnitudePass(ModulePass):
    """Zero the smallest weights, e.g. `prune-magnitude{sparsity=0.9 operand=b}` or
    `prune-magnitude{threshold=0.05}` (a threshold >= 0 replaces the sparsity target).
    """

    name: ClassVar[str] = "prune-magnitude"

    sparsity: float = 0.5
    threshold: float = -1.0
    operand: str = "b"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if not 0.0 <= self.sparsity <= 1.0:
            raise fail(self.name, None, f"sparsity must lie in [0, 1], got {self.sparsity}")
        rule = (f"threshold={self.threshold:g}" if self.threshold >= 0
                else f"sparsity={self.sparsity:g}")
        effect: dict[str, float | int | str] = {"pass": f"prune-magnitude{{{rule}}}"}
        for target in list(targets(op, self.operand, self.name)):
            if not target.is_param:
                record_format_only(target, {**effect, "note": "runtime input: not pruned"})
                continue
            store = current_store()
            values = param_values(store, target)
            pruned = (prune_below(values, self.threshold) if self.threshold >= 0
                      else prune_to_sparsity(values, self.sparsity))
            update_param_values(target, store, pruned, effect)
