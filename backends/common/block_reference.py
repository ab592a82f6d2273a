"""numpy semantics of the transformer-block kernel ops (dialects/block.py), for the
reference interpreter and for every backend that executes them.

`evaluate(kind, inputs, properties, dtype)` computes one op from its kind (the op name
without `sparsec.`), its input arrays and its properties, through the numpy references in
`sparsec.tensors.block_ops`, in the accumulator type of `dtype` (f32 for f32/f16/bf16),
rounding the result once to `dtype`. A backend's vector-unit instruction that carries the
kernel op's kind and properties calls the same function, so the two cannot diverge.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, StringAttr
from xdsl.interpreter import Interpreter, InterpreterFunctions, impl, register_impls
from xdsl.ir import Attribute, Operation

from sparsec.dialects import block
from sparsec.dialects.kv import KvCompressOp, PruneActivationsOp, PruneTokensOp
from sparsec.dialects.sparsec import element_type_name
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.kv_cache import compress_fast
from sparsec.tensors.numerics import accumulate_dtype

Properties = Mapping[str, Any]


def _ops() -> Any:
    """`sparsec.tensors.block_ops`, imported on first use (it is only needed by kernels
    that use the block ops)."""
    from sparsec.tensors import block_ops

    return block_ops


def plain_properties(op: Operation) -> dict[str, Any]:
    """An op's properties as Python numbers and strings (`eps`, `base`, `start`, ...)."""
    out: dict[str, Any] = {}
    for key, attr in op.properties.items():
        out[key] = _plain(attr)
    return out


def _plain(attr: Attribute) -> Any:
    if isinstance(attr, FloatAttr):
        return float(attr.value.data)
    if isinstance(attr, IntegerAttr):
        return int(attr.value.data)
    if isinstance(attr, StringAttr):
        return attr.data
    return str(attr)


def _gqa(q: np.ndarray, k: np.ndarray, v: np.ndarray, props: Properties,
         keep: np.ndarray | None = None) -> np.ndarray:
    start = props.get("start", k.shape[-2] - q.shape[-2])
    out, _ = _ops().gqa_attention(q, k, v, q.shape[0], k.shape[0], start, scale=props["scale"],
                                  causal=props.get("mask", "none") == "causal", keep=keep)
    return out


def _rope(x: np.ndarray, props: Properties) -> np.ndarray:
    start = props.get("start", 0)
    positions = np.arange(start, start + x.shape[-2])
    return _ops().rope(x, positions, base=props["base"],
                       convention=props.get("convention", "normal"))


KINDS: dict[str, Callable[[list[np.ndarray], Properties, str], np.ndarray]] = {
    "rmsnorm": lambda a, p, dt: _ops().rmsnorm(a[0], a[1], p["eps"]),
    "layernorm": lambda a, p, dt: _ops().layernorm(a[0], a[1], a[2], p["eps"]),
    "silu": lambda a, p, dt: _ops().silu(a[0]),
    "gelu": lambda a, p, dt: _ops().gelu(a[0], approximate=p.get("approximate", "none")),
    "exp": lambda a, p, dt: np.exp(a[0]),
    "add": lambda a, p, dt: a[0] + a[1],
    "mul": lambda a, p, dt: a[0] * a[1],
    "rope": lambda a, p, dt: _rope(a[0], p),
    "heads": lambda a, p, dt: np.ascontiguousarray(
        a[0].reshape(a[0].shape[0], p["heads"], -1).transpose(1, 0, 2)),
    "merge_heads": lambda a, p, dt: np.ascontiguousarray(
        a[0].transpose(1, 0, 2).reshape(a[0].shape[1], -1)),
    "concat": lambda a, p, dt: np.concatenate([a[0], a[1]], axis=p["axis"]),
    "gqa_attention": lambda a, p, dt: _gqa(a[0], a[1], a[2], p, a[3] if len(a) > 3 else None),
}
"""Kind -> numpy semantics on arrays already in the accumulator type."""

MOVES = ("heads", "merge_heads", "concat")
"""Kinds that only move data: exact in any element type, no rounding needed."""



def evaluate(kind: str, inputs: list[np.ndarray], props: Properties, dtype: str) -> np.ndarray:
    """One block op on numpy inputs: computed in `dtype`'s accumulator type, rounded once."""
    if kind in MOVES:
        return KINDS[kind](list(inputs), props, dtype)
    acc = accumulate_dtype(dtype)
    wide = [np.asarray(x).astype(acc, copy=False) for x in inputs]
    return round_to_dtype(np.asarray(KINDS[kind](wide, props, dtype), dtype=acc), dtype)


