"""`bitlevel-encode`: store each INT weight as at most k signed powers of two (ABAF).

The param must hold integer codes: a `#sparsec.quantized` symmetric encoding (run
`quantize{bits=8}` first) or an i8 tensor. Each code keeps its `max_ones` most significant
terms: sign-magnitude one-bits (`method=sm`) or canonical-signed-digit digits
(`method=csd`); values become scale * new code, the codes go to `<key>#q`, the tensor's
type becomes `#sparsec.bitlevel<max_ones = k, method = m, codes = Q>`, and the effect
records the exact storage in bits, bits per weight, how many weights changed and the
per-tensor error (0 when every weight already fits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.dialects.bitlevel import BITLEVEL_METHODS, MAX_BITLEVEL_ONES, BitLevelAttr
from sparsec.dialects.formats import QuantizedAttr
from sparsec.dialects.sparsec import MatmulOp
from sparsec.passes.common import (
    Target,
    encoding_of,
    fail,
    param_values,
    set_type,
    targets,
    update_param_values,
    with_encoding,
)
from sparsec.passes.quantize import QuantizePass
from sparsec.tensors.bitlevel import STORAGE_LAYOUTS, encode
from sparsec.tensors.datastore import DataStore, current_store
from sparsec.tensors.dtypes import round_to_dtype


def param_codes(store: DataStore, target: Target, encoding: QuantizedAttr | None
                ) -> tuple[np.ndarray, np.ndarray, int | None, int]:
    """(integer codes, scale broadcastable to them, channel axis, code bits) of a param."""
    if encoding is None:
        return (param_values(store, target).astype(np.int64), np.ones(1), None, 8)
    axis = encoding.channel_axis if encoding.is_per_channel else None
    codes = store.get(f"{target.key}#q").astype(np.int64)
    scale = store.get(f"{target.key}#scale").astype(np.float64)
    if axis is not None:
        shape = [1] * codes.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
    return codes, scale, axis, encoding.bit_width


@dataclass(frozen=True)
class BitLevelEncodePass(ModulePass):
    """Code INT weights with <= max_ones signed powers of two, e.g.
    `bitlevel-encode{max_ones=3 method=csd}`."""

    name: ClassVar[str] = "bitlevel-encode"

    max_ones: int = 3
    method: str = "csd"
    storage: str = "index"
    operand: str = "b"
    quantize: bool = False
    """Quantize weights without codes first (symmetric per-channel INT8), and do nothing
    on a kernel without matmuls: how a target's prepare() uses the pass. max_ones=0 then
    means INT8 codes without the bit-level code."""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        low = 0 if self.quantize else 1
        if not low <= self.max_ones <= MAX_BITLEVEL_ONES:
            raise fail(self.name, None, f"max_ones must lie in [{low}, {MAX_BITLEVEL_ONES}], "
                       f"got {self.max_ones}")
        if self.method not in BITLEVEL_METHODS:
            raise fail(self.name, None, f"method must be one of {', '.join(BITLEVEL_METHODS)}, "
                       f"got '{self.method}'")
        if self.storage not in STORAGE_LAYOUTS:
            raise fail(self.name, None, f"storage must be one of {', '.join(STORAGE_LAYOUTS)}, "
                       f"got '{self.storage}'")
        if self.quantize and not any(isinstance(o, MatmulOp) for o in op.walk()):
            return
        for target in list(targets(op, self.operand, self.name)):
            if self.quantize and target.is_param and encoding_of(target.ttype) is None \
                    and str(target.ttype.element_type) != "i8":
                QuantizePass(bits=8, operand=target.op.sym_name,
                             per_channel=True).apply(ctx, op)
                target = self._refreshed(op, target)
            if self.max_ones:
                self._encode(target, current_store())

    def _refreshed(self, module: ModuleOp, target: Target) -> Target:
        """The same tensor after another pass changed its type."""
        name = target.op.sym_name
        return next(t for t in targets(module, name, self.name) if t.op is target.op)

    def _encode(self, target: Target, store: DataStore) -> None:
        if not target.is_param:
            raise fail(self.name, target, "is a runtime input; only param weights (known "
                       "at compile time) can be coded")
        encoding = encoding_of(target.ttype)
        if isinstance(encoding, BitLevelAttr):
            raise fail(self.name, target, "is already bit-level coded; encode once")
        is_i8 = str(target.ttype.element_type) == "i8"
        if not (isinstance(encoding, QuantizedAttr) or (encoding is None and is_i8)):
            raise fail(self.name, target, "needs integer codes: run quantize{bits=8} first "
                       "(or declare the tensor i8)")
        if isinstance(encoding, QuantizedAttr) and not encoding.is_symmetric:
            raise fail(self.name, target, "needs symmetric codes (zero point 0): signed "
                       "powers of two code signed integers; quantize with symmetric=true")
        quantized = encoding if isinstance(encoding, QuantizedAttr) else None
        codes, scale, _, bits = param_codes(store, target, quantized)
        coded = encode(codes, bits, self.max_ones, self.method, self.storage)
        terms_bits = encode(codes, bits, self.max_ones, self.method, "terms").storage_bits
        code_error = float(np.linalg.norm((coded.codes - codes).astype(np.float64)))
        code_norm = float(np.linalg.norm(codes.astype(np.float64)))
        effect: dict[str, float | int | str] = {
            "pass": f"bitlevel-encode{{max_ones={self.max_ones} method={self.method}}}",
            "max_ones": self.max_ones,
            "method": self.method,
            "storage": self.storage,
            "storage_bits": coded.storage_bits,
            "terms_storage_bits": terms_bits,
            "bits_per_weight": coded.bits_per_weight,
            "changed_weights": coded.changed,
            "code_rel_error": code_error / code_norm if code_norm else 0.0,
            "code_max_abs_error": int(np.abs(coded.codes - codes).max(initial=0)),
        }
        dtype = store.dtypes[target.key]
        if quantized is not None:
            store.put(f"{target.key}#q", coded.codes.astype(np.int32), "i32")
        values = round_to_dtype((coded.codes * scale).astype(np.float64), dtype)
        update_param_values(target, store, values.astype(param_values(store, target).dtype),
                            effect)
        set_type(target, with_encoding(target.ttype,
                                       BitLevelAttr(self.max_ones, self.method, quantized)))
