"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.asadi.interpreter import AsadiMachine
from sparsec.backends.asadi.lowering import LowerAsadiPass
from sparsec.backends.asadi.spec import AsadiSpec
from sparsec.backends.common.backend import Backend

BACKEND = Backend(
    name="asadi",
    spec_class=AsadiSpec,
    lowering_pass=LowerAsadiPass,
    machine_class=AsadiMachine,
    kernel_ops=frozenset({"sparsec.attention", "sparsec.sddmm", "sparsec.softmax",
                          "sparsec.spmm"}),
)
