"""A point runner that SIGKILLs its own worker mid-point, for the sweep fault tests.

Workers (local forkserver children, Dask worker processes) import this module by name,
so it lives beside the tests, which pytest puts on sys.path.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from sparsec.compiler.sweep.point import run_point


def killing_runner(task: dict[str, Any], *, victim: str, marker_dir: str,
                   always: bool = False) -> dict[str, Any]:
    """Run the point, except that a point whose target contains `victim` kills its worker
    (SIGKILL) the first time it starts (every time if `always`); each kill leaves a file
    in `marker_dir`, so the test counts them."""
    if victim in task["target"]:
        kills = len(list(Path(marker_dir).glob(f"{task['key'][:16]}.*")))
        if always or kills == 0:
            (Path(marker_dir) / f"{task['key'][:16]}.{kills}").write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
    return run_point(task)
