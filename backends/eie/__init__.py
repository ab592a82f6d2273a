"""EIE (Han et al., ISCA 2016): sparse weights times sparse activations on per-PE queues."""

from sparsec.backends.common.backend import Backend
from sparsec.backends.eie.interpreter import EieMachine
from sparsec.backends.eie.lowering import LowerEiePass
from sparsec.backends.eie.spec import EieSpec

BACKEND = Backend(
    name="eie",
    spec_class=EieSpec,
    lowering_pass=LowerEiePass,
    machine_class=EieMachine,
    summary="EIE: rcsc + 4-bit codebook weights, nonzero-activation broadcast, per-PE FIFOs",
    kernel_ops=frozenset({"sparsec.matmul"}),
)
