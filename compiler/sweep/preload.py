"""Imported once by the local pool's forkserver: every worker forked from it starts with
sparsec's dialects, passes and backends loaded (about 1.5 s a worker would otherwise
spend on its first point), and with BLAS pinned to one thread."""

from sparsec.compiler.driver import make_context
from sparsec.compiler.sweep.point import pin_blas_threads

pin_blas_threads()
make_context()
