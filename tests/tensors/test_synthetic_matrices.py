"""Synthetic sparse matrices with intra-matrix heterogeneity, and `sparsec workload
matrix` writing them as Matrix Market that `load(...)` reads back."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from sparsec.compiler.cli import main
from sparsec.tensors import synthetic_matrices as sm


def test_rmat_is_seeded_square_and_skewed():
    a = sm.rmat(10, 8, seed=3)
    assert a.shape == (1024, 1024)
    assert 0.8 * 8 * 1024 < a.nnz <= 8 * 1024          # duplicates merge
    assert (a != sm.rmat(10, 8, seed=3)).nnz == 0
    assert (a != sm.rmat(10, 8, seed=4)).nnz > 0
    # hubs first: the top-left 1/16 of the matrix holds far more than 1/16 of the nonzeros
    corner = a[:256, :256].nnz
    assert corner > 0.25 * a.nnz
    assert np.all(a.data >= 0.5)


def test_banded_has_its_band_and_blocks():
    a = sm.banded(4096, band=8, per_row=4, blocks=4, block_size=128, block_density=0.5, seed=1)
    coo = a.tocoo()
    far = np.abs(coo.row - coo.col) > 8
    # off-band entries come only from the blocks: at most 4 * 0.5 * 128^2 of them
    assert far.sum() <= 4 * 0.5 * 128 * 128
    assert a.nnz > 4096 * 3
    dense_rows = np.diff(a.indptr)
    assert dense_rows.max() > 40 and np.median(dense_rows) <= 8


@pytest.mark.parametrize("call,message", [
    (lambda: sm.rmat(0), "scale must be in 1..31"),
    (lambda: sm.rmat(4, a=0.6, b=0.3, c=0.2), "a \\+ b \\+ c < 1"),
    (lambda: sm.banded(10, block_size=20), "block size must be in 1..10"),
    (lambda: sm.banded(10, block_size=2, block_density=0), "block density must be in"),
])
def test_bad_arguments_name_the_rule(call, message):
    with pytest.raises(sm.MatrixSpecError, match=message):
        call()


@pytest.mark.parametrize("name", ["m.mtx", "m.mtx.gz"])
def test_cli_writes_matrix_market_that_load_reads(tmp_path: Path, name: str, capsys):
    out = tmp_path / name
    assert main(["workload", "matrix", "rmat", "--scale", "8", "--edge-factor", "4",
                 "--seed", "2", "-o", str(out)]) == 0
    assert "rmat 256 x 256" in capsys.readouterr().out
    back = scipy.io.mmread(str(out)).tocsr()
    expected = sm.rmat(8, 4, seed=2)
    assert back.shape == (256, 256) and back.nnz == expected.nnz
    np.testing.assert_allclose(back.toarray(), expected.toarray(), rtol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporary left
    spec = tmp_path / "k.sk"
    spec.write_text(f'kernel k {{\n  param A: f32[256, 256] = load("{name}")\n'
                    "  in B: f32[256, 8] = random(seed=1)\n  C = matmul(A, B)\n  out C\n}\n")
    assert main(["run", str(spec), "--target", "hottiles{tile_rows=64 tile_cols=64}"]) == 0


def test_cli_banded_and_its_mistakes(tmp_path: Path, capsys):
    assert main(["workload", "matrix", "banded", "--rows", "2048", "--blocks", "2",
                 "--block-size", "64", "-o", str(tmp_path / "b.mtx")]) == 0
    assert main(["workload", "matrix", "banded", "--rows", "10", "--block-size", "20",
                 "-o", str(tmp_path / "x.mtx")]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "sparsec: error: banded: block size must be in 1..10, got 20"
    assert main(["workload", "matrix", "rmat", "--scale", "4", "-o", str(tmp_path / "x.npz")]) == 1
    assert "output must end in .mtx or .mtx.gz" in capsys.readouterr().err
