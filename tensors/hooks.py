"""Numerics hooks: the arithmetic of each op kind of a model's forward pass, replaceable.

A `Numerics` is a frozen record with one function per op kind. The forward passes
(`sparsec.tensors.llm`) never compute an op themselves: they call the op kind's hook, so
running a whole model in a backend's arithmetic (its pruning, quantization, fixed point,
approximations) is `forward(..., numerics=that_backend_numerics)`. Float numpy
(`FLOAT`, the `block_ops` references in float32) is the default and the baseline.

Op kinds and their contracts (shapes for one layer; T rows, K in-features, N out):

- ``prepare_weight(linear) -> Linear``: once per weight matrix before any run (pruning,
  rounding to a storage type, re-quantizing from the kept integer codes).
- ``gemm(x [T, K], linear) -> [T, N]``: x @ linear.matrix.T.
- ``rmsnorm(x, weight, eps)``, ``rope(x, positions, base, head_dim, convention)``,
  ``silu(x)``, ``mul(a, b)``, ``add(a, b)``: as in `block_ops`.
- ``kv_store(x [G, T, d]) -> [G, T, d]``: what the KV cache keeps of new keys/values.
- ``attention_scores(q [G, g, Tq, d], k [G, Tk, d], scale) -> [G, g, Tq, Tk]``: the
  scaled Q K^T of the g query heads sharing each of the G KV heads.
- ``softmax(scores) -> probs`` along the last axis (masked entries arrive as -inf).
- ``attention_values(p [G, g, Tq, Tk], v [G, Tk, d]) -> [G, g, Tq, d]``: P V.

`Numerics.replace(name, **kinds)` makes a variant; backends publish theirs with a
`numerics(dtype=None)` function in `sparsec.backends.<target>.numerics`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparsec.tensors import block_ops
from sparsec.tensors.gguf_model import QuantizedMatrix


@dataclass(frozen=True)
class Linear:
    """A weight matrix [N, K] (out, in) as a GEMM hook receives it.

    `matrix` is float32 (dequantized); `quant` keeps the file's integer codes and scales
    when the weight was block-quantized (None otherwise, or once a hook changed the
    values so the codes no longer describe them).

    """

    name: str
    matrix: np.ndarray
    quant: QuantizedMatrix | None = None
    aux: dict[str, np.ndarray] = field(default_factory=dict, compare=False)
    """Arrays a numerics precomputes in prepare_weight for its gemm (private to it)."""

    def with_matrix(self, matrix: np.ndarray, keep_quant: bool = False) -> Linear:
        return Linear(self.name, np.ascontiguousarray(matrix, dtype=np.float32),
                      self.quant if keep_quant else None)


def float_gemm(x: np.ndarray, linear: Linear) -> np.ndarray:
    """x @ W.T in float32 (BLAS)."""
    return np.matmul(x.astype(np.float32, copy=False), linear.matrix.T)


def attention_scores(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    """scale * Q K^T per KV group: q [G, g, Tq, d], k [G, Tk, d] -> [G, g, Tq, Tk]."""
    return np.matmul(q, np.swapaxes(k, -1, -2)[:, None]) * np.float32(scale)


def attention_values(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """P V per KV group: p [G, g, Tq, Tk], v [G, Tk, d] -> [G, g, Tq, d]."""
    return np.matmul(p, v[:, None])


def _identity(x: Any) -> Any:
    return x


OP_KINDS = ("prepare_weight", "gemm", "rmsnorm", "rope", "kv_store", "attention_scores",
            "softmax", "attention_values", "silu", "mul", "add")
"""Every hookable op kind, in the order a decoder block uses them."""


@dataclass(frozen=True)
class Numerics:
    """One arithmetic for a whole forward pass: a function per op kind (see module doc)."""

    name: str = "float"
    prepare_weight: Callable[[Linear], Linear] = _identity
    gemm: Callable[[np.ndarray, Linear], np.ndarray] = float_gemm
    rmsnorm: Callable[..., np.ndarray] = block_ops.rmsnorm
    rope: Callable[..., np.ndarray] = block_ops.rope
    kv_store: Callable[[np.ndarray], np.ndarray] = _identity
    attention_scores: Callable[..., np.ndarray] = attention_scores
    softmax: Callable[[np.ndarray], np.ndarray] = block_ops.softmax
    attention_values: Callable[..., np.ndarray] = attention_values
    silu: Callable[[np.ndarray], np.ndarray] = block_ops.silu
    mul: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.multiply
    add: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.add

    def replace(self, name: str, **kinds: Callable[..., Any]) -> Numerics:
        """A copy named `name` with the given op kinds replaced (unknown kinds raise)."""
        unknown = sorted(set(kinds) - set(OP_KINDS))
        if unknown:
            raise ValueError(f"unknown op kind(s) {unknown}; known: {', '.join(OP_KINDS)}")
        return dataclasses.replace(self, name=name, **kinds)

    def then_prepare(self, first: Callable[[Linear], Linear], name: str | None = None) -> Numerics:
        """A copy whose prepare_weight runs `first` (e.g. a pipeline's pruning) before its own."""
        own = self.prepare_weight
        return self.replace(name or self.name, prepare_weight=lambda linear: own(first(linear)))


FLOAT = Numerics()
"""float32 numpy, the baseline."""


# --------------------------------------------------------------------------- rounding helpers

def round_f16(x: np.ndarray) -> np.ndarray:
    """x rounded to float16 (nearest even), carried as float32."""
    return np.asarray(x).astype(np.float16).astype(np.float32)


FLOAT_TYPES = ("f32", "f16", "bf16")
"""Element types `tensor_unit` rounds GEMM operands to (integer types need a quantizer)."""


def tensor_unit(dtype: str, name: str, result_dtype: str | None = None) -> Numerics:
    """Numerics of a matrix unit with `dtype` multipliers and a float32 accumulator.

    GEMM and attention products round their operands to `dtype`, multiply-accumulate in
    float32 and round the result once to `result_dtype` (default `dtype`), exactly
    `sparsec.tensors.numerics.matmul`, the reference the backends' interpreters execute
    a `matmul` with. Weights are rounded once, in prepare_weight. Other ops stay float32.
    """
    from sparsec.tensors.dtypes import round_to_dtype
    from sparsec.tensors.numerics import matmul

    if dtype not in FLOAT_TYPES:
        raise ValueError(f"whole-model numerics support operand types {', '.join(FLOAT_TYPES)}, "
                         f"not '{dtype}' (integer operands need a quantize pass)")
    result = result_dtype or dtype

    def rounded(x: np.ndarray) -> np.ndarray:
        return np.asarray(round_to_dtype(x, dtype), dtype=np.float32)

    def prepare(linear: Linear) -> Linear:
        return linear.with_matrix(rounded(linear.matrix))

    def gemm(x: np.ndarray, linear: Linear) -> np.ndarray:
        return np.asarray(matmul(rounded(x), linear.matrix.T, dtype, result), dtype=np.float32)

    def scores(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
        product = matmul(rounded(q), np.swapaxes(rounded(k), -1, -2)[:, None], dtype, result)
        return np.asarray(product, dtype=np.float32) * np.float32(scale)

    def values(p: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.asarray(matmul(rounded(p), rounded(v)[:, None], dtype, result), dtype=np.float32)

    return FLOAT.replace(name, prepare_weight=prepare, gemm=gemm, attention_scores=scores,
                         attention_values=values)
