"""sparsec's excepthook for xdsl-opt (compiler/opt_diagnostics.py): installed only in an
xdsl-opt process, and it turns only user mistakes into one line. The end-to-end cases
run xdsl-opt itself: tests/filecheck/sparsec/xdsl_opt_errors.mlir, verify_error_cli.mlir."""

from __future__ import annotations

import subprocess
import sys

import pytest
from xdsl.utils.exceptions import PassFailedException, VerifyException

from sparsec.backends.common.spec import SpecError as OptionError
from sparsec.compiler import universe  # noqa: F401 - importing it must not install the hook here
from sparsec.compiler.opt_diagnostics import diagnostic_line, install_if_xdsl_opt


def test_not_installed_outside_xdsl_opt() -> None:
    before = sys.excepthook
    install_if_xdsl_opt()
    assert sys.excepthook is before
    assert not getattr(sys.excepthook, "sparsec_diagnostics", False)


def _raised(err: BaseException):
    try:
        raise err
    except BaseException as caught:  # noqa: BLE001
        return caught, caught.__traceback__


@pytest.mark.parametrize(("err", "line"), [
    (PassFailedException("prune-nm: needs 0 < n <= m"), "prune-nm: needs 0 < n <= m"),
    (VerifyException("sparsec.matmul: bad\n<module dump>"), "sparsec.matmul: bad"),
    (OptionError("lower-systolic: option rows must be >= 0"),
     "lower-systolic: option rows must be >= 0"),
])
def test_mistakes_are_one_line(err: BaseException, line: str) -> None:
    assert diagnostic_line(*_raised(err)) == line


@pytest.mark.parametrize("err", [KeyError("x"), AttributeError("bug"), ValueError("bug")])
def test_bugs_keep_their_traceback(err: BaseException) -> None:
    """A ValueError outside pipeline building is a bug, not an option mistake."""
    assert diagnostic_line(*_raised(err)) is None


def test_installed_under_the_name_xdsl_opt() -> None:
    """A process whose argv[0] is xdsl-opt gets the hook from importing the Universe."""
    code = ("import sys; sys.argv = ['/usr/bin/xdsl-opt']; "
            "import sparsec.compiler.universe; "
            "from xdsl.utils.exceptions import PassFailedException; "
            "raise PassFailedException('p: bad option')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == "xdsl-opt: error: p: bad option\n"
