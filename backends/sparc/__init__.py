"""SpARC (DAC 2024): row-clustered approximate attention with a centroid cache."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.sparc.interpreter import SparcMachine
from sparsec.backends.sparc.lowering import LowerSparcPass
from sparsec.backends.sparc.spec import SparcSpec

BACKEND = Backend(
    name="sparc",
    spec_class=SparcSpec,
    lowering_pass=LowerSparcPass,
    machine_class=SparcMachine,
    summary="SpARC: row-clustered approximate attention, 16x64 INT16 MACs, LRU centroid cache",
    kernel_ops=frozenset({"sparsec.attention"}),
)
