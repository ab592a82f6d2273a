"""Whole-model numerics of the (sparse) tensor cores (`sparsec eval llm --row stc`).

Tensor cores take f16 (or bf16 with `@bf16`) operands and accumulate in float32
(mma.sp with f32 accumulators); the result is stored in the operand type, as the
backend's `matmul` reference rounds it. 2:4 sparsity changes which products are done,
not their arithmetic: the pruning itself comes from the pipeline (`prune-nm{n=2 m=4}`),
which `eval llm` applies to the weights before these numerics round them. Softmax,
norms and activations run on the CUDA cores in float32 (float hooks).
"""

from __future__ import annotations

from sparsec.tensors.hooks import Numerics, tensor_unit

DEFAULT_DTYPE = "f16"


def numerics(dtype: str | None = None) -> Numerics:
    dtype = dtype or DEFAULT_DTYPE
    return tensor_unit(dtype, f"stc {dtype}")
