"""Dense systolic array (TPU-like), cycle-exact with SCALE-Sim 3.0.0 in CALC mode."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.systolic.interpreter import SystolicMachine
from sparsec.backends.systolic.lowering import LowerSystolicPass
from sparsec.backends.systolic.spec import SystolicSpec

BACKEND = Backend(
    name="systolic",
    spec_class=SystolicSpec,
    lowering_pass=LowerSystolicPass,
    machine_class=SystolicMachine,
    summary="dense R x C systolic array, dataflows os/ws/is (SCALE-Sim 3.0.0 accounting)",
    kernel_ops=frozenset({"sparsec.matmul", "sparsec.sddmm", "sparsec.softmax", "sparsec.spmm",
                          "sparsec.attention"}),
)
