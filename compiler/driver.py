"""Pipeline driver: spec -> kernel IR -> passes -> ISA IR, then execution and checks.

The target is the last pass: `--target 'systolic{rows=16}'` appends
`lower-systolic{rows=16}` to the user's pipeline. The module is verified after every
pass and a failure names the pass. A compiled program is written as `NAME.mlir` plus
`NAME.npz` (its DataStore, including the reference outputs the run checks against).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects import builtin, func
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.parser import Parser
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.arg_spec import ArgSpec, parse_pipeline
from xdsl.utils.exceptions import (
    ArgSpecParseError,
    DiagnosticException,
    InterpretationError,
    ParseError,
)

from sparsec.backends import get_backend
from sparsec.backends.common.backend import (
    Backend,
    IntegerOverflowError,
    dtype_of,
    run_machine,
    run_reference,
)
from sparsec.backends.common.report import Check, Report, check_output
from sparsec.backends.common.spec import AcceleratorSpec, parse_target_string
from sparsec.compiler.builder import build_module
from sparsec.compiler.gc_policy import long_lived_allocations
from sparsec.compiler.guards import (
    CompileError,
    Refused,
    refuse_explicit_lowering,
    refuse_unlowered_ops,
    refuse_unsupported_ops,
    validate_bundle,
)
from sparsec.compiler.ir_text import ir_text, write_ir
from sparsec.compiler.outputs import Outputs, sha256_of
from sparsec.compiler.sources import SourcePrefetch
from sparsec.compiler.spec import SpecFile, parse_spec, parse_spec_file
from sparsec.compiler.universe import SPARSEC_DIALECTS, SPARSEC_PASSES
from sparsec.dialects.sparsec import (
    OUTPUTS_ATTR,
    TARGET_ATTR,
    InputOp,
    ParamOp,
    output_names,
)
from sparsec.tensors.datastore import DataStore, active_store

DEFAULT_TARGET = "systolic"
BUNDLE_ATTR = "sparsec.bundle"
"""Module attribute naming the SHA-256 of the data bundle written with the IR."""
TARGET_PASSES_ATTR = "sparsec.target_passes"
"""Module attribute recording the passes the target appended to the user's pipeline."""
REFERENCE_SUFFIX = "#reference"
"""Store key suffix of a kernel output's numpy reference: `gemm.Y#reference`."""
ORIGINAL_SUFFIX = "#original"
"""Store key suffix of the output of the program before any pass (unpruned, unquantized)."""


def make_context() -> Context:
    """A Context knowing builtin, func and every sparsec dialect.

    sparsec's dialects are registered, not loaded: the parser loads one when it first
    meets its name, so a run imports only the ISA of its own target."""
    ctx = Context()
    ctx.load_dialect(builtin.Builtin)
    ctx.load_dialect(func.Func)
    for name, loader in SPARSEC_DIALECTS.items():
        ctx.register_dialect(name, loader)
    return ctx


def available_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """sparsec's passes plus xDSL's own (canonicalize, cse, ...)."""
    from xdsl.transforms import get_all_passes

    return {**get_all_passes(), **SPARSEC_PASSES}


def parse_pass_pipeline(text: str) -> list[ModulePass]:
    """Passes of an xDSL pipeline string, `a{x=1 y=2},b`, with clean errors."""
    if not text.strip():
        return []  # without loading xDSL's registry of passes
    passes = available_passes()
    try:
        specs = list(parse_pipeline(text))
    except ArgSpecParseError as err:
        detail = str(err).strip().splitlines()[-1].strip()
        raise CompileError(f"bad pipeline '{text}': {detail}") from None
    result: list[ModulePass] = []
    for spec in specs:
        if spec.name not in passes:
            sparsec_names = ", ".join(SPARSEC_PASSES)
            raise CompileError(f"unknown pass '{spec.name}' (sparsec passes: {sparsec_names}; "
                               "`xdsl-opt --help` lists xDSL's)")
        pass_class = passes[spec.name]()
        try:
            result.append(pass_class.from_pass_spec(_floats_for_float_options(pass_class, spec)))
        except (ValueError, TypeError) as err:
            raise CompileError(f"pass '{spec.name}': {err}") from None
    return result


