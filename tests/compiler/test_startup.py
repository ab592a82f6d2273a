"""The start-up mechanisms of `sparsec run`/`compile` (docs/decisions.md, "Start-up"):
random data drawn ahead on worker threads, the cached spec parser, the blocked output
check, the dialects the driver loads. Their speed is measured in
benchmarks/interpreter_overhead.py; here only that they change no result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sparsec.backends.common import report
from sparsec.backends.common.report import check_output
from sparsec.compiler import sources
from sparsec.compiler.sources import SourcePrefetch, materialize
from sparsec.compiler.spec import SpecError, parse_spec

SPEC = """kernel a {{
  in    X: f32[{n}, {n}] = random(seed=1)
  param W: bf16[{n}, {n}] = random(seed=2, density=0.5, dist=uniform, std=0.5)
  param Z: i8[{n}, {n}] = random(seed=3)
  Y = matmul(X, X)
  out Y
}}
kernel b {{
  in    X: f16[{n}, 8] = random(seed=4, std=3)
  Y = matmul(X, X, transpose_b=true)
  out Y
}}
"""


def _decls(spec):
    return [(k.name, d) for k in spec.kernels for d in k.decls]


def test_data_drawn_ahead_equals_data_drawn_inline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "PREFETCH_MIN_ELEMENTS", 16)
    spec = parse_spec(SPEC.format(n=40), str(tmp_path / "s.sk"))
    with SourcePrefetch(spec) as ahead:
        assert len(ahead._futures) == 4  # every tensor of >= 16 elements is drawn ahead
        for _, decl in _decls(spec):
            drawn = ahead.take(decl, tmp_path)
            inline = materialize(decl.source, decl.type, tmp_path)
            assert drawn.dtype == inline.dtype
            np.testing.assert_array_equal(drawn, inline)


def test_a_bad_source_drawn_ahead_fails_at_its_declaration(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "PREFETCH_MIN_ELEMENTS", 1)
    text = ("kernel k {\n  in X: f32[4, 4] = random(seed=1)\n"
            "  param W: f32[4, 4] = load(\"missing.npy\")\n  Y = matmul(X, W)\n  out Y\n}\n")
    spec = parse_spec(text, str(tmp_path / "k.sk"))
    x, w = (d for _, d in _decls(spec))
    with SourcePrefetch(spec) as ahead:
        assert ahead.take(x, tmp_path).shape == (4, 4)
        with pytest.raises(SpecError, match="missing.npy"):
            ahead.take(w, tmp_path)


def test_draws_ahead_that_do_not_fit_memory_together_run_inline(tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(sources, "PREFETCH_MIN_ELEMENTS", 16)
    monkeypatch.setattr(sources, "SMALL_TENSOR_BYTES", 0)
    monkeypatch.setattr(sources, "available_memory", lambda: 1000)
    spec = parse_spec(SPEC.format(n=40), str(tmp_path / "s.sk"))
    with SourcePrefetch(spec) as ahead:
        assert not ahead._futures


def test_check_compares_block_by_block_like_the_whole(monkeypatch) -> None:
    monkeypatch.setattr(report, "CHECK_BLOCK_ELEMENTS", 7)
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((13, 11)).astype(np.float32)
    out = ref + rng.standard_normal(ref.shape).astype(np.float32) * 1e-3
    check = check_output(out, ref, "f32")
    diff = out.astype(np.float64) - ref.astype(np.float64)
    assert check.max_abs_err == pytest.approx(np.max(np.abs(diff)), rel=0, abs=0)
    assert check.rel_err == pytest.approx(np.linalg.norm(diff) / np.linalg.norm(ref.astype(np.float64)), rel=1e-12)
    assert not check.ok
    bad = out.copy()
    bad[12, 10] = np.nan
    bad[0, 0] = np.inf
    assert "2 NaN or infinite values" in check_output(bad, ref, "f32").reason
    assert "reference holds 2" in check_output(out, bad, "f32").reason
    assert check_output(out.T, ref.T, "f32").rel_err == pytest.approx(check.rel_err)


def _run(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env=env).stdout


def test_parser_tables_are_cached_per_grammar_and_a_bad_cache_is_rebuilt(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SPARSEC_CACHE_DIR": str(tmp_path)}
    code = ("from sparsec.compiler.spec import parse_spec\n"
            "print(parse_spec('kernel k {\\n in X: f32[2, 2] = random()\\n out X\\n}\\n', "
            "'k.sk').kernel().name)\n")
    assert _run(code, env).strip() == "k"
    (cached,) = tmp_path.glob("spec-parser-*.lark")
    cached.write_bytes(cached.read_bytes()[:100])  # truncated: lark rebuilds it
    assert _run(code, env).strip() == "k"
    assert cached.stat().st_size > 100
    env["SPARSEC_CACHE_DIR"] = "none"
    assert _run(code, env).strip() == "k"


def test_running_a_gemm_loads_only_its_target_dialect() -> None:
    code = ("import sys\nfrom sparsec.compiler.driver import compile_text, CompileOptions\n"
            "compile_text('kernel k {\\n in X: f32[4, 4] = random()\\n Y = matmul(X, X)\\n"
            " out Y\\n}\\n', CompileOptions(target='systolic'))\n"
            "print(sorted(m for m in sys.modules if m.endswith('.isa') or "
            "m == 'xdsl.dialects.complex'))\n")
    assert _run(code, dict(__import__("os").environ)).strip() == \
        "['sparsec.backends.common.isa', 'sparsec.backends.systolic.isa']"


def test_the_cli_lets_blas_threads_sleep_unless_the_user_chose() -> None:
    import os

    code = ("import os\nfrom sparsec.compiler import cli\ncli.main(['targets'])\n"
            "import numpy\nprint('TIMEOUT', os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    assert _run(code, env).splitlines()[-1] == "TIMEOUT 4"
    assert _run(code, {**env, "OPENBLAS_THREAD_TIMEOUT": "20"}).splitlines()[-1] == "TIMEOUT 20"


def test_the_program_writes_its_outputs_and_exit_status_before_its_quick_exit(tmp_path: Path) -> None:
    """`entry` (the console script, `python -m`) skips CPython's final collection; what
    the command wrote must be whole and its status unchanged."""
    spec = tmp_path / "k.sk"
    spec.write_text("kernel k {\n  in X: f32[16, 16] = random(seed=1)\n"
                    "  param W: f32[16, 16] = random(seed=2)\n  Y = matmul(X, W)\n  out Y\n}\n")
    cli = [sys.executable, "-m", "sparsec.compiler.cli"]
    done = subprocess.run([*cli, "run", str(spec), "--json", str(tmp_path / "r.json"), "--csv",
                           str(tmp_path / "r.csv"), "-o", str(tmp_path / "k.mlir")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    import json

    assert json.loads((tmp_path / "r.json").read_text())["check"]["ok"] is True
    assert (tmp_path / "r.csv").read_text().count("\n") == 2
    again = subprocess.run([*cli, "run", str(tmp_path / "k.mlir")], capture_output=True,
                           text=True, cwd=tmp_path)
    assert again.returncode == 0 and "ok" in again.stdout
    bad = subprocess.run([*cli, "run", str(tmp_path / "missing.sk")], capture_output=True,
                         text=True, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1


def test_the_spec_front_end_loads_no_xdsl() -> None:
    """`sparsec run` draws a spec's data while xDSL loads: parsing, checking and drawing
    must not import it (else the two add up again)."""
    code = ("import sys\nfrom sparsec.compiler import sources, spec, guards, outputs\n"
            "from sparsec.tensors import datastore\n"
            "print(sorted(m for m in sys.modules if m.startswith(('xdsl', 'sparsec.dialects'))))\n")
    assert _run(code, dict(__import__("os").environ)).strip() == "[]"
