"""The bitllm ISA: one op per tile the PE array or the nonlinear unit schedules as a unit.

    %acc0 = bitllm.zeros : tensor<MxNxbf16>
    bitllm.load %w {bytes = B} : tensor<..>                 // DRAM -> SRAM (weights, inputs)
    %acc1 = bitllm.gemm %x, %w, %acc0 {m = array<i64: m0, m1>, n = array<i64: n0, n1>}
    %y = bitllm.writeback %accF : tensor<..> -> tensor<..>
    %s = bitllm.fgemm %q, %k, %acc {head = h, rhs_head = g, transpose_b}
    %p = bitllm.nonlinear "softmax" %s {order = 6, scale = .., mask = "causal", start = 0}
    %h = bitllm.move "heads" %x {heads = 9}

Semantics (numpy, backends/bitllm/arith.py and nonlinear.py):
  gemm:       acc[m0:m1, n0:n1] = int_fp_gemm(X[m0:m1, :], codes[:, n0:n1], scale[n0:n1]), the
              weight's INT codes and scales read from the DataStore (`#q`, `#scale`);
  fgemm:      acc[head] = A[head] . B[rhs_head] (transposed when asked), BF16 operands in the
              PE array's FP mode, float32 accumulation;
  nonlinear:  the kernel op `kind` with the polynomial unit at Taylor order `order`;
  move:       heads / merge_heads / concat, data movement only;
  kv_load:    sparsec.kv_compress (a KV-cache tensor as its policy stores it), dequantized;
  prune:      sparsec.prune_activations (runtime activation pruning);
  writeback:  round the accumulator to the result element type.
"""

from __future__ import annotations

from xdsl.dialects.builtin import (
    DenseArrayBase,
    FloatAttr,
    IntegerAttr,
    StringAttr,
    TensorType,
    UnitAttr,
    i64,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    var_operand_def,
)
from xdsl.utils.exceptions import VerifyException

from sparsec.backends.common.isa import AccumulatorZerosOp, ActivationPruneOp
from sparsec.backends.common.isa import KvLoadOp as CommonKvLoadOp
from sparsec.dialects.kv import PruneTokensOp as KvPruneTokensOp
from sparsec.dialects.kv import verify_prune_tokens

NONLINEAR_KINDS = ("rmsnorm", "silu", "gelu", "exp", "add", "mul", "rope", "softmax")
NONLINEAR_ARITY = {"rmsnorm": (2,), "add": (2,), "mul": (2,), "softmax": (1, 2)}
"""Inputs per kind (default one); softmax's optional second input is the `keep` flags of
runtime token pruning (a key whose flag is 0 is masked like a causal one)."""
MOVE_KINDS = ("heads", "merge_heads", "concat")