def _floats_for_float_options(pass_class: type[ModulePass], spec: ArgSpec) -> ArgSpec:
    """`prune-magnitude{sparsity=1}`: an int given for a float option is that float (xDSL
    reports "Incompatible types" otherwise). A name the pass does not know is left for
    xDSL to reject."""
    import dataclasses

    if not dataclasses.is_dataclass(pass_class):
        return spec
    floats = {f.name for f in dataclasses.fields(pass_class) if str(f.type) in ("float",
                                                                                "float | None")}
    params = {}
    for key, values in spec.parameters.items():
        if key.replace("-", "_") in floats:
            values = tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                           for v in values)
        params[key] = values
    return ArgSpec(spec.name, params)


@dataclass(frozen=True)
class Target:
    """A resolved target: its backend and the spec its options describe."""

    backend: Backend
    spec: AcceleratorSpec

    @classmethod
    def parse(cls, text: str) -> Target:
        arg_spec = parse_target_string(text)
        backend = get_backend(arg_spec.name)
        return cls(backend, backend.spec_class.from_spec(arg_spec))

    def lowering(self) -> ModulePass:
        """The `lower-<name>` pass carrying this target's full option set."""
        options = {k: (v,) for k, v in self.spec.config().items()}
        return self.backend.lowering_pass.from_pass_spec(
            ArgSpec(self.backend.lowering_pass.name, options))


def pass_names(pipeline: str) -> list[str]:
    """Names of the passes of a pipeline string, in order."""
    return [p.name for p in parse_pass_pipeline(pipeline)]


def target_passes(target: Target, user_pipeline: str) -> str:
    """The passes the target needs (its spec's `prepare()`) that the user's pipeline does
    not already run, as a pipeline string: a pass of the same name on the same operand in
    the user's pipeline means the user chose its options."""
    prepare = target.spec.prepare()
    if not prepare:
        return ""
    chosen = {_pass_key(spec) for spec in parse_pipeline(user_pipeline)} if user_pipeline.strip() else set()
    needed = [str(spec) for spec in parse_pipeline(prepare) if _pass_key(spec) not in chosen]
    return ",".join(needed)


def _pass_key(spec: object) -> tuple[str, str]:
    """A pass and the operand it acts on (`operand`, default b): `quantize{operand=a}`
    in a target's passes is still needed after the user's `quantize` of the weights."""
    operand = getattr(spec, "parameters", {}).get("operand", ("b",))
    return spec.name, str(operand[0]) if operand else "b"


def join_pipelines(*pipelines: str) -> str:
    return ",".join(p for p in pipelines if p)


@dataclass
class CompileOptions:
    pipeline: str | None = None
    target: str | None = None
    target_passes: bool = False
    """Append the passes the target needs (`prepare()`) to the user's pipeline (the CLI
    does by default; the API runs exactly the pipeline it is given unless asked)."""
    print_ir_after_all: bool = False
    print_ir_after: tuple[str, ...] = ()
    lower: bool = True
    compute_reference: bool = True
    defer_data: bool = False
    """Store generated (`random`) data deferred, made only if a pass or an executing run
    reads it: `--no-execute` accounts from shapes without allocating the tensors."""
    ir_stream: IO[str] = field(default_factory=lambda: sys.stderr)


@dataclass
class Compiled:
    """A compiled program: its IR, its data and what the compilation measured."""

    module: ModuleOp
    store: DataStore
    target: Target | None
    pass_times: list[tuple[str, float]] = field(default_factory=list)
    added_passes: str = ""
    """The passes the target added to the user's pipeline (recorded in the IR too)."""


def _spec_default(spec: SpecFile, attribute: str) -> str | None:
    values = {getattr(k, attribute) for k in spec.kernels if getattr(k, attribute)}
    if len(values) > 1:
        raise CompileError(f"{spec.path}: kernels set different {attribute}s "
                           f"({', '.join(sorted(values))}); pass --{attribute} to choose")
    return values.pop() if values else None


