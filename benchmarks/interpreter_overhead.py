"""Whole-process `sparsec run` of an N^3 systolic GEMM against numpy's product of the same
matrices, on an idle machine and beside a busy process; and the start-up of `sparsec
--help` / `sparsec targets`.

Each figure is the median of --repeats runs, numpy and sparsec interleaved (one of each
per repeat) in one run of this script (machines are shared and noisy: read the ratios,
not the seconds):

* numpy: `X @ W` of the same f32 matrices (BLAS with its default threads), in-process;
* sparsec: wall time of the subprocess `sparsec run gemm.sk --target systolic` (spec
  parsing, data generation, the reference product, lowering to ~N^2/1024 folds,
  interpretation, check, report), i.e. what a user waits for;
* floor: wall time of a process that does only what any exactly checked run must do, with
  nothing of sparsec's own work: start Python, import numpy, xDSL and sparsec's dialects
  and backends (the IR's definitions), draw X and W as `random(seed=...)` does (on a
  worker thread, beside the imports, as `sparsec run` does), multiply twice (the reference
  and the execution) and compare. sparsec's ratio to it is what its compiler, interpreter
  and report add; the floor's ratio to numpy is what start-up and the exact check cost;
* loaded: the same figures while another process spins on one core (`--load 1`).

sparsec's .pyc files are compiled first, as an installed copy has them (`--no-bytecode`
measures a checkout without them, e.g. under PYTHONDONTWRITEBYTECODE=1).

Run:  python benchmarks/interpreter_overhead.py [--n 2048] [--repeats 5] [--no-bytecode]
Writes benchmarks/results/interpreter_overhead.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sparsec.backends.common.report import write_atomically

SPEC = """kernel gemm {{
  in    X: f32[{n}, {n}] = random(seed=1)
  param W: f32[{n}, {n}] = random(seed=2)
  Y = matmul(X, W)
  out Y
}}
"""


FLOOR_SCRIPT = """
import os, sys, threading
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as the sparsec program sets it
import numpy as np
n = int(sys.argv[1])
drawn = {}
def draw():
    for name, seed in (("X", 1), ("W", 2)):
        raw = np.random.default_rng(seed).standard_normal(size=n * n)
        drawn[name] = raw.astype(np.float32).reshape(n, n)
worker = threading.Thread(target=draw)
worker.start()
import sparsec.backends.common.backend, sparsec.dialects.sparsec, xdsl.dialects.func
worker.join()
reference = drawn["X"] @ drawn["W"]
executed = drawn["X"] @ drawn["W"]
assert np.array_equal(reference, executed)
"""
"""The floor process (see the module docstring): imports, data, two products, a compare."""


def _spin(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    x = 0
    while not stop.is_set():
        x += 1


BLAS_SPIN_SECONDS = 0.3
"""Pause after numpy's product: OpenBLAS's threads in this process spin ~2^28 cycles
(~0.1 s) after a call, and would otherwise run beside the sparsec process measured next."""


def _seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _sparsec(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "sparsec.compiler.cli", *args], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _floor(n: int) -> None:
    subprocess.run([sys.executable, "-c", FLOOR_SCRIPT, str(n)], check=True)


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(n: int, repeats: int) -> dict[str, float]:
    """Medians (s) of numpy's product and of the whole `sparsec run` process, measured
    interleaved (numpy, then sparsec, `repeats` times) so that both see the same load."""
    rng = np.random.default_rng(0)
    x = rng.random((n, n), dtype=np.float32)
    w = rng.random((n, n), dtype=np.float32)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "gemm.sk"
        spec.write_text(SPEC.format(n=n))
        for _ in range(repeats):
            times.setdefault("numpy", []).append(_seconds(lambda: x @ w))
            time.sleep(BLAS_SPIN_SECONDS)
            cpu = _child_cpu()
            times.setdefault("sparsec run", []).append(_seconds(
                lambda: _sparsec("run", str(spec), "--target", "systolic")))
            times.setdefault("sparsec run cpu", []).append(_child_cpu() - cpu)
            times.setdefault("floor", []).append(_seconds(lambda: _floor(n)))
            times.setdefault("sparsec --help", []).append(_seconds(lambda: _sparsec("--help")))
            times.setdefault("sparsec targets", []).append(_seconds(lambda: _sparsec("targets")))
    return {name: statistics.median(values) for name, values in times.items()}


def compile_bytecode() -> int:
    """Write the .pyc of every sparsec module, as `pip install` does (an editable checkout
    run with PYTHONDONTWRITEBYTECODE=1 has none, and every process would compile sparsec's
    sources again: ~0.06 s that no installed copy pays). Returns the number of packages."""
    import compileall
    import importlib

    packages = ("compiler", "tensors", "dialects", "passes", "backends")
    for name in packages:
        for folder in importlib.import_module(f"sparsec.{name}").__path__:
            compileall.compile_dir(folder, quiet=1)
    return len(packages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--load", type=int, default=1, help="busy processes when loaded")
    parser.add_argument("--out", default="benchmarks/results/interpreter_overhead.md")
    parser.add_argument("--no-bytecode", action="store_true",
                        help="do not compile sparsec's .pyc first (measure what a checkout "
                             "without them pays)")
    args = parser.parse_args()
    if not args.no_bytecode:
        compile_bytecode()

    idle = measure(args.n, args.repeats)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(args.load)]
    for p in spinners:
        p.start()
    try:
        loaded = measure(args.n, args.repeats)
    finally:
        stop.set()
        for p in spinners:
            p.join()

    lines = [f"# sparsec run vs numpy, {args.n}^3 f32 GEMM on `systolic` (defaults)", "",
             f"Median of {args.repeats} runs each, numpy and sparsec interleaved; loaded = "
             f"{args.load} busy process(es) beside. sparsec's bytecode: "
             + ("none (compiled at every start)" if args.no_bytecode else
                "compiled first, as `pip install` does") + ".",
             f"Command: `python benchmarks/interpreter_overhead.py --n {args.n} "
             f"--repeats {args.repeats}{' --no-bytecode' if args.no_bytecode else ''}`", "",
             "| condition | numpy X@W (s) | sparsec run, whole process (s) | ratio | "
             "floor process (s) | floor / numpy | sparsec / floor | "
             "sparsec run, CPU user+sys (s) | --help (s) | targets (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, figures in (("idle", idle), ("loaded", loaded)):
        ratio = figures["sparsec run"] / figures["numpy"]
        lines.append(f"| {name} | {figures['numpy']:.3f} | {figures['sparsec run']:.3f} | "
                     f"{ratio:.1f}x | {figures['floor']:.3f} | "
                     f"{figures['floor'] / figures['numpy']:.1f}x | "
                     f"{figures['sparsec run'] / figures['floor']:.2f} | "
                     f"{figures['sparsec run cpu']:.3f} | "
                     f"{figures['sparsec --help']:.3f} | "
                     f"{figures['sparsec targets']:.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
