"""sparsec compare: per-target pipelines, one table, rows for targets that cannot run."""

import json
from pathlib import Path

import pytest

from sparsec.compiler.cli import main
from sparsec.compiler.compare import compare, pipeline_for, speedups, split_targets, to_csv

SPEC = """kernel k {
  in    X: f16[64, 128] = random(seed=1)
  param W: f16[128, 96] = random(seed=2)
  Y = matmul(X, W)
  out Y
}
"""


@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "k.sk"
    path.write_text(SPEC)
    return path


def test_targets_split_on_commas_outside_braces():
    assert split_targets("systolic,stc{preset=a100 sparse=false},systolic{rows=8}") == [
        "systolic", 'stc{preset="a100" sparse=false}', "systolic{rows=8}"]


@pytest.mark.parametrize("target,user,expected", [
    ("stc", "", "prune-nm{n=2 m=4}"),
    ("stc{sparse=false}", "", ""),
    ("stc", "prune-magnitude{sparsity=0.5}", "prune-magnitude{sparsity=0.5},prune-nm{n=2 m=4}"),
    ("stc", "prune-nm{n=1 m=4}", "prune-nm{n=1 m=4}"),
    ("systolic", "quantize", "quantize"),
])
def test_each_target_adds_the_passes_it_needs(target, user, expected):
    assert pipeline_for(target, user) == expected


def test_rows_speedups_and_a_target_that_cannot_run(spec):
    rows = compare(spec, ["systolic", "stc{preset=a100}", "nosuch", "stc{sparse=true preset=h100}"])
    assert [r.ok for r in rows] == [True, True, False, True]
    assert "unknown target 'nosuch'" in rows[2].error
    ups = speedups(rows)
    assert ups[0] == pytest.approx(1.0) and ups[2] is None
    assert ups[1] == pytest.approx(rows[0].time_us / rows[1].time_us)
    assert rows[1].error_vs_original > 0 and rows[0].error_vs_original < 1e-6
    assert all(r.check_ok for r in rows if r.ok)
    assert to_csv(rows).splitlines()[0].startswith("target,pipeline,ok,error,cycles")


def test_cli_writes_table_plot_json_and_csv(spec, tmp_path, capsys):
    png, js, cs = tmp_path / "c.png", tmp_path / "c.json", tmp_path / "c.csv"
    assert main(["compare", str(spec), "--targets", "systolic,stc{preset=a100},bogus",
                 "--plot", str(png), "--json", str(js), "--csv", str(cs)]) == 0
    out = capsys.readouterr().out
    assert "cannot run" in out and "speedup" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    assert [t["target"] for t in data["targets"]] == ["systolic", 'stc{preset="a100"}', "bogus"]
    assert data["reports"]["systolic"][0]["cycles"] == data["targets"][0]["cycles"]
    assert len(cs.read_text().splitlines()) == 4


def test_bad_targets_syntax_is_a_clean_error(spec, capsys):
    assert main(["compare", str(spec), "--targets", "systolic{rows="]) == 1
    assert "bad --targets" in capsys.readouterr().err


F32_GEMM = """kernel g {
  in    X: f32[16, 64] = random(seed=1)
  param W: f32[64, 32] = random(seed=2, density=0.5)
  Y = matmul(X, W)
  out Y
}
"""


def test_dram_bytes_count_the_same_boundary_on_every_target(tmp_path):
    """Systolic, SIGMA, EIE and STC: DRAM bytes at least the boundary (operands in,
    result out), with weights only where the target does not preload them; each row says
    what it counts, and on-chip + DRAM energy is the total."""
    path = tmp_path / "g.sk"
    path.write_text(F32_GEMM)
    rows = compare(path, ["systolic{word_bytes=4}", "sigma", "eie", "stc{sparse=false}"], "")
    assert all(r.ok for r in rows), [r.error for r in rows]
    x_bytes, w_dense, y_bytes = 16 * 64 * 4, 64 * 32 * 4, 16 * 32 * 4
    systolic, sigma, eie, stc = rows
    assert systolic.dram_bytes >= x_bytes + w_dense + y_bytes
    assert stc.dram_bytes >= x_bytes + w_dense + y_bytes
    # SIGMA reads W bitmap-compressed: values of the nonzeros plus one bit per element.
    w_nnz = int(sigma.reports[0].details["gemms"][0]["bitmap_bits"]) // 8
    assert sigma.dram_bytes == x_bytes + w_nnz + y_bytes or sigma.dram_bytes > x_bytes + y_bytes
    # EIE keeps its weights on chip; activations and results are 16-bit words.
    assert eie.dram_bytes == 16 * 64 * 2 + 16 * 32 * 2
    assert "weights on chip" in eie.counts and "weights from DRAM" in sigma.counts
    assert "untimed" in sigma.counts and "DRAM timed" in systolic.counts
    assert stc.counts.startswith("hbm") and "4-byte words" in systolic.counts
    for row in rows:
        pj = row.reports[0].details["accounting"]["dram_pj_per_byte"]
        assert row.dram_energy_pj == pytest.approx(row.dram_bytes * pj)
        assert 0 < row.dram_energy_pj < row.energy_pj
