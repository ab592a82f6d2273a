"""Compiling many kernels fast must not change a byte (issue 10, item 13).

The speed-ups (a printer that reuses attribute text, a collector that runs rarely, one
verification per change) are held to the IR the compiler printed before them: golden
files of a mixed multi-kernel spec, checked in under tests/data/golden, were printed by
the previous compiler (`sparsec compile mixed_kernels.sk [--emit kernel] -o -`).
The timings themselves are in benchmarks/many_kernels.py, never asserted here.
"""

from __future__ import annotations

import gc
from io import StringIO
from pathlib import Path

import pytest
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.printer import Printer

from sparsec.compiler.cli import main
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.compiler.gc_policy import YOUNG_GENERATION_THRESHOLD, long_lived_allocations
from sparsec.compiler.ir_text import FastPrinter, ir_text
from sparsec.compiler.spec import format_kernel, parse_spec_file

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
SPEC = GOLDEN / "mixed_kernels.sk"


@pytest.mark.parametrize(("emit", "golden"), [("kernel", "mixed_kernels.kernel.mlir"),
                                              ("isa", "mixed_kernels.systolic.mlir")])
def test_cli_prints_the_golden_ir(emit: str, golden: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", str(SPEC), "--emit", emit, "-o", "-"]) == 0
    assert capsys.readouterr().out == (GOLDEN / golden).read_text()


def test_written_program_is_the_golden_ir_plus_its_bundle(tmp_path: Path) -> None:
    out = tmp_path / "p.mlir"
    assert main(["compile", str(SPEC), "-o", str(out)]) == 0
    written = out.read_text().splitlines()
    golden = (GOLDEN / "mixed_kernels.systolic.mlir").read_text().splitlines()
    assert written[1:] == golden[1:]
    assert 'sparsec.bundle = "sha256:' in written[0]
    assert written[0].startswith(golden[0].removesuffix("} {").removesuffix('"'))


ENCODER = """kernel encoder {
  in Q: f32[2, 16, 8] = random(seed=1)
  in K: f32[2, 16, 8] = random(seed=2)
  in V: f32[2, 16, 8] = random(seed=3)
  O = attention(Q, K, V)
  out O
}
"""
GEMMS = ("gemm", "gemm_tb", "int8")
ATTENTIONS = ("attn", "attn_parts")


@pytest.mark.parametrize(("target", "kernels"), [
    ("systolic{rows=4 cols=4 dataflow=ws}", GEMMS + ATTENTIONS + ("block", "heads")),
    ("stc{preset=a100 sparse=false}", GEMMS), ("sigma", GEMMS), ("eie", GEMMS[:2]),
    ("bitwave", GEMMS[:1]), ("sparc", ("encoder",)), ("asadi", ("encoder",) + ATTENTIONS)])
def test_fast_printer_equals_xdsl_printer(target: str, kernels: tuple[str, ...]) -> None:
    """Each target's ISA for the golden kernels it runs, and their kernel IR, print the
    same through FastPrinter as through str()."""
    spec = parse_spec_file(SPEC)
    text = "".join(ENCODER if name == "encoder" else format_kernel(spec.kernel(name)) + "\n"
                   for name in kernels)
    kernel = compile_text(text, CompileOptions(lower=False))
    assert ir_text(kernel.module) == str(kernel.module)
    lowered = compile_text(text, CompileOptions(target=target, target_passes=True))
    assert ir_text(lowered.module) == str(lowered.module)


def test_reused_attribute_text_is_per_printer_flags() -> None:
    """A generic-format printer and a custom-format one never share attribute text, and
    attributes that print on several lines or are unhashable print the ordinary way."""
    module = compile_text(SPEC.read_text(), CompileOptions(target="systolic")).module
    for generic in (False, True):
        ours, theirs = StringIO(), StringIO()
        FastPrinter(stream=ours, print_generic_format=generic).print_op(module)
        Printer(stream=theirs, print_generic_format=generic).print_op(module)
        assert ours.getvalue() == theirs.getvalue()
    dense = DenseIntOrFPElementsAttr.from_list(TensorType(f64, [2, 2]), [1.0, 2.5, -3.0, 4.0])
    attrs = ModuleOp([], attributes={
        "a": ArrayAttr([IntegerAttr(7, i64), FloatAttr(0.1, f64), StringAttr("x\ny\"z")]),
        "b": IntegerAttr(7, i64), "d": dense, "e": dense,
        # equal-looking values that print differently must not share text
        "z": FloatAttr(0.0, f64), "nz": FloatAttr(-0.0, f64), "n": FloatAttr(float("nan"), f64),
        "zs": ArrayAttr([FloatAttr(-0.0, f64), FloatAttr(0.0, f64), FloatAttr(-0.0, f64)])})
    assert ir_text(attrs) == str(attrs)


def test_equal_attributes_are_rendered_once() -> None:
    """The mechanism itself: each distinct attribute is rendered alone once."""
    module = compile_text(SPEC.read_text(), CompileOptions(target="systolic")).module
    printer = FastPrinter(stream=StringIO())
    printer.print_op(module)
    rendered = printer._attribute_text
    assert StringAttr("ifmap") in rendered
    printed = printer.stream.getvalue()
    assert printed.count('"ifmap"') > len([k for k in rendered if k == StringAttr("ifmap")])


def test_collector_runs_rarely_while_compiling_and_thresholds_return() -> None:
    before = gc.get_threshold()
    with long_lived_allocations():
        assert gc.get_threshold()[0] >= YOUNG_GENERATION_THRESHOLD
        with long_lived_allocations():  # nested: still raised, then back to the outer
            pass
        assert gc.get_threshold()[0] >= YOUNG_GENERATION_THRESHOLD
    assert gc.get_threshold() == before
    compile_text(SPEC.read_text(), CompileOptions(target="systolic"))
    assert gc.get_threshold() == before


def test_long_running_commands_get_the_usual_thresholds_back() -> None:
    """eval, sweep, workload, analyze drop garbage cycles as they go: inside the CLI's
    raised thresholds they run with the ones in force before (full collections happen)."""
    from sparsec.compiler.cli import BOUNDED_COMMANDS, COMMANDS
    from sparsec.compiler.gc_policy import usual_collection

    before = gc.get_threshold()
    with long_lived_allocations(), long_lived_allocations():
        with usual_collection():
            assert gc.get_threshold() == before
        assert gc.get_threshold()[0] >= YOUNG_GENERATION_THRESHOLD
    with usual_collection():  # outside any raise: nothing to undo
        assert gc.get_threshold() == before
    assert {"eval", "sweep", "workload", "analyze"} <= set(COMMANDS) - BOUNDED_COMMANDS
