"""`sparsec analyze precision`: the theory section, plots, atomic writes and clean errors
(the SmolLM2 runs themselves are exercised by the report command, see the bitllm README)."""

from pathlib import Path

import numpy as np
import pytest

from sparsec.backends.bitllm.spec import BitllmSpec
from sparsec.compiler import analyze
from sparsec.compiler.cli import main


def test_theory_section_has_the_exact_width_and_bounds():
    theory = analyze.awsc_theory(BitllmSpec())
    assert theory["required"] == 24
    by_bits = {row["acc_bits"]: row for row in theory["bounds"]}
    assert by_bits[24] == {"acc_bits": 24, "saturate": 0, "wrap": 0, "truncate": 0}
    assert by_bits[23]["truncate"] == 1 and by_bits[23]["saturate"] > 0
    assert [s["required_bits"] for s in theory["spans"]][:4] == [21, 22, 23, 24]


def test_theory_plot_and_overflow_table_are_written(tmp_path: Path):
    theory = analyze.awsc_theory(BitllmSpec(span=2))
    analyze.plot_theory(theory, tmp_path / "bound.png")
    assert (tmp_path / "bound.png").stat().st_size > 1000
    layer = analyze.LayerGemm(0, events={"sum_bits_histogram": [0, 3, 0, 5, 2]})
    rows = {r["acc_bits"]: r["overflowing_sums"] for r in analyze.overflow_table([layer], 5)}
    assert rows[3] == 2 and rows[4] == 0 and rows[2] == 7
    assert not list(tmp_path.glob(".*"))  # no temporary left behind


def test_nonlinear_tables_on_given_inputs():
    x = np.linspace(-6, 6, 501).astype(np.float32)
    inputs = {"exp": -np.abs(x), "reciprocal": np.abs(x) + 1, "rsqrt": np.abs(x) + 0.5,
              "sigmoid": x, "silu": x, "gelu": x}
    errors = analyze.order_errors(inputs)
    assert all([r["order"] for r in rows] == list(analyze.ORDERS) for rows in errors.values())
    assert errors["exp"][0]["max_rel"] > errors["exp"][5]["max_rel"]
    assert all(r["max_rel"] <= r["bound_rel_f32"] for rows in errors.values() for r in rows)
    drift = analyze.activation_drift(inputs)
    assert drift["silu"][0]["wasserstein"] > drift["silu"][7]["wasserstein"]


@pytest.mark.parametrize("argv,message", [
    (["--target", "systolic"], "analyze precision models the bitllm's arithmetic"),
    (["--layers", "a,b"], "--layers takes comma-separated layer numbers"),
    (["--tokens", "1"], "--tokens must be >= 2"),
])
def test_mistakes_are_one_line(argv, message, tmp_path, capsys):
    assert main(["analyze", "precision", "-o", str(tmp_path / "r"), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sparsec: error:") and message in err and "\n" not in err
