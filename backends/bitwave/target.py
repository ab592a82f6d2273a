"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.bitwave.interpreter import BitwaveMachine
from sparsec.backends.bitwave.lowering import LowerBitwavePass
from sparsec.backends.bitwave.spec import BitwaveSpec
from sparsec.backends.common.backend import Backend

BACKEND = Backend(
    name="bitwave",
    spec_class=BitwaveSpec,
    lowering_pass=LowerBitwavePass,
    machine_class=BitwaveMachine,
    kernel_ops=frozenset({"sparsec.matmul"}),
)
