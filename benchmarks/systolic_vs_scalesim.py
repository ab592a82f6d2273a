#!/usr/bin/env python
"""Benchmark sparsec's systolic backend against SCALE-Sim 3.0.0: cycles and wall time.

    python benchmarks/systolic_vs_scalesim.py [--scalesim-python PATH] [--quick] [--out FILE]

For every case (a GEMM C[MxN] = A[MxK] . B[KxN] on an R x C array with one dataflow):

* sparsec runs as a whole process, `sparsec run SPEC --target T --json F`, on a temporary
  spec with seeded random operands, with real value execution and the numerical check; the
  whole-process wall time (interpreter start-up, parse, compile, execute, check, report) is
  measured `--repeats` times (default 3) and the median is taken;
* SCALE-Sim runs once on the same case through `benchmarks/scalesim_harness.py` in its own
  virtual environment (`--scalesim-python`). Its wall time is the harness's `scalesim_wall_s`
  (`run_scale` + report extraction only: no interpreter start-up, no imports), so the speed
  ratio SCALE-Sim / sparsec is a conservative one. The harness process time is shown too.
  Without that interpreter, the figures recorded in tests/data/*.csv and
  tests/data/reference/scalesim_dev.csv are used and the row is marked "recorded".

CALC mode: sparsec's cycle counts must equal SCALE-Sim's exactly; any difference is a bug and
is listed at the end (and makes the exit status 1). USER mode (bandwidth-limited) is a
comparison only: both tools' total and stall cycles and the ratio ours / SCALE-Sim.

`--quick` skips the 1024^3 cases and the repeats. Uses only the standard library, numpy
(through sparsec) and, when installed, rich for the console table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HARNESS = HERE / "scalesim_harness.py"
DEFAULT_OUT = HERE / "results" / "systolic_vs_scalesim.md"
DEFAULT_SCALESIM_PYTHON = "/work/scalesim-venv/bin/python"
RECORDED_CSVS = (
    REPO / "tests" / "data" / "reference" / "scalesim_dev.csv",  # has wall times; checked first
    REPO / "tests" / "data" / "scalesim_calc_cases.csv",
    REPO / "tests" / "data" / "scalesim_user_cases.csv",
)


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One GEMM on one array configuration; `bandwidth` set means USER mode."""

    rows: int
    cols: int
    m: int
    n: int
    k: int
    dataflow: str
    ifmap_kb: int = 64
    filter_kb: int = 64
    ofmap_kb: int = 64
    bandwidth: int | None = None

    @property
    def mode(self) -> str:
        """SCALE-Sim interface-bandwidth mode: 'calc' or 'user'."""
        return "calc" if self.bandwidth is None else "user"

    @property
    def label(self) -> str:
        """Short human-readable name of the case."""
        text = f"{self.rows}x{self.cols} {self.dataflow} {self.m}x{self.n}x{self.k}"
        if (self.ifmap_kb, self.filter_kb, self.ofmap_kb) != (64, 64, 64):
            text += f" sram {self.ifmap_kb}/{self.filter_kb}/{self.ofmap_kb}kB"
        if self.bandwidth is not None:
            text += f" bw={self.bandwidth}"
        return text

    @property
    def target(self) -> str:
        """sparsec `--target` string."""
        opts = (f"rows={self.rows} cols={self.cols} dataflow={self.dataflow} "
                f"ifmap_sram_kb={self.ifmap_kb} filter_sram_kb={self.filter_kb} "
                f"ofmap_sram_kb={self.ofmap_kb} mode={self.mode}")
        if self.bandwidth is not None:
            opts += f" bandwidth={self.bandwidth}"
        return f"systolic{{{opts}}}"

    def spec_text(self) -> str:
        """Kernel spec of C = A . B with seeded random dense f32 operands."""
        return (f"kernel bench {{\n"
                f"  in A: f32[{self.m}, {self.k}] = random(seed=1)\n"
                f"  in B: f32[{self.k}, {self.n}] = random(seed=2)\n"
                f"  C = matmul(A, B)\n"
                f"  out C\n}}\n")

    def harness_row(self) -> dict[str, object]:
        """Row of the SCALE-Sim harness's cases CSV."""
        return {"rows": self.rows, "cols": self.cols, "M": self.m, "N": self.n, "K": self.k,
                "dataflow": self.dataflow, "ifmap_kb": self.ifmap_kb,
                "filter_kb": self.filter_kb, "ofmap_kb": self.ofmap_kb,
                "bandwidth": self.bandwidth if self.bandwidth is not None else 10}

    @property
    def key(self) -> tuple:
        """Lookup key into the recorded SCALE-Sim figures."""
        return (self.rows, self.cols, self.m, self.n, self.k, self.dataflow, self.ifmap_kb,
                self.filter_kb, self.ofmap_kb, self.bandwidth)


