"""The bitwave backend: hand-checked cycles and bytes, exact INT8 results, the dynamic
dataflow choice, the Stripes-like mode, and clean refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import run_text
from sparsec.backends.bitwave import model
from sparsec.backends.bitwave.spec import DATAFLOWS, BitwaveSpec
from sparsec.backends.common.spec import SpecError
from sparsec.compiler.cli import main

PREPARE = "quantize{bits=8 per_channel=true},quantize{bits=8 operand=a},sparsify{format=bitcolumn group=16}"


def hand_weight() -> np.ndarray:
    """K = 24, N = 2 integer weights whose per-channel max is 127 (codes = values).
    Lane groups of 8: channel 0 keeps 3, 0, 7 magnitude columns; channel 1 keeps 4, 1, 7."""
    w = np.zeros((24, 2))
    w[0:3, 0] = [1, 2, 4]
    w[16, 0] = 127
    w[0:2, 1] = [-96, 3]
    w[8, 1] = 16
    w[16, 1] = -127
    return w


def spec_text(tmp_path: Path, w: np.ndarray, m: int = 20) -> str:
    np.save(tmp_path / "w.npy", w)
    return (f"kernel k {{\n  in X: f64[{m}, {w.shape[0]}] = random(seed=3)\n"
            f"  param W: f64[{w.shape[0]}, {w.shape[1]}] = load(\"{tmp_path / 'w.npy'}\")\n"
            "  Y = matmul(X, W)\n  out Y\n}\n")


def test_hand_checked_cycles_and_bytes(tmp_path: Path) -> None:
    text = spec_text(tmp_path, hand_weight())
    _, report = run_text(text, "bitwave{dataflow=fixed}", pipeline=PREPARE)
    # lock-step tile: max(3, 4) + max(0, 1) + max(7, 7) = 12 per block of 16 tokens, 2 blocks
    assert report.details["compute_cycles"] == 24
    assert report.details["int_exact"] is True
    assert report.check.ok and report.check.rel_err < 1e-12
    # storage groups of 16: kept columns 3 + 7 (ch 0) and 6 + 8 (ch 1, sign included)
    weight_bytes = (8 * 4 + 16 * 24) // 8
    assert report.bytes["dram"] == {"read": weight_bytes + 20 * 24, "write": 20 * 2,
                                    "total": weight_bytes + 20 * 24 + 40}
    dram_cycles = -(-(weight_bytes + 480) // 16)
    assert report.cycles == dram_cycles + 24 + -(-40 // 16)
    _, stripes = run_text(text, "bitwave{preset=stripes}", pipeline=PREPARE)
    assert stripes.details["compute_cycles"] == 3 * 8 * 2


def test_dynamic_dataflow_takes_the_fastest_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = np.round(rng.normal(0, 12, (96, 70)))
    text = spec_text(tmp_path, w, m=5)
    outputs, report = run_text(text, "bitwave", pipeline=PREPARE)
    best = min(model.compute_cycles(_codes(w), 5, s, "bitwave") for s in DATAFLOWS)
    assert report.details["compute_cycles"] == best
    assert report.details["int_exact"] is True and report.check.ok


def _codes(w: np.ndarray) -> np.ndarray:
    """Per-channel symmetric 8-bit codes, as quantize{per_channel=true} makes them."""
    scale = np.abs(w).max(axis=0) / 127
    return np.rint(w / scale).astype(np.int64)


def test_speedup_over_stripes_grows_with_zero_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    text = spec_text(tmp_path, rng.normal(0, 1, (128, 64)), m=16)
    cycles = []
    for z in (0, 2, 4):
        flip = f"quantize{{bits=8 per_channel=true}},bit-flip{{zero_cols={z} group=16}}"
        _, report = run_text(text, "bitwave{dataflow=fixed}",
                             pipeline=f"{flip},quantize{{bits=8 operand=a}},sparsify{{format=bitcolumn}}")
        assert report.details["int_exact"] is True and report.check.ok
        cycles.append(report.details["compute_cycles"])
    _, stripes = run_text(text, "bitwave{preset=stripes}", pipeline=PREPARE)
    assert stripes.details["compute_cycles"] > cycles[0] > cycles[1] > cycles[2]
    # with 4 zero columns in every group of 16, no 8-lane group keeps more than 3
    assert cycles[2] <= 3 * (128 // 8) * 2


def test_unprepared_weight_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "k.sk"
    spec.write_text(spec_text(tmp_path, hand_weight()))
    assert main(["run", str(spec), "--target", "bitwave", "--no-target-passes"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bitwave: the weight of sparsec.matmul must be a param in INT8 bit columns" in err[0]


def test_run_command_adds_the_target_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "k.sk"
    spec.write_text(spec_text(tmp_path, hand_weight()))
    assert main(["run", str(spec), "--target", "bitwave", "-p",
                 "quantize{bits=8 per_channel=true},bit-flip{zero_cols=3 group=16}"]) == 0
    out = capsys.readouterr()
    assert 'bitwave adds: quantize{bits=8 operand="a"},sparsify{format="bitcolumn" group=16}' in out.err + out.out


@pytest.mark.parametrize("option,message", [
    ("mode=fast", "option mode must be bitwave or stripes"),
    ("dataflow=auto", "option dataflow must be dynamic or fixed"),
    ("lanes=0", "option lanes must be >= 1"),
])
def test_bad_options(option: str, message: str) -> None:
    from sparsec.compiler.driver import Target

    with pytest.raises(SpecError, match=message):
        Target.parse(f"bitwave{{{option}}}")


def test_spec_counts_equal_multipliers() -> None:
    spec = BitwaveSpec()
    assert spec.total_lanes == 4096 and spec.multipliers == 512
    assert all(lanes * rows * cols <= 4096 for lanes, rows, cols in spec.shapes())


def test_target_passes_are_matched_by_pass_and_operand() -> None:
    from sparsec.compiler.driver import Target, target_passes

    target = Target.parse("bitwave")
    assert target_passes(target, "quantize{bits=8 per_channel=true}") == (
        'quantize{bits=8 operand="a"},sparsify{format="bitcolumn" group=16}')
    assert target_passes(target, "quantize{bits=4 operand=a},sparsify{format=bitcolumn group=8}") == (
        "quantize{bits=8 per_channel=true}")


def test_twos_complement_columns_are_refused(tmp_path: Path) -> None:
    text = spec_text(tmp_path, hand_weight())
    pipeline = ("quantize{bits=8 per_channel=true},quantize{bits=8 operand=a},"
                "sparsify{format=bitcolumn sign_magnitude=false}")
    with pytest.raises(Exception, match="two's complement bit columns; BitWave stores sign-magnitude"):
        run_text(text, "bitwave", pipeline=pipeline)