def _check_spec_line(spec: SpecFile, attribute: str, check: Callable[[], Any]) -> None:
    """Run `check` on a spec's `pipeline`/`target` line; a mistake is located there."""
    from sparsec.backends import UnknownTargetError
    from sparsec.backends.common.spec import SpecError as TargetError
    from sparsec.compiler.spec import SpecError

    try:
        check()
    except (CompileError, TargetError, UnknownTargetError) as err:
        loc = next((getattr(k, f"{attribute}_loc") for k in spec.kernels
                    if getattr(k, attribute)), None)
        raise SpecError(loc, f"{attribute}: {err}") from None


def compile_spec(path: str | Path, options: CompileOptions) -> Compiled:
    """Parse, build, transform and (unless `options.lower` is False) lower a spec file."""
    with long_lived_allocations():
        return compile_parsed(parse_spec_file(str(path)), options)


def compile_text(text: str, options: CompileOptions, path: str = "<spec>") -> Compiled:
    """`compile_spec` for spec text held in memory (tests, notebooks, sweeps)."""
    with long_lived_allocations():
        return compile_parsed(parse_spec(text, path), options)


def compile_parsed(spec: SpecFile, options: CompileOptions,
                   sources: SourcePrefetch | None = None) -> Compiled:
    """`compile_spec` of a parsed spec; `sources` hands over random data drawn ahead
    (the CLI starts drawing before it loads this module)."""
    pipeline = options.pipeline if options.pipeline is not None else _spec_default(
        spec, "pipeline")
    target_text = options.target or _spec_default(spec, "target") or DEFAULT_TARGET
    if options.pipeline is None and pipeline:
        _check_spec_line(spec, "pipeline", lambda: parse_pass_pipeline(pipeline))
    if not options.target and options.lower and target_text != DEFAULT_TARGET:
        _check_spec_line(spec, "target", lambda: Target.parse(target_text))
    store = DataStore()
    module = build_module(spec, store, sources, options.defer_data)
    return compile_module(module, store, pipeline or "", target_text, options)


def compile_module(module: ModuleOp, store: DataStore, pipeline: str, target_text: str,
                   options: CompileOptions) -> Compiled:
    """Run the pipeline, record references, then lower for the target."""
    ctx = make_context()
    _verify(module, "the kernel builder")
    target = Target.parse(target_text) if options.lower else None
    added = target_passes(target, pipeline) if target and options.target_passes else ""
    user_passes = parse_pass_pipeline(pipeline)
    if target is not None:
        refuse_explicit_lowering(user_passes, target.backend.name)
    added_passes = parse_pass_pipeline(added)
    _check_print_ir_after(options, [*user_passes, *added_passes], target)
    compiled = Compiled(module, store, target, added_passes=added)
    if added:
        module.attributes[TARGET_PASSES_ATTR] = StringAttr(added)
    with active_store(store):
        if options.compute_reference and (user_passes or added_passes):
            _store_references(module, store, ORIGINAL_SUFFIX)
        _run_passes(ctx, module, user_passes, options, compiled)
        if target is not None:
            refuse_unsupported_ops(module, target.backend)
        _run_passes(ctx, module, added_passes, options, compiled)
        if options.compute_reference:
            _store_references(module, store, REFERENCE_SUFFIX)
        if target is not None:
            refuse_unsupported_ops(module, target.backend)
            _run_passes(ctx, module, [target.lowering()], options, compiled)
            refuse_unlowered_ops(module, target.backend)
            module.attributes[TARGET_ATTR] = StringAttr(target.spec.target_string())
    return compiled


def _check_print_ir_after(options: CompileOptions, passes: list[ModulePass],
                          target: Target | None) -> None:
    """--print-ir-after must name a pass that runs (else it silently prints nothing)."""
    names = [p.name for p in passes]
    if target is not None:
        names.append(target.backend.lowering_pass.name)
    unknown = [name for name in options.print_ir_after if name not in names]
    if unknown:
        runs = ", ".join(dict.fromkeys(names)) or "none"
        raise CompileError(f"--print-ir-after {unknown[0]}: no such pass in this pipeline "
                           f"(passes that run: {runs})")


