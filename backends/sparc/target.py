"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.sparc.interpreter import SparcMachine
from sparsec.backends.sparc.lowering import LowerSparcPass
from sparsec.backends.sparc.spec import SparcSpec

BACKEND = Backend(
    name="sparc",
    spec_class=SparcSpec,
    lowering_pass=LowerSparcPass,
    machine_class=SparcMachine,
    kernel_ops=frozenset({"sparsec.attention"}),
)
