"""`--emit mlir`: kernel IR as upstream MLIR that LLVM 22's `mlir-opt --sparsifier` compiles.

Each kernel `func.func` becomes a `func.func` of upstream dialects only (func, linalg,
tensor, arith, and sparse_tensor/bufferization to build sparse constants): runtime
inputs and params become arguments in declaration order, `sparsec.matmul` becomes a
zero-filled `linalg.matmul` (transposes as its indexing maps, so sparse operands stay
operands the sparsifier can iterate), and tensor types keep their
`#sparse_tensor.encoding`, printed as named aliases.

With `inline_data=True` the values travel in the text: params become constants inside
the kernel (`arith.constant dense<...>` then `sparse_tensor.convert`, or
`sparse_tensor.assemble` for n:m formats, see below), inputs become constants in a
`func.func @main()` that calls every kernel and prints every output with the MLIR
runner's `printMemref*` functions, so that

    mlir-opt-22 --sparsifier="enable-runtime-library=false" k.mlir \\
      | mlir-runner-22 -e main -entry-point-result=void \\
          -shared-libs=<llvm-22>/lib/libmlir_c_runner_utils.so.22.1,<llvm-22>/lib/libmlir_runner_utils.so.22.1

prints the numbers. `lower_with_mlir_opt`, `run_with_mlir_runner` and
`parse_runner_output` do exactly that from Python.

Numerics follow sparsec's `sparsec.matmul`: f16/bf16 operands accumulate in f32 (the
f32 `outs` of `linalg.matmul` extends them) and round once with `arith.truncf`;
integer operands are sign-extended and accumulate in i32. Float constants are written
as the shortest decimal that every MLIR parse path (decimal -> f64 -> element type, or
decimal -> element type) reads back as the same value; non-finite values as their bit
pattern; tensors over `DECIMAL_LIMIT` elements as MLIR's little-endian hex blob.

Why some things are as they are (LLVM 22 behaviour, checked against mlir-opt-22):
  * `enable-runtime-library=false`: the runtime library crashes on assembled n:m tensors.
  * n:m (`structured[n, m]`) tensors need exactly n stored entries per block, so a
    dense -> n:m `sparse_tensor.convert` (which drops zeros) corrupts blocks with fewer
    nonzeros; they are built with `sparse_tensor.assemble` from padded level buffers in
    level space plus `sparse_tensor.reinterpret_map` (a direct assemble or convert to a
    permuted block map, e.g. n:m along K of a K x N weight, fails in LLVM 22 with
    "Level size mismatch between source/dest tensors").
  * n:m over a dimension of exactly m elements (K = 4 for 2:4) is exported without its
    single-block level: LLVM 22's sparsifier folds `k floordiv 4` to 0 there and then
    rejects the non-invertible maps; the storage is the same.
  * `printMemrefF32/F64` print 6 significant digits; `print_bits=True` prints f32/f64
    outputs as their i32/i64 bit patterns instead, which `parse_runner_output` turns
    back into exact values. f16/bf16 prints are exact; integers are exact.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, NoneAttr, TensorType
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.ir.affine import (
    AffineBinaryOpExpr,
    AffineBinaryOpKind,
    AffineConstantExpr,
    AffineDimExpr,
    AffineExpr,
    AffineMap,
)

from sparsec.dialects import block
from sparsec.dialects.formats import BitmapAttr, RcscAttr, describe, layout_of
from sparsec.dialects.sparse_tensor import (
    LevelType,
    SparseTensorEncodingAttr,
    csc,
    csr,
)
from sparsec.dialects.sparsec import (
    OUTPUTS_ATTR,
    InputOp,
    MatmulOp,
    ParamOp,
    element_type_name,
    output_names,
)
from sparsec.tensors.datastore import DataStore, store_key
from sparsec.tensors.dtypes import round_to_bf16

__all__ = [
    "DECIMAL_LIMIT",
    "MLIR_OPT",
    "MLIR_RUNNER",
    "SPARSIFIER_OPTIONS",
    "MlirExportError",
    "MlirToolError",
    "check_with_mlir_opt",
    "export_mlir",
    "lower_with_mlir_opt",
    "mlir_opt_command",
    "mlir_runner_command",
    "parse_runner_output",
    "run_exported",
    "run_with_mlir_runner",
    "runtime_libraries",
]

MLIR_OPT = "mlir-opt-22"
MLIR_RUNNER = "mlir-runner-22"
SPARSIFIER_OPTIONS = "enable-runtime-library=false"
"""`--sparsifier` options: direct code generation, no sparse runtime library."""

RUNTIME_LIBRARIES = ("mlir_c_runner_utils", "mlir_runner_utils")
"""Libraries mlir-runner loads (`printMemref*` and the C support they call);
Debian ships them in `libmlir-22` as `/usr/lib/llvm-22/lib/lib<name>.so.22.1`."""

DECIMAL_LIMIT = 1 << 16
"""Constants with more elements are written as a hex blob (`dense<"0x...">`)."""

OUTPUT_LABEL = "# sparsec output"
"""Prefix of the line `@main` prints before each output (parsed back by
`parse_runner_output`)."""

_TOOL_TIMEOUT_S = 600.0
_FLOAT_TYPES = ("f64", "f32", "f16", "bf16")
_BIT_PATTERN_TYPES = {"f32": "i32", "f64": "i64"}
_PRINT_FUNCTIONS = {
    "f64": "printMemrefF64", "f32": "printMemrefF32", "f16": "printMemrefF16",
    "bf16": "printMemrefBF16", "i64": "printMemrefI64", "i32": "printMemrefI32",
    "i16": "printMemrefI16", "i8": "printMemrefI8",
}
_CARRIERS = {
    "f64": np.float64, "f32": np.float32, "f16": np.float16, "bf16": np.float32,
    "i64": np.int64, "i32": np.int32, "i16": np.int16, "i8": np.int8,
    "index": np.int64,  # MLIR stores `index` elements of dense data as 64 bits
}
_SUPPORTED_OPS = ("sparsec.input, sparsec.param, sparsec.matmul, sparsec.add, sparsec.mul, "
                  "sparsec.exp, sparsec.silu, sparsec.gelu, sparsec.rmsnorm, func.return")


class MlirExportError(Exception):
    """The kernel IR (or its data) cannot be written as upstream MLIR; says why."""


class MlirToolError(RuntimeError):
    """mlir-opt-22 or mlir-runner-22 is missing or failed; carries the tool's stderr."""


# ===----------------------------------------------------------------------=== #
# Public entry points
# ===----------------------------------------------------------------------=== #