def calc_cases(quick: bool) -> list[Case]:
    """CALC-mode cases: 32x32 at four sizes in all dataflows, then odd shapes/arrays."""
    sizes = [(64, 64, 64), (128, 256, 512), (512, 512, 512)]
    if not quick:
        sizes.append((1024, 1024, 1024))
    cases = [Case(32, 32, m, n, k, df) for m, n, k in sizes for df in ("os", "ws", "is")]
    cases += [
        Case(8, 32, 20, 50, 30, "os"),
        Case(32, 8, 20, 50, 30, "ws"),
        Case(16, 4, 3, 100, 5, "is"),
        Case(3, 5, 11, 13, 7, "os"),
        Case(32, 32, 33, 65, 31, "ws"),
        Case(128, 128, 256, 200, 128, "os"),
        Case(128, 128, 130, 200, 160, "is"),
        Case(16, 32, 73, 63, 76, "os", 8, 2, 2),
        Case(64, 16, 7, 136, 77, "is", 1, 64, 4),
    ]
    return cases


def user_cases() -> list[Case]:
    """USER-mode (bandwidth-limited) cases, incl. small SRAMs and bandwidths 1/4/10."""
    return [
        Case(32, 32, 64, 64, 64, "os", bandwidth=10),
        Case(32, 32, 64, 64, 64, "os", bandwidth=4),
        Case(32, 32, 64, 64, 64, "os", bandwidth=1),
        Case(32, 32, 64, 64, 64, "is", 8, 8, 8, bandwidth=1),
        Case(16, 16, 128, 64, 96, "ws", 8, 8, 8, bandwidth=10),
        Case(16, 16, 128, 64, 96, "is", 8, 8, 8, bandwidth=10),
        Case(32, 32, 128, 128, 128, "os", 8, 8, 8, bandwidth=4),
        Case(8, 8, 100, 100, 100, "ws", 1, 1, 1, bandwidth=4),
        Case(32, 32, 64, 64, 64, "os", 64, 64, 1, bandwidth=4),
    ]


# --------------------------------------------------------------------------- results


@dataclass
class SparsecResult:
    """Figures of one sparsec case and its whole-process wall times."""

    cycles: int
    stall_cycles: int
    compute_cycles: int
    check_ok: bool
    walls: list[float]

    @property
    def wall(self) -> float:
        """Median whole-process wall time, seconds."""
        return statistics.median(self.walls)


@dataclass
class ScalesimResult:
    """Figures of one SCALE-Sim case; `source` is 'measured' or 'recorded'."""

    cycles: int
    compute_cycles: int
    stall_cycles: int
    sim_wall: float | None  # run_scale + report extraction, seconds
    process_wall: float | None  # whole harness process, seconds
    source: str


