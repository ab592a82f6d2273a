"""load("package:NAME/path") reads data shipped inside an installed Python package."""

import sys

import numpy as np
import pytest

from sparsec.compiler.driver import CompileOptions, compile_text
from sparsec.compiler.spec import SpecError


@pytest.fixture
def weights_package(tmp_path, monkeypatch):
    package = tmp_path / "fake_weights_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    np.save(package / "model" / "w.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fake_weights_pkg"
    sys.modules.pop("fake_weights_pkg", None)


def _spec(path: str) -> str:
    return (f'kernel k {{\n  in X: f32[2, 4] = random(seed=1)\n'
            f'  param W: f32[4, 3] = load("{path}", transpose=true)\n'
            f'  Y = matmul(X, W)\n  out Y\n}}\n')


def test_package_path_resolves_inside_the_package(weights_package):
    compiled = compile_text(_spec(f"package:{weights_package}/model/w.npy"),
                            CompileOptions(lower=False))
    np.testing.assert_array_equal(compiled.store.get("k.W"),
                                  np.arange(12, dtype=np.float32).reshape(3, 4).T)


def test_missing_package_says_how_to_install_it():
    with pytest.raises(SpecError, match="no installed Python package 'no_such_pkg_xyz'"):
        compile_text(_spec("package:no_such_pkg_xyz/w.npy"), CompileOptions(lower=False))
