"""HotTiles (HPCA 2024): hot/cold tiles of an irregular sparse A on hot and cold workers."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.hottiles.interpreter import HottilesMachine
from sparsec.backends.hottiles.lowering import LowerHottilesPass
from sparsec.backends.hottiles.spec import HottilesSpec

BACKEND = Backend(
    name="hottiles",
    spec_class=HottilesSpec,
    lowering_pass=LowerHottilesPass,
    machine_class=HottilesMachine,
    summary="SpMM on hot (systolic) + cold (streaming CSR) workers sharing DRAM, "
            "hot/cold tiles (HotTiles)",
    kernel_ops=frozenset({"sparsec.matmul"}),
)
