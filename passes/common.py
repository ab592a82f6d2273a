"""What the data-changing passes share: finding an op's operand, rewriting it, recording.

A data pass picks one operand of each kernel op (`operand=a|b` for the lhs/rhs of a
matmul, or a tensor's name), changes the stored values of a `param` in the DataStore and
its tensor type in the IR together, and records what it did on the binding op. On a
runtime `in` tensor it can only set the format: the values arrive at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from xdsl.dialects.builtin import (
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    NoneAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from sparsec.dialects.sparsec import InputOp, MatmulOp, ParamOp
from sparsec.tensors.datastore import DataStore, dense, enclosing_kernel, store_key

FORMAT_ONLY = "format only: runtime input, values arrive at run time"


@dataclass
class Target:
    """One tensor a pass acts on: the binding op, the kernel and the reduction axis."""

    op: InputOp | ParamOp
    kernel: str
    reduction_axis: int
    user: Operation

    @property
    def key(self) -> str:
        return store_key(self.kernel, self.op.sym_name)

    @property
    def is_param(self) -> bool:
        return isinstance(self.op, ParamOp)

    @property
    def ttype(self) -> TensorType:
        return self.op.result.type  # type: ignore[return-value]

    def describe(self) -> str:
        return f"{self.user.name} operand {self.op.sym_name}"


def fail(pass_name: str, target: Target | None, rule: str) -> PassFailedException:
    """A pass failure naming the pass, the op and operand, and the rule."""
    where = f" {target.describe()}:" if target is not None else ""
    return PassFailedException(f"{pass_name}:{where} {rule}")


def _reduction_axis(op: MatmulOp, index: int) -> int:
    if index == 0:
        return 0 if op.transpose_a else 1
    return 1 if op.transpose_b else 0


def targets(module: ModuleOp, operand: str, pass_name: str) -> Iterator[Target]:
    """Each distinct tensor selected by `operand` among the matmuls of the module.

    `operand` is `a` (lhs) or `b` (rhs) of every matmul, or a tensor's name.
    """
    seen: set[int] = set()
    found = False
    for op in module.walk():
        if not isinstance(op, MatmulOp):
            continue
        for index, value in enumerate((op.lhs, op.rhs)):
            binder = _binder(value)
            if not _selected(operand, index, binder):
                continue
            found = True
            if binder is None:
                raise fail(pass_name, None, f"operand {'ab'[index]} of {op.name} is computed "
                           "by the kernel, not bound to a tensor; only `in` and `param` "
                           "tensors can be transformed")
            if id(binder) in seen:
                continue
            seen.add(id(binder))
            yield Target(binder, enclosing_kernel(binder), _reduction_axis(op, index), op)
    if not found:
        raise fail(pass_name, None, f"no matmul operand matches operand={operand} (use a, b "
                   "or the name of an `in`/`param` tensor)")


def _binder(value: SSAValue) -> InputOp | ParamOp | None:
    owner = value.owner
    return owner if isinstance(owner, (InputOp, ParamOp)) else None


def _selected(operand: str, index: int, binder: InputOp | ParamOp | None) -> bool:
    if operand in ("a", "b"):
        return "ab"[index] == operand
    return binder is not None and binder.sym_name == operand


def set_type(target: Target, new_type: TensorType) -> None:
    """Give the bound tensor a new type (its format); every use sees the new type."""
    Rewriter.replace_value_with_new_type(target.op.result, new_type)


def encoding_of(ttype: TensorType) -> Attribute | None:
    """The tensor's encoding, None when it has none (xDSL stores NoneAttr)."""
    encoding = ttype.encoding
    return None if isinstance(encoding, NoneAttr) else encoding


def with_encoding(ttype: TensorType, encoding: Attribute | None) -> TensorType:
    if encoding is None:
        return TensorType(ttype.element_type, ttype.get_shape())
    return TensorType(ttype.element_type, ttype.get_shape(), encoding)


def param_values(store: DataStore, target: Target) -> np.ndarray:
    """A param's values as a dense array (a sparse .mtx value is densified when small
    enough; otherwise the DataStore says the tensor is too large for this pass)."""
    return dense(store.get(target.key), f"{target.describe()}")


def update_param_values(target: Target, store: DataStore, values: np.ndarray,
                        effect: dict[str, float | int | str]) -> None:
    """Store a param's new values, refresh its nnz/density, record the pass's effect.

    The effect gets the new density, the retained energy ||W'|| / ||W|| and the
    relative error ||W - W'|| / ||W|| next to what the pass supplies.
    """
    assert isinstance(target.op, ParamOp)
    old = param_values(store, target).astype(np.float64)
    new = values.astype(np.float64)
    norm = float(np.linalg.norm(old))
    nnz = int(np.count_nonzero(values))
    density = nnz / values.size if values.size else 0.0
    store.put(target.key, values, store.dtypes[target.key])
    target.op.nnz = IntegerAttr(nnz, i64)
    target.op.density = FloatAttr(density, f64)
    measured: dict[str, float | int | str] = {
        "density": density,
        "retained_energy": float(np.linalg.norm(new)) / norm if norm else 1.0,
        "rel_error": float(np.linalg.norm(old - new)) / norm if norm else 0.0,
    }
    target.op.record_effect({**effect, **measured})


def record_format_only(target: Target, effect: dict[str, float | int | str]) -> None:
    """Note on an `in` tensor that the pass set its format but could not touch values
    (the effect's own `note` wins, for passes that do not even set a format)."""
    target.op.record_effect({**effect, "note": effect.get("note", FORMAT_ONLY)})
