"""Never a silent wrong answer (issue 10): refused work, honest checks, atomic outputs,
clean errors. Each test is a bad input that once gave a wrong answer, a traceback or
debris; see docs/reliability.md for the guarantees."""

from __future__ import annotations

import pytest

from sparsec.backends import BACKEND_PACKAGES, get_backend
from sparsec.backends.common.backend import kernel_op_names
from sparsec.compiler import compare
from sparsec.compiler.cli import main
from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.compiler.guards import Refused

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