def _verify(module: ModuleOp, after: str) -> None:
    try:
        module.verify()
    except DiagnosticException as err:
        raise CompileError(f"IR does not verify after {after}: {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    lines = [ln for ln in str(err).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


def _run_passes(ctx: Context, module: ModuleOp, passes: list[ModulePass],
                options: CompileOptions, compiled: Compiled) -> None:
    for p in passes:
        start = time.perf_counter()
        try:
            PassPipeline((p,)).apply(ctx, module)
        except (DiagnosticException, ValueError) as err:
            raise CompileError(f"pass '{p.name}' failed: {_first_line(err)}") from None
        compiled.pass_times.append((p.name, time.perf_counter() - start))
        _verify(module, f"pass '{p.name}'")
        if options.print_ir_after_all or p.name in options.print_ir_after:
            print(f"// -----// IR Dump After {p.name} //----- //", file=options.ir_stream)
            write_ir(module, options.ir_stream)


def _store_references(module: ModuleOp, store: DataStore, suffix: str) -> None:
    """Numpy reference outputs of the kernel IR as it stands, under `<out><suffix>`.

    Before the user's passes this is the original program (`#original`), the yardstick
    of lossy passes; after them, the program the target executes (`#reference`).
    """
    try:
        references = run_reference(module, store)
    except IntegerOverflowError as err:
        raise Refused(str(err)) from None
    except (InterpretationError, DiagnosticException) as err:
        raise CompileError(f"cannot compute the numpy reference: {_first_line(err)} (did a "
                           "pass lower the kernel already? lowering is --target's job)"
                           ) from None
    functions = _kernel_index(module)
    for kernel, outputs in references.items():
        function = functions[kernel]
        names = output_names(function.attributes.get(OUTPUTS_ATTR), len(outputs))
        for name, value, vtype in zip(names, outputs, function.function_type.outputs.data,
                                      strict=True):
            store.put(f"{kernel}.{name}{suffix}", value, dtype_of(vtype))


def _kernel_index(module: ModuleOp) -> dict[str, func.FuncOp]:
    """Kernel name -> its func.func, built once (a lookup per kernel was O(N^2))."""
    return {op.sym_name.data: op for op in module.ops if isinstance(op, func.FuncOp)}


def load_program(mlir_path: str | Path) -> tuple[ModuleOp, DataStore]:
    """Read back `NAME.mlir` and its `NAME.npz`, refusing a bundle that is not the one
    written with this IR (hash) or whose arrays do not fit it (shape, type, finiteness)."""
    mlir_path = Path(mlir_path)
    try:
        text = mlir_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or "not a text file"
        raise CompileError(f"{mlir_path}: cannot read ({reason})") from None
    parser = Parser(make_context(), text, str(mlir_path))
    try:
        module = parser.parse_module()
    except ParseError as err:
        raise CompileError(str(err).strip()) from None
    except (ValueError, DiagnosticException) as err:
        # Raised while building an attribute or op, after its text was read: the
        # parser's position is just past it.
        raise CompileError(f"{_location(mlir_path, text, parser.pos)}: "
                           f"{_first_line(err)}") from None
    _verify(module, f"parsing {mlir_path}")
    _verify_encodings(module, mlir_path)
    npz_path = mlir_path.with_suffix(".npz")
    _check_bundle_hash(module, mlir_path, npz_path)
    try:
        store = DataStore.load(npz_path)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise CompileError(f"{npz_path}: corrupt data bundle ({type(err).__name__}: "
                           f"{_first_line(err)}); recompile the spec") from None
    validate_bundle(module, store, str(npz_path))
    return module, store


def _verify_encodings(module: ModuleOp, mlir_path: Path) -> None:
    """MLIR's `verifyEncoding` on every sparse-encoded tensor type (a rank-3 encoding on a
    rank-2 tensor parses in xDSL; mlir-opt rejects it)."""
    from sparsec.dialects.sparse_tensor import verify_encodings_in

    try:
        verify_encodings_in(module)
    except DiagnosticException as err:
        raise CompileError(f"{mlir_path}: {_first_line(err)}") from None


def _location(path: Path, text: str, offset: int) -> str:
    """`file:line:col` of a character offset (1-based line and column)."""
    before = text[:max(0, min(offset, len(text)))]
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return f"{path}:{line}:{column}"


def _check_bundle_hash(module: ModuleOp, mlir_path: Path, npz_path: Path) -> None:
    """The IR names the SHA-256 of the bundle written with it; refuse any other bundle."""
    named = module.attributes.get(BUNDLE_ATTR)
    if not isinstance(named, StringAttr) or not npz_path.is_file():
        return
    actual = "sha256:" + sha256_of(npz_path)
    if named.data != actual:
        raise Refused(f"{npz_path} is not the bundle {mlir_path} was compiled with (the IR "
                      f"names {named.data[:19]}..., the file is {actual[:19]}...); "
                      "recompile: `sparsec compile` writes both together")


@dataclass
class RunResult:
    outputs: dict[str, list[Any]]
    reports: list[Report]


def execute(module: ModuleOp, store: DataStore, *, execute_values: bool = True) -> RunResult:
    """Run a lowered module on the target it names and check outputs against references."""
    target_attr = module.attributes.get(TARGET_ATTR)
    if not isinstance(target_attr, StringAttr):
        raise CompileError("the module names no target (sparsec.target); compile it with "
                           "--target, or run the spec instead")
    target = Target.parse(target_attr.data)
    with active_store(store):
        results = run_machine(module, store, target.backend, target.spec, execute_values)
    outputs: dict[str, list[Any]] = {}
    reports: list[Report] = []
    functions = _kernel_index(module)
    for kernel, (values, report) in results.items():
        outputs[kernel] = values
        report.passes = _pass_effects(functions[kernel])
        if execute_values:
            _check_kernel(functions[kernel], store, kernel, values, report)
        reports.append(report)
    return RunResult(outputs, reports)


def _check_kernel(function: func.FuncOp, store: DataStore, kernel: str,
                  values: list[np.ndarray], report: Report) -> None:
    """Fill the report's exact check (against the executed program's reference) and,
    after data-changing passes, the error against the original program's output."""
    names = output_names(function.attributes.get(OUTPUTS_ATTR), len(values))
    checks: list[Check] = []
    originals: list[Check] = []
    for name, value in zip(names, values, strict=True):
        key = f"{kernel}.{name}"
        if key + REFERENCE_SUFFIX not in store:
            report.check = Check.skipped_because(f"no reference for {key} in the bundle")
            return
        dtype = store.dtypes[key + REFERENCE_SUFFIX]
        checks.append(check_output(np.asarray(value), store.get(key + REFERENCE_SUFFIX), dtype))
        if key + ORIGINAL_SUFFIX in store:
            originals.append(check_output(np.asarray(value), store.get(key + ORIGINAL_SUFFIX),
                                          dtype))
    report.check = max(checks, key=lambda c: (not c.ok, c.rel_err))
    if originals:
        worst = max(originals, key=lambda c: c.rel_err)
        report.error_vs_original = {"max_abs_err": worst.max_abs_err, "rel_err": worst.rel_err}


def _pass_effects(function: func.FuncOp) -> dict[str, list[dict[str, Any]]]:
    """What passes did to each tensor of a kernel, from the binding ops' `effects`."""
    effects: dict[str, list[dict[str, Any]]] = {}
    for op in function.walk():
        if isinstance(op, (InputOp, ParamOp)) and op.effects is not None:
            effects[op.sym_name] = op.effect_list()
    return effects


def write_program(compiled: Compiled, mlir_path: str | Path,
                  outputs: Outputs | None = None) -> tuple[Path, Path]:
    """Write `NAME.mlir` and `NAME.npz` as a pair (see `sparsec.compiler.outputs`): the
    IR records the bundle's SHA-256 (`sparsec.bundle`). With `outputs`, the pair joins
    that command's outputs and is written at its commit; else it is written now."""
    pending = outputs if outputs is not None else Outputs()

    def write_pair(mlir_tmp: Path, npz_tmp: Path) -> None:
        with long_lived_allocations():
            compiled.store.save(npz_tmp)
            compiled.module.attributes[BUNDLE_ATTR] = StringAttr("sha256:" + sha256_of(npz_tmp))
            mlir_tmp.write_text(ir_text(compiled.module) + "\n")

    paths = pending.program(mlir_path, write_pair)
    if outputs is None:
        pending.commit()
    return paths
