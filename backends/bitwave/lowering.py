"""`lower-bitwave`: kernel-level matmuls become weight row tiles on BitWave's PE array.

Example: `lower-bitwave{dataflow=dynamic}` turns `%Y = sparsec.matmul %X, %W` with W
(384 x 1536, INT8 per channel in `#sparsec.bitcolumn<group = 16, axis = 0, ...>`) and X
(INT8 per tensor) into `bitwave.zeros`, `bitwave.encode %W`, one `bitwave.tile` per
R output channels and `bitwave.store`. The PE shape (lanes, rows, cols) is chosen per
layer from the weight's real bit columns: the one with the fewest compute cycles
(BitSim's dynamic dataflow); `dataflow=fixed` keeps the spec's lanes x rows x cols.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.bitwave import isa, model
from sparsec.backends.bitwave.spec import BitwaveSpec
from sparsec.dialects.formats import QuantizedAttr
from sparsec.dialects.sparsec import MatmulOp, ParamOp
from sparsec.tensors.datastore import DataStoreError, current_store, enclosing_kernel, store_key
from sparsec.tensors.storage import bitcolumn_codes, pack

PREPARE_W = "quantize{bits=8 per_channel=true},sparsify{format=bitcolumn group=16}"
PREPARE_X = "quantize{bits=8 operand=a}"


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"bitwave: {message}")


def weight_codes(op: ParamOp) -> np.ndarray:
    """The INT8 codes of a bit-column weight, read back from its packed columns."""
    store = current_store()
    key = store_key(enclosing_kernel(op), op.sym_name)
    ttype = op.result.type
    encoding = ttype.encoding  # type: ignore[union-attr]
    aux = {name: store.get(f"{key}#{name}") for name in ("scale", "zero_point")
           if f"{key}#{name}" in store}
    values = np.asarray(store.get(key))
    packed = pack(values, encoding, value_bits=64, aux=aux)
    return bitcolumn_codes(packed)


def check_operands(op: MatmulOp) -> ParamOp:
    """Refuse what BitWave cannot run; return the weight's binding op."""
    if op.transpose_a is not None or op.transpose_b is not None:
        raise _fail(f"{op.name} with transposed operands: BitWave takes X (M x K) . W (K x N); "
                    "load W transposed instead (`load(..., transpose=true)`)")
    weight = op.rhs.owner
    layout = isa.bitcolumn_layout(op.rhs.type)
    if not isinstance(weight, ParamOp) or layout is None or layout.group_axis != 0:
        raise _fail(f"the weight of {op.name} must be a param in INT8 bit columns along K; run "
                    f"{PREPARE_W} first")
    if not layout.is_sign_magnitude:
        raise _fail(f"the weight of {op.name} is in two's complement bit columns; BitWave "
                    "stores sign-magnitude (sparsify{format=bitcolumn sign_magnitude=true})")
    act = getattr(op.lhs.type, "encoding", None)
    if not (isinstance(act, QuantizedAttr) and act.bit_width <= 8 and act.is_symmetric
            and not act.is_per_channel):
        raise _fail(f"the activations of {op.name} must be INT8 per tensor (symmetric); run "
                    f"{PREPARE_X} first")
    return weight


def act_bytes(op: MatmulOp) -> int:
    """INT8 activations: one byte per element of X."""
    m, _, k = op.problem_shape()
    return m * k


def lower_matmul(op: MatmulOp, spec: BitwaveSpec) -> list[Operation]:
    weight = check_operands(op)
    try:
        codes = weight_codes(weight)
    except DataStoreError as err:
        raise _fail(str(err)) from None
    m, n, _ = op.problem_shape()
    shape, _ = model.choose_shape(codes, m, spec.shapes(), spec.mode)
    _, rows, _ = shape
    reload = act_bytes(op) > spec.i_sram_kb * 1024
    result_type = op.result.type
    assert isinstance(result_type, TensorType)
    zeros = isa.ZerosOp(TensorType(result_type.element_type, [m, n]))
    encode = isa.EncodeOp(op.rhs)
    ops: list[Operation] = [zeros, encode]
    acc = zeros.result
    for index in range(math.ceil(n / rows)):
        n_range = (index * rows, min(n, (index + 1) * rows))
        tile = isa.TileOp(op.lhs, encode.result, acc, index, n_range, shape, reload)
        ops.append(tile)
        acc = tile.result
    ops.append(isa.StoreOp(acc, encode.result, op.lhs, result_type))
    return ops


@dataclass
class LowerMatmul(RewritePattern):
    spec: BitwaveSpec

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: MatmulOp, rewriter: PatternRewriter) -> None:
        ops = lower_matmul(op, self.spec)
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerBitwavePass(BitwaveSpec, ModulePass):
    """Lower every sparsec.matmul to weight row tiles of BitWave's bit-column-serial array.

    Example: `lower-bitwave{mode=stripes dataflow=fixed}`.
    """

    name: ClassVar[str] = "lower-bitwave"

    def hardware(self) -> BitwaveSpec:
        return BitwaveSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(LowerMatmul(spec), apply_recursively=False).rewrite_module(op)