def export_mlir(module: ModuleOp, store: DataStore, *, inline_data: bool = False,
                source: str | None = None, print_bits: bool = False) -> str:
    """Upstream-MLIR text of every kernel of `module` (kernel IR, before lowering).

    `inline_data` puts param values in the kernels and input values in a `@main`
    that runs the kernels and prints their outputs; `source` (the spec path) goes into
    the header comments; `print_bits` makes `@main` print f32/f64 outputs as bit
    patterns (exact, for `parse_runner_output`) instead of 6-digit decimals.
    Raises `MlirExportError` for ops or formats with no upstream equivalent.
    """
    kernels = [op for op in module.ops if isinstance(op, func.FuncOp)]
    if not kernels:
        raise MlirExportError("the module has no kernel function to export")
    if inline_data and any(k.sym_name.data == "main" for k in kernels):
        raise MlirExportError("a kernel is named 'main', which clashes with the @main "
                              "driver that --inline-data adds; rename the kernel")
    aliases = _Aliases()
    bodies = [_KernelWriter(k, store, aliases, inline_data).write() for k in kernels]
    main = ["", *_main_function(bodies, aliases, print_bits)] if inline_data else []
    lines = [f"// sparsec export of {k.name} ({source or 'spec path unknown'})" for k in bodies]
    lines += _usage_comment(inline_data)
    lines += aliases.definitions()
    for kernel in bodies:
        lines += ["", *kernel.lines]
    return "\n".join([*lines, *main]) + "\n"


def mlir_opt_command(*extra: str) -> list[str]:
    """The mlir-opt-22 command line (reading stdin) with `extra` options."""
    return [_find_tool(MLIR_OPT), *extra, "-"]


def check_with_mlir_opt(text: str, *options: str) -> str:
    """Parse and verify `text` with plain mlir-opt-22 (plus printing `options`);
    return what it prints."""
    return _run_tool(mlir_opt_command(*options), text, "parse and verify")


def lower_with_mlir_opt(text: str) -> str:
    """Lower exported MLIR to the LLVM dialect with `mlir-opt-22 --sparsifier`."""
    return _run_tool(mlir_opt_command(f"--sparsifier={SPARSIFIER_OPTIONS}"), text,
                     "lower with the sparsifier")


def runtime_libraries() -> list[Path]:
    """Paths of the shared libraries mlir-runner-22 needs for `printMemref*`.

    Looked up next to the runner binary (`<llvm-22>/lib`), or in the folder named
    by SPARSEC_MLIR_LIB_DIR; the versioned `.so.22.1` files of Debian's libmlir-22
    are enough (the unversioned `.so` links come with libmlir-22-dev).
    """
    folder = _library_folder()
    found: list[Path] = []
    for name in RUNTIME_LIBRARIES:
        candidates = sorted(folder.glob(f"lib{name}.so*"), key=lambda p: len(p.name))
        if not candidates:
            raise MlirToolError(f"lib{name}.so not found in {folder}; install Debian's "
                                "libmlir-22 (or set SPARSEC_MLIR_LIB_DIR to the folder)")
        found.append(candidates[0])
    return found


def mlir_runner_command() -> list[str]:
    """The mlir-runner-22 command line that runs `@main` of a lowered module on stdin."""
    libs = ",".join(str(p) for p in runtime_libraries())
    return [_find_tool(MLIR_RUNNER), "-e", "main", "-entry-point-result=void",
            f"-shared-libs={libs}", "-"]


def run_with_mlir_runner(text: str) -> list[np.ndarray]:
    """Run a lowered module (see `lower_with_mlir_opt`) and return the outputs it printed."""
    stdout = _run_tool(mlir_runner_command(), text, "run")
    return parse_runner_output(stdout)


def run_exported(text: str) -> list[np.ndarray]:
    """Lower exported `inline_data` text and run it: the outputs, kernel by kernel."""
    return run_with_mlir_runner(lower_with_mlir_opt(text))


# ===----------------------------------------------------------------------=== #
# Encodings: aliases and formats MLIR lacks
# ===----------------------------------------------------------------------=== #


class _Aliases:
    """Named `#alias = #sparse_tensor.encoding<...>` definitions, in first-use order."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}

    def name(self, encoding: SparseTensorEncodingAttr, base: str | None = None) -> str:
        """The alias of `encoding`, named `base` (or after its structure) when new."""
        text = str(encoding)
        if text in self._names:
            return self._names[text]
        base = base or _alias_base(encoding)
        taken = set(self._names.values())
        name, index = base, 1
        while name in taken:
            name, index = f"{base}_{index}", index + 1
        self._names[text] = name
        return name

    def definitions(self) -> list[str]:
        if not self._names:
            return []
        return ["", *(f"#{name} = {text}" for text, name in self._names.items())]


def _alias_base(encoding: SparseTensorEncodingAttr) -> str:
    """A conventional name (CSR, CSC, NM_2_4, ...) for an encoding's level structure."""
    lvls = [lvl.without_storage_irrelevant_properties() for lvl in encoding.level_types]
    if lvls and lvls[-1].is_structured:
        return f"NM_{lvls[-1].n}_{lvls[-1].m}"
    if encoding.is_block_sparsity():
        return "BSR"
    if encoding.is_coo():
        return "COO"
    shapes = {
        (LevelType.dense(), LevelType.compressed()): "CSR",
        (LevelType.compressed(), LevelType.compressed()): "DCSR",
    }
    base = shapes.get(tuple(lvls), "SPARSE")
    if base == "SPARSE" or encoding.is_identity():
        return base
    return base.replace("R", "C") if encoding.is_permutation() else "SPARSE"


@dataclass(frozen=True)
class _Format:
    """How one tensor is exported: its MLIR encoding (None: dense) and what was dropped."""

    encoding: SparseTensorEncodingAttr | None
    note: str | None = None


def _export_format(ttype: TensorType) -> _Format:
    """The upstream format of a tensor type: its own sparse_tensor encoding, or the
    nearest MLIR layout of a sparsec-only format (bitmap, rcsc, codebook, quantized)."""
    encoding = ttype.encoding
    if isinstance(encoding, NoneAttr):
        return _Format(None)
    shape = tuple(ttype.get_shape())
    fmt = (_Format(encoding) if isinstance(encoding, SparseTensorEncodingAttr)
           else _nearest_format(encoding, len(shape)))
    folded = _fold_single_block(fmt.encoding, shape) if fmt.encoding is not None else None
    if folded is None:
        return fmt
    note = ("n:m over a dimension of exactly m elements: the single-block level is "
            "folded away (same storage; LLVM 22's sparsifier rejects `d floordiv m` "
            "over a level of size 1)")
    return _Format(folded, f"{fmt.note}; {note}" if fmt.note else note)


