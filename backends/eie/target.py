"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.eie.interpreter import EieMachine
from sparsec.backends.eie.lowering import LowerEiePass
from sparsec.backends.eie.spec import EieSpec

BACKEND = Backend(
    name="eie",
    spec_class=EieSpec,
    lowering_pass=LowerEiePass,
    machine_class=EieMachine,
    kernel_ops=frozenset({"sparsec.matmul"}),
)
