"""The sweep driver: pick points (grid, random, Optuna), keep the pool busy, store rows.

Points already finished in the database are skipped, so rerunning an interrupted sweep
computes exactly the missing points. The driver keeps at most `pool.capacity` points in
flight: a kill loses at most those, and they are recomputed on the next run.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from sparsec.compiler.sweep.pool import Outcome
from sparsec.compiler.sweep.space import Point, Space, SweepError
from sparsec.compiler.sweep.store import SweepDB


class SweepInterrupted(Exception):
    """SIGINT/SIGTERM: the rows so far are committed; rerunning finishes the sweep."""


@dataclass
class Summary:
    planned: int = 0
    """Points this run set out to compute (after skipping stored ones)."""
    skipped: int = 0
    """Points of the sweep already in the database."""
    done: int = 0
    failed: int = 0
    cached: int = 0
    """Optuna proposals the database already held (told, not run)."""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


# ------------------------------------------------------------------------- sources

class GridSource:
    """The grid (or a seeded random sample of it), minus what the database holds."""

    def __init__(self, space: Space, stored: dict[str, str], retry_failed: bool) -> None:
        points = space.grid() if space.strategy == "grid" else space.random(space.samples or 0,
                                                                           space.seed)
        unique: dict[str, Point] = {}
        for point in points:
            unique.setdefault(point.key, point)
        finished = {"ok"} if retry_failed else {"ok", "failed"}
        self.todo = [p for k, p in unique.items() if stored.get(k) not in finished]
        self.skipped = len(unique) - len(self.todo)
        self.total = len(self.todo)
        self._next: Iterator[Point] = iter(self.todo)

    def next(self) -> Point | None:
        return next(self._next, None)

    def tell(self, outcome: Outcome) -> list[Outcome]:
        return [outcome]


class OptunaSource:
    """Multi-objective model-guided search: Optuna proposes points, results train it.

    Each axis is a categorical parameter (and, with several kernels/pipelines/targets,
    which combination); the study minimises the objectives with Optuna's TPE sampler
    (seeded). Rows this sweep stored before are told to the study first, so a resumed
    search continues where it stopped; a proposal the database already holds costs
    nothing; a proposal that breaks a constraint is told as failed and does not count.
    """

    def __init__(self, space: Space, db: SweepDB, objectives: list[str]) -> None:
        try:
            import optuna
        except ImportError:
            raise SweepError("strategy 'optuna' needs Optuna: pip install 'sparsec[sweep]'"
                             ) from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.space = space
        self.objectives = objectives
        self.db = db
        self.study = optuna.create_study(
            directions=["minimize"] * len(objectives),
            sampler=optuna.samplers.TPESampler(seed=space.seed))
        self.distributions = self._distributions()
        self.stored = {r["key"]: r for r in db.rows("status = 'ok'")}
        rebuilt = self._rebuild()
        self.skipped = rebuilt
        self.total = max((space.samples or 0) - rebuilt, 0)
        self.asked = 0
        self.rejected = 0
        self.waiting: dict[str, list[Any]] = {}
        self.ready: list[Outcome] = []

    def _distributions(self) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        dists: dict[str, Any] = {}
        if len(self.space.combos) > 1:
            dists["combo"] = CategoricalDistribution(list(range(len(self.space.combos))))
        for index, combo in enumerate(self.space.combos):
            for name, values in self.space.dimensions(combo):
                dists[self._param(index, name)] = CategoricalDistribution(values)
        return dists

    def _param(self, combo: int, name: str) -> str:
        return f"c{combo}.{name}" if len(self.space.combos) > 1 else name

    def _values(self, row: dict[str, Any]) -> list[float] | None:
        values = [row.get(objective_column(o)) for o in self.objectives]
        return None if any(v is None for v in values) else [float(v) for v in values]

    def _rebuild(self) -> int:
        import json

        count = 0
        for row in self.stored.values():
            if row["space"] != self.space.id:
                continue
            params = json.loads(row["params"] or "{}").get("optuna")
            values = self._values(row)
            if not params or values is None or not params.keys() <= self.distributions.keys():
                continue
            self.study.add_trial(self.optuna.trial.create_trial(
                params=params, distributions={k: self.distributions[k] for k in params},
                values=values))
            count += 1
        return count

    def next(self) -> Point | None:
        while self.asked < self.total:
            if self.rejected > 50 * max(self.total, 1):
                raise SweepError("Optuna keeps proposing points that break the constraints; "
                                 "use strategy 'random' or loosen the constraints")
            trial = self.study.ask()
            index = trial.suggest_categorical("combo", list(range(len(self.space.combos)))) \
                if len(self.space.combos) > 1 else 0
            combo = self.space.combos[index]
            chosen = {name: trial.suggest_categorical(self._param(index, name), values)
                      for name, values in self.space.dimensions(combo)}
            point = self.space.point(combo, chosen)
            if not self.space.allowed(point):
                self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
                self.rejected += 1
                continue
            point.params["optuna"] = dict(trial.params)
            self.asked += 1
            if point.key in self.stored:  # already computed: tell it, nothing to run
                self._tell(trial, self.stored[point.key])
                self.ready.append(Outcome(point, {"status": "cached"}, 0))
                continue
            first = point.key not in self.waiting
            self.waiting.setdefault(point.key, []).append(trial)
            if first:
                return point
        return None

    def _tell(self, trial: Any, row: dict[str, Any]) -> None:
        values = self._values(row) if row.get("status") == "ok" else None
        if values is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, values)

    def tell(self, outcome: Outcome) -> list[Outcome]:
        for index, trial in enumerate(self.waiting.pop(outcome.point.key, [])):
            self._tell(trial, outcome.result)
            if index:  # a second proposal of a point in flight: counted, not run
                self.ready.append(Outcome(outcome.point, {"status": "cached"}, 0))
        if outcome.result.get("status") == "ok":
            self.stored[outcome.point.key] = outcome.result
        return [outcome]

    def drain_cached(self) -> list[Outcome]:
        ready, self.ready = self.ready, []
        return ready


def objective_column(name: str) -> str:
    return "error_vs_original" if name == "error" else name


# ------------------------------------------------------------------------ progress

class RateColumn(ProgressColumn):
    """Points per second since the start."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.1f} points/s", style="progress.data.speed")