def _fold_single_block(encoding: SparseTensorEncodingAttr, shape: tuple[int, ...]
                       ) -> SparseTensorEncodingAttr | None:
    """`(.., d floordiv m : dense, d mod m : structured[n, m])` with `d` of size m as
    `(.., d : structured[n, m])`, or None when the encoding is not of that form."""
    lvls = encoding.level_types
    results = encoding.dim_to_lvl_map.results
    if len(lvls) < 2 or not lvls[-1].is_structured or not lvls[-2].is_dense:
        return None
    block, within = results[-2], results[-1]
    if not (isinstance(block, AffineBinaryOpExpr) and isinstance(within, AffineBinaryOpExpr)):
        return None
    if block.kind is not AffineBinaryOpKind.FloorDiv or within.kind is not AffineBinaryOpKind.Mod:
        return None
    dim = within.lhs
    if not isinstance(dim, AffineDimExpr) or block.lhs != dim:
        return None
    if shape[dim.position] != lvls[-1].m:
        return None
    amap = AffineMap(encoding.dim_rank, 0, (*results[:-2], dim))
    return SparseTensorEncodingAttr([*lvls[:-2], lvls[-1]], amap,
                                    pos_width=encoding.pos_bitwidth,
                                    crd_width=encoding.crd_bitwidth)


def _nearest_format(encoding: Attribute, rank: int) -> _Format:
    """The MLIR layout closest to a sparsec-only format, with a note naming the loss.

    A codebook or quantized encoding exports its nested layout with the values as the
    DataStore holds them (the logical, dequantized values in the tensor's element
    type); a bitmap exports as CSR (CSC for column order), an rcsc as CSC.
    """
    label = describe(encoding)
    layout = layout_of(encoding)
    notes: list[str] = []
    if layout is not encoding:
        notes.append("values exported dequantized (the logical values, in the tensor's "
                     "element type); the codes and their codebook or scales are dropped")
    mlir, layout_note = _nearest_layout(layout, rank)
    if layout_note:
        notes.append(layout_note)
    return _Format(mlir, f"sparsec {label}: " + "; ".join(notes))


def _nearest_layout(layout: Attribute | None, rank: int
                    ) -> tuple[SparseTensorEncodingAttr | None, str | None]:
    """An MLIR encoding (None: dense) for a layout, and what that drops."""
    if layout is None or isinstance(layout, SparseTensorEncodingAttr):
        return layout, None
    if isinstance(layout, BitmapAttr) and rank == 2:
        column = layout.order_name == "col"
        return (csc() if column else csr()), (
            f"bitmap exported as {'CSC' if column else 'CSR'} (the same nonzeros, with "
            "coordinates instead of the bit mask)")
    if isinstance(layout, BitmapAttr) and rank == 1:
        return (SparseTensorEncodingAttr(["compressed"]),
                "bitmap exported as a compressed vector (coordinates instead of the bit mask)")
    if isinstance(layout, RcscAttr):
        return csc(), ("rcsc exported as CSC (its relative indices, PE "
                       "interleaving and padding entries are dropped)")
    return None, f"{describe(layout)} has no MLIR layout; exported dense"


# ===----------------------------------------------------------------------=== #
# Writing one kernel
# ===----------------------------------------------------------------------=== #


@dataclass
class _Tensor:
    """An SSA tensor of the exported function: its name and type pieces."""

    name: str
    shape: tuple[int, ...]
    element: str
    fmt: _Format
    alias: str | None

    def type_text(self, *, dense: bool = False, element: str | None = None) -> str:
        return _tensor_text(self.shape, element or self.element,
                            None if dense else self.alias)


@dataclass
class _Binding:
    """One `in`/`param` of a kernel: symbol, role and the exported tensor."""

    symbol: str
    role: str
    tensor: _Tensor
    values: np.ndarray | None
    summary: str


@dataclass
class _Kernel:
    """A written kernel: its lines plus what `@main` needs to call it."""

    name: str
    lines: list[str]
    arguments: list[_Binding]
    results: list[tuple[str, _Tensor]]


@dataclass
class _Names:
    """Unique SSA names: a symbol keeps its own name when it is free."""

    used: set[str] = field(default_factory=set)

    def fresh(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_$.-]", "_", base) or "v"
        if base[0].isdigit():
            base = f"v{base}"
        name, index = base, 1
        while name in self.used:
            name, index = f"{base}_{index}", index + 1
        self.used.add(name)
        return name


