"""Never a silent wrong answer (issue 10): refused work, honest checks, atomic outputs,
clean errors. Each test is a bad input that once gave a wrong answer, a traceback or
debris; see docs/reliability.md for the guarantees."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sparsec.backends import BACKEND_PACKAGES, get_backend
from sparsec.backends.common.backend import kernel_op_names
from sparsec.backends.common.report import check_output
from sparsec.compiler import compare
from sparsec.compiler.cli import main
from sparsec.compiler.driver import (
    CompileOptions,
    compile_spec,
    compile_text,
    execute,
    load_program,
)
from sparsec.compiler.guards import Refused
from sparsec.compiler.outputs import sha256_of

ATTENTION = """kernel att {
  in Q: f32[16, 8] = random(seed=1)
  in K: f32[16, 8] = random(seed=2)
  in V: f32[16, 8] = random(seed=3)
  O = attention(Q, K, V)
  out O
}
"""

MATMUL_SOFTMAX_SPMM = """kernel mix {
  in X: f32[8, 8] = random(seed=1)
  param W: f32[8, 8] = random(seed=2)
  S = matmul(X, W)
  P = softmax(S)
  Y = spmm(P, X)
  out Y
}
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


# 1. A target that cannot lower an op refuses instead of reporting it free.

def test_every_backend_declares_its_kernel_ops():
    for name in BACKEND_PACKAGES:
        backend = get_backend(name)
        assert backend.kernel_ops, f"{name} declares no kernel_ops"
        assert all(op.startswith("sparsec.") for op in backend.kernel_ops)


@pytest.mark.parametrize("target", ["sigma", "eie", "stc", "stc{sparse=false}"])
def test_attention_on_a_matmul_target_is_refused(target):
    with pytest.raises(Refused, match=r"cannot run sparsec\.attention; targets that can: "
                                      r".*systolic"):
        compile_text(ATTENTION, CompileOptions(target=target, target_passes=True))


