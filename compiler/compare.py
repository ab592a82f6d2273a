"""`sparsec compare`: one kernel on several targets, one table, one plot.

Each target compiles the spec afresh with the user's pipeline followed by the passes
that target needs (its backend's `prepare`, e.g. 2:4 pruning for the sparse tensor
core), runs it, and checks it. Targets are compared by time (cycles / clock), since
their clocks differ; the first target is the baseline. A target that cannot run the
kernel gets a row that says why instead of stopping the comparison.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xdsl.utils.arg_spec import parse_pipeline
from xdsl.utils.exceptions import ArgSpecParseError

from sparsec.backends import UnknownTargetError
from sparsec.backends.common.memory import CapacityError
from sparsec.backends.common.report import Report
from sparsec.backends.common.spec import SpecError as TargetError
from sparsec.compiler.driver import (
    CompileError,
    CompileOptions,
    Target,
    compile_spec,
    execute,
    join_pipelines,
    target_passes,
)
from sparsec.compiler.sources import UnaffordableData
from sparsec.tensors.datastore import DataStoreError

RUN_ERRORS = (CompileError, TargetError, UnknownTargetError, CapacityError, DataStoreError,
              ValueError)
"""What makes one target unable to run a kernel (reported in its row, not raised)."""


@dataclass
class Row:
    """One target's outcome: its reports (one per kernel) or why it could not run."""

    target: str
    pipeline: str
    reports: list[Report] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def time_us(self) -> float:
        return sum(r.time_us for r in self.reports)

    @property
    def cycles(self) -> int:
        return sum(r.cycles for r in self.reports)

    @property
    def energy_pj(self) -> float:
        return sum(r.energy_pj for r in self.reports)

    @property
    def dram_bytes(self) -> int:
        """Off-chip traffic: the level each target names as its DRAM (`hbm` on a GPU)."""
        return sum(r.bytes.get(_accounting(r)["dram_level"], {}).get("total", 0)
                   for r in self.reports)

    @property
    def dram_energy_pj(self) -> float:
        """Energy of the off-chip traffic (DRAM bytes x the target's pJ/byte)."""
        return sum(self.dram_bytes_of(r) * (_accounting(r)["dram_pj_per_byte"] or 0.0)
                   for r in self.reports)

    @staticmethod
    def dram_bytes_of(report: Report) -> int:
        return report.bytes.get(_accounting(report)["dram_level"], {}).get("total", 0)

    @property
    def counts(self) -> str:
        """What the DRAM and energy columns count for this target, in a few words."""
        if not self.reports:
            return ""
        acc = _accounting(self.reports[0])
        dram = "DRAM timed" if acc["dram_model"] == "modelled" else "DRAM bytes only, untimed"
        weights = "weights on chip" if "preloaded" in acc["weights"] else "weights from DRAM"
        words = acc.get("word_bytes")
        width = f"; {words}-byte words, whatever the element type" if words else ""
        return f"{acc['dram_level']}: {dram}; {weights}{width}"

    @property
    def utilization(self) -> float:
        """Busiest unit's utilization (the one that bounds the run)."""
        values = [u["utilization"] for r in self.reports for u in r.units.values()]
        return max(values, default=0.0)

    @property
    def error_vs_original(self) -> float:
        errors = [r.error_vs_original["rel_err"] for r in self.reports if r.error_vs_original]
        return max(errors, default=0.0)

    @property
    def check_ok(self) -> bool:
        return all(r.check.ok for r in self.reports)


def _accounting(report: Report) -> dict[str, Any]:
    return report.details.get("accounting") or {"dram_level": "dram", "dram_model": "modelled",
                                                 "weights": "read off-chip",
                                                 "dram_pj_per_byte": None}


def split_targets(text: str) -> list[str]:
    """`systolic,stc{preset=a100},sigma` -> the three target strings (commas inside
    braces belong to the options)."""
    try:
        return [str(spec) for spec in parse_pipeline(text)]
    except ArgSpecParseError as err:
        detail = str(err).strip().splitlines()[-1].strip()
        raise CompileError(f"bad --targets '{text}': {detail}") from None


def pipeline_for(target: str, user_pipeline: str) -> str:
    """The user's pipeline, then what the target needs (unless the user already ran it)."""
    return join_pipelines(user_pipeline, target_passes(Target.parse(target), user_pipeline))


