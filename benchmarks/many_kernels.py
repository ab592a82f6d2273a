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
Writes benchmarks/results/many_kernels.md.

Run: python benchmarks/many_kernels.py [--kernels 1600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, default=1600)
    parser.add_argument("--repeats", type=int, default=3)
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
    write_atomically(RESULTS, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
