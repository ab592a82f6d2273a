"""The backend contract, and executing a module of kernel or ISA IR with xDSL's Interpreter.

A backend names its spec class (hardware data + presets), its `lower-<name>` pass and
a `Machine`: the per-kernel interpreter state (Timeline, memory levels, counters) whose
`InterpreterFunctions` execute the backend's ISA ops on numpy values and whose
`report` turns what happened into a Report. Kernel-level sparsec ops run through
`SparsecFunctions`, the numpy reference semantics, so the same interpreter computes
reference outputs from kernel IR and real outputs from ISA IR.
"""

from __future__ import annotations

import contextlib
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from threadpoolctl import threadpool_limits
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.interpreter import (
    Interpreter,
    InterpreterFunctions,
    PythonValues,
    ReturnedValues,
    TerminatorValue,
    impl,
    impl_callable,
    impl_terminator,
    register_impls,
)
from xdsl.passes import ModulePass

from sparsec.backends.common.block_reference import BlockFunctions
from sparsec.backends.common.report import Check, Report
from sparsec.backends.common.spec import AcceleratorSpec
from sparsec.dialects import sparsec
from sparsec.dialects.formats import QuantizedAttr
from sparsec.dialects.sparsec import element_type_name
from sparsec.tensors import attention
from sparsec.tensors.attention import query_format_semantics
from sparsec.tensors.datastore import DataStore, Deferred, enclosing_kernel, store_key
from sparsec.tensors.dtypes import carrier_dtype, round_to_dtype
from sparsec.tensors.numerics import finish, matmul_accumulate
from sparsec.tensors.quantization import quantize_dynamic, quantize_static


def dtype_of(value_type: Any) -> str:
    """Spec element-type name of a tensor-typed SSA value's type."""
    assert isinstance(value_type, TensorType)
    return element_type_name(value_type.element_type)


def op_mask(op: Any, pattern: np.ndarray | None) -> np.ndarray | None:
    """The boolean [T, S] mask of an attention-family op (None: every pair)."""
    shape = op.results[0].type.get_shape()
    t, s = (shape[-2], shape[-1]) if not isinstance(op, sparsec.AttentionOp) else (
        shape[-2], op.key.type.get_shape()[-2])
    return attention.mask_matrix(op.mask_kind, t, s, op.window_size, pattern)


def arriving_values(values: np.ndarray, value_type: Any) -> np.ndarray:
    """A runtime input as the program sees it: quantized on arrival when its format is a
    per-tensor quantized encoding (with its static scale, e.g. fixed point, or a dynamic
    scale computed from the values), else unchanged."""
    encoding = getattr(value_type, "encoding", None)
    if not isinstance(encoding, QuantizedAttr) or encoding.is_per_channel:
        return values
    bits, symmetric = encoding.bit_width, encoding.is_symmetric
    if encoding.is_dynamic:
        quantized = quantize_dynamic(values, bits, symmetric)
    else:
        quantized = quantize_static(values, bits, symmetric, encoding.scale_value or 1.0,
                                    encoding.zero_point_value or 0)
    return round_to_dtype(quantized, dtype_of(value_type)).astype(values.dtype)


@register_impls
class KernelFuncFunctions(InterpreterFunctions):
    """func.func / func.return for kernels.

    xDSL has these in `xdsl.interpreters.func`, but importing that package loads every
    dialect interpreter (RISC-V included), about half a second of start-up per command.
    """

    @impl_terminator(func.ReturnOp)
    def run_return(self, interpreter: Interpreter, op: func.ReturnOp,
                   args: tuple[Any, ...]) -> tuple[TerminatorValue, PythonValues]:
        return ReturnedValues(args), ()

    @impl_callable(func.FuncOp)
    def call_func(self, interpreter: Interpreter, op: func.FuncOp, args: tuple[Any, ...]):
        return interpreter.run_ssacfg_region(op.body, args, op.sym_name.data)


