"""Whole-model numerics of the systolic array (`sparsec eval llm --row systolic`).

The array multiplies operands of the kernel's element type (f32 unless `@f16`/`@bf16` is
asked) and accumulates in float32, as its interpreter's `matmul` does; attention's two
products run on the array the same way. Normalizations, RoPE, softmax and SiLU run on
the vector unit in float32 (the `block_ops` references), so they keep the float hooks.
"""

from __future__ import annotations

from sparsec.tensors.hooks import Numerics, tensor_unit

DEFAULT_DTYPE = "f32"


def numerics(dtype: str | None = None) -> Numerics:
    dtype = dtype or DEFAULT_DTYPE
    return tensor_unit(dtype, f"systolic {dtype}")
