"""Runs every FileCheck file under tests/filecheck/ through its `// RUN:` lines.

Each RUN line (`// RUN:` in .mlir files, `# RUN:` in kernel specs) is a shell pipeline
such as `xdsl-opt %s -p 'lower-systolic' | filecheck %s`; `%s` is the file itself. The tools are the installed ones (`xdsl-opt` with sparsec's
Universe plugin, the `filecheck` package, `sparsec`), found next to this Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FILES = sorted([*HERE.rglob("*.mlir"), *HERE.rglob("*.sk")])
RUN = re.compile(r"^(?://|#) RUN: (.*)$", re.MULTILINE)


def _run_lines(path: Path) -> list[str]:
    return [m.group(1).strip() for m in RUN.finditer(path.read_text())]


CASES = [(path, i, line) for path in FILES for i, line in enumerate(_run_lines(path))]


def test_every_file_has_a_run_line():
    assert FILES
    assert all(_run_lines(path) for path in FILES)


@pytest.mark.parametrize("path,index,line", CASES,
                         ids=[f"{p.relative_to(HERE)}:{i}" for p, i, _ in CASES])
def test_run_line(path: Path, index: int, line: str):
    command = line.replace("%s", f"'{path}'")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                            text=True, env=env, cwd=path.parent)
    assert result.returncode == 0, (
        f"RUN line {index} of {path.name} failed:\n$ {command}\n{result.stdout}\n{result.stderr}")