@dataclass
class Row:
    """One case with both tools' results (SCALE-Sim's may be missing)."""

    case: Case
    ours: SparsecResult
    theirs: ScalesimResult | None

    @property
    def equal(self) -> bool | None:
        """Total and compute cycles identical (None if SCALE-Sim's are unknown)."""
        if self.theirs is None:
            return None
        return (self.ours.cycles, self.ours.compute_cycles) == \
            (self.theirs.cycles, self.theirs.compute_cycles)

    @property
    def speed_ratio(self) -> float | None:
        """SCALE-Sim wall time / sparsec median wall time."""
        if self.theirs is None or self.theirs.sim_wall is None:
            return None
        return self.theirs.sim_wall / self.ours.wall


# --------------------------------------------------------------------------- sparsec


def sparsec_command() -> list[str]:
    """The `sparsec` console script of this interpreter (avoids pyenv shims), else PATH's."""
    beside = Path(sys.executable).parent / "sparsec"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("sparsec")
    if found:
        return [found]
    return [sys.executable, "-c", "from sparsec.compiler.cli import main; main()"]


def run_sparsec(case: Case, repeats: int, workdir: Path) -> SparsecResult:
    """Run `sparsec run` on the case `repeats` times as a subprocess; figures of the last."""
    spec = workdir / "bench.sk"
    spec.write_text(case.spec_text())
    report_path = workdir / "report.json"
    cmd = [*sparsec_command(), "run", str(spec), "--target", case.target,
           "--json", str(report_path)]
    walls = []
    report: dict = {}
    for _ in range(repeats):
        report_path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                              check=False)
        walls.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"sparsec failed on {case.label}:\n{proc.stderr}")
        report = json.loads(report_path.read_text())
    return SparsecResult(cycles=int(report["cycles"]),
                         stall_cycles=int(report["stall_cycles"]),
                         compute_cycles=int(report["details"]["compute_cycles"]),
                         check_ok=bool(report["check"]["ok"]), walls=walls)


# --------------------------------------------------------------------------- SCALE-Sim


def run_scalesim(case: Case, python: str, workdir: Path, timeout: float) -> ScalesimResult:
    """Run the SCALE-Sim harness on one case in the SCALE-Sim interpreter."""
    cases_csv = workdir / "cases.csv"
    out_csv = workdir / "scalesim.csv"
    row = case.harness_row()
    with cases_csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    cmd = [python, str(HARNESS), "--cases", str(cases_csv), "--mode", case.mode,
           "--out", str(out_csv)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True,
                          timeout=timeout, check=False)
    process_wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"SCALE-Sim harness failed on {case.label}:\n{proc.stderr}")
    with out_csv.open() as f:
        (res,) = list(csv.DictReader(f))
    return ScalesimResult(cycles=int(res["total_cycles"]),
                          compute_cycles=int(res["compute_cycles"]),
                          stall_cycles=int(res["stall_cycles"]),
                          sim_wall=float(res["scalesim_wall_s"]),
                          process_wall=process_wall, source="measured")


def load_recorded(paths: tuple[Path, ...] = RECORDED_CSVS) -> dict[tuple, ScalesimResult]:
    """Recorded SCALE-Sim figures by case key; earlier files win."""
    table: dict[tuple, ScalesimResult] = {}
    for path in paths:
        if not path.exists():
            continue
        with path.open() as f:
            for r in csv.DictReader(f):
                key = _recorded_key(r)
                if key in table:
                    continue
                wall = r.get("scalesim_wall_s")
                table[key] = ScalesimResult(
                    cycles=int(r["total_cycles"]), compute_cycles=int(r["compute_cycles"]),
                    stall_cycles=int(r["stall_cycles"]),
                    sim_wall=float(wall) if wall else None, process_wall=None,
                    source="recorded")
    return table


