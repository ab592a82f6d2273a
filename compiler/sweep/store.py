"""The sweep's database: one SQLite row per point, keyed by the hash of its configuration.

Only the sweep's own process writes (workers return results to it), in WAL mode, in
short transactions: a row is either committed whole or absent, so a sweep killed at any
instant leaves a valid database whose missing points the next run computes. A point's
key is its primary key, so no point is ever stored twice; a finished (`ok`) row is
never overwritten, a `failed` one only when the sweep is asked to retry failures.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sparsec.compiler.sweep.space import Point, SweepError, sparsec_version

SCHEMA_VERSION = "1"

COLUMNS: dict[str, str] = {
    "key": "TEXT PRIMARY KEY",
    "status": "TEXT NOT NULL CHECK (status IN ('ok', 'failed'))",
    "error": "TEXT",
    "kernel": "TEXT NOT NULL",
    "spec_path": "TEXT",
    "spec_sha": "TEXT",
    "pipeline": "TEXT",
    "full_pipeline": "TEXT",
    "target": "TEXT",
    "target_name": "TEXT",
    "canonical_target": "TEXT",
    "execute": "INTEGER",
    "sparsec_version": "TEXT",
    "space": "TEXT",
    "params": "TEXT",
    "cycles": "INTEGER",
    "stall_cycles": "INTEGER",
    "time_us": "REAL",
    "utilization": "REAL",
    "dram_bytes": "INTEGER",
    "bytes": "TEXT",
    "energy_pj": "REAL",
    "dram_energy_pj": "REAL",
    "effectual_macs": "INTEGER",
    "dense_macs": "INTEGER",
    "error_vs_original": "REAL",
    "check_ok": "INTEGER",
    "wall_s": "REAL",
    "peak_rss_mb": "REAL",
    "worker": "TEXT",
    "blas_threads": "INTEGER",
    "attempts": "INTEGER",
    "run_id": "TEXT",
    "finished_at": "TEXT",
}
"""The `points` table. Figures are sums over the kernels of a spec file (utilization:
the busiest unit's; error: the worst output's relative error against the original
program); `bytes` is JSON of read/write/total bytes per memory level."""

FIGURES = ("cycles", "stall_cycles", "time_us", "utilization", "dram_bytes", "energy_pj",
           "dram_energy_pj", "effectual_macs", "dense_macs", "error_vs_original")
"""Numeric columns a report may use as objectives (`error` is `error_vs_original`)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class SweepDB:
    """An open sweep database (created on first use)."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise SweepError(f"{self.path}: no such sweep database")
        uri = f"file:{self.path}?mode=ro" if readonly else str(self.path)
        try:
            self.conn = sqlite3.connect(uri, uri=readonly, timeout=30, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            if not readonly:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self._create()
            self._check_schema()
        except sqlite3.DatabaseError as err:
            raise SweepError(f"{self.path}: not a sweep database ({err})") from None
        self.run_id = uuid.uuid4().hex[:12]
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def _create(self) -> None:
        columns = ",\n  ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
        with self.transaction():
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS points (\n  {columns}\n)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, "
                              "started_at TEXT, finished_at TEXT, command TEXT, space TEXT, "
                              "planned INTEGER, done INTEGER, failed INTEGER, status TEXT)")
            self.conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self.conn.execute("CREATE INDEX IF NOT EXISTS points_space ON points(space)")

    def _check_schema(self) -> None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None or row[0] != SCHEMA_VERSION:
            raise SweepError(f"{self.path}: sweep database schema "
                             f"{row[0] if row else 'missing'}, this sparsec writes "
                             f"{SCHEMA_VERSION}")

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    def close(self) -> None:
        self.flush()
        self.conn.close()

    # ------------------------------------------------------------------ reading
    def statuses(self) -> dict[str, str]:
        """Key -> status of every stored point."""
        return {k: s for k, s in self.conn.execute("SELECT key, status FROM points")}

    def rows(self, where: str = "", args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        sql = "SELECT * FROM points" + (f" WHERE {where}" if where else "") + " ORDER BY rowid"
        return [dict(r) for r in self.conn.execute(sql, tuple(args))]

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM points").fetchone()[0]

    # ------------------------------------------------------------------ writing
    def start_run(self, command: str, space: str, planned: int) -> None:
        """A new run: the rows it writes carry its id."""
        self.flush()
        self.run_id = uuid.uuid4().hex[:12]
        with self.transaction():
            self.conn.execute("INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?, 0, 0, 'running')",
                              (self.run_id, _now(), command, space, planned))

    def finish_run(self, done: int, failed: int, status: str) -> None:
        self.flush()
        with self.transaction():
            self.conn.execute("UPDATE runs SET finished_at = ?, done = ?, failed = ?, "
                              "status = ? WHERE run_id = ?",
                              (_now(), done, failed, status, self.run_id))

    def record(self, point: Point, result: dict[str, Any], attempts: int) -> None:
        """Queue a point's row; rows are committed in small batches (`flush`)."""
        row = {name: result.get(name) for name in COLUMNS}
        row.update({
            "key": point.key, "kernel": point.kernel.name, "spec_path": point.kernel.path,
            "spec_sha": point.kernel.sha, "pipeline": point.pipeline, "target": point.target,
            "target_name": point.target_name, "canonical_target": point.canonical_target,
            "execute": int(point.execute), "sparsec_version": sparsec_version(),
            "space": point.space, "params": json.dumps(point.params, sort_keys=True),
            "attempts": attempts, "run_id": self.run_id, "finished_at": _now(),
        })
        if row["check_ok"] is not None:
            row["check_ok"] = int(row["check_ok"])
        self._pending.append(row)
        if len(self._pending) >= 64 or time.monotonic() - self._last_flush > 0.25:
            self.flush()

    def flush(self) -> None:
        """Commit queued rows in one transaction: all of them, or (if killed) none."""
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        names = list(COLUMNS)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "key")
        sql = (f"INSERT INTO points ({', '.join(names)}) VALUES "
               f"({', '.join('?' * len(names))}) ON CONFLICT(key) DO UPDATE SET {updates} "
               "WHERE points.status = 'failed'")
        with self.transaction():
            self.conn.executemany(sql, [tuple(r[n] for n in names) for r in self._pending])
        self._pending.clear()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (KeyboardInterrupt too)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