class _KernelWriter:
    """Writes one kernel function as upstream MLIR text."""

    def __init__(self, function: func.FuncOp, store: DataStore, aliases: _Aliases,
                 inline_data: bool):
        self.function = function
        self.kernel = function.sym_name.data
        self.store = store
        self.aliases = aliases
        self.inline_data = inline_data
        self.names = _Names()
        self.values: dict[SSAValue, _Tensor] = {}
        self.body: list[str] = []
        self.bindings: list[_Binding] = []
        self.to_release: list[_Tensor] = []

    def write(self) -> _Kernel:
        for op in self.function.body.ops:
            self._op(op)
        return self._finish()

    # -- ops -------------------------------------------------------------- #

    def _op(self, op: Operation) -> None:
        if isinstance(op, InputOp | ParamOp):
            self._bind(op)
            return
        if isinstance(op, MatmulOp):
            self._matmul(op)
            return
        if isinstance(op, _ELEMENTWISE_OPS):
            self._elementwise(op)
            return
        if isinstance(op, block.RmsNormOp):
            self._rmsnorm(op)
            return
        if isinstance(op, func.ReturnOp):
            return
        raise MlirExportError(
            f"kernel '{self.kernel}': {op.name} has no upstream-MLIR export (supported: "
            f"{_SUPPORTED_OPS}); export the kernel IR before lowering to a target")

    def _tensor(self, value: SSAValue, base: str) -> _Tensor:
        ttype = value.type
        if not isinstance(ttype, TensorType):
            raise MlirExportError(f"kernel '{self.kernel}': {base} is not a tensor ({ttype})")
        fmt = _export_format(ttype)
        alias = self.aliases.name(fmt.encoding) if fmt.encoding is not None else None
        shape = tuple(ttype.get_shape())
        tensor = _Tensor(self.names.fresh(base), shape, element_type_name(ttype.element_type),
                         fmt, alias)
        self.values[value] = tensor
        return tensor

    def _bind(self, op: InputOp | ParamOp) -> None:
        role = "param" if isinstance(op, ParamOp) else "in"
        tensor = self._tensor(op.result, op.sym_name)
        key = store_key(self.kernel, op.sym_name)
        values = self.store.get(key) if self.inline_data else None
        binding = _Binding(op.sym_name, role, tensor, values, _summary(op))
        self.bindings.append(binding)
        if role == "param" and self.inline_data:
            assert values is not None
            self.body += _materialize(tensor, values, self.names, self.aliases, "  ")
            if tensor.fmt.encoding is not None and not _is_structured(tensor.fmt.encoding):
                self.to_release.append(tensor)

    def _matmul(self, op: MatmulOp) -> None:
        lhs, rhs = self.values[op.lhs], self.values[op.rhs]
        result = self._tensor(op.result, op.result.name_hint or "mm")
        element = result.element
        acc_element = "f32" if element in ("f16", "bf16") else element
        base = result.name
        zero = self.names.fresh(f"{base}_zero")
        empty = self.names.fresh(f"{base}_empty")
        init = self.names.fresh(f"{base}_init")
        acc_type = _tensor_text(result.shape, acc_element)
        zero_text = "0.0" if acc_element in _FLOAT_TYPES else "0"
        self.body += [
            f"  %{zero} = arith.constant {zero_text} : {acc_element}",
            f"  %{empty} = tensor.empty() : {acc_type}",
            f"  %{init} = linalg.fill ins(%{zero} : {acc_element}) outs(%{empty} : "
            f"{acc_type}) -> {acc_type}",
        ]
        needs_round = acc_element != element
        needs_format = result.alias is not None
        product = self.names.fresh(f"{base}_acc") if needs_round or needs_format else base
        maps = _indexing_maps(bool(op.transpose_a), bool(op.transpose_b))
        self.body.append(
            f"  %{product} = linalg.matmul{maps} ins(%{lhs.name}, %{rhs.name} : "
            f"{lhs.type_text()}, {rhs.type_text()}) outs(%{init} : {acc_type}) -> {acc_type}")
        if needs_round:
            rounded = self.names.fresh(f"{base}_rounded") if needs_format else base
            out_empty = self.names.fresh(f"{base}_{element}_empty")
            dense_type = result.type_text(dense=True)
            self.body += [
                f"  %{out_empty} = tensor.empty() : {dense_type}",
                f"  %{rounded} = linalg.map {{ arith.truncf }} ins(%{product} : {acc_type}) "
                f"outs(%{out_empty} : {dense_type})",
            ]
            product = rounded
        if needs_format:
            self.body.append(f"  %{base} = sparse_tensor.convert %{product} : "
                             f"{result.type_text(dense=True)} to {result.type_text()}")

    def _float_result(self, op: Operation) -> _Tensor:
        """The op's result as a dense f32/f64 tensor (the forms the block ops export in)."""
        result = self._tensor(op.results[0], op.results[0].name_hint or "v")
        operands = [self.values[v] for v in op.operands]
        if result.element not in ("f32", "f64") or any(
                t.alias is not None or t.element != result.element for t in [result, *operands]):
            raise MlirExportError(
                f"kernel '{self.kernel}': {op.name} exports for dense f32 and f64 tensors "
                f"only, got {', '.join(t.type_text() for t in [*operands, result])}")
        return result

    def _generic(self, result: _Tensor, inputs: list[_Tensor], maps: list[str],
                 iterators: list[str], out: tuple[str, str], body: list[str],
                 name: str) -> None:
        """`%name = linalg.generic` over `inputs` into `out` (name, type) with `body`
        (lines computing `%r` from the block arguments `%a0, %a1, ...` and `%o`)."""
        element = result.element
        args = ", ".join([f"%a{i}: {element}" for i in range(len(inputs))] + [f"%o: {element}"])
        ins = ", ".join(f"%{t.name}" for t in inputs)
        in_types = ", ".join(t.type_text() for t in inputs)
        self.body += [
            f"  %{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], "
            f"iterator_types = [{', '.join(f'{chr(34)}{i}{chr(34)}' for i in iterators)}]}} "
            f"ins({ins} : {in_types}) outs(%{out[0]} : {out[1]}) {{",
            f"  ^bb0({args}):",
            *[f"    {line}" for line in body],
            f"    linalg.yield %r : {element}",
            f"  }} -> {out[1]}",
        ]

    def _elementwise(self, op: Operation) -> None:
        """add, mul, exp, silu, gelu as one linalg.generic; broadcast operands read a
        constant 0 index on their size-1 (or missing) dimensions."""
        result = self._float_result(op)
        inputs = [self.values[v] for v in op.operands]
        rank = len(result.shape)
        dims = ", ".join(f"d{i}" for i in range(rank))
        maps = [_broadcast_map(t.shape, result.shape) for t in inputs]
        maps.append(f"affine_map<({dims}) -> ({dims})>")
        empty = self.names.fresh(f"{result.name}_empty")
        self.body.append(f"  %{empty} = tensor.empty() : {result.type_text()}")
        body = _ELEMENT_BODIES[op.name](op, result.element)
        self._generic(result, inputs, maps, ["parallel"] * rank,
                      (empty, result.type_text()), body, result.name)

    def _rmsnorm(self, op: block.RmsNormOp) -> None:
        """Sum of squares per row (a reduction), then x * rsqrt(sum / d + eps) * weight."""
        result = self._float_result(op)
        x, w = self.values[op.input], self.values[op.weight]
        element, rank, width = result.element, len(result.shape), result.shape[-1]
        dims = [f"d{i}" for i in range(rank)]
        rows = _tensor_text(result.shape[:-1], element)
        every = f"affine_map<({', '.join(dims)}) -> ({', '.join(dims)})>"
        per_row = f"affine_map<({', '.join(dims)}) -> ({', '.join(dims[:-1])})>"
        per_col = f"affine_map<({', '.join(dims)}) -> ({dims[-1]})>"
        zero, init, sums = (self.names.fresh(f"{result.name}_{n}") for n in ("zero", "init",
                                                                              "sumsq"))
        row_empty, empty = (self.names.fresh(f"{result.name}_{n}") for n in ("rows", "empty"))
        self.body += [
            f"  %{zero} = arith.constant 0.0 : {element}",
            f"  %{row_empty} = tensor.empty() : {rows}",
            f"  %{init} = linalg.fill ins(%{zero} : {element}) outs(%{row_empty} : {rows}) "
            f"-> {rows}",
        ]
        self._generic(result, [x], [every, per_row], ["parallel"] * (rank - 1) + ["reduction"],
                      (init, rows), [f"%sq = arith.mulf %a0, %a0 : {element}",
                                     f"%r = arith.addf %sq, %o : {element}"], sums)
        sums_tensor = _Tensor(sums, result.shape[:-1], element, _Format(None), None)
        self.body.append(f"  %{empty} = tensor.empty() : {result.type_text()}")
        self._generic(result, [x, sums_tensor, w], [every, per_row, per_col, every],
                      ["parallel"] * rank, (empty, result.type_text()), [
                          f"%d = arith.constant {_float_text(float(width))} : {element}",
                          f"%eps = arith.constant {_float_text(op.eps.value.data)} : {element}",
                          f"%mean = arith.divf %a1, %d : {element}",
                          f"%v = arith.addf %mean, %eps : {element}",
                          f"%inv = math.rsqrt %v : {element}",
                          f"%n = arith.mulf %a0, %inv : {element}",
                          f"%r = arith.mulf %n, %a2 : {element}"], result.name)

    # -- function --------------------------------------------------------- #

    def _finish(self) -> _Kernel:
        returned = self._returned()
        arguments = [b for b in self.bindings if b.role == "in" or not self.inline_data]
        names = output_names(self.function.attributes.get(OUTPUTS_ATTR), len(returned))
        results = list(zip(names, returned, strict=True))
        signature = ", ".join(f"%{b.tensor.name}: {b.tensor.type_text()}" for b in arguments)
        result_types = ", ".join(t.type_text() for t in returned)
        if len(returned) != 1:
            result_types = f"({result_types})"
        lines = self._comments(results)
        lines.append(f"func.func @{self.kernel}({signature}) -> {result_types} {{")
        lines += self.body
        returned_ids = {id(t) for t in returned}
        lines += [f"  bufferization.dealloc_tensor %{t.name} : {t.type_text()}"
                  for t in self.to_release if id(t) not in returned_ids]
        values = ", ".join(f"%{t.name}" for t in returned)
        types = ", ".join(t.type_text() for t in returned)
        lines += [f"  return {values} : {types}" if returned else "  return", "}"]
        return _Kernel(self.kernel, lines, arguments, results)

    def _returned(self) -> list[_Tensor]:
        terminator = self.function.body.block.last_op
        if not isinstance(terminator, func.ReturnOp):
            raise MlirExportError(f"kernel '{self.kernel}' does not end with func.return")
        return [self.values[v] for v in terminator.arguments]

    def _comments(self, results: list[tuple[str, _Tensor]]) -> list[str]:
        lines = [f"// Kernel {self.kernel}:"]
        for b in self.bindings:
            where = "constant" if b.role == "param" and self.inline_data else "argument"
            lines.append(f"//   {b.role:<5} {b.symbol}: {b.tensor.type_text()} ({where}"
                         f"{', ' + b.summary if b.summary else ''})")
            if b.tensor.fmt.note:
                lines.append(f"//     {b.tensor.fmt.note}")
            if where == "argument" and _is_structured_tensor(b.tensor):
                lines.append("//     n:m argument: store exactly n entries per block (pad "
                             "sparser blocks with explicit zeros)")
        lines += [f"//   out   {name}: {t.type_text()}" for name, t in results]
        return lines


