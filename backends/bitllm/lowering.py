"""`lower-bitllm`: kernel ops become tiles of the INT-FP PE array and nonlinear-unit ops.

Example: `lower-bitllm{clusters=4 span=3 taylor_order=6}` turns `Y = matmul(X, W)` with W
INT8-coded (quantize, bitlevel-encode) and X [32 x 576], W [576 x 1536] into a load of W's
code bytes, ceil(32 / pe_rows) x ceil(1536 / tile_n) `bitllm.gemm` tiles and a writeback;
rmsnorm / silu / softmax / ... become one `bitllm.nonlinear` each, grouped-query attention
one `bitllm.fgemm` per head for the scores and for the values around a softmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, NoneAttr, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriter, PatternRewriteWalker, RewritePattern
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.bitllm import isa
from sparsec.backends.bitllm.spec import BitllmSpec
from sparsec.dialects import block
from sparsec.dialects.bitlevel import BitLevelAttr
from sparsec.dialects.formats import QuantizedAttr
from sparsec.dialects.kv import KvCompressOp, PruneActivationsOp, PruneTokensOp
from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp, SoftmaxOp, element_type_name
from sparsec.tensors.bitlevel import index_bits
from sparsec.tensors.dtypes import ELEMENT_BYTES

SCALE_BITS = 32
"""Bits of one stored per-channel (or per-tensor) weight scale (A: float32)."""


def _elements(value_type: Any) -> int:
    return math.prod(value_type.get_shape())


def weight_bits(ttype: TensorType) -> int | None:
    """Bits per weight of an INT-coded tensor in the bitllm's storage, None if not coded."""
    encoding = ttype.encoding
    if isinstance(encoding, BitLevelAttr):
        return index_bits(encoding.code_bits, encoding.max_ones, encoding.method)
    if isinstance(encoding, QuantizedAttr) and encoding.is_symmetric:
        return encoding.bit_width
    if isinstance(encoding, NoneAttr) and element_type_name(ttype.element_type) == "i8":
        return 8
    return None


def stored_bytes(value: SSAValue) -> int:
    """Bytes a tensor occupies in DRAM: its code (plus scales) or its elements."""
    ttype = value.type
    assert isinstance(ttype, TensorType)
    bits = weight_bits(ttype)
    if bits is None:
        return _elements(ttype) * ELEMENT_BYTES[element_type_name(ttype.element_type)]
    channels = ttype.get_shape()[0] if _per_channel(ttype) else 1
    return math.ceil((_elements(ttype) * bits + channels * SCALE_BITS) / 8)


def _per_channel(ttype: TensorType) -> bool:
    encoding = ttype.encoding
    inner = encoding.codes() if isinstance(encoding, BitLevelAttr) else encoding
    return isinstance(inner, QuantizedAttr) and inner.is_per_channel


@dataclass
class Loads:
    """Kernel inputs and params already brought on chip (loaded once, at first use)."""

    done: set[SSAValue] = field(default_factory=set)

    def for_operands(self, values: list[SSAValue]) -> list[Operation]:
        ops: list[Operation] = []
        for value in values:
            if value in self.done or not isinstance(value.owner, (InputOp, ParamOp)):
                continue
            self.done.add(value)
            ops.append(isa.LoadOp(value, stored_bytes(value)))
        return ops


def _tiles(extent: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(extent, start + size)) for start in range(0, extent, size)]


