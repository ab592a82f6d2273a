"""`sparsec sweep`: design-space sweeps on a local process pool or a Dask cluster.

space.py  the points: option lists/ranges in pipeline and target strings, sweep files,
          named axes, constraints, grid and seeded random sampling
point.py  one point as a worker runs it (compile, execute, figures; failures as data)
pool.py   where points run: the local process pool, or a Dask distributed cluster
store.py  the SQLite database: one row per point, keyed by its configuration's hash
run.py    the driver: skip stored points, keep the pool busy, Optuna's search, progress
report.py Pareto fronts, the PNG, CSV/Parquet export
cli.py    the `sparsec sweep` command
"""