def _broadcast_map(shape: tuple[int, ...], result: tuple[int, ...]) -> str:
    """The indexing map reading an operand of `shape` broadcast to `result` (numpy rule:
    aligned at the last dimension; a size-1 dimension under a larger one reads index 0)."""
    rank, offset = len(result), len(result) - len(shape)
    exprs = ["0" if size == 1 and result[j + offset] != 1 else f"d{j + offset}"
             for j, size in enumerate(shape)]
    dims = ", ".join(f"d{i}" for i in range(rank))
    return f"affine_map<({dims}) -> ({', '.join(exprs)})>"


def _float_text(value: float) -> str:
    """A float literal MLIR parses back to the same double (it needs a decimal point)."""
    return f"{value:.17e}"


def _gelu_body(op: Operation, element: str) -> list[str]:
    head = [f"%half = arith.constant 5.0e-01 : {element}",
            f"%one = arith.constant 1.0 : {element}"]
    tail = [f"%p = arith.addf %one, %g : {element}", f"%h = arith.mulf %a0, %half : {element}",
            f"%r = arith.mulf %h, %p : {element}"]
    if op.form == "tanh":  # type: ignore[attr-defined]
        return head + [
            f"%c = arith.constant {_float_text(math.sqrt(2 / math.pi))} : {element}",
            f"%k = arith.constant 4.4715e-02 : {element}",
            f"%x2 = arith.mulf %a0, %a0 : {element}", f"%x3 = arith.mulf %x2, %a0 : {element}",
            f"%kx3 = arith.mulf %k, %x3 : {element}", f"%in = arith.addf %a0, %kx3 : {element}",
            f"%s = arith.mulf %c, %in : {element}", f"%g = math.tanh %s : {element}", *tail]
    return head + [f"%c = arith.constant {_float_text(1 / math.sqrt(2))} : {element}",
                   f"%s = arith.mulf %a0, %c : {element}", f"%g = math.erf %s : {element}",
                   *tail]


_ELEMENT_BODIES: dict[str, Any] = {
    "sparsec.add": lambda op, e: [f"%r = arith.addf %a0, %a1 : {e}"],
    "sparsec.mul": lambda op, e: [f"%r = arith.mulf %a0, %a1 : {e}"],
    "sparsec.exp": lambda op, e: [f"%r = math.exp %a0 : {e}"],
    "sparsec.silu": lambda op, e: [f"%one = arith.constant 1.0 : {e}",
                                   f"%n = arith.negf %a0 : {e}", f"%x = math.exp %n : {e}",
                                   f"%d = arith.addf %one, %x : {e}",
                                   f"%r = arith.divf %a0, %d : {e}"],
    "sparsec.gelu": _gelu_body,
}
"""Body of the linalg.generic of each elementwise op (block arguments %a0, %a1)."""
_ELEMENTWISE_OPS = (block.AddOp, block.MulOp, block.ExpOp, block.SiluOp, block.GeluOp)


def _summary(op: InputOp | ParamOp) -> str:
    """nnz, density and pass effects of a binding, for its comment line."""
    parts: list[str] = []
    if isinstance(op, ParamOp) and op.nnz is not None:
        parts.append(f"nnz={op.nnz.value.data}")
    if isinstance(op, ParamOp) and op.density is not None:
        parts.append(f"density={op.density.value.data:.4g}")
    for effect in op.effect_list():
        text = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in effect.items())
        parts.append(f"[{text}]")
    return ", ".join(parts)


def _indexing_maps(transpose_a: bool, transpose_b: bool) -> str:
    """`linalg.matmul` indexing maps for transposed operands ('' for a plain matmul)."""
    if not transpose_a and not transpose_b:
        return ""
    a = "(k, m)" if transpose_a else "(m, k)"
    b = "(n, k)" if transpose_b else "(k, n)"
    return (f" indexing_maps = [affine_map<(m, n, k) -> {a}>, "
            f"affine_map<(m, n, k) -> {b}>, affine_map<(m, n, k) -> (m, n)>]")


def _tensor_text(shape: Sequence[int], element: str, alias: str | None = None) -> str:
    dims = "".join(f"{d}x" for d in shape)
    return f"tensor<{dims}{element}{', #' + alias if alias else ''}>"