def lower_matmul(op: MatmulOp, spec: BitllmSpec) -> list[Operation]:
    """INT-FP GEMM tiles of pe_rows rows x tile_n columns against an INT-coded param."""
    rhs_type = op.rhs.type
    assert isinstance(rhs_type, TensorType)
    if not isinstance(op.rhs.owner, ParamOp) or weight_bits(rhs_type) is None:
        raise PassFailedException(
            "lower-bitllm: sparsec.matmul needs an INT8-coded param as its right operand "
            "(quantize{bits=8}, optionally bitlevel-encode); the INT-FP array multiplies "
            "BF16 activations by integer weights")
    if op.transpose_a is not None:
        raise PassFailedException("lower-bitllm: sparsec.matmul with transpose_a is not "
                                  "supported (activations stream row by row)")
    result_type = op.result.type
    assert isinstance(result_type, TensorType)
    m, n = result_type.get_shape()
    zeros = isa.ZerosOp(result_type)
    ops: list[Operation] = [zeros]
    acc: SSAValue = zeros.result
    for mt in _tiles(m, spec.pe_rows):
        for nt in _tiles(n, spec.tile_n):
            tile = isa.GemmOp(op.lhs, op.rhs, acc, mt, nt, op.transpose_b is not None)
            ops.append(tile)
            acc = tile.result
    ops.append(isa.WritebackOp(acc))
    return ops


def _plain_props(op: Operation, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in op.properties.items() if k in keys}


def lower_nonlinear(op: Operation, spec: BitllmSpec) -> list[Operation]:
    kind = op.name.removeprefix("sparsec.")
    props = _plain_props(op, ("eps", "base", "start", "approximate", "convention"))
    return [isa.NonlinearOp(kind, list(op.operands), op.results[0].type, spec.taylor_order,
                            props)]


def lower_softmax(op: SoftmaxOp, spec: BitllmSpec) -> list[Operation]:
    if op.pattern or op.mask_kind not in ("none", "causal"):
        raise PassFailedException("lower-bitllm: softmax masks other than none/causal are "
                                  "not supported")
    props = _plain_props(op, ("mask",))
    return [isa.NonlinearOp("softmax", [op.input], op.result.type, spec.taylor_order, props)]


def lower_move(op: Operation, spec: BitllmSpec) -> list[Operation]:
    kind = op.name.removeprefix("sparsec.")
    return [isa.MoveOp(kind, list(op.operands), op.results[0].type,
                       _plain_props(op, ("heads", "axis")))]


