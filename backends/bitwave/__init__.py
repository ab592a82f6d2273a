"""BitWave (HPCA 2024): sign-magnitude bit columns, zero-column skipping, bit flips."""

from sparsec.backends.bitwave.interpreter import BitwaveMachine
from sparsec.backends.bitwave.lowering import LowerBitwavePass
from sparsec.backends.bitwave.spec import BitwaveSpec
from sparsec.backends.common.backend import Backend

BACKEND = Backend(
    name="bitwave",
    spec_class=BitwaveSpec,
    lowering_pass=LowerBitwavePass,
    machine_class=BitwaveMachine,
    summary="BitWave: bit-column-serial PEs skipping zero sign-magnitude columns (or Stripes)",
)
