"""Running sweeps: the local pool and a real Dask LocalCluster, the database, faults
(failing points, SIGKILLed workers, a sweep SIGKILLed or interrupted and restarted),
Optuna's search, the report and exports."""

from __future__ import annotations

import functools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sweep_faults import killing_runner

from conftest import require_package
from sparsec.compiler.cli import main
from sparsec.compiler.sweep.point import run_point
from sparsec.compiler.sweep.pool import DaskPool, LocalPool
from sparsec.compiler.sweep.report import pareto_mask
from sparsec.compiler.sweep.run import run_sweep
from sparsec.compiler.sweep.space import Space
from sparsec.compiler.sweep.store import SweepDB

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SMALL = EXAMPLES / "gemm_small.sk"
SLOWER = ("kernel g {\n  in A: f32[192, 192] = random(seed=1)\n"
          "  param B: f32[192, 192] = random(seed=2, density=0.5)\n  C = matmul(A, B)\n  out C\n}\n")
SIX = "systolic{rows=[8,16,0] cols=[8,32]}"
"""Six points, two of which (rows=0) the systolic backend refuses."""
GRID = "systolic{rows=[2,3,4] cols=[2,4,6,8] dataflow=[os,ws]}"
"""24 executed points of 0.04-0.4 s on tiny arrays (3 s in all on an idle core): long
enough to stop a sweep part-way after its first row, short enough for the suite."""
RETRIES = 1
"""Worker deaths a point survives, on both pools (Dask: allowed-failures)."""


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A real Dask cluster: scheduler and two worker processes on the loopback."""
    import dask
    from distributed import LocalCluster

    # worker-saturation 1.0: a worker holds only the point it runs, so its death blames
    # that point alone (docs/sweeps.md)
    with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address="127.0.0.1:0")
    yield cluster
    cluster.close()


def make_pool(kind: str, cluster_fixture: Any, runner: Any = run_point) -> Any:
    if kind == "local":
        return LocalPool(2, runner=runner, retries=RETRIES)
    return DaskPool(cluster_fixture.scheduler_address, runner=runner)


@pytest.fixture(params=["local", "dask"])
def pool_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def get_cluster(request: pytest.FixtureRequest, pool_kind: str) -> Any:
    return request.getfixturevalue("cluster") if pool_kind == "dask" else None


def six_points(execute: bool = False) -> Space:
    return Space.build([SMALL], [""], [SIX], execute=execute)


def test_sweep_runs_every_point_once_and_resumes(tmp_path: Path, pool_kind: str,
                                                 get_cluster: Any) -> None:
    space = six_points(execute=True)
    db = SweepDB(tmp_path / "s.db")
    summary = run_sweep(space, db, make_pool(pool_kind, get_cluster), show_progress=False)
    assert (summary.planned, summary.done, summary.failed) == (6, 6, 2)
    rows = {r["key"]: r for r in db.rows()}
    assert rows.keys() == {p.key for p in space.grid()}
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert {r["target"] for r in failed} == {"systolic{rows=0 cols=8}", "systolic{rows=0 cols=32}"}
    assert all("rows/cols must be >= 1" in r["error"] for r in failed)
    ok = [r for r in rows.values() if r["status"] == "ok"]
    assert all(r["blas_threads"] == 1 and r["check_ok"] == 1 for r in ok)
    # the figures are those of the point run alone, in this process
    point = next(p for p in space.grid() if p.target == "systolic{rows=16 cols=32}")
    alone = run_point(point.to_task())
    stored = rows[point.key]
    for name in ("cycles", "stall_cycles", "energy_pj", "dram_bytes", "effectual_macs"):
        assert stored[name] == alone[name]
    assert json.loads(stored["bytes"]) == json.loads(alone["bytes"])
    # rerunning computes nothing and changes no row
    again = run_sweep(space, db, make_pool(pool_kind, get_cluster), show_progress=False)
    assert (again.planned, again.skipped, again.done) == (0, 6, 0)
    assert {r["key"]: r["finished_at"] for r in db.rows()} == {
        k: r["finished_at"] for k, r in rows.items()}
    # --retry-failed runs the failed points again, and only them
    retried = run_sweep(space, db, make_pool(pool_kind, get_cluster), retry_failed=True,
                        show_progress=False)
    assert (retried.planned, retried.failed) == (2, 2)
    assert db.count() == 6
    db.close()


def test_worker_killed_mid_point_is_retried(tmp_path: Path, pool_kind: str,
                                            get_cluster: Any) -> None:
    markers = tmp_path / "kills"
    markers.mkdir()
    runner = functools.partial(killing_runner, victim="rows=16 cols=32", marker_dir=str(markers))
    db = SweepDB(tmp_path / "s.db")
    summary = run_sweep(six_points(), db, make_pool(pool_kind, get_cluster, runner),
                        show_progress=False)
    assert len(list(markers.iterdir())) == 1  # the worker really died once
    assert (summary.done, summary.failed) == (6, 2)
    victim = db.rows("target = ?", ["systolic{rows=16 cols=32}"])[0]
    assert victim["status"] == "ok" and victim["cycles"] > 0
    if pool_kind == "local":  # Dask retries inside the scheduler; the driver sent it once
        assert victim["attempts"] == 2
    db.close()


class _LostThenRecomputed:
    """A Dask future `wait` saw finished whose worker then died: its status is no longer
    'finished', and `result()` waits for the scheduler's recomputation."""

    status = "lost"

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def result(self) -> Any:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class KilledWorker(Exception):
    """Named as distributed's: the pool tells it by name."""