def make_progress(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    RateColumn(), TextColumn("{task.fields[failed]} failed"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=console, transient=False)


# -------------------------------------------------------------------------- driver

@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A batch system's SIGTERM stops the sweep as cleanly as Ctrl-C."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(space: Space, db: SweepDB, pool: Any, *, retry_failed: bool = False,
              command: str = "", console: Console | None = None,
              show_progress: bool = True) -> Summary:
    """Run every missing point of `space` on `pool`, streaming rows into `db`."""
    start = time.perf_counter()
    source: GridSource | OptunaSource
    if space.strategy == "optuna":
        objectives = [o for o in space.objectives if space.execute or o != "error"]
        source = OptunaSource(space, db, objectives)
    else:
        source = GridSource(space, db.statuses(), retry_failed)
    summary = Summary(planned=source.total, skipped=source.skipped)
    db.start_run(command, space.id, source.total)
    console = console or Console(stderr=True)
    progress = make_progress(console)
    task = progress.add_task("sweep", total=source.total, failed=0)
    status = "interrupted"
    try:
        with _sigterm_as_interrupt(), (progress if show_progress else contextlib.nullcontext()):
            _drive(source, pool, db, summary, progress, task)
        status = "finished"
    except KeyboardInterrupt:
        raise SweepInterrupted(f"interrupted: {summary.done} of {summary.planned} points "
                               "stored; rerun the same command to finish the rest") from None
    finally:
        summary.seconds = time.perf_counter() - start
        with contextlib.suppress(Exception):
            pool.close(force=status != "finished")
        db.finish_run(summary.done, summary.failed, status)
    return summary


def _drive(source: GridSource | OptunaSource, pool: Any, db: SweepDB, summary: Summary,
           progress: Progress, task: Any) -> None:
    exhausted = False
    while True:
        while not exhausted and pool.in_flight() < pool.capacity:
            point = source.next()
            if point is None:
                exhausted = True
                break
            pool.submit(point)
        arrived = pool.wait(0.2)
        if isinstance(source, OptunaSource):
            arrived += source.drain_cached()
        for outcome in arrived:
            if outcome.result.get("status") == "cached":
                summary.cached += 1
            else:
                source.tell(outcome)
                db.record(outcome.point, outcome.result, outcome.attempts)
                summary.done += 1
            summary.failed += outcome.result.get("status") == "failed"
            progress.update(task, advance=1, failed=summary.failed)
        if exhausted and pool.in_flight() == 0 and not getattr(source, "ready", None):
            break
    db.flush()
