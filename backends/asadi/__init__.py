"""ASADI (HPCA 2024): sparse attention in ReRAM crossbars on the diagonal (DIA) format."""

from sparsec.backends.asadi.interpreter import AsadiMachine
from sparsec.backends.asadi.lowering import LowerAsadiPass
from sparsec.backends.asadi.spec import AsadiSpec
from sparsec.backends.common.backend import Backend

BACKEND = Backend(
    name="asadi",
    spec_class=AsadiSpec,
    lowering_pass=LowerAsadiPass,
    machine_class=AsadiMachine,
    summary="ASADI ReRAM in-situ sparse attention: DIA (or CSR) SDDMM/softmax/SpMM per Tile",
    kernel_ops=frozenset({"sparsec.attention", "sparsec.sddmm", "sparsec.softmax",
                          "sparsec.spmm"}),
)