def _recorded_key(r: dict[str, str]) -> tuple:
    """Case key of one recorded CSV row (missing SRAM sizes are 64 kB; no bandwidth = CALC)."""
    def num(name: str, default: int | None) -> int | None:
        value = (r.get(name) or "").strip()
        return int(value) if value else default

    return (num("rows", None), num("cols", None), num("M", None), num("N", None),
            num("K", None), r["dataflow"].strip(), num("ifmap_kb", 64), num("filter_kb", 64),
            num("ofmap_kb", 64), num("bandwidth", None))


# --------------------------------------------------------------------------- driver


def run_all(cases: list[Case], repeats: int, scalesim_python: str | None, timeout: float,
            recorded: dict[tuple, ScalesimResult]) -> list[Row]:
    """Run both tools on every case, one at a time (never two heavy runs at once)."""
    rows = []
    for i, case in enumerate(cases, 1):
        log(f"[{i}/{len(cases)}] {case.label}: sparsec x{repeats} ...")
        with tempfile.TemporaryDirectory(prefix="svs_") as tmp:
            ours = run_sparsec(case, repeats, Path(tmp))
            log(f"    sparsec {ours.cycles} cycles, median {ours.wall:.2f} s; SCALE-Sim ...")
            if scalesim_python:
                theirs: ScalesimResult | None = run_scalesim(case, scalesim_python, Path(tmp),
                                                             timeout)
            else:
                theirs = recorded.get(case.key)
        if theirs is not None:
            log(f"    SCALE-Sim {theirs.cycles} cycles, {fmt_s(theirs.sim_wall)} s "
                f"({theirs.source})")
        rows.append(Row(case, ours, theirs))
    return rows


def log(msg: str) -> None:
    """Progress line on stderr."""
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- tables


def fmt_s(value: float | None) -> str:
    """Seconds with two decimals, '-' when unknown."""
    return "-" if value is None else f"{value:.2f}"


def fmt_int(value: int | None) -> str:
    """Integer with thousands separators, '-' when unknown."""
    return "-" if value is None else f"{value:,}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    """num / den (two decimals below 10, else one), '-' when unknown or den is 0."""
    if num is None or den is None or den == 0:
        return "-"
    ratio = num / den
    return f"{ratio:.2f}" if ratio < 10 else f"{ratio:.1f}"


def source_tag(row: Row) -> str:
    """Where SCALE-Sim's figures come from."""
    return "n/a" if row.theirs is None else row.theirs.source


CALC_HEADERS = ["case", "sparsec cycles", "SCALE-Sim cycles", "equal?", "sparsec compute",
                "SCALE-Sim compute", "check", "sparsec wall s (median)", "SCALE-Sim wall s",
                "SCALE-Sim process s", "speed ratio", "SCALE-Sim"]

USER_HEADERS = ["case", "sparsec total", "SCALE-Sim total", "total ours/SS", "sparsec stall",
                "SCALE-Sim stall", "stall ours/SS", "check", "sparsec wall s (median)",
                "SCALE-Sim wall s", "speed ratio", "SCALE-Sim"]


def calc_table(rows: list[Row]) -> list[list[str]]:
    """Cells of the CALC-mode table."""
    out = []
    for r in rows:
        t = r.theirs
        equal = {None: "-", True: "yes", False: "**NO**"}[r.equal]
        out.append([r.case.label, fmt_int(r.ours.cycles), fmt_int(t and t.cycles), equal,
                    fmt_int(r.ours.compute_cycles), fmt_int(t and t.compute_cycles),
                    "ok" if r.ours.check_ok else "FAIL", fmt_s(r.ours.wall),
                    fmt_s(t and t.sim_wall), fmt_s(t and t.process_wall),
                    fmt_ratio(t and t.sim_wall, r.ours.wall), source_tag(r)])
    return out


