"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.sigma.interpreter import SigmaMachine
from sparsec.backends.sigma.lowering import LowerSigmaPass
from sparsec.backends.sigma.spec import SigmaSpec

BACKEND = Backend(
    name="sigma",
    spec_class=SigmaSpec,
    lowering_pass=LowerSigmaPass,
    machine_class=SigmaMachine,
    kernel_ops=frozenset({"sparsec.matmul"}),
)
