"""The one registry of sparsec's dialects and passes, seen by `sparsec` and `xdsl-opt`.

Registered as the `xdsl.universe` entry point `sparsec` in pyproject.toml, so
`xdsl-opt` parses sparsec IR and runs every sparsec pass. Loaders import lazily.
"""

from __future__ import annotations

from xdsl.ir import Dialect
from xdsl.passes import ModulePass
from xdsl.universe import Universe


def _sparsec_dialect() -> Dialect:
    from sparsec.dialects.sparsec import Sparsec

    return Sparsec


def _sparse_tensor_dialect() -> Dialect:
    from sparsec.dialects.sparse_tensor import SparseTensor

    return SparseTensor


def _systolic_dialect() -> Dialect:
    from sparsec.backends.systolic.isa import Systolic

    return Systolic


def _lower_systolic() -> type[ModulePass]:
    from sparsec.backends.systolic.lowering import LowerSystolicPass

    return LowerSystolicPass


SPARSEC_DIALECTS = {
    "sparsec": _sparsec_dialect,
    "sparse_tensor": _sparse_tensor_dialect,
    "systolic": _systolic_dialect,
}

SPARSEC_PASSES = {
    "lower-systolic": _lower_systolic,
}

SPARSEC_UNIVERSE = Universe(all_dialects=SPARSEC_DIALECTS, all_passes=SPARSEC_PASSES)
