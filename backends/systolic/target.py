"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.systolic.interpreter import SystolicMachine
from sparsec.backends.systolic.lowering import LOWERINGS, LowerSystolicPass
from sparsec.backends.systolic.spec import SystolicSpec

BACKEND = Backend(
    name="systolic",
    spec_class=SystolicSpec,
    lowering_pass=LowerSystolicPass,
    machine_class=SystolicMachine,
    # Every op the lowering has a rule for (the GEMMs, attention's parts, the block ops on
    # the vector unit), plus attention, which it decomposes first.
    kernel_ops=frozenset({op.name for op in LOWERINGS} | {"sparsec.attention"}),
)
