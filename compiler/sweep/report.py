"""Looking at a sweep: the Pareto front per kernel and target, a PNG, CSV/Parquet export."""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from sparsec.backends.common.report import write_atomically
from sparsec.compiler.sweep.space import SweepError
from sparsec.compiler.sweep.store import COLUMNS, FIGURES, SweepDB


def objective_column(name: str) -> str:
    return "error_vs_original" if name == "error" else name


def check_objectives(objectives: list[str]) -> list[str]:
    columns = [objective_column(o) for o in objectives]
    unknown = [o for o, c in zip(objectives, columns, strict=True) if c not in FIGURES]
    if unknown:
        raise SweepError(f"unknown objective(s) {', '.join(unknown)} (known: error, "
                         f"{', '.join(FIGURES)})")
    if not columns:
        raise SweepError("no objective to compare points by")
    return columns


SIGNIFICANT_DIGITS = 9
"""Figures equal to this many digits count as equal when comparing points: the error of
one pruned weight on two arrays differs in the 10th digit (summation order), which must
not put a slower, costlier point on the front."""


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of `values` (points x objectives, all minimised) that no other row dominates:
    no other row is <= in every objective and < in one. Equal rows are all kept."""
    values = np.array([[float(f"{v:.{SIGNIFICANT_DIGITS}g}") for v in row] for row in values])
    count = len(values)
    keep = np.ones(count, dtype=bool)
    for start in range(0, count, 512):
        block = values[start:start + 512]
        no_worse = (values[None, :, :] <= block[:, None, :]).all(axis=2)
        better = (values[None, :, :] < block[:, None, :]).any(axis=2)
        keep[start:start + 512] = ~(no_worse & better).any(axis=1)
    return keep


def groups(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Finished rows by (kernel, target name): the panels of the plot."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["status"] == "ok":
            grouped[(row["kernel"], row["target_name"])].append(row)
    return dict(sorted(grouped.items()))


def fronts(rows: list[dict[str, Any]], columns: list[str]
           ) -> dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """(all rows usable for the objectives, the Pareto front) per (kernel, target)."""
    result = {}
    for group, members in groups(rows).items():
        usable = [r for r in members if all(r[c] is not None for c in columns)]
        if not usable:
            continue
        values = np.array([[float(r[c]) for c in columns] for r in usable])
        mask = pareto_mask(values)
        front = sorted((r for r, keep in zip(usable, mask, strict=True) if keep),
                       key=lambda r: tuple(r[c] for c in columns))
        result[group] = (usable, front)
    return result


def usable_objectives(rows: list[dict[str, Any]], objectives: list[str]) -> list[str]:
    """Drop `error` when no point was executed (no error was measured)."""
    if "error" in objectives and not any(r["error_vs_original"] is not None for r in rows):
        return [o for o in objectives if o != "error"]
    return objectives


def print_report(db: SweepDB, objectives: list[str], console: Console | None = None
                 ) -> dict[tuple[str, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    console = console or Console(width=max(Console().width, 140))
    rows = db.rows()
    ok = sum(r["status"] == "ok" for r in rows)
    objectives = usable_objectives(rows, objectives)
    columns = check_objectives(objectives)
    console.print(f"{db.path}: {len(rows)} points, {ok} ok, {len(rows) - ok} failed; "
                  f"Pareto front over {', '.join(objectives)} (all minimised)")
    result = fronts(rows, columns)
    for (kernel, target), (usable, front) in result.items():
        table = Table(title=f"{kernel} on {target}: {len(front)} of {len(usable)} points on "
                            "the front", title_justify="left")
        for name in ("pipeline", "target", *columns, "utilization"):
            table.add_column(name, justify="left" if name in ("pipeline", "target") else "right")
        for row in front:
            table.add_row(row["pipeline"] or "-", _short_target(row["target"]),
                          *[_fmt(row[c]) for c in columns], _fmt(row["utilization"]))
        console.print(table)
    failed = [r for r in rows if r["status"] == "failed"]
    for row in failed[:10]:
        console.print(f"  failed: {row['kernel']} {row['pipeline'] or ''} {row['target']}: "
                      f"{row['error']}", soft_wrap=True)
    if len(failed) > 10:
        console.print(f"  ... and {len(failed) - 10} more failed points")
    return result


def _short_target(target: str) -> str:
    return target.replace('"', "")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def plot(db: SweepDB, objectives: list[str], path: str | Path) -> None:
    """One panel per (kernel, target): first objective against the second (log axes when
    they span over 20x), coloured by the third (error by default), front marked and
    joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = db.rows()
    objectives = usable_objectives(rows, objectives)
    columns = check_objectives(objectives)
    if len(columns) < 2:
        raise SweepError("the plot needs two objectives (x and y)")
    result = fronts(rows, columns)
    if not result:
        raise SweepError(f"{db.path}: no finished point to plot")
    panels = len(result)
    ncols = min(panels, 3)
    nrows = math.ceil(panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols + 1.2, 4.4 * nrows + 0.4),
                             squeeze=False, layout="constrained")
    colour = columns[2] if len(columns) > 2 else None
    colour_values = [float(r[colour]) for usable, _ in result.values() for r in usable] \
        if colour else []
    vmin, vmax = (min(colour_values), max(colour_values)) if colour_values else (0.0, 1.0)
    if vmax <= vmin:
        vmax = vmin + 1e-12
    scatter = None
    for ax, ((kernel, target), (usable, front)) in zip(axes.flat, result.items(), strict=False):
        sizes: Any = 18
        if colour:  # worst first and largest: points at one spot show as concentric rings
            usable = sorted(usable, key=lambda r: -float(r[colour]))
            rank = np.argsort(np.argsort([-float(r[colour]) for r in usable]))
            sizes = 70 - 56 * rank / max(len(usable) - 1, 1)
        x = np.array([float(r[columns[0]]) for r in usable])
        y = np.array([float(r[columns[1]]) for r in usable])
        style: dict[str, Any] = {"s": sizes, "edgecolors": "white", "linewidths": 0.3}
        if colour:
            style.update(c=[float(r[colour]) for r in usable], cmap="viridis", vmin=vmin,
                         vmax=vmax)
        else:
            style.update(color="#4C72B0")
        scatter = ax.scatter(x, y, **style)
        fx = [float(r[columns[0]]) for r in front]
        fy = [float(r[columns[1]]) for r in front]
        ax.scatter(fx, fy, facecolors="none", edgecolors="#C44E52", s=110, lw=1.2,
                   label=f"Pareto front ({len(front)})", zorder=3)
        if len(columns) > 2:  # the front of the two plotted figures alone, as a staircase
            xy = np.stack([x, y], axis=1)
            flat = xy[pareto_mask(xy)]
            flat = flat[np.argsort(flat[:, 0])]
            ax.step(flat[:, 0], flat[:, 1], where="post", color="#C44E52", lw=0.8, ls="--",
                    label=f"front of {_label(columns[0])}, {_label(columns[1])} only", zorder=1)
        else:
            order = np.argsort(fx)
            ax.step(np.array(fx)[order], np.array(fy)[order], where="post", color="#C44E52",
                    lw=0.8, zorder=1)
        for axis, values in (("x", x), ("y", y)):
            if values.min() > 0 and values.max() / values.min() > 20:
                (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        ax.set_title(f"{kernel} on {target} ({len(usable)} points)", fontsize=10)
        ax.set_xlabel(_label(columns[0]))
        ax.set_ylabel(_label(columns[1]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    if colour and scatter is not None:
        fig.colorbar(scatter, ax=axes.ravel().tolist(), label=_label(colour), shrink=0.9)
    fig.suptitle(f"{Path(db.path).name}: {', '.join(objectives)} (minimised); circled: the "
                 "Pareto front", fontsize=11)
    _save_atomically(fig, Path(path))
    plt.close(fig)


def _label(column: str) -> str:
    return {"energy_pj": "energy (pJ)", "error_vs_original": "error vs original (rel.)",
            "time_us": "time (us)", "dram_bytes": "DRAM bytes"}.get(column, column)


def _save_atomically(fig: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export(db: SweepDB, path: str | Path) -> int:
    """Every row to `.csv` or `.parquet` (Parquet needs pyarrow); returns the row count."""
    path = Path(path)
    rows = db.rows()
    names = list(COLUMNS)
    if path.suffix == ".csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(names)
        writer.writerows([[row[n] for n in names] for row in rows])
        write_atomically(path, out.getvalue())
        return len(rows)
    if path.suffix != ".parquet":
        raise SweepError(f"{path}: export writes .csv or .parquet")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SweepError("Parquet export needs pyarrow: pip install 'sparsec[sweep]' "
                         "(or export .csv)") from None
    types = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string()}
    schema = pa.schema([(n, types[COLUMNS[n].split()[0]]) for n in names])
    table = pa.table({n: [row[n] for row in rows] for n in names}, schema=schema)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return len(rows)
