"""NVIDIA A100/H100-class sparse tensor cores: 2:4 sparse vs dense mma, wave by wave."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.stc.interpreter import StcMachine
from sparsec.backends.stc.lowering import LowerStcPass
from sparsec.backends.stc.spec import StcSpec

BACKEND = Backend(
    name="stc",
    spec_class=StcSpec,
    lowering_pass=LowerStcPass,
    machine_class=StcMachine,
    summary="GPU (sparse) tensor cores, A100/H100: 2:4 mma.sp vs dense mma, tiles in waves",
    kernel_ops=frozenset({"sparsec.matmul"}),
)
