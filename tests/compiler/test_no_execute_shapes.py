"""`--no-execute` accounts from shapes and never makes the data it does not read
(issue 10, item 10): generated tensors are stored `Deferred` (shape and exact nonzero
count); a machine that accounts dense operands from their types (systolic) never makes
them; a value with zeros is made (where its zeros are changes the counts), through the
memory guard; an executing run still gets the guard's located error."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from sparsec.compiler.driver import CompileOptions, compile_text, execute
from sparsec.tensors.datastore import Deferred

HUGE = """kernel huge {
  in    X: f32[100000, 100000] = random(seed=1)
  param W: f32[100000, 100000] = random(seed=2)
  Y = matmul(X, W)
  out Y
}
"""
ARRAY = "systolic{rows=1024 cols=1024}"
"""A large array: the default 32 x 32 one would simulate ten million folds one by one."""
LIMIT = 2 << 30
"""Address space for the subprocess: the two operands alone are 80 GB of f32."""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def _sparsec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = "from sparsec.compiler.cli import main; raise SystemExit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, cwd=cwd, preexec_fn=_limited, timeout=300)


def test_huge_gemm_reports_cycles_under_a_2gb_address_space(tmp_path: Path) -> None:
    (tmp_path / "huge.sk").write_text(HUGE)
    result = _sparsec("run", "huge.sk", "--no-execute", "--target", ARRAY, "--json",
                      "r.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "r.json").read_text())  # one kernel: one report
    assert report["macs"]["dense"] == 100000 ** 3
    assert report["macs"]["effectual"] == 100000 ** 3  # dense random data: every product
    assert report["cycles"] > 0
    compare = _sparsec("compare", "huge.sk", "--no-execute", "--targets", f"{ARRAY},sigma",
                       "--csv", "c.csv", cwd=tmp_path)
    assert compare.returncode == 0, compare.stderr
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[1].startswith(f"{ARRAY},,True,,")
    # sigma's schedule follows W's nonzeros: it would have to make W, so its row says why
    assert rows[2].startswith('sigma,,False,"huge.sk:2:34: error: f32[100000, 100000] needs')


def test_the_executing_run_keeps_the_memory_guard(tmp_path: Path) -> None:
    (tmp_path / "huge.sk").write_text(HUGE)
    result = _sparsec("run", "huge.sk", "--target", ARRAY, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("huge.sk:2:34: error: f32[100000, 100000] needs about")
    assert "Traceback" not in result.stderr


SPARSE = """kernel g {
  in    A: f32[24, 40] = random(seed=1, density=0.4)
  param B: f32[40, 16] = random(seed=2, density=0.3)
  param D: f32[40, 16] = random(seed=3)
  C = matmul(A, B)
  E = matmul(A, D)
  out C, E
}
kernel i {
  in    A: i8[8, 32] = random(seed=6)
  param B: i8[32, 8] = random(seed=7, density=0.75)
  C = matmul(A, B)
  out C
}
kernel h {
  in    A: f16[8, 32] = random(seed=4, dist=uniform)
  param B: f16[32, 8] = random(seed=5, density=0.5)
  C = matmul(A, B)
  out C
}
"""


def test_deferred_data_gives_the_same_ir() -> None:
    """The IR's nonzero counts come from the spec's stated density, exactly as counted
    from the made arrays."""
    made = compile_text(SPARSE, CompileOptions(target="systolic"))
    deferred = compile_text(SPARSE, CompileOptions(target="systolic", defer_data=True,
                                                   compute_reference=False))
    assert str(deferred.module) == str(made.module)
    assert all(isinstance(deferred.store.peek(k), Deferred) for k in deferred.store.keys())


@pytest.mark.parametrize("target", ["systolic", "systolic{dataflow=ws rows=8 cols=8}"])
def test_no_execute_counts_what_executing_counts(target: str) -> None:
    """Dense operands unmade, sparse ones made: cycles, traffic and effectual MACs equal
    those of the executing run."""
    executed = compile_text(SPARSE, CompileOptions(target=target))
    full = execute(executed.module, executed.store).reports
    shapes = compile_text(SPARSE, CompileOptions(target=target, defer_data=True,
                                                 compute_reference=False))
    accounted = execute(shapes.module, shapes.store, execute_values=False).reports
    for ran, counted in zip(full, accounted, strict=True):
        assert counted.cycles == ran.cycles
        assert counted.macs == ran.macs
        assert counted.bytes == ran.bytes
        assert counted.units == ran.units
    # The dense weight was never made; the operands with zeros were.
    assert isinstance(shapes.store.peek("g.D"), Deferred)
    assert not isinstance(shapes.store.peek("g.B"), Deferred)


def test_a_target_that_reads_values_makes_them() -> None:
    """Targets whose counts follow the data (sigma) make it, through the guard."""
    shapes = compile_text(SPARSE.split("kernel h")[0], CompileOptions(
        target="sigma", defer_data=True, compute_reference=False))
    report = execute(shapes.module, shapes.store, execute_values=False).reports[0]
    executed = compile_text(SPARSE.split("kernel h")[0], CompileOptions(target="sigma"))
    assert report.cycles == execute(executed.module, executed.store).reports[0].cycles
