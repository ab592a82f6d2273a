"""Guards: refuse work sparsec would otherwise answer wrongly, before doing it.

Each guard is a check the driver runs at a fixed point of the pipeline and that raises
`Refused` with one line naming what is wrong and what would work. docs/reliability.md
lists them and the guarantee each one gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp

    from sparsec.backends.common.backend import Backend
    from sparsec.tensors.datastore import DataStore


class CompileError(Exception):
    """A pass, verifier or target failure; the message names the pass and the rule.
    (Defined here so guards can refine it; `sparsec.compiler.driver` exports it. This
    module imports the backends only inside its guards, so the CLI can raise it before
    xDSL is loaded.)"""


class Refused(CompileError):
    """Well-formed input that sparsec will not run, because the answer would be wrong."""


def targets_that_run(op_name: str) -> list[str]:
    """Names of the registered targets that declare `op_name` in their `kernel_ops`."""
    from sparsec.backends import all_backends

    return [b.name for b in all_backends() if b.kernel_ops and op_name in b.kernel_ops]


def refuse_unsupported_ops(module: ModuleOp, backend: Backend) -> None:
    """Refuse a module holding a kernel op the backend does not declare it can lower.

    Without this, an op the lowering leaves alone still runs (through the numpy reference
    semantics) but costs nothing: 0 cycles and "check ok" for work the target never did.
    A backend that declares no `kernel_ops` is checked after lowering instead
    (`refuse_unlowered_ops`).
    """
    if backend.kernel_ops is None:
        return
    from sparsec.backends.common.backend import kernel_op_names

    missing = [name for name in kernel_op_names(module) if not backend.can_run(name)]
    if not missing:
        return
    raise Refused(_cannot_run(backend.name, missing))


def refuse_explicit_lowering(passes: list[Any], target: str) -> None:
    """Refuse a `lower-<backend>` pass in the user's pipeline when a target lowers too:
    the reference would be computed on ISA ops and the program lowered twice. The
    target's options belong in --target."""
    from sparsec.backends import BACKEND_PACKAGES

    lowerings = {f"lower-{name}": name for name in BACKEND_PACKAGES}
    for p in passes:
        if p.name in lowerings:
            backend = lowerings[p.name]
            raise CompileError(f"-p {p.name}: choose the target with --target "
                               f"'{backend}{{...}}' (it appends {p.name} with its options), "
                               f"not in the pipeline (the target is {target})")


def refuse_unlowered_ops(module: ModuleOp, backend: Backend) -> None:
    """Refuse a lowered module that still holds kernel-level compute ops: the lowering
    skipped them, so they would run uncounted. Catches a backend whose `kernel_ops`
    declaration promises more than its lowering does, or declares nothing."""
    from sparsec.backends.common.backend import BINDING_OPS, kernel_op_names

    left = [name for name in kernel_op_names(module) if name not in BINDING_OPS]
    if not left:
        return
    raise Refused(_cannot_run(backend.name, left) + f" (lower-{backend.name} left "
                  "it unlowered)")


def _cannot_run(target: str, ops: list[str]) -> str:
    first = ops[0]
    others = [t for t in targets_that_run(first) if t != target]
    can = ", ".join(others) if others else "none"
    more = f" (nor {', '.join(ops[1:])})" if len(ops) > 1 else ""
    return f"{target} cannot run {first}{more}; targets that can: {can}"


def validate_bundle(module: ModuleOp, store: DataStore, bundle: str) -> None:
    """Refuse a data bundle whose arrays do not match the IR that reads them: every
    `sparsec.input`/`sparsec.param` must find its array with the IR's shape and element
    type, every kernel output its reference with the output's shape, and inputs must be
    finite. Without this a bundle edited or paired with the wrong IR runs on the wrong
    data and its check compares it with a reference of that same wrong data."""
    from xdsl.dialects import func

    from sparsec.dialects.sparsec import OUTPUTS_ATTR, InputOp, ParamOp, output_names

    for function in [op for op in module.ops if isinstance(op, func.FuncOp)]:
        kernel = function.sym_name.data
        for op in function.walk():
            if isinstance(op, (InputOp, ParamOp)):
                _check_array(store, f"{kernel}.{op.sym_name}", op.result.type, bundle,
                             finite=True)
        results = function.function_type.outputs.data
        names = output_names(function.attributes.get(OUTPUTS_ATTR), len(results))
        for name, vtype in zip(names, results, strict=True):
            key = f"{kernel}.{name}#reference"
            if key in store:
                _check_array(store, key, vtype, bundle, finite=False)


def _check_array(store: DataStore, key: str, vtype: Any, bundle: str, finite: bool) -> None:
    from sparsec.dialects.sparsec import element_type_name

    if key not in store:
        raise Refused(f"{bundle}: no array '{key}', which the IR reads; recompile the spec")
    value = store.arrays[key]
    shape = tuple(int(d) for d in value.shape)
    expected = tuple(vtype.get_shape())
    if shape != expected:
        raise Refused(f"{bundle}: '{key}' has shape {list(shape)} but the IR declares "
                      f"{list(expected)}; recompile the spec")
    dtype = element_type_name(vtype.element_type)
    stored = store.dtypes.get(key)
    if stored != dtype:
        raise Refused(f"{bundle}: '{key}' is stored as {stored} but the IR declares {dtype}")
    if finite:
        data = value.data if hasattr(value, "tocsr") else np.asarray(value)
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            raise Refused(f"{bundle}: '{key}' holds NaN or infinite values; sparsec runs "
                          "finite inputs only")