@register_impls
class SparsecFunctions(InterpreterFunctions):
    """numpy semantics of the kernel-level sparsec ops (the reference)."""

    def __init__(self, store: DataStore, deferred_as_none: bool = False):
        self.store = store
        self.deferred_as_none = deferred_as_none
        """A machine not executing values (`--no-execute`, `Machine.accounts_unmade_dense`)
        reads a deferred dense value as None, "not computed", and accounts from its type
        instead of making it."""

    def _bound(self, op: sparsec.InputOp | sparsec.ParamOp) -> Any:
        key = store_key(enclosing_kernel(op), op.sym_name)
        value = self.store.peek(key)
        if (self.deferred_as_none and isinstance(value, Deferred)
                and value.nnz == math.prod(value.shape)):
            return None
        return self.store.get(key)

    @impl(sparsec.InputOp)
    def run_input(self, interpreter: Interpreter, op: sparsec.InputOp, args: tuple[Any, ...]):
        values = self._bound(op)
        return (None if values is None else arriving_values(values, op.result.type),)

    @impl(sparsec.ParamOp)
    def run_param(self, interpreter: Interpreter, op: sparsec.ParamOp, args: tuple[Any, ...]):
        return (self._bound(op),)

    @impl(sparsec.SddmmOp)
    def run_sddmm(self, interpreter: Interpreter, op: sparsec.SddmmOp, args: tuple[Any, ...]):
        q, k = args[0], args[1]
        mask = op_mask(op, args[2] if len(args) > 2 else None)
        return (attention.sddmm(q, k, op.scale.value.data, mask, dtype_of(op.result.type)),)

    @impl(sparsec.SoftmaxOp)
    def run_softmax(self, interpreter: Interpreter, op: sparsec.SoftmaxOp,
                    args: tuple[Any, ...]):
        mask = op_mask(op, args[1] if len(args) > 1 else None)
        return (attention.masked_softmax(args[0], mask, dtype_of(op.result.type)),)

    @impl(sparsec.SpmmOp)
    def run_spmm(self, interpreter: Interpreter, op: sparsec.SpmmOp, args: tuple[Any, ...]):
        return (attention.spmm(args[0], args[1], dtype_of(op.result.type)),)

    @impl(sparsec.AttentionOp)
    def run_attention(self, interpreter: Interpreter, op: sparsec.AttentionOp,
                      args: tuple[Any, ...]):
        q, k, v = args[:3]
        mask = op_mask(op, args[3] if len(args) > 3 else None)
        semantics = query_format_semantics(op.query.type)
        if semantics is not None:
            return (semantics(op.query.type.encoding, q, k, v, op.scale.value.data, mask,  # type: ignore[union-attr]
                              dtype_of(op.result.type)),)
        return (attention.attention(q, k, v, op.scale.value.data, mask,
                                    dtype_of(op.result.type)),)

    @impl(sparsec.MatmulOp)
    def run_matmul(self, interpreter: Interpreter, op: sparsec.MatmulOp,
                   args: tuple[Any, ...]):
        a, b = args
        a = a.T if op.transpose_a else a
        b = b.T if op.transpose_b else b
        exact = matmul_accumulate(a, b, dtype_of(op.lhs.type))
        result_dtype = dtype_of(op.result.type)
        refuse_integer_overflow(exact, result_dtype, f"{enclosing_kernel(op)}: matmul")
        return (finish(exact, result_dtype),)


class IntegerOverflowError(ArithmeticError):
    """An exact integer result that does not fit its declared element type."""


def refuse_integer_overflow(exact: np.ndarray, dtype: str, what: str) -> None:
    """Raise when exact integer sums do not fit `dtype`: a 32-bit accumulator would wrap
    (or saturate) them, and a reference computed the same way would agree with the wrong
    value, so the check could not see it. Counted and refused, never wrapped silently."""
    if not dtype.startswith("i") or exact.size == 0:
        return
    info = np.iinfo(carrier_dtype(dtype))
    outside = (exact < info.min) | (exact > info.max)
    count = int(np.count_nonzero(outside))
    if not count:
        return
    worst = int(exact.flat[int(np.argmax(np.abs(exact.astype(np.float64))))])
    raise IntegerOverflowError(
        f"{what} overflows {dtype}: {count} of {exact.size} exact sums lie outside "
        f"[{info.min}, {info.max}] (largest magnitude {worst:,}); the result would wrap. "
        "Use smaller values or fewer terms")


class Machine(ABC):
    """Per-kernel state of one backend while its ISA program runs."""

    accounts_unmade_dense: ClassVar[bool] = False
    """Whether, not executing values, the machine accounts a dense operand it is handed as
    None ("not computed") from its type alone: then `--no-execute` never makes a dense
    generated tensor for it (a value with zeros is made: where its zeros are changes
    the counts)."""

    def __init__(self, spec: AcceleratorSpec, execute: bool):
        self.spec = spec
        self.execute = execute

    @abstractmethod
    def functions(self) -> InterpreterFunctions:
        """The InterpreterFunctions of the backend's ISA dialect, bound to this machine."""

    def listeners(self) -> tuple[Interpreter.Listener, ...]:
        """Observers of every instruction the program runs (none by default): a machine
        that defers work (the systolic array's batched folds) completes it here before any
        other instruction reads its results."""
        return ()

    @abstractmethod
    def report(self, kernel: str) -> Report:
        """What the program cost; `check` is filled in by the caller."""


BINDING_OPS = frozenset({"sparsec.input", "sparsec.param"})
"""Kernel-level ops that bind data rather than compute: every target runs them."""


def kernel_op_names(module: Any) -> list[str]:
    """Names of the kernel-level compute ops (dialect `sparsec`, binding ops excepted) in
    a module, in first-seen order: what a target must lower."""
    names: dict[str, None] = {}
    for op in module.walk():
        if op.name.startswith("sparsec.") and op.name not in BINDING_OPS:
            names[op.name] = None
    return list(names)