def _range(values: tuple[int, int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(i64, values)


def _bounds(attr: DenseArrayBase, what: str, op: str) -> tuple[int, int]:
    values = tuple(attr.get_values())
    if len(values) != 2 or not 0 <= values[0] < values[1]:
        raise VerifyException(f"{op}: {what} must be array<i64: lo, hi> with 0 <= lo < hi, "
                              f"got {list(values)}")
    return int(values[0]), int(values[1])


@irdl_op_definition
class ZerosOp(AccumulatorZerosOp):
    """A zero accumulator in the SRAM: `acc = 0`."""

    name = "bitllm.zeros"


@irdl_op_definition
class LoadOp(IRDLOperation):
    """Bring a tensor from DRAM into the SRAM: `bytes` as stored (a bit-level coded weight
    counts its exact code storage, a BF16 tensor 2 bytes per element)."""

    name = "bitllm.load"
    source = operand_def(TensorType)
    nbytes = prop_def(IntegerAttr, prop_name="bytes")
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$source attr-dict `:` type($source)"

    def __init__(self, source: SSAValue, nbytes: int):
        super().__init__(operands=[source], properties={"bytes": IntegerAttr(nbytes, i64)})

    def verify_(self) -> None:
        if self.nbytes.value.data < 0:
            raise VerifyException("bitllm.load: bytes must be >= 0")


@irdl_op_definition
class GemmOp(IRDLOperation):
    """One output tile of a cluster-aligned INT-FP GEMM: acc[m, n] = X[m, :] . W[:, n]."""

    name = "bitllm.gemm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    m = prop_def(DenseArrayBase)
    n = prop_def(DenseArrayBase)
    transpose_b = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$lhs `,` $rhs `,` $acc attr-dict `:` `(` type($lhs) `,` type($rhs) `,` "
                       "type($acc) `)` `->` type($result)")

    def __init__(self, lhs: SSAValue, rhs: SSAValue, acc: SSAValue, m: tuple[int, int],
                 n: tuple[int, int], transpose_b: bool = False):
        props: dict[str, Attribute] = {"m": _range(m), "n": _range(n)}
        if transpose_b:
            props["transpose_b"] = UnitAttr()
        super().__init__(operands=[lhs, rhs, acc], result_types=[acc.type], properties=props)

    def tile(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return _bounds(self.m, "m", self.name), _bounds(self.n, "n", self.name)

    def verify_(self) -> None:
        (_, m1), (_, n1) = self.tile()
        rows, cols = self.acc.type.get_shape()  # type: ignore[union-attr]
        if m1 > rows or n1 > cols:
            raise VerifyException(f"bitllm.gemm: tile m<{m1} n<{n1} exceeds the accumulator "
                                  f"{rows}x{cols}")
        if self.result.type != self.acc.type:
            raise VerifyException("bitllm.gemm: result type must equal the accumulator's")


@irdl_op_definition
class FgemmOp(IRDLOperation):
    """One head of an activation x activation product (attention) in the PE array's BF16
    mode: acc[head] = A[head] . B[rhs_head] (B transposed when `transpose_b`). With `keep`
    (runtime token pruning's flags over the tokens: B's rows, or its columns when
    transposed) the array runs only the kept tokens' products; the dropped ones are
    masked by the softmax (scores) or multiply a zero probability (P V)."""

    name = "bitllm.fgemm"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    acc = operand_def(TensorType)
    keep = var_operand_def(TensorType)
    result = result_def(TensorType)
    head = prop_def(IntegerAttr)
    rhs_head = prop_def(IntegerAttr)
    transpose_b = opt_prop_def(UnitAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = ("$lhs `,` $rhs `,` $acc (`keep` $keep^)? attr-dict `:` `(` type($lhs) "
                       "`,` type($rhs) `,` type($acc) (`,` type($keep)^)? `)` `->` "
                       "type($result)")

    def __init__(self, lhs: SSAValue, rhs: SSAValue, acc: SSAValue, head: int, rhs_head: int,
                 transpose_b: bool = False, keep: SSAValue | None = None):
        props: dict[str, Attribute] = {"head": IntegerAttr(head, i64),
                                       "rhs_head": IntegerAttr(rhs_head, i64)}
        if transpose_b:
            props["transpose_b"] = UnitAttr()
        super().__init__(operands=[lhs, rhs, acc, [keep] if keep is not None else []],
                         result_types=[acc.type], properties=props)

    def verify_(self) -> None:
        heads = self.acc.type.get_shape()[0]  # type: ignore[union-attr]
        rhs_heads = self.rhs.type.get_shape()[0]  # type: ignore[union-attr]
        if not 0 <= self.head.value.data < heads:
            raise VerifyException(f"bitllm.fgemm: head {self.head.value.data} is out of range "
                                  f"for {heads} heads")
        if not 0 <= self.rhs_head.value.data < rhs_heads:
            raise VerifyException(f"bitllm.fgemm: rhs_head {self.rhs_head.value.data} is out "
                                  f"of range for {rhs_heads} heads")


@irdl_op_definition
class WritebackOp(IRDLOperation):
    """result = round(acc) in the result element type."""

    name = "bitllm.writeback"
    acc = operand_def(TensorType)
    result = result_def(TensorType)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$acc attr-dict `:` type($acc) `->` type($result)"

    def __init__(self, acc: SSAValue):
        super().__init__(operands=[acc], result_types=[acc.type])


@irdl_op_definition
class NonlinearOp(IRDLOperation):
    """One elementwise, normalization or softmax instruction on the polynomial unit,
    `%y = bitllm.nonlinear "silu" %x {order = 6} : (...) -> T`: the kernel op's semantics
    with exp / reciprocal / rsqrt as order-`order` Taylor polynomials (nonlinear.py)."""

    name = "bitllm.nonlinear"
    kind = prop_def(StringAttr)
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    order = prop_def(IntegerAttr)
    eps = opt_prop_def(FloatAttr)
    base = opt_prop_def(FloatAttr)
    start = opt_prop_def(IntegerAttr)
    scale = opt_prop_def(FloatAttr)
    mask = opt_prop_def(StringAttr)
    approximate = opt_prop_def(StringAttr)
    convention = opt_prop_def(StringAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$kind $inputs attr-dict `:` `(` type($inputs) `)` `->` type($result)"

    def __init__(self, kind: str, inputs: list[SSAValue], result_type: Attribute, order: int,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[inputs], result_types=[result_type],
                         properties={"kind": StringAttr(kind), "order": IntegerAttr(order, i64),
                                     **properties})

    def verify_(self) -> None:
        kind = self.kind.data
        if kind not in NONLINEAR_KINDS:
            raise VerifyException(f"bitllm.nonlinear: kind must be one of "
                                  f"{', '.join(NONLINEAR_KINDS)}, got '{kind}'")
        arity = NONLINEAR_ARITY.get(kind, (1,))
        if len(self.inputs) not in arity:
            raise VerifyException(f"bitllm.nonlinear: '{kind}' takes "
                                  f"{' or '.join(map(str, arity))} input(s), got "
                                  f"{len(self.inputs)}")
        if not 1 <= self.order.value.data <= 16:
            raise VerifyException(f"bitllm.nonlinear: order must lie in [1, 16], got "
                                  f"{self.order.value.data}")


@irdl_op_definition
class MoveOp(IRDLOperation):
    """heads / merge_heads / concat: SRAM addressing, no arithmetic."""

    name = "bitllm.move"
    kind = prop_def(StringAttr)
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    heads = opt_prop_def(IntegerAttr)
    axis = opt_prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$kind $inputs attr-dict `:` `(` type($inputs) `)` `->` type($result)"

    def __init__(self, kind: str, inputs: list[SSAValue], result_type: Attribute,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[inputs], result_types=[result_type],
                         properties={"kind": StringAttr(kind), **properties})

    def verify_(self) -> None:
        if self.kind.data not in MOVE_KINDS:
            raise VerifyException(f"bitllm.move: kind must be one of {', '.join(MOVE_KINDS)}, "
                                  f"got '{self.kind.data}'")


@irdl_op_definition
class KvLoadOp(CommonKvLoadOp):
    """Read a KV-cache tensor as its policy stores it and dequantize it on the polynomial
    unit: `%k = bitllm.kv_load %K {role = "key", bits = [16, 4], tiers = [128], ...}`.

    Semantics: those of `sparsec.kv_compress` with the same properties
    (tensors/kv_cache.py `compress`). Cost: the exact stored bits (codes, scales and
    minimums; nothing for evicted tokens, nor, with `keep`, for tokens runtime token
    pruning dropped) cross DRAM into the SRAM; each integer element
    costs `kv_dequant_ops` FP multiply-adds (q * scale + min) on the nonlinear unit's
    lanes, and its BF16 value is written to the SRAM for the BF16-mode products.
    """

    name = "bitllm.kv_load"
    input = operand_def(TensorType)
    keep = var_operand_def(TensorType)
    assembly_format = ("$input (`keep` $keep^)? attr-dict `:` type($input) (`,` type($keep)^)? "
                       "`->` type($result)")

    def __init__(self, value: SSAValue, result_type: Attribute,
                 properties: dict[str, Attribute], keep: SSAValue | None = None):
        IRDLOperation.__init__(self, operands=[value, [keep] if keep is not None else []],
                               result_types=[result_type], properties=dict(properties))


@irdl_op_definition
class PruneOp(ActivationPruneOp):
    """Runtime activation pruning on the polynomial unit:
    `%y = bitllm.prune %x [weight %w] {threshold = .., estimate = "abs"} : T [, W] -> T`.

    Semantics: those of `sparsec.prune_activations` with the same properties. Cost: its
    deciding operations (a compare per activation; a multiply for abs_w; a max pass when
    relative) on the nonlinear unit's lanes. The zeros it makes leave the INT-FP
    clustering: a group of 32 with fewer nonzero activations may need fewer passes.
    """

    name = "bitllm.prune"


@irdl_op_definition
class PruneTokensOp(IRDLOperation):
    """Runtime token pruning's decision on the nonlinear lanes:
    `%keep = bitllm.prune_tokens %state {threshold = .., sink = .., ...} : S -> K`.

    Semantics: those of `sparsec.prune_tokens` with the same properties. Cost: (heads + 2)
    operations per cached token (accumulating the last step's probabilities into the
    state; normalize and compare)."""

    name = "bitllm.prune_tokens"
    state = operand_def(TensorType)
    result = result_def(TensorType)
    threshold = prop_def(FloatAttr)
    sink = prop_def(IntegerAttr)
    recent = prop_def(IntegerAttr)
    min_seen = prop_def(IntegerAttr)
    heads = prop_def(IntegerAttr)
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$state attr-dict `:` type($state) `->` type($result)"

    def __init__(self, state: SSAValue, result_type: Attribute,
                 properties: dict[str, Attribute]):
        super().__init__(operands=[state], result_types=[result_type],
                         properties=dict(properties))

    def rule(self) -> dict[str, float | int]:
        """The decision's parameters (as `sparsec.prune_tokens`')."""
        return KvPruneTokensOp.rule(self)  # type: ignore[arg-type]

    def verify_(self) -> None:
        """The rules of `sparsec.prune_tokens` (same state, result and properties)."""
        verify_prune_tokens(self)


Bitllm = Dialect("bitllm", [ZerosOp, LoadOp, GemmOp, FgemmOp, WritebackOp, NonlinearOp,
                            MoveOp, KvLoadOp, PruneOp, PruneTokensOp], [])
