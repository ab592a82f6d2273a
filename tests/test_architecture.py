"""The package arrows of DESIGN.md and docs/decisions.md, held on the source itself.

compiler -> passes, backends, dialects, tensors; passes -> dialects, tensors;
backends -> dialects, tensors, backends; tensors -> dialects; dialects -> tensors only for
format storage semantics. Nothing but the CLI, the plugin and the tests imports compiler/.
Start-up: `sparsec --help` and `sparsec targets` import no xDSL (their speed is measured
in benchmarks/interpreter_overhead.py; here only what they load is checked).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

ALLOWED: dict[str, set[str]] = {
    "passes": {"passes", "dialects", "tensors"},
    "backends": {"backends", "dialects", "tensors"},
    "tensors": {"tensors", "dialects"},
    "dialects": {"dialects", "tensors"},
}


def _sparsec_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level sparsec package) of every `sparsec.X` import in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sparsec" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_follow_the_arrows(package: str) -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports sparsec.{target}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line, target in _sparsec_imports(path) if target not in ALLOWED[package]]
    assert not wrong, "\n".join(wrong)


def test_no_backend_imports_another() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports sparsec.backends.{other}"
             for package in sorted((ROOT / "backends").iterdir())
             if package.is_dir() and package.name not in ("common", "__pycache__")
             for path in sorted(package.rglob("*.py"))
             for line, other in _backend_imports(path) if other not in ("common", package.name)]
    assert not wrong, "\n".join(wrong)


def _backend_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and \
                node.module.startswith("sparsec.backends."):
            found.append((node.lineno, node.module.split(".")[2]))
    return found


@pytest.mark.parametrize("argv", [["--help"], ["targets"]])
def test_cli_start_up_imports_no_xdsl(argv: list[str]) -> None:
    code = ("import sys, contextlib, io\n"
            "HEAVY = ('xdsl.ir', 'xdsl.dialects', 'xdsl.interpreter', 'xdsl.passes', 'scipy', 'numpy',"
            " 'sparsec.compiler.driver', 'sparsec.dialects')\n"
            "from sparsec.compiler.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try: main({argv!r})\n"
            "    except SystemExit: pass\n"
            "heavy = sorted(m for m in sys.modules if m.startswith(HEAVY))\n"
            "print(len(heavy), heavy[:5])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("0 "), f"`sparsec {' '.join(argv)}` imported {out}"
