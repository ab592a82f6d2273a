"""The Report every backend returns, and the output check against the numpy reference."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHECK_TOLERANCE: dict[str, float] = {
    "f64": 1e-12, "f32": 1e-5, "f16": 2e-3, "bf16": 1.6e-2,
    "i32": 0.0, "i16": 0.0, "i8": 0.0,
}
"""Largest relative (Frobenius) error accepted per output element type.

Floating-point tolerances allow a changed summation order (folds add partial sums in
another order than one BLAS call) plus one rounding of the output to its type
(f16: 2^-11 relative, bf16: 2^-8 relative). Integer arithmetic must be exact.
"""


@dataclass
class Check:
    """How an executed output compares with its numpy reference."""

    ok: bool
    max_abs_err: float
    rel_err: float
    tolerance: float
    skipped: bool = False
    reason: str = ""

    @classmethod
    def skipped_because(cls, reason: str) -> Check:
        return cls(ok=True, max_abs_err=float("nan"), rel_err=float("nan"), tolerance=0.0,
                   skipped=True, reason=reason)


CHECK_BLOCK_ELEMENTS = 1 << 16
"""Elements compared per step of `check_output`: the float64 copies of a block stay in
cache, instead of five full-size float64 temporaries (a 2048x2048 output made 160 MB of
them, and a fresh process pays a page fault per 4 KB of each)."""


def check_output(actual: np.ndarray, reference: np.ndarray, dtype: str) -> Check:
    """Compare `actual` with `reference`: max |a - r| and ||a - r||_F / ||r||_F.

    Every element is compared, in float64, a block of `CHECK_BLOCK_ELEMENTS` at a time
    (the sums of squares add up block by block)."""
    tolerance = CHECK_TOLERANCE[dtype]
    if actual.shape != reference.shape:
        return Check(False, float("inf"), float("inf"), tolerance,
                     reason=f"shape {actual.shape} != reference {reference.shape}")
    a = np.ravel(actual)
    r = np.ravel(reference)
    bad_reference = bad_output = 0
    max_abs = ref_squares = diff_squares = 0.0
    for start in range(0, a.size, CHECK_BLOCK_ELEMENTS):
        a_block = a[start:start + CHECK_BLOCK_ELEMENTS].astype(np.float64)
        r_block = r[start:start + CHECK_BLOCK_ELEMENTS].astype(np.float64)
        bad_reference += a_block.size - int(np.count_nonzero(np.isfinite(r_block)))
        bad_output += a_block.size - int(np.count_nonzero(np.isfinite(a_block)))
        if bad_reference or bad_output:
            continue  # only the counts matter now
        diff = a_block - r_block
        max_abs = max(max_abs, float(np.max(np.abs(diff))))
        # einsum's own loop, not BLAS: a BLAS dot wakes its thread pool on every call,
        # which on a busy machine cost ~25 ms per block.
        ref_squares += float(np.einsum("i,i->", r_block, r_block))
        diff_squares += float(np.einsum("i,i->", diff, diff))
    if bad_reference:
        # NaN compares equal to nothing and inf swallows any error in the norm: a
        # reference holding them cannot vouch for the output, so the check fails.
        return Check(False, float("nan"), float("nan"), tolerance,
                     reason=f"the reference holds {bad_reference} NaN or infinite value"
                            f"{'s' if bad_reference > 1 else ''} (overflow in {dtype}?); "
                            "it cannot vouch for the output")
    if bad_output:
        return Check(False, float("inf"), float("inf"), tolerance,
                     reason=f"the output holds {bad_output} NaN or infinite value"
                            f"{'s' if bad_output > 1 else ''}; the reference is finite")
    norm_ref = math.sqrt(ref_squares)
    norm_diff = math.sqrt(diff_squares)
    rel = norm_diff / norm_ref if norm_ref > 0 else norm_diff
    return Check(rel <= tolerance, max_abs, rel, tolerance)


@dataclass
class Report:
    """What one kernel cost on one target: time, units, traffic, work, energy, check."""

    target: str
    kernel: str
    config: dict[str, Any]
    cycles: int
    stall_cycles: int
    units: dict[str, dict[str, float]]
    bytes: dict[str, dict[str, int]]
    macs: dict[str, int]
    energy_pj: float
    check: Check
    clock_ghz: float = 1.0
    label: str = ""
    passes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """What passes did to each tensor (density, retained energy, error, ...)."""
    error_vs_original: dict[str, float] | None = None
    """After lossy passes: error of the output against the program before any pass."""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def time_us(self) -> float:
        return self.cycles / (self.clock_ghz * 1e3)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["time_us"] = self.time_us
        return data


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_atomically(path: str | Path, text: str) -> None:
    """Write `text` to `path` so that a failure leaves no half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def reports_to_json(reports: list[Report]) -> str:
    """One report as a JSON object; several (multi-kernel files) as a list."""
    data: Any = [r.to_dict() for r in reports]
    if len(data) == 1:
        data = data[0]
    return json.dumps(data, indent=2, default=_json_default) + "\n"


CSV_COLUMNS = ("kernel", "target", "cycles", "stall_cycles", "time_us", "effectual_macs",
               "dense_macs", "energy_pj", "check_ok", "max_abs_err", "rel_err")


def reports_to_csv(reports: list[Report]) -> str:
    """One CSV row per report with the headline figures."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in reports:
        writer.writerow([r.kernel, r.target, r.cycles, r.stall_cycles, f"{r.time_us:.3f}",
                         r.macs["effectual"], r.macs["dense"], f"{r.energy_pj:.1f}",
                         r.check.ok, r.check.max_abs_err, r.check.rel_err])
    return out.getvalue()
