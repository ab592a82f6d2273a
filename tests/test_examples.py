"""Every example runs with the commands in its header comment, on a fresh copy of
examples/ where the data it needs is made by those same commands (`sparsec workload
...`), as a new user would run them. Examples whose header names no command are run with
`sparsec run examples/NAME.sk`."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import require_package
from sparsec.compiler.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PACKAGE_USE = re.compile(r"package:([A-Za-z0-9_]+)/")


def header_commands(path: Path) -> list[str]:
    """The `sparsec ...` commands of a spec's leading comment block (with `\\`
    continuations joined), in order."""
    commands: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if pending:
            pending += " " + text.rstrip("\\").strip()
        elif text.startswith("sparsec "):
            pending = text.rstrip("\\").strip()
        if pending and not text.endswith("\\"):
            commands.append(pending)
            pending = ""
    return commands


def example_commands(path: Path) -> list[str]:
    return header_commands(path) or [f"sparsec run examples/{path.name}"]


def test_header_commands_join_continuations(tmp_path: Path) -> None:
    spec = tmp_path / "x.sk"
    spec.write_text("# intro\n#   sparsec run examples/x.sk \\\n#     --target eie\n"
                    "# sparsec workload bert -o a.npz\nkernel k {}\n# sparsec run ignored\n")
    assert header_commands(spec) == ["sparsec run examples/x.sk --target eie",
                                     "sparsec workload bert -o a.npz"]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.sk")), ids=lambda p: p.name)
def test_example_runs_with_its_header_commands(path: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for package in sorted(set(PACKAGE_USE.findall(path.read_text()))):
        require_package(package)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for command in example_commands(path):
        argv = shlex.split(command)
        assert argv[0] == "sparsec", command
        assert main(argv[1:]) == 0, f"`{command}` failed"