# ===----------------------------------------------------------------------=== #
# Constants
# ===----------------------------------------------------------------------=== #


def _materialize(tensor: _Tensor, values: np.ndarray, names: _Names, aliases: _Aliases,
                 indent: str) -> list[str]:
    """Lines binding `%<tensor.name>` to `values` in the tensor's exported type."""
    values = np.asarray(values)
    if tuple(values.shape) != tensor.shape:
        raise MlirExportError(f"data of {tensor.name} has shape {values.shape}, its type "
                              f"says {tensor.shape}")
    encoding = tensor.fmt.encoding
    if encoding is None:
        return [f"{indent}%{tensor.name} = arith.constant "
                f"{_dense_literal(values, tensor.element, indent)} : {tensor.type_text()}"]
    if _is_structured(encoding):
        return _assemble_structured(tensor, encoding, values, names, aliases, indent)
    dense = names.fresh(f"{tensor.name}_dense")
    return [
        f"{indent}%{dense} = arith.constant {_dense_literal(values, tensor.element, indent)}"
        f" : {tensor.type_text(dense=True)}",
        f"{indent}%{tensor.name} = sparse_tensor.convert %{dense} : "
        f"{tensor.type_text(dense=True)} to {tensor.type_text()}",
    ]


def _is_structured(encoding: SparseTensorEncodingAttr) -> bool:
    return any(lvl.is_structured for lvl in encoding.level_types)


def _assemble_structured(tensor: _Tensor, encoding: SparseTensorEncodingAttr,
                         values: np.ndarray, names: _Names, aliases: _Aliases,
                         indent: str) -> list[str]:
    """An n:m tensor from padded level buffers: assemble in level space, then view it
    through the dimension-to-level map (`sparse_tensor.reinterpret_map`)."""
    lvls = encoding.level_types
    if not all(lvl.is_dense for lvl in lvls[:-1]) or not lvls[-1].is_structured:
        raise MlirExportError(f"{tensor.name}: only n:m formats with dense outer levels "
                              f"and one structured innermost level are exported, got {encoding}")
    coords, stored = _structured_buffers(tensor.name, encoding, values)
    lvl_shape = encoding.lvl_shape(tensor.shape)
    lvl_encoding = SparseTensorEncodingAttr(list(lvls), pos_width=encoding.pos_bitwidth,
                                            crd_width=encoding.crd_bitwidth)
    crd_element = f"i{encoding.crd_bitwidth}" if encoding.crd_bitwidth else "index"
    crd, val = names.fresh(f"{tensor.name}_crd"), names.fresh(f"{tensor.name}_values")
    crd_type = _tensor_text(coords.shape, crd_element)
    val_type = _tensor_text(stored.shape, tensor.element)
    lvl_alias = aliases.name(lvl_encoding, f"{tensor.alias}_levels")
    lvl_type = _tensor_text(lvl_shape, tensor.element, lvl_alias)
    lines = [
        f"{indent}// {tensor.name}: {lvls[-1]} keeps exactly {lvls[-1].n} entries per block "
        "(explicit zeros pad sparser blocks)",
        f"{indent}%{crd} = arith.constant {_dense_literal(coords, crd_element, indent)} : "
        f"{crd_type}",
        f"{indent}%{val} = arith.constant {_dense_literal(stored, tensor.element, indent)} "
        f": {val_type}",
    ]
    if encoding.is_identity():
        return lines + [f"{indent}%{tensor.name} = sparse_tensor.assemble (%{crd}), %{val} : "
                        f"({crd_type}), {val_type} to {tensor.type_text()}"]
    lvl_name = names.fresh(f"{tensor.name}_levels")
    return lines + [
        f"{indent}%{lvl_name} = sparse_tensor.assemble (%{crd}), %{val} : ({crd_type}), "
        f"{val_type} to {lvl_type}",
        f"{indent}%{tensor.name} = sparse_tensor.reinterpret_map %{lvl_name} : {lvl_type} "
        f"to {tensor.type_text()}",
    ]


