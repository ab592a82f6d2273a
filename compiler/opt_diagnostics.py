"""Under `xdsl-opt`, a user's mistake is one diagnostic line and exit 1, not a traceback.

What xdsl-opt 0.74 does itself (xdsl/xdsl_opt_main.py): it builds the pass pipeline in
`xDSLOptMain.__init__`, catching nothing, so an option a pass rejects while it is
constructed (`lower-systolic{rows=-1}`, sparsec's `SpecError`; `prune-nm{n=x}`, xDSL's
own `ValueError` "Incompatible types") escapes as a traceback. While it runs the passes,
`run()` catches `DiagnosticException` (the class of `PassFailedException` and
`VerifyException`) only under `--verify-diagnostics`, where it prints the message and
exits 0 (the mode filecheck tests use); without the flag it re-raises, so a pass failure
(`prune-nm{n=5 m=4}`) or a verifier error (`sparsec.matmul: inner dimensions disagree`)
is a traceback too, xDSL's own passes' as much as sparsec's. There is no hook in
xdsl-opt for this, so sparsec's Universe plugin, which xdsl-opt imports before it
builds the pipeline, installs a `sys.excepthook` when the program is xdsl-opt: an
uncaught diagnostic prints as `xdsl-opt: error: <message>` (the first line; xDSL appends
a dump of the module to verifier errors) and the interpreter exits 1 as it does after
any uncaught exception. Anything else (a bug) keeps its traceback.

Handled: `DiagnosticException` (pass failures, verifier errors), sparsec's option and
spec errors (`backends.common.spec.SpecError`, `compiler.spec.SpecError`), a pass that
needs the program's data run without it (`DataStoreError`), a
`ValueError`/`TypeError` raised while the `-p` pipeline is built (an unknown pass, or
an option a pass rejects in `ModulePass.from_pass_spec`, named with its pass), and a
malformed pipeline (`ArgSpecParseError`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType

PROGRAM = "xdsl-opt"


def install_if_xdsl_opt() -> None:
    """Install the hook once, only in an xdsl-opt process."""
    if Path(sys.argv[0] if sys.argv else "").name != PROGRAM:
        return
    if getattr(sys.excepthook, "sparsec_diagnostics", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], err: BaseException,
             tb: TracebackType | None) -> None:
        line = diagnostic_line(err, tb)
        if line is None:
            previous(kind, err, tb)
            return
        sys.stdout.flush()
        print(f"{PROGRAM}: error: {line}", file=sys.stderr)

    hook.sparsec_diagnostics = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def diagnostic_line(err: BaseException, tb: TracebackType | None) -> str | None:
    """The one line a user's mistake prints as, or None for what is not a mistake."""
    from xdsl.utils.exceptions import ArgSpecParseError, DiagnosticException

    from sparsec.backends.common.spec import SpecError as OptionError
    from sparsec.compiler.spec import SpecError
    from sparsec.tensors.datastore import DataStoreError

    if isinstance(err, SpecError):
        return _first_line(err.render())
    if isinstance(err, (DiagnosticException, OptionError, DataStoreError)):
        return _first_line(str(err))
    if isinstance(err, ArgSpecParseError):  # the pipeline text, a caret, then the reason
        return f"bad pass pipeline: {str(err).strip().splitlines()[-1].strip()}"
    building, pass_name = _building_pipeline(tb)
    if not building or not isinstance(err, (ValueError, TypeError)):
        return None
    text = _first_line(str(err))
    if pass_name is None or text.startswith(f"{pass_name}:"):
        return f"bad pass pipeline: {text}" if pass_name is None else text
    return f"pass '{pass_name}': {text}"


def _building_pipeline(tb: TracebackType | None) -> tuple[bool, str | None]:
    """Whether the traceback runs through xDSL's `PassPipeline.parse_spec` (building the
    `-p` pipeline), and the pass whose `from_pass_spec` raised, if one did."""
    building, pass_name = False, None
    while tb is not None:
        code, local = tb.tb_frame.f_code, tb.tb_frame.f_locals
        if code.co_name == "parse_spec" and code.co_filename.endswith("passes.py"):
            building = True
        if code.co_name == "from_pass_spec" and isinstance(
                getattr(local.get("spec"), "name", None), str):
            building, pass_name = True, local["spec"].name
        tb = tb.tb_next
    return building, pass_name


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "error"
