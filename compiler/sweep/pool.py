"""Where points run: a local process pool (default) or a Dask distributed cluster.

Both take points one at a time (`submit`) and hand back finished ones as they arrive
(`wait`), so results stream into the database while the sweep goes on.

The local pool is our own small pool of worker processes, one pipe each, rather than
`concurrent.futures.ProcessPoolExecutor`: when a worker is SIGKILLed the executor breaks
as a whole and cannot say which task killed it, while here the parent knows exactly
which point each worker holds, requeues only that one (up to `retries` times) and starts
a replacement worker. Workers are forked from a forkserver that has already imported
sparsec, so a replacement starts in milliseconds.

On Dask the scheduler does the equivalent: a task whose worker dies is rescheduled on
another worker, up to `distributed.scheduler.allowed-failures` times (3 by default), and
then fails with `KilledWorker`, which is recorded as the point's error.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from sparsec.compiler.sweep.point import BLAS_ENV, run_point
from sparsec.compiler.sweep.space import Point, SweepError

Runner = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Outcome:
    """A point and what came back: its result dict, and how many times it was sent."""

    point: Point
    result: dict[str, Any]
    attempts: int


def _worker_main(conn: Connection, runner: Runner) -> None:
    """A worker: run each task the parent sends until it sends None or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(runner(task))


class _Worker:
    def __init__(self, ctx: Any, runner: Runner) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, runner), daemon=True)
        self.process.start()
        child.close()
        self.point: Point | None = None
        self.attempts = 0


class LocalPool:
    """`workers` processes on this machine, BLAS pinned to one thread in each."""

    def __init__(self, workers: int, runner: Runner = run_point, retries: int = 3) -> None:
        if workers < 1:
            raise SweepError("--workers must be >= 1")
        self.runner = runner
        self.retries = retries
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload(["sparsec.compiler.sweep.preload"])
        saved = {name: os.environ.get(name) for name in BLAS_ENV}
        os.environ.update({name: "1" for name in BLAS_ENV})  # inherited by the forkserver
        try:
            self.workers = [_Worker(self.ctx, runner) for _ in range(workers)]
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self.queue: deque[tuple[Point, int]] = deque()
        self.capacity = 2 * workers
        self.restarts = 0

    def submit(self, point: Point, attempts: int = 0) -> None:
        self.queue.append((point, attempts))
        self._dispatch()

    def in_flight(self) -> int:
        return len(self.queue) + sum(w.point is not None for w in self.workers)

    def _dispatch(self) -> None:
        for worker in self.workers:
            if not self.queue:
                return
            if worker.point is None:
                worker.point, worker.attempts = self.queue.popleft()
                worker.attempts += 1
                try:
                    worker.conn.send(worker.point.to_task())
                except OSError:
                    pass  # the worker just died: its sentinel fires and the point is requeued

    def wait(self, timeout: float) -> list[Outcome]:
        """Finished points (possibly none after `timeout` seconds)."""
        busy = [w for w in self.workers if w.point is not None]
        if not busy:
            return []
        handles = {w.conn: w for w in busy} | {w.process.sentinel: w for w in busy}
        outcomes: list[Outcome] = []
        dead: set[int] = set()
        for handle in wait(list(handles), timeout):
            worker = handles[handle]
            if worker.point is None or id(worker) in dead:
                continue
            try:
                result = worker.conn.recv() if worker.conn.poll() else None
            except (EOFError, OSError):
                result = None
            if result is None:
                if worker.process.is_alive() and handle is worker.conn:
                    continue
                dead.add(id(worker))
                outcomes.extend(self._worker_died(worker))
                continue
            outcomes.append(Outcome(worker.point, result, worker.attempts))
            worker.point = None
        self._dispatch()
        return outcomes

    def _worker_died(self, worker: _Worker) -> list[Outcome]:
        """Requeue the point a dead worker held (or fail it after `retries` deaths) and
        start a replacement."""
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        point, attempts = worker.point, worker.attempts
        assert point is not None
        index = self.workers.index(worker)
        worker.conn.close()
        self.workers[index] = _Worker(self.ctx, self.runner)
        self.restarts += 1
        if attempts <= self.retries:
            self.queue.appendleft((point, attempts))
            return []
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return [Outcome(point, {"key": point.key, "status": "failed",
                                "error": f"worker died ({how}) on each of {attempts} attempts"},
                        attempts)]

    def close(self, *, force: bool = False) -> None:
        for worker in self.workers:
            if force or worker.point is not None:
                worker.process.kill()
            else:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
        for worker in self.workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def _warm_up() -> None:
    """Load sparsec's dialects, passes and backends and pin BLAS in this worker."""
    import sparsec.compiler.sweep.preload  # noqa: F401


class DaskPool:
    """The points as tasks on a Dask distributed cluster (`tcp://HOST:PORT`)."""

    def __init__(self, address: str, runner: Runner = run_point, timeout: float = 10) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - distributed is a dependency
            raise SweepError("--scheduler needs the 'distributed' package") from None
        self.runner = runner
        if not re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+:\d+", address):
            raise SweepError(f"--scheduler '{address}': write tcp://HOST:PORT")
        try:
            self.client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise SweepError(f"cannot reach the Dask scheduler at {address}: {err}") from None
        threads = sum(self.client.nthreads().values())
        if threads == 0:
            raise SweepError(f"the Dask cluster at {address} has no workers")
        self.workers = threads
        self.capacity = max(2 * threads, 4)
        self.client.run(_warm_up)  # imports on every worker now, not in the first point
        self.futures: dict[Any, tuple[Point, int]] = {}

    def submit(self, point: Point, attempts: int = 0) -> None:
        import uuid

        future = self.client.submit(self.runner, point.to_task(), pure=False,
                                    key=f"sparsec-point-{point.key[:16]}-{uuid.uuid4().hex[:8]}")
        self.futures[future] = (point, attempts + 1)

    def in_flight(self) -> int:
        return len(self.futures)

    def wait(self, timeout: float) -> list[Outcome]:
        from distributed import wait as dask_wait

        if not self.futures:
            return []
        try:
            with self.client.as_current():
                done, _ = dask_wait(list(self.futures), timeout=timeout,
                                    return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        outcomes = []
        for future in done:
            point, attempts = self.futures.pop(future)
            outcomes.append(Outcome(point, self._result(future, point), attempts))
            future.release()
        return outcomes

    @staticmethod
    def _result(future: Any, point: Point) -> dict[str, Any]:
        """The point's row, or a failed row saying why. A future `wait` returned as
        finished can lose its result before it is fetched (its worker died meanwhile: the
        scheduler computes it again), so the row is fetched with `result()`, which waits
        for that, never judged from the status seen before."""
        try:
            return future.result()
        except Exception as error:  # the task's own error, or KilledWorker
            name = type(error).__name__
            message = (f"worker died on each attempt (the scheduler's "
                       f"distributed.scheduler.allowed-failures): {error}"
                       if name == "KilledWorker" else f"{name}: {error}")
            return {"key": point.key, "status": "failed", "error": message}

    def close(self, *, force: bool = False) -> None:
        if self.futures:
            self.client.cancel(list(self.futures), force=True)
        self.futures.clear()
        self.client.close()