def _structured_buffers(name: str, encoding: SparseTensorEncodingAttr, values: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates and values of the structured level, in level order, padded so every
    block stores exactly n entries (zeros at its lowest free coordinates)."""
    last = encoding.level_types[-1]
    lvl_shape = encoding.lvl_shape(values.shape)
    grids = [g.ravel() for g in np.indices(values.shape)]
    lvl_coords = [_eval_affine(e, grids) for e in encoding.dim_to_lvl_map.results]
    block = np.ravel_multi_index(lvl_coords[:-1], lvl_shape[:-1])
    blocks = np.zeros((math.prod(lvl_shape[:-1]), lvl_shape[-1]), dtype=values.dtype)
    blocks[block, lvl_coords[-1]] = values.ravel()
    counts = np.count_nonzero(blocks, axis=1)
    if counts.max(initial=0) > last.n:
        worst = int(np.argmax(counts))
        raise MlirExportError(
            f"{name} is not {last.n}:{last.m}: level block {worst} (level coordinates "
            f"{np.unravel_index(worst, lvl_shape[:-1])}) holds {counts[worst]} nonzeros; "
            f"prune it first (prune-nm{{n={last.n} m={last.m}}})")
    order = np.argsort(blocks == 0, axis=1, kind="stable")[:, : last.n]
    coords = np.sort(order, axis=1)
    stored = np.take_along_axis(blocks, coords, axis=1)
    return coords.ravel().astype(np.int64), stored.ravel()


def _eval_affine(expr: AffineExpr, dims: list[np.ndarray]) -> np.ndarray:
    """An affine expression of dimension coordinates, evaluated element-wise."""
    if isinstance(expr, AffineDimExpr):
        return dims[expr.position]
    if isinstance(expr, AffineConstantExpr):
        return np.full_like(dims[0], expr.value)
    if not isinstance(expr, AffineBinaryOpExpr):
        raise MlirExportError(f"cannot evaluate the affine expression {expr} (symbols?)")
    lhs, rhs = _eval_affine(expr.lhs, dims), _eval_affine(expr.rhs, dims)
    kinds = {
        AffineBinaryOpKind.Add: np.add,
        AffineBinaryOpKind.Mul: np.multiply,
        AffineBinaryOpKind.FloorDiv: np.floor_divide,
        AffineBinaryOpKind.Mod: np.mod,
        AffineBinaryOpKind.CeilDiv: lambda a, b: -np.floor_divide(-a, b),
    }
    return kinds[expr.kind](lhs, rhs)


def _dense_literal(values: np.ndarray, element: str, indent: str) -> str:
    """`dense<...>` of `values` as `element`: a splat, nested lists, or a hex blob."""
    flat = values.ravel()
    if flat.size and np.all(flat == flat[0]) and _same_bits(flat, element):
        return f"dense<{_scalar_text(flat[0], element)}>"
    if flat.size > DECIMAL_LIMIT:
        return f'dense<"0x{_blob(values, element)}">'
    texts = _element_texts(flat, element)
    if values.ndim <= 1:
        return f"dense<[{', '.join(texts)}]>"
    rows = np.asarray(texts, dtype=object).reshape(values.shape)
    inner = ",\n".join(f"{indent}    {_nested(row)}" for row in rows)
    return f"dense<[\n{inner}]>"


def _nested(row: np.ndarray) -> str:
    if row.ndim == 1:
        return "[" + ", ".join(row.tolist()) + "]"
    return "[" + ", ".join(_nested(r) for r in row) + "]"


def _same_bits(flat: np.ndarray, element: str) -> bool:
    """Whether all elements have one bit pattern (so -0.0 and 0.0 are no splat)."""
    if element not in _FLOAT_TYPES:
        return True
    return bool(np.all(np.signbit(flat) == np.signbit(flat[0])))


def _blob(values: np.ndarray, element: str) -> str:
    """MLIR's hex form of dense data: the raw little-endian element bytes."""
    if element == "bf16":
        bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16
        return bits.astype("<u2").tobytes().hex().upper()
    carrier = np.dtype(_CARRIERS[element]).newbyteorder("<")
    return np.ascontiguousarray(values, dtype=carrier).tobytes().hex().upper()


def _element_texts(flat: np.ndarray, element: str) -> list[str]:
    """Text of every element, formatting each distinct bit pattern once."""
    if element not in _FLOAT_TYPES:
        return [str(v) for v in flat.astype(np.int64).tolist()]
    width = np.dtype(_CARRIERS[element]).itemsize
    patterns = np.ascontiguousarray(flat, dtype=_CARRIERS[element]).view(f"u{width}")
    _, first, inverse = np.unique(patterns, return_index=True, return_inverse=True)
    texts = [_scalar_text(flat[i], element) for i in first]
    return [texts[i] for i in inverse.ravel()]


def _scalar_text(value: object, element: str) -> str:
    """One element as MLIR reads it back exactly (NaN payloads included)."""
    if element not in _FLOAT_TYPES:
        return str(int(value))  # type: ignore[call-overload]
    carried = np.asarray(value, dtype=_CARRIERS[element])
    if not np.isfinite(carried):
        return _hex_bits(carried, element)
    x = float(carried)
    if x == 0.0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    return _shortest_decimal(x, element)


def _hex_bits(carried: np.ndarray, element: str) -> str:
    """The bit pattern of a float (in its carrier dtype) as an MLIR hex literal."""
    width = carried.dtype.itemsize
    bits = int(carried.view(f"u{width}"))
    if element == "bf16":  # the upper half of the float32 carrier
        return f"0x{bits >> 16:04X}"
    return f"0x{bits:0{2 * width}X}"


def _round_to(x: float, element: str) -> float:
    """`x` rounded to nearest-even in `element` (what MLIR does after parsing as f64)."""
    if element == "f64":
        return x
    if element == "bf16":
        return float(round_to_bf16(np.float64(x)))
    with np.errstate(over="ignore"):
        return float(np.array(x).astype(_CARRIERS[element]))


def _reads_back(text: str, x: float, element: str) -> bool:
    """Whether `text` parses to `x` in `element` both via f64 and directly: the f64
    and its two neighbours must all round to `x` (so no midpoint tie is involved)."""
    d = float(text)
    if element == "f64":
        return d == x
    return all(_round_to(v, element) == x
               for v in (d, np.nextafter(d, -math.inf), np.nextafter(d, math.inf)))


def _shortest_decimal(x: float, element: str) -> str:
    """The shortest decimal that reads back as `x` in `element` (digits, then style)."""
    for precision in range(17):
        digits = np.format_float_scientific(x, precision=precision, unique=False, trim="-")
        if _reads_back(digits, x, element):
            return _pretty(float(digits))
    return repr(x)  # unreachable: 17 significant digits always identify an f64


def _pretty(d: float) -> str:
    """`d` in Python's shortest style, always with a '.', as MLIR's float literal needs."""
    text = repr(d)
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exponent}" if exponent else mantissa


# ===----------------------------------------------------------------------=== #
# @main: run every kernel and print its outputs
# ===----------------------------------------------------------------------=== #


def _main_function(kernels: list[_Kernel], aliases: _Aliases, print_bits: bool) -> list[str]:
    """`@main` calling each kernel on its inlined inputs and printing each output."""
    names = _Names()
    body: list[str] = []
    printers: dict[str, str] = {}
    for kernel in kernels:
        body += _call_kernel(kernel, names, aliases, print_bits, printers)
    declarations = [f"func.func private @{fn}(memref<*x{element}>) "
                    "attributes {llvm.emit_c_interface}"
                    for element, fn in sorted(printers.items(), key=lambda kv: kv[1])]
    return ["// Runs every kernel on its inlined inputs and prints every output.",
            "func.func @main() {", *body, "  return", "}", *declarations]


def _call_kernel(kernel: _Kernel, names: _Names, aliases: _Aliases, print_bits: bool,
                 printers: dict[str, str]) -> list[str]:
    lines: list[str] = []
    arguments: list[_Tensor] = []
    for binding in kernel.arguments:
        assert binding.values is not None
        tensor = _Tensor(names.fresh(f"{kernel.name}_{binding.symbol}"), binding.tensor.shape,
                         binding.tensor.element, binding.tensor.fmt, binding.tensor.alias)
        lines += _materialize(tensor, binding.values, names, aliases, "  ")
        arguments.append(tensor)
    args = ", ".join(f"%{t.name}" for t in arguments)
    arg_types = ", ".join(t.type_text() for t in arguments)
    if not kernel.results:
        return [*lines, f"  call @{kernel.name}({args}) : ({arg_types}) -> ()"]
    result_types = ", ".join(t.type_text() for _, t in kernel.results)
    called = names.fresh(f"{kernel.name}_{kernel.results[0][0]}" if len(kernel.results) == 1
                         else f"{kernel.name}_results")
    count = f":{len(kernel.results)}" if len(kernel.results) > 1 else ""
    if len(kernel.results) != 1:
        result_types = f"({result_types})"
    lines.append(f"  %{called}{count} = call @{kernel.name}({args}) : ({arg_types}) -> "
                 f"{result_types}")
    for index, (name, tensor) in enumerate(kernel.results):
        value = f"%{called}" if len(kernel.results) == 1 else f"%{called}#{index}"
        lines += _print_output(f"{kernel.name}.{name}", value, f"{kernel.name}_{name}", tensor,
                               names, print_bits, printers)
    lines += [f"  bufferization.dealloc_tensor %{t.name} : {t.type_text()}"
              for t in arguments if t.alias is not None and not _is_structured_tensor(t)]
    return lines