def test_dask_row_is_fetched_not_judged_from_a_stale_status() -> None:
    """The race behind a flaky sweep test: a finished point's result lost with its worker
    before the driver fetched it became a failed row 'NoneType: None'; the row is the
    recomputed one, and the task's own errors still become failed rows."""
    point = next(six_points().grid())
    row = {"key": point.key, "status": "ok", "cycles": 7}
    assert DaskPool._result(_LostThenRecomputed(row), point) == row
    failed = DaskPool._result(_LostThenRecomputed(ValueError("bad option")), point)
    assert failed == {"key": point.key, "status": "failed", "error": "ValueError: bad option"}
    killed = DaskPool._result(_LostThenRecomputed(KilledWorker("point x")), point)
    assert killed["status"] == "failed" and "allowed-failures): point x" in killed["error"]


def test_worker_that_always_dies_fails_after_bounded_retries(tmp_path: Path, pool_kind: str,
                                                             get_cluster: Any) -> None:
    markers = tmp_path / "kills"
    markers.mkdir()
    runner = functools.partial(killing_runner, victim="rows=8 cols=8", marker_dir=str(markers),
                               always=True)
    db = SweepDB(tmp_path / "s.db")
    summary = run_sweep(six_points(), db, make_pool(pool_kind, get_cluster, runner),
                        show_progress=False)
    assert len(list(markers.iterdir())) == RETRIES + 1
    assert (summary.done, summary.failed) == (6, 3)
    victim = db.rows("target = ?", ["systolic{rows=8 cols=8}"])[0]
    assert victim["status"] == "failed" and "died" in victim["error"]
    assert len(db.rows("status = 'ok'")) == 3
    db.close()


# ------------------------------------------------------------- whole-sweep kills

def _sweep_command(spec: Path, db: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sparsec.compiler.cli", "sweep", str(spec), "--target",
            GRID, "--db", str(db),
            *extra]


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM points").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize(("where", "how"), [("local", signal.SIGKILL), ("local", signal.SIGINT),
                                            ("dask", signal.SIGKILL), ("dask", signal.SIGINT)])
