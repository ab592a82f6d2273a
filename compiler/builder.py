"""IR builder: a checked kernel spec becomes a `func.func` of sparsec ops plus its data.

Each `in` and `param` declaration is materialized into the DataStore under
`<kernel>.<name>` and bound in the IR by `sparsec.input` / `sparsec.param`; each
assignment becomes the kernel op it calls; `out` names become the func's results.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue

from sparsec.compiler.attention_rules import parse_mask
from sparsec.compiler.block_rules import DEFAULT_EPS, gelu_form, rope_convention
from sparsec.compiler.sources import SourcePrefetch, read_pattern
from sparsec.compiler.spec import (
    Assign,
    Call,
    Kernel,
    SpecError,
    SpecFile,
    attr_bool,
    attr_int,
    attr_number,
)
from sparsec.compiler.spec import TensorType as SpecTensorType
from sparsec.dialects import block
from sparsec.dialects.sparsec import (
    OUTPUTS_ATTR,
    AttentionOp,
    InputOp,
    MatmulOp,
    ParamOp,
    SddmmOp,
    SoftmaxOp,
    SpmmOp,
    tensor_type,
)
from sparsec.tensors.datastore import DataStore, Deferred, is_sparse, store_key

OpBuilder = Callable[[Call, list[SSAValue], TensorType], Operation]


def _build_matmul(call: Call, operands: list[SSAValue], result: TensorType) -> Operation:
    return MatmulOp(operands[0], operands[1], result,
                    transpose_a=attr_bool(call, "transpose_a", False),
                    transpose_b=attr_bool(call, "transpose_b", False))


def _build_attention_family(call: Call, operands: list[SSAValue], result: TensorType,
                            pattern: SSAValue | None) -> Operation:
    mask = parse_mask(call)
    window = mask.window
    if call.op == "spmm":
        return SpmmOp(operands[0], operands[1], result)
    if call.op == "softmax":
        return SoftmaxOp(operands[0], mask.kind, window, pattern)
    head_dim = operands[0].type.get_shape()[-1]  # type: ignore[union-attr]
    scale = attr_number(call, "scale", 1.0 / math.sqrt(head_dim))
    if call.op == "sddmm":
        return SddmmOp(operands[0], operands[1], result, scale, mask.kind, window, pattern)
    q_shape = operands[0].type.get_shape()  # type: ignore[union-attr]
    k_shape = operands[1].type.get_shape()  # type: ignore[union-attr]
    if "start" in call.attrs or (len(q_shape) == 3 and q_shape[0] != k_shape[0]):
        # Grouped-query heads or queries placed on a KV cache: decoder attention.
        start = attr_int(call, "start", 0) if "start" in call.attrs else None
        return block.GqaAttentionOp(operands[0], operands[1], operands[2], result, scale,
                                    mask.kind, start)
    return AttentionOp(operands[0], operands[1], operands[2], result, scale, mask.kind,
                       window, pattern)


def _eps(call: Call) -> float:
    return attr_number(call, "eps", DEFAULT_EPS)


OP_BUILDERS: dict[str, OpBuilder] = {
    "matmul": _build_matmul,
    "rmsnorm": lambda call, ops, result: block.RmsNormOp(ops[0], ops[1], _eps(call)),
    "layernorm": lambda call, ops, result: block.LayerNormOp(ops[0], ops[1], ops[2],
                                                             _eps(call)),
    "silu": lambda call, ops, result: block.SiluOp(ops[0]),
    "exp": lambda call, ops, result: block.ExpOp(ops[0]),
    "gelu": lambda call, ops, result: block.GeluOp(ops[0], gelu_form(call)),
    "add": lambda call, ops, result: block.AddOp(ops[0], ops[1], result),
    "mul": lambda call, ops, result: block.MulOp(ops[0], ops[1], result),
    "rope": lambda call, ops, result: block.RopeOp(ops[0], attr_number(call, "base", 10000.0),
                                                   attr_int(call, "start", 0),
                                                   rope_convention(call)),
    "heads": lambda call, ops, result: block.HeadsOp(ops[0], attr_int(call, "heads", 1),
                                                     result),
    "merge_heads": lambda call, ops, result: block.MergeHeadsOp(ops[0], result),
    "concat": lambda call, ops, result: block.ConcatOp(ops[0], ops[1],
                                                       attr_int(call, "axis", 0), result),
}
ATTENTION_OPS = ("attention", "sddmm", "softmax", "spmm")
"""How each spec op becomes IR; the spec's checker has already validated operands."""


