"""The `sparsec sweep` command (registered by compiler/cli.py)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

EXIT_BAD_INPUT = 1
EXIT_INTERRUPTED = 130
EXIT_FAILED_POINTS = 0
"""Failed points are rows of the database, not a failure of the sweep."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sweep = sub.add_parser(
        "sweep", help="sweep option lists over a local pool or a Dask cluster into a database",
        description="Run every point of a design space (option lists/ranges in -p and "
                    "--target, or a TOML sweep file), store one row per point in --db, "
                    "skip points already stored. With --report: print the Pareto front "
                    "and write a plot.")
    sweep.add_argument("specs", nargs="*", metavar="SPEC|SWEEP.toml",
                       help="kernel specs (.sk), or one sweep file (.toml)")
    sweep.add_argument("-p", "--pipeline", action="append", default=None,
                       help="pipeline template, e.g. 'prune-nm{n=[1,2] m=4}' (repeatable)")
    sweep.add_argument("--target", action="append", default=None,
                       help="target template, e.g. 'systolic{rows=[8,16] dataflow=[os,ws]}' "
                            "(repeatable)")
    sweep.add_argument("--db", default="sweep.db", help="the results database (default: "
                                                        "sweep.db)")
    sweep.add_argument("--strategy", choices=("grid", "random", "optuna"), default=None,
                       help="grid (default), random (--samples, --seed), or optuna "
                            "(multi-objective search; needs sparsec[sweep])")
    sweep.add_argument("--samples", type=int, default=None, help="points to draw (random, "
                                                                "optuna)")
    sweep.add_argument("--seed", type=int, default=None, help="seed of random/optuna (0)")
    sweep.add_argument("--constraint", action="append", default=None, metavar="EXPR",
                       help="keep points where EXPR holds, e.g. 'rows*cols == 1024' "
                            "(repeatable)")
    sweep.add_argument("--objectives", default=None,
                       help="comma-separated, minimised: cycles,energy_pj,error (default)")
    sweep.add_argument("--no-execute", action="store_true",
                       help="account cycles from shapes and sparsity only (fast)")
    sweep.add_argument("--workers", type=int, default=None,
                       help="local worker processes (default: the number of cores)")
    sweep.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run the points on this Dask distributed scheduler instead")
    sweep.add_argument("--retries", type=int, default=3,
                       help="times a point is resent after its worker dies (local pool)")
    sweep.add_argument("--retry-failed", action="store_true",
                       help="run again the points stored as failed")
    sweep.add_argument("--dry-run", action="store_true",
                       help="list the points to run and exit")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--report", default=None, metavar="DB",
                       help="print the Pareto front of DB (no sweep is run)")
    sweep.add_argument("--plot", default=None, metavar="PNG",
                       help="with --report: the plot's file (default: DB name + .png)")
    sweep.add_argument("--export", default=None, metavar="FILE.csv|FILE.parquet",
                       help="write every row of the database (--report's, else --db)")


def cmd_sweep(args: argparse.Namespace) -> int:
    from sparsec.compiler.sweep.run import SweepInterrupted
    from sparsec.compiler.sweep.space import SweepError

    try:
        if args.report or (args.export and not args.specs):
            return _report(args)
        return _sweep(args)
    except SweepError as err:
        print(f"sparsec: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SweepInterrupted as err:
        print(f"sparsec: {err}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # before the first point: nothing was stored
        print("sparsec: interrupted before any point ran", file=sys.stderr)
        return EXIT_INTERRUPTED


def _objectives(args: argparse.Namespace, default: list[str]) -> list[str]:
    if args.objectives is None:
        return default
    return [o.strip() for o in args.objectives.split(",") if o.strip()]


def _report(args: argparse.Namespace) -> int:
    from sparsec.compiler.sweep import report
    from sparsec.compiler.sweep.space import DEFAULT_OBJECTIVES
    from sparsec.compiler.sweep.store import SweepDB

    db = SweepDB(args.report or args.db, readonly=True)
    objectives = _objectives(args, list(DEFAULT_OBJECTIVES))
    if args.report:
        report.print_report(db, objectives)
        plot_path = Path(args.plot) if args.plot else Path(args.report).with_suffix(".png")
        report.plot(db, objectives, plot_path)
        print(f"wrote {plot_path}")
    if args.export:
        count = report.export(db, args.export)
        print(f"wrote {args.export} ({count} rows)")
    return 0


def _space(args: argparse.Namespace):  # noqa: ANN202
    from sparsec.compiler.sweep.space import DEFAULT_OBJECTIVES, Space, SweepError, load_sweep_file

    overrides = {"strategy": args.strategy, "samples": args.samples, "seed": args.seed,
                 "constraints": args.constraint,
                 "objectives": _objectives(args, []) or None}
    if args.no_execute:
        overrides["execute"] = False
    tomls = [s for s in args.specs if s.endswith(".toml")]
    if tomls:
        if len(args.specs) > 1 or args.pipeline or args.target:
            raise SweepError("a sweep file holds the kernels, pipelines and targets; give it "
                             "alone")
        return load_sweep_file(tomls[0], overrides)
    if not args.specs:
        raise SweepError("give kernel specs and --target templates, a sweep .toml, or "
                         "--report DB")
    constraints = overrides.pop("constraints") or []
    settings = {k: v for k, v in overrides.items() if v is not None}
    settings.setdefault("objectives", list(DEFAULT_OBJECTIVES))
    return Space.build(args.specs, args.pipeline or [""], args.target or ["systolic"],
                       {}, constraints, **settings)


def _sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sparsec.compiler.sweep.pool import DaskPool, LocalPool
    from sparsec.compiler.sweep.run import run_sweep
    from sparsec.compiler.sweep.store import SweepDB

    space = _space(args)
    if args.dry_run:
        return _dry_run(space)
    db = SweepDB(args.db)
    console = Console(stderr=True)
    if args.scheduler:
        pool = DaskPool(args.scheduler)
        where = f"Dask scheduler {args.scheduler} ({pool.workers} worker threads)"
    else:
        workers = args.workers or os.cpu_count() or 1
        pool = LocalPool(workers, retries=args.retries)
        where = f"{workers} local worker{'s' * (workers != 1)}"
    command = shlex.join(["sparsec", "sweep", *sys.argv[2:]]) if sys.argv[1:2] == ["sweep"] \
        else "sparsec sweep"
    try:
        summary = run_sweep(space, db, pool, retry_failed=args.retry_failed, command=command,
                            console=console, show_progress=not args.quiet)
    finally:
        db.close()
    print(f"{args.db}: {summary.done} points run ({summary.failed} failed) on {where} in "
          f"{summary.seconds:.1f} s ({summary.rate:.1f} points/s); {summary.skipped} already "
          "stored were skipped" + (f"; {summary.cached} Optuna proposals were already stored"
                                   if summary.cached else ""))
    return EXIT_FAILED_POINTS


def _dry_run(space) -> int:  # noqa: ANN001
    if space.strategy == "optuna":
        print(f"optuna: {space.samples} trials over {space.size()} grid points")
        return 0
    points = list(space.grid() if space.strategy == "grid"
                  else space.random(space.samples or 0, space.seed))
    for point in points:
        print(f"{point.kernel.name}  -p '{point.pipeline}'  --target '{point.target}'  "
              f"{point.key[:12]}")
    print(f"{len(points)} points ({space.size()} before constraints)")
    return 0
