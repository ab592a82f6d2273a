"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.stc.interpreter import StcMachine
from sparsec.backends.stc.lowering import LowerStcPass
from sparsec.backends.stc.spec import StcSpec

BACKEND = Backend(
    name="stc",
    spec_class=StcSpec,
    lowering_pass=LowerStcPass,
    machine_class=StcMachine,
    kernel_ops=frozenset({"sparsec.matmul"}),
)
