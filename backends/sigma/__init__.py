"""SIGMA (Qin et al., HPCA 2020): bitmap operands, Benes distribution, Forwarding Adder
Network; cycles held against STONNE's SIGMA model (MK_STA_KN_STR / MK_STR_KN_STA)."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.sigma.interpreter import SigmaMachine
from sparsec.backends.sigma.lowering import LowerSigmaPass
from sparsec.backends.sigma.spec import SigmaSpec

BACKEND = Backend(
    name="sigma",
    spec_class=SigmaSpec,
    lowering_pass=LowerSigmaPass,
    machine_class=SigmaMachine,
    summary="SIGMA: bitmap sparse GEMM on Flex-DPEs, Benes DN + FAN (STONNE's SIGMA accounting)",
    kernel_ops=frozenset({"sparsec.matmul"}),
)