def _head_products(lhs: SSAValue, rhs: SSAValue, result_type: TensorType, group: int,
                   transpose_b: bool, keep: SSAValue | None = None) -> list[Operation]:
    zeros = isa.ZerosOp(result_type)
    ops: list[Operation] = [zeros]
    acc: SSAValue = zeros.result
    for head in range(result_type.get_shape()[0]):
        product = isa.FgemmOp(lhs, rhs, acc, head, head // group, transpose_b, keep)
        ops.append(product)
        acc = product.result
    ops.append(isa.WritebackOp(acc))
    return ops


def lower_gqa_attention(op: block.GqaAttentionOp, spec: BitllmSpec) -> list[Operation]:
    """Scores per head in BF16 mode, the scaled, masked softmax on the polynomial unit,
    then P V per head; with a `keep` operand (runtime token pruning) the products run
    over the kept tokens and the softmax masks the others."""
    from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr, f64, i64

    q_shape = op.query.type.get_shape()  # type: ignore[union-attr]
    s_len = op.key.type.get_shape()[-2]  # type: ignore[union-attr]
    element = op.result.type.element_type  # type: ignore[union-attr]
    scores_type = TensorType(element, [*q_shape[:-1], s_len])
    keep = op.keep[0] if op.keep else None
    scores = _head_products(op.query, op.key, scores_type, op.group, True, keep)
    props: dict[str, Any] = {"scale": FloatAttr(op.scale.value.data, f64)}
    if op.mask_kind != "none":
        props["mask"] = StringAttr(op.mask_kind)
        props["start"] = IntegerAttr(op.start_position, i64)
    inputs = [scores[-1].results[0], *([keep] if keep is not None else [])]
    softmax = isa.NonlinearOp("softmax", inputs, scores_type, spec.taylor_order, props)
    values = _head_products(softmax.result, op.value, op.result.type,  # type: ignore[arg-type]
                            op.group, False, keep)
    return [*scores, softmax, *values]


def lower_kv_compress(op: KvCompressOp, spec: BitllmSpec) -> list[Operation]:
    """A policy-compressed KV-cache tensor: read as stored, dequantized on the nonlinear
    unit (the cache itself is not loaded whole: see `cache_reads`); when the attention
    that reads it prunes tokens at run time, only the kept tokens are read."""
    keeps = {use.operation.keep[0] if isinstance(use.operation, block.GqaAttentionOp)
             and use.operation.keep else None for use in op.result.uses}
    keep = keeps.pop() if len(keeps) == 1 else None
    return [isa.KvLoadOp(op.input, op.result.type, dict(op.properties), keep)]


def lower_prune_tokens(op: PruneTokensOp, spec: BitllmSpec) -> list[Operation]:
    """Runtime token pruning's decision: one nonlinear-unit instruction."""
    return [isa.PruneTokensOp(op.state, op.result.type, dict(op.properties))]


def lower_prune_activations(op: PruneActivationsOp, spec: BitllmSpec) -> list[Operation]:
    """Runtime activation pruning: one nonlinear-unit instruction before the GEMM."""
    return [isa.PruneOp(op.input, list(op.weight), op.result.type, dict(op.properties))]


def cache_reads(op: Operation) -> bool:
    """A concat whose result only a KV policy reads appends to a cache that stays in DRAM:
    `bitllm.kv_load` reads it as stored, so its operands are not loaded whole."""
    if not isinstance(op, block.ConcatOp):
        return False
    uses = list(op.results[0].uses)
    return bool(uses) and all(isinstance(u.operation, (KvCompressOp, isa.KvLoadOp)) for u in uses)


LOWERINGS: dict[type[Operation], Callable[[Any, BitllmSpec], list[Operation]]] = {
    KvCompressOp: lower_kv_compress, PruneActivationsOp: lower_prune_activations,
    PruneTokensOp: lower_prune_tokens, MatmulOp: lower_matmul, SoftmaxOp: lower_softmax,
    block.RmsNormOp: lower_nonlinear, block.SiluOp: lower_nonlinear,
    block.GeluOp: lower_nonlinear, block.ExpOp: lower_nonlinear, block.AddOp: lower_nonlinear,
    block.MulOp: lower_nonlinear, block.RopeOp: lower_nonlinear, block.HeadsOp: lower_move,
    block.MergeHeadsOp: lower_move, block.ConcatOp: lower_move,
    block.GqaAttentionOp: lower_gqa_attention,
}

KERNEL_OPS = frozenset(
    ["sparsec.matmul", "sparsec.softmax"]
    + [f"sparsec.{k}" for k in ("rmsnorm", "silu", "gelu", "exp", "add", "mul", "rope", "heads",
                                "merge_heads", "concat", "gqa_attention", "kv_compress",
                                "prune_activations", "prune_tokens")])
"""The kernel ops this lowering turns into bitllm instructions."""


@dataclass
class LowerKernelOps(RewritePattern):
    spec: BitllmSpec
    loads: Loads

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        lowering = LOWERINGS.get(type(op))
        if lowering is None:
            return
        loads = [] if cache_reads(op) else self.loads.for_operands(list(op.operands))
        ops = [*loads, *lowering(op, self.spec)]
        rewriter.replace(op, ops, [ops[-1].results[0]])


@dataclass(frozen=True)
class LowerBitllmPass(BitllmSpec, ModulePass):
    """Lower matmuls, softmax and the transformer-block ops to bitllm tiles; options are the
    chip's spec. Example: `lower-bitllm{clusters=4 span=3 taylor_order=6}`."""

    name: ClassVar[str] = "lower-bitllm"

    def hardware(self) -> BitllmSpec:
        return BitllmSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        PatternRewriteWalker(LowerKernelOps(spec, Loads()),
                             apply_recursively=False).rewrite_module(op)
