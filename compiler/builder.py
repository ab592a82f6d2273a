"""IR builder: a checked kernel spec becomes a `func.func` of sparsec ops plus its data.

Each `in` and `param` declaration is materialized into the DataStore under
`<kernel>.<name>` and bound in the IR by `sparsec.input` / `sparsec.param`; each
assignment becomes the kernel op it calls; `out` names become the func's results.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr, TensorType
from xdsl.ir import Operation, SSAValue

from sparsec.compiler.datastore import DataStore, store_key
from sparsec.compiler.sources import materialize
from sparsec.compiler.spec import Assign, Call, Kernel, SpecError, SpecFile, attr_bool
from sparsec.compiler.spec import TensorType as SpecTensorType
from sparsec.dialects.sparsec import (
    OUTPUTS_ATTR,
    InputOp,
    MatmulOp,
    ParamOp,
    tensor_type,
)

OpBuilder = Callable[[Call, list[SSAValue], TensorType], Operation]


def _build_matmul(call: Call, operands: list[SSAValue], result: TensorType) -> Operation:
    return MatmulOp(operands[0], operands[1], result,
                    transpose_a=attr_bool(call, "transpose_a", False),
                    transpose_b=attr_bool(call, "transpose_b", False))


OP_BUILDERS: dict[str, OpBuilder] = {"matmul": _build_matmul}
"""How each spec op becomes IR; the spec's checker has already validated operands."""


def ir_type(ttype: SpecTensorType) -> TensorType:
    return tensor_type(ttype.shape, ttype.dtype)


def density_stats(array: np.ndarray) -> tuple[int, float]:
    """(nnz, density) of an array, for the IR's summary of a stored value."""
    nnz = int(np.count_nonzero(array))
    return nnz, (nnz / array.size if array.size else 0.0)


def build_kernel(kernel: Kernel, store: DataStore, base_dir: Path) -> func.FuncOp:
    """Materialize the kernel's data into `store` and return its kernel-IR function."""
    ops: list[Operation] = []
    values: dict[str, SSAValue] = {}
    for decl in kernel.decls:
        ttype = ir_type(decl.type)
        key = store_key(kernel.name, decl.name)
        if decl.source is not None:
            store.put(key, materialize(decl.source, decl.type, base_dir), decl.type.dtype)
        if decl.role == "param":
            nnz, density = density_stats(store.get(key))
            op: Operation = ParamOp(decl.name, ttype, nnz=nnz, density=density)
        else:
            op = InputOp(decl.name, ttype)
        op.results[0].name_hint = decl.name
        ops.append(op)
        values[decl.name] = op.results[0]
    for assign in kernel.assigns:
        op = _build_assign(assign, values, kernel)
        op.results[0].name_hint = assign.name
        ops.append(op)
        values[assign.name] = op.results[0]
    results = [values[name] for name in kernel.outs]
    ops.append(func.ReturnOp(*results))
    function = func.FuncOp(kernel.name, ([], [r.type for r in results]))
    function.body.block.add_ops(ops)
    function.attributes[OUTPUTS_ATTR] = ArrayAttr([StringAttr(n) for n in kernel.outs])
    return function


def _build_assign(assign: Assign, values: dict[str, SSAValue], kernel: Kernel) -> Operation:
    builder = OP_BUILDERS.get(assign.call.op)
    if builder is None:
        raise SpecError(assign.call.loc, f"op '{assign.call.op}' has no IR lowering yet")
    operands = [values[o.name] for o in assign.call.operands]
    return builder(assign.call, operands, ir_type(kernel.types[assign.name]))


def build_module(spec: SpecFile, store: DataStore) -> ModuleOp:
    """The kernel IR of every kernel in a spec file, in one module."""
    base_dir = Path(spec.path).parent
    return ModuleOp([build_kernel(k, store, base_dir) for k in spec.kernels])