def ir_type(ttype: SpecTensorType) -> TensorType:
    return tensor_type(ttype.shape, ttype.dtype)


def density_stats(array: Any) -> tuple[int, float]:
    """(nnz, density) of a dense array, a scipy sparse matrix or a deferred value (its
    exact count, known without making it), for the IR's summary."""
    if isinstance(array, Deferred):
        size = math.prod(array.shape)
        return array.nnz, (array.nnz / size if size else 0.0)
    if is_sparse(array):
        nnz = int(np.count_nonzero(array.data))
        size = array.shape[0] * array.shape[1]
    else:
        nnz, size = int(np.count_nonzero(array)), array.size
    return nnz, (nnz / size if size else 0.0)


def build_kernel(kernel: Kernel, store: DataStore, base_dir: Path,
                 sources: SourcePrefetch) -> func.FuncOp:
    """Materialize the kernel's data into `store` and return its kernel-IR function."""
    ops: list[Operation] = []
    values: dict[str, SSAValue] = {}
    for decl in kernel.decls:
        ttype = ir_type(decl.type)
        key = store_key(kernel.name, decl.name)
        if decl.source is not None:
            store.put(key, sources.take(decl, base_dir), decl.type.dtype)
        if decl.role == "param":
            nnz, density = density_stats(store.peek(key))
            op: Operation = ParamOp(decl.name, ttype, nnz=nnz, density=density)
        else:
            op = InputOp(decl.name, ttype)
        op.results[0].name_hint = decl.name
        ops.append(op)
        values[decl.name] = op.results[0]
    for assign in kernel.assigns:
        op = _build_assign(assign, values, kernel, store, base_dir, ops)
        op.results[0].name_hint = assign.name
        ops.append(op)
        values[assign.name] = op.results[0]
    results = [values[name] for name in kernel.outs]
    ops.append(func.ReturnOp(*results))
    function = func.FuncOp(kernel.name, ([], [r.type for r in results]))
    function.body.block.add_ops(ops)
    function.attributes[OUTPUTS_ATTR] = ArrayAttr([StringAttr(n) for n in kernel.outs])
    return function


def _build_assign(assign: Assign, values: dict[str, SSAValue], kernel: Kernel,
                  store: DataStore, base_dir: Path, ops: list[Operation]) -> Operation:
    call = assign.call
    operands = [values[o.name] for o in call.operands]
    result = ir_type(kernel.types[assign.name])
    if call.op in ATTENTION_OPS:
        pattern = _pattern_param(assign, kernel, store, base_dir, ops)
        return _build_attention_family(call, operands, result, pattern)
    builder = OP_BUILDERS.get(call.op)
    if builder is None:
        raise SpecError(call.loc, f"op '{call.op}' has no IR lowering yet")
    return builder(call, operands, result)


def _pattern_param(assign: Assign, kernel: Kernel, store: DataStore, base_dir: Path,
                   ops: list[Operation]) -> SSAValue | None:
    """Bind a `mask=pattern(...)` file as an i8 param `<name>_mask` and return it."""
    mask = parse_mask(assign.call)
    if mask.kind != "pattern":
        return None
    loc = assign.call.attrs["mask"].loc
    shape = kernel.types[assign.name].shape
    t, s = shape[-2], (shape[-1] if assign.call.op != "attention"
                       else kernel.types[assign.call.operands[1].name].shape[-2])
    pattern = read_pattern(mask.path or "", mask.key, base_dir, loc, (t, s))
    name = f"{assign.name}_mask"
    store.put(store_key(kernel.name, name), pattern, "i8")
    nnz, density = density_stats(pattern)
    param = ParamOp(name, tensor_type((t, s), "i8"), nnz=nnz, density=density)
    param.results[0].name_hint = name
    ops.append(param)
    return param.results[0]


def build_module(spec: SpecFile, store: DataStore, sources: SourcePrefetch | None = None,
                 defer_data: bool = False) -> ModuleOp:
    """The kernel IR of every kernel in a spec file, in one module. `sources` hands over
    data drawn ahead (`SourcePrefetch`, started by the caller); without it the random
    tensors are drawn here, on worker threads, or with `defer_data` (`--no-execute`)
    stored `Deferred`, made only if a pass or an executing run reads them."""
    base_dir = Path(spec.path).parent
    if sources is not None:
        return ModuleOp([build_kernel(k, store, base_dir, sources) for k in spec.kernels])
    with SourcePrefetch(spec, defer_random=defer_data) as own:
        return ModuleOp([build_kernel(k, store, base_dir, own) for k in spec.kernels])
