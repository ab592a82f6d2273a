"""Shared test helpers: GEMM spec text and a one-call compile-and-run."""

from __future__ import annotations

import os
import shutil

import pytest

from sparsec.backends.common.report import Report
from sparsec.compiler.driver import CompileOptions, compile_text, execute


def gemm_text(m: int, n: int, k: int, dtype: str = "f32", *, transpose_a: bool = False,
              transpose_b: bool = False, density: float = 1.0, name: str = "g") -> str:
    """Spec of one C = A . B kernel with seeded random operands."""
    a_shape = (k, m) if transpose_a else (m, k)
    b_shape = (n, k) if transpose_b else (k, n)
    flags = "".join([", transpose_a=true" if transpose_a else "",
                     ", transpose_b=true" if transpose_b else ""])
    return (f"kernel {name} {{\n"
            f"  in A: {dtype}[{a_shape[0]}, {a_shape[1]}] = random(seed=1)\n"
            f"  param B: {dtype}[{b_shape[0]}, {b_shape[1]}] = random(seed=2, density={density})\n"
            f"  C = matmul(A, B{flags})\n"
            f"  out C\n}}\n")


def run_text(text: str, target: str, *, pipeline: str = "",
             execute_values: bool = True) -> tuple[list, Report]:
    """Compile spec text for `target`, run it, return (outputs, report) of its kernel."""
    compiled = compile_text(text, CompileOptions(pipeline=pipeline, target=target,
                                                 compute_reference=execute_values))
    result = execute(compiled.module, compiled.store, execute_values=execute_values)
    (kernel,) = result.outputs
    return result.outputs[kernel], result.reports[0]


def require_tool(name: str) -> str:
    """Path of an external tool; skip without it, fail if SPARSEC_REQUIRE_TOOLS=1."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("SPARSEC_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{name} is required (SPARSEC_REQUIRE_TOOLS=1) but not on PATH")
    pytest.skip(f"{name} not on PATH (install Debian's mlir-22-tools)")


def require_package(name: str) -> None:
    """Skip without an installed Python package; fail if SPARSEC_REQUIRE_TOOLS=1."""
    import importlib.util

    if importlib.util.find_spec(name) is not None:
        return
    if os.environ.get("SPARSEC_REQUIRE_TOOLS") == "1":
        pytest.fail(f"Python package {name} is required (SPARSEC_REQUIRE_TOOLS=1)")
    pytest.skip(f"{name} not installed (pip install --no-deps {name.replace('_', '-')})")
