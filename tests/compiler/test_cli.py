"""The `sparsec` command as a user meets it: exit codes, files, reports, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsec.compiler.cli import main

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
REPORT_KEYS = {"target", "config", "cycles", "stall_cycles", "units", "bytes", "macs",
               "energy_pj", "check", "details"}


def sparsec(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed `sparsec` command as a separate process."""
    exe = Path(sys.executable).parent / "sparsec"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "120"})


def test_run_example_passes_and_writes_json(tmp_path):
    result = sparsec("run", str(EXAMPLES / "gemm_small.sk"), "--target", "systolic",
                     "--json", "r.json", "--csv", "r.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "cycles" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert report["cycles"] == 1089 and report["details"]["compute_cycles"] == 503
    # f32 folds sum in a different order than one BLAS call: equal up to f32 rounding.
    assert report["check"]["ok"] is True and report["check"]["rel_err"] < 1e-6
    assert set(report["macs"]) == {"effectual", "dense"}
    assert report["config"]["rows"] == 32 and report["config"]["dataflow"] == "os"
    assert report["units"]["array"]["utilization"] > 0
    assert (tmp_path / "r.csv").read_text().startswith("kernel,target,cycles")


def test_compile_then_run_artifact_gives_the_same_result(tmp_path):
    spec = EXAMPLES / "gemm_multi.sk"
    target = "systolic{rows=8 cols=16 dataflow=ws}"
    assert main(["compile", str(spec), "--target", target, "-o", str(tmp_path / "p.mlir")]) == 0
    assert (tmp_path / "p.mlir").is_file() and (tmp_path / "p.npz").is_file()
    assert main(["run", str(tmp_path / "p.mlir"), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["run", str(spec), "--target", target, "--json", str(tmp_path / "b.json")]) == 0
    from_artifact = json.loads((tmp_path / "a.json").read_text())
    from_spec = json.loads((tmp_path / "b.json").read_text())
    assert [r["kernel"] for r in from_artifact] == ["gemm_tb", "gemm_bf16"]
    for a, b in zip(from_artifact, from_spec, strict=True):
        assert a["cycles"] == b["cycles"] and a["check"] == b["check"]
        assert a["check"]["ok"]


def test_check_failure_exits_3(tmp_path):
    out = tmp_path / "p.mlir"
    assert main(["compile", str(EXAMPLES / "gemm_small.sk"), "-o", str(out)]) == 0
    bundle = dict(np.load(tmp_path / "p.npz"))
    bundle["gemm_small.Y#reference"] = bundle["gemm_small.Y#reference"] + 1.0
    np.savez(tmp_path / "p.npz", **bundle)
    # An edited bundle no longer matches the hash its IR names: refused (exit 1) ...
    assert main(["run", str(out)]) == 1
    # ... and once the IR is made to name it, the check sees the wrong reference.
    import re

    from sparsec.compiler.outputs import sha256_of

    text = re.sub(r'"sha256:[0-9a-f]+"', f'"sha256:{sha256_of(tmp_path / "p.npz")}"',
                  out.read_text())
    out.write_text(text)
    assert main(["run", str(out)]) == 3


def test_bad_spec_is_one_located_line_exit_1_no_traceback(tmp_path):
    spec = tmp_path / "bad.sk"
    spec.write_text("kernel k {\n  in X: f32[4, 4] = random()\n  Y = matmul(X, Z)\n  out Y\n}\n")
    result = sparsec("run", str(spec), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first, source, caret = result.stderr.splitlines()[:3]
    assert first == f"{spec}:3:17: error: unknown tensor 'Z'"
    assert source.strip() == "Y = matmul(X, Z)"
    assert caret.index("^") == source.index("Z")
    assert not list(tmp_path.glob("*.mlir"))


@pytest.mark.parametrize("args,message", [
    (["--target", "systolic{rows=-3}"], "rows"),
    (["--target", "tpu"], "unknown target 'tpu'"),
    (["-p", "no-such-pass"], "unknown pass 'no-such-pass'"),
    (["-p", "lower-systolic{rows="], "bad pipeline"),
])
def test_bad_options_are_one_clean_line(tmp_path, args, message):
    result = sparsec("run", str(EXAMPLES / "gemm_small.sk"), *args, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr


def test_usage_error_exits_2(tmp_path):
    assert sparsec("frobnicate", cwd=tmp_path).returncode == 2


def test_unwritable_output_leaves_nothing_half_written(tmp_path):
    result = sparsec("compile", str(EXAMPLES / "gemm_small.sk"), "-o",
                     str(tmp_path / "missing" / "p.mlir"), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.mlir"))


def test_print_ir_and_timing(capsys):
    assert main(["run", str(EXAMPLES / "gemm_small.sk"), "--print-ir-after-all",
                 "--timing"]) == 0
    err = capsys.readouterr().err
    assert "// -----// IR Dump After lower-systolic //----- //" in err
    assert "systolic.fold" in err
    assert "wall time per stage" in err and "lower-systolic" in err


def test_print_ir_after_named_pass_only(capsys, tmp_path):
    assert main(["compile", str(EXAMPLES / "gemm_small.sk"), "-p", "canonicalize",
                 "--print-ir-after", "canonicalize", "-o", str(tmp_path / "p.mlir")]) == 0
    err = capsys.readouterr().err
    assert "IR Dump After canonicalize" in err
    assert "IR Dump After lower-systolic" not in err


def test_no_execute_skips_the_check(capsys):
    assert main(["run", str(EXAMPLES / "gemm_512.sk"), "--no-execute"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_targets_lists_backends_and_presets(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    assert "systolic" in out and "tpu-v1" in out and "dataflow" in out


def test_xdsl_opt_parses_compiled_ir_and_runs_sparsec_passes(tmp_path):
    kernel_ir = tmp_path / "k.mlir"
    assert main(["compile", str(EXAMPLES / "gemm_small.sk"), "--emit", "kernel",
                 "-o", str(kernel_ir)]) == 0
    assert main(["compile", str(EXAMPLES / "gemm_small.sk"), "-o",
                 str(tmp_path / "isa.mlir")]) == 0
    xdsl_opt = str(Path(sys.executable).parent / "xdsl-opt")
    parsed = subprocess.run([xdsl_opt, str(tmp_path / "isa.mlir")], capture_output=True,
                            text=True)
    assert parsed.returncode == 0, parsed.stderr
    assert "systolic.writeback" in parsed.stdout
    lowered = subprocess.run([xdsl_opt, str(kernel_ir), "-p",
                              "lower-systolic{rows=16 cols=16 dataflow=is}"],
                             capture_output=True, text=True)
    assert lowered.returncode == 0, lowered.stderr
    assert lowered.stdout.count("systolic.fold") == 4 * 4
    assert "sparsec.matmul" not in lowered.stdout
