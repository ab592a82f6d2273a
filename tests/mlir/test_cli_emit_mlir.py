"""`sparsec compile --emit mlir`: upstream MLIR that mlir-opt lowers and mlir-runner runs."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import require_tool, run_text
from sparsec.compiler.cli import main
from sparsec.compiler.mlir_export import lower_with_mlir_opt, run_exported

EXAMPLES = Path(__file__).parents[2] / "examples"


def test_emit_mlir_after_pruning_runs_under_mlir_runner_like_sparsec(tmp_path):
    require_tool("mlir-opt-22")
    require_tool("mlir-runner-22")
    spec = EXAMPLES / "gemm_small.sk"
    out = tmp_path / "small.mlir"
    assert main(["compile", str(spec), "-p", "prune-nm{n=2 m=4}", "--emit", "mlir",
                 "--inline-data", "-o", str(out)]) == 0
    text = out.read_text()
    assert "structured[2, 4]" in text and "func.func @main" in text
    (mlir_result,) = run_exported(text)
    (sparsec_result,), report = run_text(spec.read_text(), "systolic", pipeline="prune-nm{n=2 m=4}")
    assert report.check.ok
    np.testing.assert_allclose(mlir_result, sparsec_result, rtol=1e-5, atol=1e-4)


def test_emit_mlir_without_data_passes_the_sparsifier(tmp_path):
    require_tool("mlir-opt-22")
    exe = Path(sys.executable).parent / "sparsec"
    result = subprocess.run([str(exe), "compile", str(EXAMPLES / "gemm.sk"), "-p",
                             "sparsify{format=csr}", "--emit", "mlir", "-o", "-"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "#sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed) }>" in result.stdout
    assert "llvm.func" in lower_with_mlir_opt(result.stdout)


def test_inline_data_needs_emit_mlir(capsys):
    assert main(["compile", str(EXAMPLES / "gemm_small.sk"), "--inline-data", "-o", "-"]) == 1
    assert "--inline-data goes with --emit mlir" in capsys.readouterr().err
