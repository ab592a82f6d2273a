"""Guards: refuse work sparsec would otherwise answer wrongly, before doing it.

Each guard is a check the driver runs at a fixed point of the pipeline and that raises
`Refused` with one line naming what is wrong and what would work. docs/reliability.md
lists them and the guarantee each one gives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsec.backends.common.backend import BINDING_OPS, kernel_op_names

if TYPE_CHECKING:
    from xdsl.dialects.builtin import ModuleOp

    from sparsec.backends.common.backend import Backend


class CompileError(Exception):
    """A pass, verifier or target failure; the message names the pass and the rule.
    (Defined here so guards can refine it; `sparsec.compiler.driver` exports it.)"""


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
    missing = [name for name in kernel_op_names(module) if not backend.can_run(name)]
    if not missing:
        return
    raise Refused(_cannot_run(backend.name, missing))


def refuse_unlowered_ops(module: ModuleOp, backend: Backend) -> None:
    """Refuse a lowered module that still holds kernel-level compute ops: the lowering
    skipped them, so they would run uncounted. Catches a backend whose `kernel_ops`
    declaration promises more than its lowering does, or declares nothing."""
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