def _is_structured_tensor(tensor: _Tensor) -> bool:
    return tensor.fmt.encoding is not None and _is_structured(tensor.fmt.encoding)


def _print_output(label: str, value: str, base: str, tensor: _Tensor, names: _Names,
                  print_bits: bool, printers: dict[str, str]) -> list[str]:
    """Lines printing one output (`value` is its SSA reference): a label line, then
    `printMemref*` of its dense data."""
    lines: list[str] = []
    dense_type = tensor.type_text(dense=True)
    if tensor.alias is not None:
        dense = names.fresh(f"{base}_dense")
        lines.append(f"  %{dense} = sparse_tensor.convert {value} : {tensor.type_text()} "
                     f"to {dense_type}")
        value = f"%{dense}"
    printed_element = tensor.element
    bits = _BIT_PATTERN_TYPES.get(tensor.element) if print_bits else None
    if bits is not None:
        bits_type = tensor.type_text(dense=True, element=bits)
        empty, pattern = names.fresh(f"{base}_bits_empty"), names.fresh(f"{base}_bits")
        lines += [f"  %{empty} = tensor.empty() : {bits_type}",
                  f"  %{pattern} = linalg.map {{ arith.bitcast }} ins({value} : {dense_type}) "
                  f"outs(%{empty} : {bits_type})"]
        value, dense_type, printed_element = f"%{pattern}", bits_type, bits
    suffix = f" as {bits} bits" if bits else ""
    memref = dense_type.replace("tensor<", "memref<", 1)
    buffer, unranked = names.fresh(f"{base}_buffer"), names.fresh(f"{base}_any")
    function = _PRINT_FUNCTIONS[printed_element]
    printers[printed_element] = function
    lines += [
        f'  vector.print str "{OUTPUT_LABEL} {label} : {tensor.type_text(dense=True)}'
        f'{suffix}\\n"',
        f"  %{buffer} = bufferization.to_buffer {value} : {dense_type} to {memref}",
        f"  %{unranked} = memref.cast %{buffer} : {memref} to memref<*x{printed_element}>",
        f"  call @{function}(%{unranked}) : (memref<*x{printed_element}>) -> ()",
    ]
    return lines


def _usage_comment(inline_data: bool) -> list[str]:
    lines = ["// Upstream MLIR (func, linalg, tensor, arith, sparse_tensor encodings); "
             f"lower with: {MLIR_OPT} --sparsifier=\"{SPARSIFIER_OPTIONS}\""]
    if inline_data:
        libs = ",".join(f"/usr/lib/llvm-22/lib/lib{n}.so.22.1" for n in RUNTIME_LIBRARIES)
        lines.append(f"// run with: {MLIR_RUNNER} -e main -entry-point-result=void "
                     f"-shared-libs={libs}")
    return lines


# ===----------------------------------------------------------------------=== #
# Reading what the runner printed
# ===----------------------------------------------------------------------=== #

_LABEL = re.compile(
    rf"^{re.escape(OUTPUT_LABEL)} (?P<name>\S+) : tensor<(?P<dims>(?:\d+x)*)(?P<element>\w+)>"
    r"(?: as (?P<bits>i32|i64) bits)?\s*$", re.MULTILINE)
_HEADER = re.compile(r"Unranked Memref base@ = \S+ rank = (\d+) offset = \d+ "
                     r"sizes = \[([\d, ]*)\] strides = \[[\d, -]*\] data =")
_NUMBER = re.compile(r"[-+]?(?:inf|nan|\d+\.?\d*(?:e[-+]?\d+)?)", re.IGNORECASE)


def parse_runner_output(stdout: str) -> list[np.ndarray]:
    """The outputs `@main` printed, in order, as arrays of sparsec's carrier dtypes
    (bf16 in float32), shaped as printed; raises `MlirToolError` on truncated output."""
    labels = list(_LABEL.finditer(stdout))
    if not labels:
        raise MlirToolError(f"no '{OUTPUT_LABEL}' line in the runner's output:\n{stdout[:2000]}")
    arrays: list[np.ndarray] = []
    for index, label in enumerate(labels):
        end = labels[index + 1].start() if index + 1 < len(labels) else len(stdout)
        arrays.append(_parse_one(label, stdout[label.end():end]))
    return arrays


def _parse_one(label: re.Match[str], text: str) -> np.ndarray:
    name = label["name"]
    header = _HEADER.search(text)
    if header is None:
        raise MlirToolError(f"output {name}: no printMemref header after its label")
    shape = tuple(int(s) for s in header[2].split(",") if s.strip())
    declared = tuple(int(d) for d in label["dims"].split("x") if d)
    if shape != declared:
        raise MlirToolError(f"output {name}: printed shape {shape}, declared {declared}")
    count = math.prod(shape)
    tokens = _NUMBER.findall(text[header.end():])
    if len(tokens) < count:
        raise MlirToolError(f"output {name}: {count} values expected, {len(tokens)} printed")
    tokens = tokens[:count]
    element, bits = label["element"], label["bits"]
    if bits is not None:
        ints = np.array([int(t) for t in tokens], dtype=_CARRIERS[bits])
        return ints.view(_CARRIERS[element]).reshape(shape)
    if element not in _FLOAT_TYPES:
        return np.array([int(t) for t in tokens], dtype=_CARRIERS[element]).reshape(shape)
    floats = np.array([float(t) for t in tokens], dtype=np.float64).reshape(shape)
    if element == "bf16":
        return round_to_bf16(floats)
    return floats.astype(_CARRIERS[element])


# ===----------------------------------------------------------------------=== #
# Running the tools
# ===----------------------------------------------------------------------=== #


def _find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MlirToolError(f"{name} not found on PATH; install Debian's mlir-22-tools "
                            "(apt-get install mlir-22-tools)")
    return path


def _library_folder() -> Path:
    override = os.environ.get("SPARSEC_MLIR_LIB_DIR")
    if override:
        return Path(override)
    runner = Path(os.path.realpath(_find_tool(MLIR_RUNNER)))
    return runner.parent.parent / "lib"


def _run_tool(command: list[str], text: str, purpose: str) -> str:
    """Run an MLIR tool on `text` (stdin); its stdout, or MlirToolError with stderr."""
    shown = " ".join(command)
    try:
        done = subprocess.run(command, input=text, capture_output=True, text=True,
                              timeout=_TOOL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise MlirToolError(f"{shown}: no answer within {_TOOL_TIMEOUT_S:.0f} s "
                            f"(trying to {purpose})") from None
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip()[-2000:] or "(no output)"
        raise MlirToolError(f"{shown} failed to {purpose} (exit {done.returncode}):\n{detail}")
    return done.stdout

