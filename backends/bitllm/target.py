"""The backend description the driver loads (lowering, machine, spec)."""

from sparsec.backends.bitllm.interpreter import BitllmMachine
from sparsec.backends.bitllm.lowering import KERNEL_OPS, LowerBitllmPass
from sparsec.backends.bitllm.spec import BitllmSpec
from sparsec.backends.common.backend import Backend

BACKEND = Backend(
    name="bitllm",
    spec_class=BitllmSpec,
    lowering_pass=LowerBitllmPass,
    machine_class=BitllmMachine,
    kernel_ops=KERNEL_OPS,
)