def kv_compress_values(op: Any, x: np.ndarray, dtype: str) -> np.ndarray:
    """`sparsec.kv_compress` (or an ISA op carrying its properties) on the cache `x`,
    rounded to `dtype`; its policy is read from the op's properties."""
    policy = KvCompressOp.policy(op)
    return round_to_dtype(compress_fast(np.asarray(x), policy, op.role.data), dtype)


def run_activation_prune(machine: Any, op: Any, args: tuple[Any, ...]) -> tuple[Any]:
    """A backend's activation-pruning instruction: the machine accounts it (`machine.prune`
    with the pruning's figures, or None when values are not executed) and the result is
    the pruned activations in the input's dtype."""
    if not machine.execute:
        machine.prune(op, None)
        return (None,)
    result = prune_activation_values(op, args)
    machine.prune(op, result)
    return (result.values.astype(args[0].dtype, copy=False),)


def prune_activation_values(op: Any, args: tuple[Any, ...]) -> Any:
    """`sparsec.prune_activations` (or an ISA op with its properties) on (x[, w]):
    the ActivationPruning of tensors/runtime_pruning.py (values, skipped work, cost)."""
    from sparsec.tensors.runtime_pruning import prune_activations

    x = np.asarray(args[0])
    weight = None
    if len(args) > 1:
        weight = np.asarray(args[1])
        weight = weight.T if op.transpose_w is not None else weight
    return prune_activations(x, op.threshold.value.data, weight, op.estimate.data,
                             op.relative is not None)


def prune_tokens_values(op: Any, state: np.ndarray, dtype: str) -> np.ndarray:
    """`sparsec.prune_tokens` (or an ISA op with its properties) on the state [3, S]: the
    keep flags [S + new] (decide_tokens on the cached tokens, 1 for the new ones)."""
    from sparsec.tensors.runtime_pruning import decide_tokens

    rule = PruneTokensOp.rule(op)
    alive = decide_tokens(np.asarray(state, dtype=np.float64), rule["heads"],
                          rule["threshold"], rule["sink"], rule["recent"], rule["min_seen"])
    new = op.result.type.get_shape()[0] - alive.size
    keep = np.concatenate([alive.astype(np.float64), np.ones(new)])
    return round_to_dtype(keep, dtype)


def op_kind(op: Operation) -> str:
    """`rmsnorm` for `sparsec.rmsnorm`, ..."""
    return op.name.removeprefix("sparsec.")


@register_impls
class BlockFunctions(InterpreterFunctions):
    """The reference interpreter of the block ops."""

    def _run(self, op: Operation, args: tuple[Any, ...]) -> tuple[Any, ...]:
        dtype = element_type_name(op.results[0].type.element_type)  # type: ignore[attr-defined]
        return (evaluate(op_kind(op), list(args), plain_properties(op), dtype),)

    @impl(block.RmsNormOp)
    def run_rmsnorm(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.LayerNormOp)
    def run_layernorm(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.SiluOp)
    def run_silu(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.GeluOp)
    def run_gelu(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.ExpOp)
    def run_exp(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.AddOp)
    def run_add(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.MulOp)
    def run_mul(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.RopeOp)
    def run_rope(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.HeadsOp)
    def run_heads(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.MergeHeadsOp)
    def run_merge_heads(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(block.ConcatOp)
    def run_concat(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        return self._run(op, args)

    @impl(PruneActivationsOp)
    def run_prune_activations(self, interpreter: Interpreter, op: Operation,
                              args: tuple[Any, ...]):
        return (prune_activation_values(op, args).values,)

    @impl(PruneTokensOp)
    def run_prune_tokens(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        dtype = element_type_name(op.results[0].type.element_type)  # type: ignore[attr-defined]
        return (prune_tokens_values(op, args[0], dtype),)

    @impl(KvCompressOp)
    def run_kv_compress(self, interpreter: Interpreter, op: Operation, args: tuple[Any, ...]):
        dtype = element_type_name(op.results[0].type.element_type)  # type: ignore[attr-defined]
        return (kv_compress_values(op, args[0], dtype),)

    @impl(block.GqaAttentionOp)
    def run_gqa_attention(self, interpreter: Interpreter, op: Operation,
                          args: tuple[Any, ...]):
        return self._run(op, args)