@dataclass(frozen=True)
class Backend:
    """One accelerator: its spec class, lowering pass and machine.

    `kernel_ops` declares which kernel-level ops (`sparsec.matmul`, `sparsec.attention`,
    ...) its lowering turns into instructions it executes and counts. The driver refuses,
    before lowering, a kernel holding any other op ("sigma cannot run sparsec.softmax;
    targets that can: ..."), because an op a lowering leaves alone would still run through
    the numpy reference semantics at zero cost: a silent wrong answer. A backend that adds
    an op adds its name here (docs/reliability.md). `None` means undeclared: the driver
    then refuses only after lowering, when a kernel-level op is left in the program.
    """

    name: str
    spec_class: type[AcceleratorSpec]
    lowering_pass: type[ModulePass]
    machine_class: type[Machine]
    kernel_ops: frozenset[str] | None = None

    PLACEHOLDER: ClassVar[str] = "not executed (--no-execute)"

    @property
    def summary(self) -> str:
        return self.spec_class.summary

    def can_run(self, op_name: str) -> bool:
        """Whether this backend lowers (and counts) the kernel op `op_name`."""
        return op_name in BINDING_OPS or (self.kernel_ops is not None
                                          and op_name in self.kernel_ops)


def kernel_funcs(module: ModuleOp) -> list[func.FuncOp]:
    return [op for op in module.ops if isinstance(op, func.FuncOp)]


def kernel_names(module: ModuleOp) -> list[str]:
    return [f.sym_name.data for f in kernel_funcs(module)]


PROGRESS_MIN_OPS = 2000
"""Programs with at least this many instructions show a progress bar on a terminal."""


class _ProgressListener(Interpreter.Listener):
    """Advances a rich progress bar as the interpreter executes instructions."""

    def __init__(self, progress: Any, task: Any):
        self.progress = progress
        self.task = task

    def did_interpret_op(self, op: Any, results: Any) -> None:
        self.progress.advance(self.task)


@contextlib.contextmanager
def progress_listeners(kernel: str, count: int) -> Iterator[tuple[Interpreter.Listener, ...]]:
    """A progress bar on stderr for long programs when stderr is a terminal; else none."""
    if count < PROGRESS_MIN_OPS or not sys.stderr.isatty():
        yield ()
        return
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task(f"running {kernel}", total=count)
        yield (_ProgressListener(progress, task),)


def make_interpreter(module: ModuleOp, store: DataStore,
                     extra: InterpreterFunctions | None = None,
                     listeners: tuple[Interpreter.Listener, ...] = (),
                     deferred_as_none: bool = False) -> Interpreter:
    interpreter = Interpreter(module, listeners=listeners)
    interpreter.register_implementations(KernelFuncFunctions())
    interpreter.register_implementations(SparsecFunctions(store, deferred_as_none))
    interpreter.register_implementations(BlockFunctions())
    if extra is not None:
        interpreter.register_implementations(extra)
    return interpreter


def run_reference(module: ModuleOp, store: DataStore) -> dict[str, list[np.ndarray]]:
    """Outputs of every kernel of a kernel-IR module, by numpy reference semantics."""
    interpreter = make_interpreter(module, store)
    # call_op with the op itself: by name, xDSL looks the symbol up in a linear scan,
    # which made a file of N kernels cost O(N^2).
    return {f.sym_name.data: list(interpreter.call_op(f, ())) for f in kernel_funcs(module)}


def one_blas_thread():
    """BLAS limited to one thread while an instruction stream executes.

    A machine's interpreter makes one small BLAS call per fold or tile (thousands per
    kernel). Multithreaded BLAS starts and synchronises its threads on every call; on a
    shared machine those threads fight other processes for the cores and each call waits
    for the slowest (measured: a 2048^3 systolic run took 35 s under load, 2.4 s with one
    thread). One thread per call keeps a fold's cost proportional to its MACs; the
    interpreter's speed against numpy is in benchmarks/interpreter_overhead.py.
    """
    return threadpool_limits(limits=1, user_api="blas")


def run_machine(module: ModuleOp, store: DataStore, backend: Backend, spec: AcceleratorSpec,
                execute: bool) -> dict[str, tuple[list[Any], Report]]:
    """Run every kernel of an ISA module on a fresh machine each; outputs and reports."""
    results: dict[str, tuple[list[Any], Report]] = {}
    for function in kernel_funcs(module):
        name = function.sym_name.data
        machine = backend.machine_class(spec, execute)
        count = len(function.body.block.ops)
        with progress_listeners(name, count) as listeners, one_blas_thread():
            interpreter = make_interpreter(module, store, machine.functions(),
                                           (*listeners, *machine.listeners()),
                                           deferred_as_none=not execute
                                           and machine.accounts_unmade_dense)
            outputs = list(interpreter.call_op(function, ()))
        report = machine.report(name)
        report.details["accounting"] = spec.accounting()
        if not execute:
            report.check = Check.skipped_because(Backend.PLACEHOLDER)
        results[name] = (outputs, report)
    return results