def user_table(rows: list[Row]) -> list[list[str]]:
    """Cells of the USER-mode table."""
    out = []
    for r in rows:
        t = r.theirs
        out.append([r.case.label, fmt_int(r.ours.cycles), fmt_int(t and t.cycles),
                    fmt_ratio(r.ours.cycles, t and t.cycles),
                    fmt_int(r.ours.stall_cycles), fmt_int(t and t.stall_cycles),
                    fmt_ratio(r.ours.stall_cycles, t and t.stall_cycles),
                    "ok" if r.ours.check_ok else "FAIL", fmt_s(r.ours.wall),
                    fmt_s(t and t.sim_wall), fmt_ratio(t and t.sim_wall, r.ours.wall),
                    source_tag(r)])
    return out


def print_table(title: str, headers: list[str], cells: list[list[str]]) -> None:
    """Print a table to stdout, with rich when available, else as aligned text."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}\n{plain_table(headers, cells)}")
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right", no_wrap=i == 0)
    for row in cells:
        table.add_row(*row)
    Console(width=max(200, shutil.get_terminal_size().columns)).print(table)


def plain_table(headers: list[str], cells: list[list[str]]) -> str:
    """Fixed-width text table."""
    widths = [max(len(x) for x in col) for col in zip(headers, *cells, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in cells]
    return "\n".join(lines)


def markdown_table(headers: list[str], cells: list[list[str]]) -> str:
    """GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


# --------------------------------------------------------------------------- summary


def headline_ratios(rows: list[Row]) -> list[str]:
    """Speed ratios of the 32x32 512^3 and 1024^3 cases, one line per case."""
    lines = []
    for r in rows:
        c = r.case
        if (c.rows, c.cols) == (32, 32) and c.m == c.n == c.k and c.m in (512, 1024):
            ratio = r.speed_ratio
            lines.append(f"{c.label}: SCALE-Sim {fmt_s(r.theirs and r.theirs.sim_wall)} s / "
                         f"sparsec {r.ours.wall:.2f} s = "
                         f"{'-' if ratio is None else f'{ratio:.1f}x'}")
    return lines


def problems(calc_rows: list[Row], user_rows: list[Row]) -> list[str]:
    """CALC cycle mismatches and failed numerical checks."""
    out = []
    for r in calc_rows:
        if r.equal is False:
            t = r.theirs
            out.append(f"CALC MISMATCH {r.case.label}: sparsec total {r.ours.cycles} compute "
                       f"{r.ours.compute_cycles} stall {r.ours.stall_cycles}; SCALE-Sim total "
                       f"{t.cycles} compute {t.compute_cycles} stall {t.stall_cycles}")
    for r in calc_rows + user_rows:
        if not r.ours.check_ok:
            out.append(f"CHECK FAILED {r.case.label}")
    return out


def machine_info(scalesim_python: str | None) -> list[str]:
    """Date, machine, interpreter and tool versions, as Markdown bullet lines."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [
        f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        (f"- machine: {platform.node()}, {cpu}, nproc {os.cpu_count()}, "
         f"{platform.system()} {platform.release()}"),
        (f"- sparsec python: {platform.python_implementation()} {platform.python_version()} "
         f"({sys.executable}); sparsec git {git_revision()}"),
        f"- SCALE-Sim: {scalesim_version(scalesim_python)}",
    ]


def git_revision() -> str:
    """Short commit of the repository, with '+dirty' for uncommitted changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                               capture_output=True, text=True, check=False).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def scalesim_version(python: str | None) -> str:
    """SCALE-Sim package version and interpreter, or a note that figures are recorded."""
    if python is None:
        return "not available: recorded figures from " + ", ".join(
            str(p) for p in RECORDED_CSVS)
    code = ("import importlib.metadata as m, platform; "
            "print(m.version('scalesim'), 'on Python', platform.python_version())")
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False)
    return f"{proc.stdout.strip() or 'unknown version'} ({python})"