def test_sweep_killed_and_restarted_loses_and_duplicates_nothing(
        tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
        where: str, how: signal.Signals) -> None:
    import psutil

    spec = tmp_path / "g.sk"
    spec.write_text(SLOWER)
    db = tmp_path / "s.db"
    extra = ["--quiet"]
    if where == "dask":
        extra += ["--scheduler", request.getfixturevalue("cluster").scheduler_address]
    else:
        extra += ["--workers", "2"]
    total = 24
    with open(tmp_path / "first.err", "w") as err:
        proc = subprocess.Popen(_sweep_command(spec, db, *extra), stdout=subprocess.DEVNULL,
                                stderr=err)
        deadline = time.monotonic() + 90
        while _stored(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        children = _descendants(proc.pid)
        os.kill(proc.pid, how)
        code = proc.wait(timeout=60)
    before = _stored(db)
    assert 1 <= before < total, "the sweep must be stopped part-way"
    if how == signal.SIGINT:
        assert code == 130
        assert "rerun the same command" in (tmp_path / "first.err").read_text()
    else:
        assert code == -signal.SIGKILL
    # no worker of the dead sweep is left running
    deadline = time.monotonic() + 20
    while any(psutil.pid_exists(c) and psutil.Process(c).status() != psutil.STATUS_ZOMBIE
              for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [c for c in children if psutil.pid_exists(c)
                and psutil.Process(c).status() != psutil.STATUS_ZOMBIE]
    with sqlite3.connect(db) as conn:
        first = dict(conn.execute("SELECT key, finished_at FROM points"))
    # the same command again (in this process: the restart needs no fresh interpreter)
    assert main(_sweep_command(spec, db, *extra)[3:]) == 0
    out = capsys.readouterr().out
    assert f"{total - before} points run" in out and f"{before} already" in out
    expected = {p.key for p in Space.build(
        [spec], [""], [GRID]).grid()}
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [k for (k,) in conn.execute("SELECT key FROM points")]
        assert len(keys) == total and set(keys) == expected
        assert conn.execute("SELECT count(*) FROM points WHERE status = 'ok'").fetchone()[0] == total
        stored = dict(conn.execute("SELECT key, finished_at FROM points"))
        again = {key: stored[key] for key in first}
        runs = [s for (s,) in conn.execute("SELECT status FROM runs ORDER BY started_at")]
    assert again == first  # rows of the first run were not recomputed
    assert runs == ["interrupted" if how == signal.SIGINT else "running", "finished"]


# ------------------------------------------------------------------ Optuna

def test_optuna_search_stores_its_trials_and_resumes(tmp_path: Path) -> None:
    require_package("optuna")
    targets = ["systolic{rows=[4,8,16,32] cols=[4,8,16,32] dataflow=[os,ws,is]}"]
    space = Space.build([SMALL], [""], targets, execute=False, strategy="optuna", samples=10,
                        seed=3, objectives=["cycles", "energy_pj", "error"])
    db = SweepDB(tmp_path / "s.db")
    first = run_sweep(space, db, LocalPool(2), show_progress=False)
    assert first.planned == 10 and first.done + first.cached == 10
    rows = db.rows()
    assert len(rows) == first.done and all(r["status"] == "ok" for r in rows)
    assert all(json.loads(r["params"])["optuna"].keys()
               == {"systolic_rows", "systolic_cols", "systolic_dataflow"}
               for r in rows)
    more = Space.build([SMALL], [""], targets, execute=False, strategy="optuna", samples=16,
                       seed=3, objectives=["cycles", "energy_pj"])
    second = run_sweep(more, db, LocalPool(2), show_progress=False)
    assert second.skipped == len(rows)  # the study was rebuilt from the database
    assert second.planned == 16 - len(rows)
    assert len(db.rows()) >= len(rows)
    db.close()


# ------------------------------------------------------------------ report

def test_pareto_mask_hand_checked() -> None:
    values = np.array([[1, 9], [2, 5], [3, 5], [4, 1], [5, 2], [2, 5], [1, 9.0000000001]])
    assert pareto_mask(values).tolist() == [True, True, False, True, False, True, True]


def test_cli_sweep_report_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "s.db"
    code = main(["sweep", str(SMALL), "-p", "prune-nm{n=[1,2] m=4}", "--target",
                 "systolic{rows=[8,16] cols=[8,16]}", "--db", str(db), "--workers", "2"])
    out, err = capsys.readouterr()
    assert code == 0 and "8 points run (0 failed)" in out
    assert "points/s" in err  # the progress bar
    png = tmp_path / "front.png"
    assert main(["sweep", "--report", str(db), "--plot", str(png),
                 "--export", str(tmp_path / "all.csv")]) == 0
    out, _ = capsys.readouterr()
    assert "8 points, 8 ok, 0 failed" in out and "on the front" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "all.csv").read_text().splitlines()
    assert len(lines) == 9 and lines[0].startswith("key,status,error,kernel")
    # the printed front is the non-dominated set of the stored rows
    with sqlite3.connect(db) as conn:
        figures = conn.execute("SELECT cycles, energy_pj, error_vs_original FROM points").fetchall()
    rounded = [tuple(float(f"{v:.9g}") for v in f) for f in figures]  # report's precision
    front = [f for f in rounded if not any(
        all(o[i] <= f[i] for i in range(3)) and any(o[i] < f[i] for i in range(3))
        for o in rounded)]
    assert f"{len(front)} of 8 points on the front" in out


def test_parquet_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_package("pyarrow")
    import pyarrow.parquet as pq

    db = tmp_path / "s.db"
    assert main(["sweep", str(SMALL), "--target", "systolic{rows=[8,0]}", "--no-execute",
                 "--db", str(db), "--workers", "1", "--quiet"]) == 0
    assert main(["sweep", "--db", str(db), "--export", str(tmp_path / "all.parquet")]) == 0
    table = pq.read_table(tmp_path / "all.parquet")
    assert table.num_rows == 2
    assert sorted(table.column("status").to_pylist()) == ["failed", "ok"]


@pytest.mark.parametrize(("argv", "message"), [
    (["sweep", str(SMALL), "--target", "systolic{rows=[8:4]}"], "ends below its start"),
    (["sweep", "--report", "missing.db"], "no such sweep database"),
    (["sweep"], "give kernel specs"),
    (["sweep", str(SMALL), "--strategy", "random"], "needs a number of samples"),
    (["sweep", "--db", "x.db", "--export", "x.txt"], "export writes .csv or .parquet"),
    (["sweep", "--report", "x.db"], "no finished point to plot"),
    (["sweep", str(SMALL), "--scheduler", "localhost"], "write tcp://HOST:PORT"),
])
def test_cli_mistakes_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                   message: str) -> None:
    monkeypatch.chdir(tmp_path)
    if "x.db" in argv:  # an empty sweep database
        SweepDB("x.db").close()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("sparsec: error: ") and len(err.strip().splitlines()) == 1
    assert message in err
