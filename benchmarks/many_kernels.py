"""Thousands of small kernels compiled and run: throughput, and what the guards cost.

A spec of N small GEMM kernels (f32 8x8 . 8x8, distinct seeds) is compiled for systolic
through the normal driver, run and checked, in one process. The same work runs with
the issue-10 guards (`compiler/guards.py`: kernel-op refusal before and after lowering,
integer-overflow refusal in the reference, the bundle check on load) switched off by
monkeypatching them to no-ops, so the ratio is the guards' cost. A third row times
writing and re-loading the program (`write_program` + `load_program`: the hashed pair,
the bundle check). Each figure is the median of `--repeats` runs of this process's CPU
time (`time.process_time`: the machine is shared, and wall time measures the others'
load too), guards on and off alternated; compare ratios, not absolute seconds.

`--cli 1600,3200,6400` also times the command a user types, `sparsec compile N.sk -o
N.mlir` (a fresh process: imports, parse, build, verify, reference, lowering, printing,
the hashed pair), for each size: the median of `--repeats` runs of its wall time and
its CPU time, and in the same loop a fixed reference, `python -c 'import
xdsl.dialects.builtin'`, whose ratio survives a loaded machine (issue 10: a 6,400-kernel
spec compiles in under 10 s). PYTHONPATH passes through, so an older checkout can be
timed by the same code.
Writes benchmarks/results/many_kernels.md.

Run: python benchmarks/many_kernels.py [--kernels 1600] [--repeats 3] [--cli 1600,3200,6400]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sparsec.backends.common.report import write_atomically
from sparsec.compiler import driver
from sparsec.compiler.driver import CompileOptions, compile_text, execute

RESULTS = Path(__file__).parent / "results" / "many_kernels.md"


def spec_text(count: int) -> str:
    return "".join(f"kernel k{i} {{\n  in X: f32[8, 8] = random(seed={i})\n"
                   f"  param W: f32[8, 8] = random(seed={i + 1})\n  Y = matmul(X, W)\n"
                   "  out Y\n}\n" for i in range(count))


@contextlib.contextmanager
def guards_off() -> Iterator[None]:
    """The guards as no-ops (the driver imported them by name, so patch it there)."""
    names = ("refuse_unsupported_ops", "refuse_unlowered_ops", "refuse_explicit_lowering",
             "validate_bundle")
    saved = {name: getattr(driver, name) for name in names}
    try:
        for name in names:
            setattr(driver, name, lambda *args, **kwargs: None)
        yield
    finally:
        for name, value in saved.items():
            setattr(driver, name, value)


def compile_and_run(text: str) -> float:
    start = time.process_time()
    compiled = compile_text(text, CompileOptions(target="systolic"))
    result = execute(compiled.module, compiled.store)
    assert all(r.check.ok for r in result.reports)
    return time.process_time() - start


def write_and_load(text: str) -> float:
    compiled = compile_text(text, CompileOptions(target="systolic"))
    with tempfile.TemporaryDirectory() as folder:
        start = time.process_time()
        driver.write_program(compiled, Path(folder) / "p.mlir")
        driver.load_program(Path(folder) / "p.mlir")
        return time.process_time() - start


def median_of(repeats: int, run: Callable[[str], float], text: str) -> float:
    return statistics.median(run(text) for _ in range(repeats))


REFERENCE = [sys.executable, "-c", "import xdsl.dialects.builtin"]
COMPILE = [sys.executable, "-c", "from sparsec.compiler.cli import main; raise SystemExit(main())",
           "compile"]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run of `command`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=os.environ.copy())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_rows(sizes: list[int], repeats: int) -> list[str]:
    """Markdown rows: `sparsec compile` of N kernels against the reference, medians."""
    from rich.progress import Progress

    rows = []
    with tempfile.TemporaryDirectory() as folder, Progress() as progress:
        task = progress.add_task("sparsec compile", total=len(sizes) * repeats)
        for size in sizes:
            spec = Path(folder) / f"k{size}.sk"
            spec.write_text(spec_text(size))
            runs, references = [], []
            for _ in range(repeats):  # alternated with the reference: same machine load
                references.append(timed(REFERENCE))
                runs.append(timed([*COMPILE, str(spec), "-o", str(spec.with_suffix(".mlir"))]))
                progress.advance(task)
            wall, cpu = (statistics.median(r[i] for r in runs) for i in (0, 1))
            ref_wall, ref_cpu = (statistics.median(r[i] for r in references) for i in (0, 1))
            rows.append(f"| {size:,} | {wall:.2f} | {cpu:.2f} | {ref_wall:.3f} | "
                        f"{wall / ref_wall:.1f} | {cpu / ref_cpu:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=1600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli", default="", metavar="SIZES",
                        help="also time `sparsec compile` of specs of these many kernels, "
                             "e.g. 1600,3200,6400")
    args = parser.parse_args()
    text = spec_text(args.kernels)
    compile_and_run(spec_text(4))  # warm imports
    on, off = [], []
    for _ in range(args.repeats):  # alternated, so drifting machine load hits both alike
        on.append(compile_and_run(text))
        with guards_off():
            off.append(compile_and_run(text))
    with_guards, without = statistics.median(on), statistics.median(off)
    round_trip = median_of(args.repeats, write_and_load, text)
    rows = [("compile + run + check, guards on", with_guards),
            ("compile + run + check, guards off", without),
            ("write pair + load (hash, bundle check)", round_trip)]
    lines = [f"# {args.kernels} small kernels (f32 8x8 GEMM on systolic)", "",
             f"`python benchmarks/many_kernels.py --kernels {args.kernels} "
             f"--repeats {args.repeats}`; medians of {args.repeats} runs, one process.", "",
             "| stage | CPU seconds (median) | kernels/s |", "|---|---:|---:|"]
    lines += [f"| {name} | {seconds:.2f} | {args.kernels / seconds:,.0f} |"
              for name, seconds in rows]
    lines += ["", f"Guards cost: {with_guards / without - 1:+.1%} of compile + run "
                  f"(ratio {with_guards / without:.3f})."]
    if args.cli:
        sizes = [int(size) for size in args.cli.split(",")]
        lines += ["", f"## `sparsec compile N.sk -o N.mlir`, fresh process "
                      f"(`--cli {args.cli}`)", "",
                  f"Medians of {args.repeats} runs; the reference is `python -c 'import "
                  "xdsl.dialects.builtin'`, timed alternately in the same loop.", "",
                  "| kernels | wall s | CPU s | reference wall s | wall / reference | "
                  "CPU / reference CPU |", "|---:|---:|---:|---:|---:|---:|"]
        lines += cli_rows(sizes, args.repeats)
    write_atomically(RESULTS, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