def run_target(spec: str | Path, target: str, user_pipeline: str,
               execute_values: bool) -> Row:
    try:
        pipeline = pipeline_for(target, user_pipeline)
    except (UnknownTargetError, TargetError) as err:
        return Row(target, user_pipeline, error=str(err))
    row = Row(target, pipeline)
    try:
        compiled = compile_spec(spec, CompileOptions(pipeline=user_pipeline, target=target,
                                                     compute_reference=execute_values,
                                                     defer_data=not execute_values,
                                                     target_passes=True))
        row.reports = execute(compiled.module, compiled.store,
                              execute_values=execute_values).reports
    except RUN_ERRORS as err:
        row.error = str(err)
    except UnaffordableData as err:  # this target would have to make a tensor too large
        row.error = str(err).splitlines()[0]
    return row


def compare(spec: str | Path, targets: list[str], user_pipeline: str = "",
            execute_values: bool = True) -> list[Row]:
    """Run `spec` on every target; rows in the order given."""
    return [run_target(spec, t, user_pipeline, execute_values) for t in targets]


def speedups(rows: list[Row]) -> list[float | None]:
    """Time of the first runnable target over each target's time."""
    base = next((r.time_us for r in rows if r.ok and r.time_us > 0), None)
    return [base / r.time_us if base and r.ok and r.time_us else None for r in rows]


def to_records(rows: list[Row]) -> list[dict[str, Any]]:
    """One flat record per target, for CSV and JSON."""
    records = []
    for row, speedup in zip(rows, speedups(rows), strict=True):
        records.append({
            "target": row.target, "pipeline": row.pipeline, "ok": row.ok,
            "error": row.error, "cycles": row.cycles if row.ok else None,
            "time_us": row.time_us if row.ok else None, "speedup": speedup,
            "utilization": row.utilization if row.ok else None,
            "dram_bytes": row.dram_bytes if row.ok else None,
            "energy_pj": row.energy_pj if row.ok else None,
            "dram_energy_pj": row.dram_energy_pj if row.ok else None,
            "on_chip_energy_pj": row.energy_pj - row.dram_energy_pj if row.ok else None,
            "counts": row.counts if row.ok else None,
            "error_vs_original": row.error_vs_original if row.ok else None,
            "check_ok": row.check_ok if row.ok else None,
        })
    return records


def to_json(rows: list[Row]) -> str:
    data = {"targets": to_records(rows),
            "reports": {row.target: [r.to_dict() for r in row.reports] for row in rows}}
    return json.dumps(data, indent=2, default=_plain) + "\n"


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def to_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    records = to_records(rows)
    writer = csv.DictWriter(out, fieldnames=list(records[0]))
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def plot(rows: list[Row], title: str, path: str | Path) -> None:
    """Three panels sharing the target axis: speedup over the first target (log scale
    when it spans more than 20x), energy, and output error against the original
    program. Targets that could not run show "cannot run" instead of a bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [short_name(r.target) for r in rows]
    ups = speedups(rows)
    panels = [
        (f"speedup over {names[0]} (time)", ups, "{:.2f}x"),
        ("energy (uJ)", [r.energy_pj / 1e6 if r.ok else None for r in rows], "{:,.3g}"),
        ("output error vs original (rel.)", [r.error_vs_original if r.ok else None
                                             for r in rows], "{:.3g}"),
    ]
    fig, axes = plt.subplots(1, 3, sharey=True, figsize=(13, 0.5 * len(rows) + 1.6))
    for ax, (label, values, fmt) in zip(axes, panels, strict=True):
        _bar_panel(ax, len(rows), values, label, fmt)
    axes[0].set_yticks(range(len(rows)), names)
    axes[0].invert_yaxis()
    known = [u for u in ups if u]
    if known and max(known) / min(known) > 20:
        axes[0].set_xscale("log")
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _bar_panel(ax: Any, count: int, values: list[float | None], label: str, fmt: str) -> None:
    heights = [v if v is not None else 0.0 for v in values]
    ax.barh(range(count), heights, color="#4C72B0", height=0.6)
    ax.set_title(label, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    for y, value in enumerate(values):
        if value is None:
            ax.text(0.02, y, "cannot run", va="center", fontsize=9, color="#AA4444",
                    transform=ax.get_yaxis_transform())
            continue
        ax.annotate(" " + fmt.format(value), (value, y), va="center", fontsize=9)
    ax.margins(x=0.3)


def short_name(target: str) -> str:
    """`stc{preset="a100"}` -> `stc a100`, `systolic` -> `systolic`: labels for tables
    and plots."""
    name, _, options = target.partition("{")
    options = options.rstrip("}").replace('"', "").replace("preset=", "")
    return f"{name} {options}".strip()
