"""The backend description the driver loads (lowering, machine, spec); the package
__init__ stays empty so that `sparsec targets` reads the spec alone."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.hottiles.interpreter import HottilesMachine
from sparsec.backends.hottiles.lowering import LowerHottilesPass
from sparsec.backends.hottiles.spec import HottilesSpec

BACKEND = Backend(
    name="hottiles",
    spec_class=HottilesSpec,
    lowering_pass=LowerHottilesPass,
    machine_class=HottilesMachine,
    kernel_ops=frozenset({"sparsec.matmul"}),
)