def test_ops_a_target_skips_are_refused_not_dropped_from_the_cost(tmp_path, capsys):
    spec = write(tmp_path, "mix.sk", MATMUL_SOFTMAX_SPMM)
    assert main(["run", str(spec), "--target", "sigma"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("sparsec: error: sigma cannot run sparsec.softmax (nor sparsec.spmm); "
                   "targets that can: systolic, asadi, bitllm")
    assert main(["run", str(spec), "--target", "systolic"]) == 0


def test_compare_shows_cannot_run_for_a_target_that_cannot(tmp_path):
    spec = write(tmp_path, "att.sk", ATTENTION)
    rows = compare.compare(spec, ["systolic", "sigma", "eie"])
    assert rows[0].ok and rows[0].cycles > 0
    assert not rows[1].ok and "sigma cannot run sparsec.attention" in rows[1].error
    # Refused before eie's pruning passes fail on a kernel with no matmul to prune.
    assert not rows[2].ok and rows[2].error.startswith("eie cannot run sparsec.attention")


def test_a_lowering_that_leaves_an_op_is_caught_after_lowering(monkeypatch):
    """A backend declaring more than its lowering does (or nothing) is refused after
    lowering, from the ops left in the program."""
    from dataclasses import replace

    import sparsec.backends.sigma.target as sigma

    monkeypatch.setattr(sigma, "BACKEND", replace(sigma.BACKEND, kernel_ops=None))
    with pytest.raises(Refused, match=r"sigma cannot run sparsec\.attention.*left it "
                                      "unlowered"):
        compile_text(ATTENTION, CompileOptions(target="sigma"))


def test_kernel_op_names_lists_compute_ops_once_in_order():
    compiled = compile_text(MATMUL_SOFTMAX_SPMM, CompileOptions(lower=False))
    assert kernel_op_names(compiled.module) == ["sparsec.matmul", "sparsec.softmax",
                                                "sparsec.spmm"]


# 2. A bundle is checked against its IR before running.

def _compile(tmp_path, text: str, name: str = "p") -> Path:
    spec = write(tmp_path, f"{name}.sk", text)
    out = tmp_path / f"{name}.mlir"
    assert main(["compile", str(spec), "-o", str(out)]) == 0
    return out


def _rebind(mlir: Path) -> None:
    """Make the IR name its (edited) bundle's hash, as a consistent forgery would."""
    text = re.sub(r'"sha256:[0-9a-f]+"', f'"sha256:{sha256_of(mlir.with_suffix(".npz"))}"',
                  mlir.read_text())
    mlir.write_text(text)


GEMM = """kernel g {
  in X: f32[8, 16] = random(seed=1)
  param W: f32[16, 4] = random(seed=2)
  Y = matmul(X, W)
  out Y
}
"""


def test_a_bundle_from_another_compile_is_refused_by_hash(tmp_path, capsys):
    out = _compile(tmp_path, GEMM)
    bundle = dict(np.load(out.with_suffix(".npz")))
    bundle["g.X"] = bundle["g.X"] * 2
    np.savez(out.with_suffix(".npz"), **bundle)
    assert main(["run", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is not the bundle" in err and "recompile" in err and "Traceback" not in err


def test_a_wrong_shaped_array_is_refused_not_run(tmp_path, capsys):
    out = _compile(tmp_path, GEMM)
    bundle = dict(np.load(out.with_suffix(".npz")))
    bundle["g.X"] = bundle["g.X"][:, :12].copy()
    np.savez(out.with_suffix(".npz"), **bundle)
    _rebind(out)
    assert main(["run", str(out)]) == 1
    assert "'g.X' has shape [8, 12] but the IR declares [8, 16]" in capsys.readouterr().err


def test_a_bundle_with_corrupt_metadata_is_one_line(tmp_path, capsys):
    out = _compile(tmp_path, GEMM)
    bundle = dict(np.load(out.with_suffix(".npz")))
    bundle["__sparsec_meta__"] = np.frombuffer(b'{"nodtypes": 1}', dtype=np.uint8)
    np.savez(out.with_suffix(".npz"), **bundle)
    _rebind(out)
    assert main(["run", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt data bundle" in err


# 3. Integer products that do not fit their type are refused, never wrapped.

def test_integer_overflow_is_refused_with_the_count(tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.full((2, 3), 100_000, np.int32))
    np.save(tmp_path / "b.npy", np.full((3, 2), 100_000, np.int32))
    spec = write(tmp_path, "ov.sk", 'kernel g {\n  in A: i32[2, 3] = load("a.npy")\n'
                 '  param B: i32[3, 2] = load("b.npy")\n  C = matmul(A, B)\n  out C\n}\n')
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "g: matmul overflows i32: 4 of 4 exact sums" in err
    assert "30,000,000,000" in err


def test_integer_products_that_fit_are_exact(tmp_path):
    np.save(tmp_path / "a.npy", np.full((2, 3), 20_000, np.int32))
    np.save(tmp_path / "b.npy", np.full((3, 2), 20_000, np.int32))
    spec = write(tmp_path, "ok.sk", 'kernel g {\n  in A: i32[2, 3] = load("a.npy")\n'
                 '  param B: i32[3, 2] = load("b.npy")\n  C = matmul(A, B)\n  out C\n}\n')
    compiled = compile_spec(spec, CompileOptions(target="systolic"))
    result = execute(compiled.module, compiled.store)
    assert result.outputs["g"][0].tolist() == [[1_200_000_000] * 2] * 2
    assert result.reports[0].check.ok


# 4. NaN and infinity: refused on the way in, never "0 error" in the check.

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_are_refused_with_a_location(tmp_path, capsys, bad):
    x = np.ones((2, 3), np.float32)
    x[1, 2] = bad
    np.save(tmp_path / "x.npy", x)
    spec = write(tmp_path, "n.sk", 'kernel g {\n  in A: f32[2, 3] = load("x.npy")\n'
                 '  param B: f32[3, 2] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}\n')
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:2:21: error: load: data holds 1 NaN or infinite value "
                          "(first at [1, 2])")


def test_a_value_beyond_f16_range_is_refused(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.full((2, 2), 1e6, np.float32))
    spec = write(tmp_path, "h.sk", 'kernel g {\n  in A: f16[2, 2] = load("x.npy")\n'
                 '  param B: f16[2, 2] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}\n')
    assert main(["run", str(spec)]) == 1
    assert "exceeds f16's range" in capsys.readouterr().err


def test_check_never_passes_non_finite_values():
    ref = np.array([1.0, np.inf, 3.0])
    # inf in the reference swallowed any error in the norm: +1000 passed.
    assert not check_output(ref + np.array([0, 0, 1000.0]), ref, "f32").ok
    assert not check_output(ref, ref, "f32").ok
    nan = np.array([np.nan, 1.0])
    assert not check_output(nan, nan, "f32").ok
    assert not check_output(np.array([np.nan, 1.0]), np.array([0.0, 1.0]), "f32").ok
    finite = np.array([1.0, 2.0])
    assert check_output(finite, finite, "f32").ok


# 5. Matrix Market integers are range-checked like .npy.

def test_matrix_market_integers_are_not_clipped(tmp_path, capsys):
    (tmp_path / "m.mtx").write_text("%%MatrixMarket matrix coordinate integer general\n"
                                    "2 2 2\n1 1 100000\n2 2 3\n")
    spec = write(tmp_path, "m.sk", 'kernel g {\n  param A: i8[2, 2] = load("m.mtx")\n'
                 '  in B: i8[2, 2] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}\n')
    assert main(["run", str(spec)]) == 1
    assert "values in [3, 100000] do not fit i8 [-128, 127]" in capsys.readouterr().err


# 8, 9. Outputs never overwrite inputs; a failing command writes nothing.

@pytest.mark.parametrize("args, message", [
    (["compile", "{spec}", "-o", "{dir}/out.npz"], "NAME.mlir"),
    (["compile", "{spec}", "-o", "{spec}"], "NAME.mlir"),
    (["run", "{spec}", "--json", "{spec}"], "would overwrite the input"),
    (["run", "{spec}", "-o", "-"], "'-' is not a file name"),
    (["run", "{spec}", "--json", "{dir}/r.json", "--csv", "{dir}/r.json"],
     "named as two outputs"),
    (["run", "{spec}", "-o", "{dir}/out.mlir", "--json", "{dir}/no/such/x.json"],
     "folder {dir}/no/such does not exist"),
    (["compare", "{spec}", "--targets", "systolic", "--plot", "{dir}/p.xyz"],
     "write a .png, .pdf or .svg"),
])
def test_bad_outputs_are_refused_before_any_work(tmp_path, capsys, args, message):
    spec = write(tmp_path, "s.sk", GEMM)
    before = spec.read_text()
    fill = {"spec": str(spec), "dir": str(tmp_path)}
    assert main([a.format(**fill) for a in args]) == 1
    err = capsys.readouterr().err
    assert message.format(**fill) in err and err.count("\n") == 1
    assert spec.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sk"]


def test_a_failing_run_leaves_no_earlier_output(tmp_path, capsys):
    """Execution fails after compile: neither the program nor the report appears."""
    spec = write(tmp_path, "s.sk", MATMUL_SOFTMAX_SPMM)
    assert main(["run", str(spec), "--target", "sigma", "-o", str(tmp_path / "o.mlir"),
                 "--json", str(tmp_path / "r.json")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sk"]


def test_outputs_follow_the_umask(tmp_path):
    spec = write(tmp_path, "s.sk", GEMM)
    old = os.umask(0o022)
    try:
        assert main(["run", str(spec), "-o", str(tmp_path / "o.mlir"),
                     "--json", str(tmp_path / "r.json")]) == 0
    finally:
        os.umask(old)
    for name in ("o.mlir", "o.npz", "r.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


# 6, 7. Real processes: racing compiles leave one compile's pair; a signal leaves nothing.

def _sparsec_process(*args: str, cwd: Path) -> subprocess.Popen[str]:
    exe = Path(sys.executable).parent / "sparsec"
    return subprocess.Popen([str(exe), *args], cwd=cwd, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _many_kernels(count: int, seed: int = 0) -> str:
    return "".join(f"kernel k{i} {{\n  in X: f32[4, 4] = random(seed={seed + i})\n"
                   f"  param W: f32[4, 4] = random(seed=2)\n  Y = matmul(X, W)\n  out Y\n}}\n"
                   for i in range(count))


def test_racing_compiles_to_one_output_leave_a_matching_pair(tmp_path):
    write(tmp_path, "a.sk", _many_kernels(8, seed=0))
    write(tmp_path, "b.sk", GEMM)
    for delay in (0.0,):
        first = _sparsec_process("compile", "a.sk", "-o", "out.mlir", cwd=tmp_path)
        time.sleep(delay)
        second = _sparsec_process("compile", "b.sk", "-o", "out.mlir", cwd=tmp_path)
        assert first.wait(60) == 0 and second.wait(60) == 0
        module, store = load_program(tmp_path / "out.mlir")  # refuses a mixed pair
        kernels = {op.sym_name.data for op in module.ops}
        assert {k.split(".")[0] for k in store.keys()} == kernels
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sk", "b.sk", "out.mlir",
                                                               "out.npz"]


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_exits_with_one_line_and_leaves_no_debris(tmp_path, signum, code):
    write(tmp_path, "s.sk", _many_kernels(600))
    process = _sparsec_process("run", "s.sk", "-o", "s.mlir", "--json", "r.json",
                               cwd=tmp_path)
    time.sleep(2.5)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert err.strip().count("\n") == 0 and "no output written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sk"]


# 10. Shapes the machine cannot hold: a located error before allocating.

@pytest.mark.parametrize("shape, message", [
    ("100000, 100000", "needs about 37.3 GB to materialize"),
    ("8, 99999999999999999999", "dimension 99999999999999999999 of"),
])
def test_unaffordable_shapes_are_located_errors(tmp_path, capsys, monkeypatch, shape, message):
    """An executing run (and compile, which writes the data) must make the tensor."""
    monkeypatch.setenv("SPARSEC_MEMORY_LIMIT", "4G")
    spec = write(tmp_path, "h.sk", f"kernel g {{\n  in X: f32[{shape}] = random(seed=1)\n"
                 "  out X\n}\n")
    for command in (["run", str(spec)], ["compile", str(spec), "-o", str(tmp_path / "o.mlir")]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"{spec}:2:") and message in err


def test_no_execute_refuses_a_dimension_no_array_can_have(tmp_path, capsys):
    spec = write(tmp_path, "h.sk", "kernel g {\n  in X: f32[8, 99999999999999999999] = "
                 "random(seed=1)\n  out X\n}\n")
    assert main(["run", str(spec), "--no-execute"]) == 1
    assert "dimension 99999999999999999999 of" in capsys.readouterr().err


# 11. Tracebacks that became one located line.

def test_an_explicit_lowering_with_a_target_is_refused(tmp_path, capsys):
    spec = write(tmp_path, "s.sk", GEMM)
    assert main(["run", str(spec), "-p", "lower-systolic"]) == 1
    assert "-p lower-systolic: choose the target with --target" in capsys.readouterr().err


def test_a_corrupt_pattern_file_is_located(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04" + bytes(range(60)))
    spec = write(tmp_path, "p.sk", ATTENTION.replace("attention(Q, K, V)",
                                                     'attention(Q, K, V, mask=pattern("bad.npz"))'))
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:5:") and "pattern: cannot read 'bad.npz'" in err


def test_an_attribute_verifier_error_in_a_program_is_located(tmp_path, capsys):
    mlir = write(tmp_path, "pw.mlir", "func.func private @f0(tensor<8x8xf32, "
                 "#sparse_tensor.encoding<{ map = (d0, d1) -> (d0 : dense, d1 : compressed), "
                 "posWidth = 7 }>>)\n")
    assert main(["run", str(mlir)]) == 1
    assert capsys.readouterr().err == (f"sparsec: error: {mlir}:1:129: unexpected position "
                                       "bitwidth: 7\n")


# 12. Mistakes that exited 0.

@pytest.mark.parametrize("args, code, message", [
    (["compare", "{spec}", "--targets", ""], 1, "--targets names no target"),
    (["compare", "{spec}", "--targets", "foo,bar"], 1, "no target could run the spec"),
    (["run", "{spec}", "--print-ir-after", "nopass"], 1,
     "--print-ir-after nopass: no such pass in this pipeline (passes that run: lower-systolic)"),
    (["run", "{spec}", "--target", "systolic", "--target", "sigma"], 2, "--target given twice"),
    (["run", "{spec}", "-p", "canonicalize", "-p", "cse"], 2, "-p given twice"),
    (["run", "{spec}", "--target", "systolic{{rows=99999999999999999999}}"], 1,
     "systolic: option rows must be <= 2,147,483,647 (2^31 - 1), got 99999999999999999999"),
    (["workload", "bert", "--tokens", "99999", "-o", "{dir}/w.npz"], 2, "must be in [1, 512]"),
    (["compile", "{spec}", "--emit", "kernel", "--target", "sigma"], 1,
     "--target has no effect with --emit kernel"),
])
def test_mistakes_do_not_exit_0(tmp_path, capsys, args, code, message):
    spec = write(tmp_path, "s.sk", GEMM)
    fill = {"spec": str(spec), "dir": str(tmp_path)}
    with_exit = pytest.raises(SystemExit) if code == 2 else contextlib.nullcontext()
    with with_exit as raised:
        result = main([a.format(**fill) for a in args])
    assert (raised.value.code if code == 2 else result) == code
    assert message in capsys.readouterr().err


def test_an_int_for_a_float_pass_option_gets_a_range_message(tmp_path, capsys):
    spec = write(tmp_path, "s.sk", GEMM)
    assert main(["run", str(spec), "-p", "prune-magnitude{sparsity=5}"]) == 1
    assert "sparsity must lie in [0, 1], got 5.0" in capsys.readouterr().err
    assert main(["run", str(spec), "-p", "prune-magnitude{sparsity=0}"]) == 0


def test_spec_pipeline_and_target_lines_are_located(tmp_path, capsys):
    spec = write(tmp_path, "s.sk", GEMM.replace("  out Y\n", '  out Y\n  target "sigmaa"\n'))
    assert main(["run", str(spec)]) == 1
    assert capsys.readouterr().err.startswith(f"{spec}:6:10: error: target: unknown target "
                                              "'sigmaa'")
    spec = write(tmp_path, "p.sk", GEMM.replace("  out Y\n", '  out Y\n  pipeline "prune-nm{n=2"\n'))
    assert main(["run", str(spec)]) == 1
    assert capsys.readouterr().err.startswith(f"{spec}:6:12: error: pipeline: bad pipeline")


def test_mismatched_head_ranks_say_which_has_heads(tmp_path, capsys):
    """Was "K disagrees in heads: None != 2"."""
    spec = write(tmp_path, "k.sk", ATTENTION.replace("in Q: f32[16, 8]", "in Q: f32[2, 16, 8]")
                 .replace("in V: f32[16, 8]", "in V: f32[2, 16, 8]"))
    assert main(["run", str(spec)]) == 1
    assert "attention: V has 2 heads ([heads, T, d]) but K has none ([T, d])" in \
        capsys.readouterr().err
    spec = write(tmp_path, "q.sk", ATTENTION.replace("in Q: f32[16, 8]", "in Q: f32[2, 16, 8]"))
    assert main(["run", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "attention: Q has 2 heads ([heads, T, d]) but K has none ([T, d])" in err
    assert "None" not in err


def test_a_rank_3_encoding_on_a_rank_2_tensor_is_rejected_as_mlir_opt_does(tmp_path, capsys):
    mlir = write(tmp_path, "r3.mlir", "func.func private @f0(tensor<8x8xf32, "
                 "#sparse_tensor.encoding<{ map = (d0, d1, d2) -> (d0 : dense, d1 : dense, "
                 "d2 : compressed) }>>)\n")
    assert main(["run", str(mlir)]) == 1
    assert capsys.readouterr().err == (f"sparsec: error: {mlir}: dimension-rank mismatch "
                                       "between encoding and tensor shape: 3 != 2\n")


def test_a_failing_output_takes_the_others_with_it(tmp_path, capsys, monkeypatch):
    """compare --json/--csv/--plot where the plot cannot be written: nothing is written,
    and the message names the user's path, not a temporary one."""
    spec = write(tmp_path, "s.sk", GEMM)

    def broken_plot(rows, title, path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(compare, "plot", broken_plot)
    assert main(["compare", str(spec), "--targets", "systolic", "--json",
                 str(tmp_path / "c.json"), "--csv", str(tmp_path / "c.csv"),
                 "--plot", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'c.png'}: cannot write: No space left on device" in err
    assert ".tmp" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sk"]