METHOD_NOTE = (
    "Method: sparsec runs as a whole process (`sparsec run SPEC --target T --json F`, value "
    "execution and numerical check included) and its wall time is the median of {repeats} "
    "run(s). SCALE-Sim runs once per case through `benchmarks/scalesim_harness.py`; "
    "*SCALE-Sim wall s* is the harness's `run_scale` + report time (no interpreter start-up "
    "or imports) and is what the speed ratio (SCALE-Sim / sparsec) uses, so the ratio is "
    "conservative; *SCALE-Sim process s* is the whole harness process. Rows marked "
    "`recorded` use figures measured earlier (tests/data/*.csv, scalesim_dev.csv). "
    "`sram a/b/c` is ifmap/filter/ofmap SRAM in kB (default 64/64/64).")

USER_NOTE = (
    "`bw` is words/cycle; the harness sets SCALE-Sim's ifmap/filter fill bandwidth and ofmap "
    "drain bandwidth to it. Ratios are ours / SCALE-Sim.")


def markdown_report(calc_rows: list[Row], user_rows: list[Row], command: str,
                    scalesim_python: str | None, repeats: int) -> str:
    """The whole results file."""
    issues = problems(calc_rows, user_rows)
    parts = [
        "# sparsec systolic backend vs SCALE-Sim 3.0.0",
        "",
        *machine_info(scalesim_python),
        f"- command: `{command}`",
        "",
        METHOD_NOTE.format(repeats=repeats),
        "",
        "## CALC mode (cycles must be equal)",
        "",
        markdown_table(CALC_HEADERS, calc_table(calc_rows)),
        "",
        "## USER mode (bandwidth-limited; comparison only)",
        "",
        USER_NOTE,
        "",
        markdown_table(USER_HEADERS, user_table(user_rows)),
        "",
        "## Summary",
        "",
        *[f"- {line}" for line in headline_ratios(calc_rows)],
        (f"- CALC cases with equal cycles: {sum(r.equal is True for r in calc_rows)} of "
         f"{len(calc_rows)} ({sum(r.equal is None for r in calc_rows)} without SCALE-Sim "
         "figures)"),
        *([f"- {line}" for line in issues] or ["- no CALC mismatches, all checks ok"]),
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scalesim-python", default=DEFAULT_SCALESIM_PYTHON,
                    help="interpreter of the SCALE-Sim venv (default: %(default)s); if it "
                         "does not exist, recorded figures are used")
    ap.add_argument("--quick", action="store_true",
                    help="skip the 1024^3 cases and the repeats")
    ap.add_argument("--repeats", type=int, default=3,
                    help="sparsec runs per case, median taken (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds allowed per SCALE-Sim case (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help="Markdown results file (default: %(default)s)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the tables, write the Markdown file; 1 on any problem."""
    args = parse_args(argv)
    command = shlex.join([Path(sys.executable).name, *(sys.argv if argv is None else
                                                      [__file__, *argv])])
    repeats = 1 if args.quick else max(1, args.repeats)
    scalesim_python = args.scalesim_python if Path(args.scalesim_python).exists() else None
    if scalesim_python is None:
        log(f"{args.scalesim_python} not found: using recorded SCALE-Sim figures")
    recorded = load_recorded()

    calc_rows = run_all(calc_cases(args.quick), repeats, scalesim_python, args.timeout,
                        recorded)
    user_rows = run_all(user_cases(), repeats, scalesim_python, args.timeout, recorded)

    print_table("CALC mode: sparsec vs SCALE-Sim", CALC_HEADERS, calc_table(calc_rows))
    print_table("USER mode: sparsec vs SCALE-Sim (ratios ours/SCALE-Sim)", USER_HEADERS,
                user_table(user_rows))
    for line in headline_ratios(calc_rows) + (problems(calc_rows, user_rows)
                                              or ["no CALC mismatches, all checks ok"]):
        print(line)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown_report(calc_rows, user_rows, command, scalesim_python,
                                        repeats))
    print(f"wrote {args.out}")
    return 1 if problems(calc_rows, user_rows) else 0


if __name__ == "__main__":
    sys.exit(main())
