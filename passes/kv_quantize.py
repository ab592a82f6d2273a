"""`kv-quantize`: recency-tiered KIVI-style precision for the KV cache of decode attention.

For every `sparsec.gqa_attention` (or rank-3 `sparsec.attention`) whose queries are the
newest positions of the cache (a decode step: start = S - T), the key and value operands
go through `sparsec.kv_compress` (dialects/kv.py; semantics tensors/kv_cache.py): the
most recent `recent[0]` tokens at `bits[0]` (16 = fp16), the next `recent[1]` at
`bits[1]`, ..., every older token at `bits[-1]`; keys per `key_axis` (KIVI: channel),
values per `value_axis` (KIVI: token), groups of `group`. An existing `kv_compress` (from
`kv-evict`) gets the bits added to its policy.

Error report: the attention op gets `sparsec.kv_policy`, a dictionary with the policy,
the exact stored bits of K and V, their fp16 bits and the ratio; each bound cache tensor
(an `in`/`param`, or the cached part of a `concat` append) records on its binding op the
relative error ||X' - X|| / ||X|| of its compile-time values (a runtime input's default
source stands in for its data) and the bits it takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import (
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f64,
    i64,
)
from xdsl.ir import Attribute, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.utils.exceptions import PassFailedException

from sparsec.dialects import block
from sparsec.dialects.kv import KvCompressOp
from sparsec.dialects.sparsec import AttentionOp, InputOp, ParamOp
from sparsec.tensors.datastore import current_store, enclosing_kernel, store_key
from sparsec.tensors.kv_cache import KVPolicy, compress, kept_positions, policy_storage_bits_one

POLICY_ATTR = "sparsec.kv_policy"
"""Attention-op attribute: the KV policy and its exact storage (the error report)."""


def fail(pass_name: str, op: Operation | None, rule: str) -> PassFailedException:
    where = f" {op.name}:" if op is not None else ""
    return PassFailedException(f"{pass_name}:{where} {rule}")


def decode_attentions(module: ModuleOp, pass_name: str) -> Iterator[Operation]:
    """Every attention over a KV cache whose queries are the newest positions."""
    found = False
    for op in list(module.walk()):
        if not isinstance(op, (block.GqaAttentionOp, AttentionOp)):
            continue
        found = True
        key_shape = op.key.type.get_shape()  # type: ignore[union-attr]
        q_rows = op.query.type.get_shape()[-2]  # type: ignore[union-attr]
        if len(key_shape) != 3:
            raise fail(pass_name, op, f"the KV cache must be [heads, tokens, d], got key "
                       f"{op.key.type}")
        if isinstance(op, AttentionOp) and op.mask_kind not in ("none", "causal"):
            raise fail(pass_name, op, f"mask '{op.mask_kind}' selects keys by position; a "
                       "KV policy changes positions (use mask none or causal)")
        start = op.start_position if isinstance(op, block.GqaAttentionOp) else None
        if start is not None and op.mask_kind == "causal" and start != key_shape[1] - q_rows:
            raise fail(pass_name, op, f"queries at positions {start}.. are not the newest "
                       f"of the {key_shape[1]} cached tokens; KV policies apply to decode "
                       "steps (start = S - T)")
        yield op
    if not found:
        raise fail(pass_name, None, "no sparsec.gqa_attention or sparsec.attention to apply "
                   "a KV-cache policy to")


def current_policy(value: SSAValue) -> tuple[SSAValue, KVPolicy | None]:
    """(the uncompressed cache, its policy) of an attention operand."""
    owner = value.owner
    if isinstance(owner, KvCompressOp):
        return owner.input, owner.policy()
    return value, None


def set_policy(attention: Operation, index: int, role: str, policy: KVPolicy,
               axis: str) -> KvCompressOp:
    """Put `kv_compress` with `policy` in front of operand `index` (1 key, 2 value),
    replacing any earlier one; returns the new op."""
    operand = attention.operands[index]
    cache, _ = current_policy(operand)
    ctype = cache.type
    assert isinstance(ctype, TensorType)
    h, s, d = ctype.get_shape()
    kept = kept_positions(s, policy.sink, policy.window).size
    new = KvCompressOp(cache, TensorType(ctype.element_type, [h, kept, d]), role,
                       policy.bits, policy.tiers, policy.group, axis, policy.sink,
                       policy.window, policy.meta_bits)
    Rewriter.insert_op(new, InsertPoint.before(attention))
    attention.operands[index] = new.result
    old = operand.owner
    if isinstance(old, KvCompressOp) and not old.result.uses:
        Rewriter.erase_op(old)
    return new


def fix_start(attention: Operation) -> None:
    """After eviction a decode step's queries are still the newest kept positions."""
    if not isinstance(attention, block.GqaAttentionOp) or attention.start is None:
        return
    s = attention.key.type.get_shape()[-2]  # type: ignore[union-attr]
    t = attention.query.type.get_shape()[-2]  # type: ignore[union-attr]
    attention.start = IntegerAttr(s - t, i64)


def _bound_cache(value: SSAValue) -> InputOp | ParamOp | None:
    """The binding op of a cache tensor: itself, or the cached part of a concat append."""
    owner = value.owner
    if isinstance(owner, block.ConcatOp):
        owner = owner.lhs.owner
    return owner if isinstance(owner, (InputOp, ParamOp)) else None


def report(pass_name: str, attention: Operation, policy: KVPolicy) -> None:
    """Write the error report: exact storage on the attention op, cache error on binders."""
    entries: dict[str, Attribute] = {"pass": StringAttr(pass_name),
                                     "policy": StringAttr(policy.label())}
    stored = dense = 0
    for index, role in ((1, "key"), (2, "value")):
        compressed = attention.operands[index].owner
        assert isinstance(compressed, KvCompressOp)
        h, s, d = compressed.input.type.get_shape()  # type: ignore[union-attr]
        bits = policy_storage_bits_one(compressed.policy(), role, h, s, d)
        stored += bits
        dense += h * s * d * 16
        entries[f"{role}_bits"] = IntegerAttr(bits, i64)
        _cache_error(compressed, role)
    entries["fp16_bits"] = IntegerAttr(dense, i64)
    entries["ratio"] = FloatAttr(stored / dense if dense else 1.0, f64)
    attention.attributes[POLICY_ATTR] = DictionaryAttr(entries)


def _cache_error(compressed: KvCompressOp, role: str) -> None:
    binder = _bound_cache(compressed.input)
    if binder is None:
        return
    store = current_store()
    key = store_key(enclosing_kernel(binder), binder.sym_name)
    if key not in store:
        return
    x = np.asarray(store.get(key), dtype=np.float64)
    if x.ndim != 3 or x.shape[1] == 0:
        return
    policy = compressed.policy()
    kept = compress(x, policy, role)
    norm = float(np.linalg.norm(x))
    error = float(np.linalg.norm(kept.values - x[:, kept.positions])) / norm if norm else 0.0
    binder.record_effect({"pass": f"kv-policy ({role})", "policy": policy.label(),
                          "stored_bits": kept.storage_bits, "fp16_bits": x.size * 16,
                          "rel_error_kept": error, "tokens_kept": int(kept.positions.size)})


@dataclass(frozen=True)
class KvQuantizePass(ModulePass):
    """Recency-tiered KV-cache precision, e.g. `kv-quantize{bits=16,4,2 recent=128,512}`."""

    name: ClassVar[str] = "kv-quantize"

    bits: tuple[int, ...] = (16, 4)
    recent: tuple[int, ...] = (128,)
    group: int = 32
    key_axis: str = "channel"
    value_axis: str = "token"
    meta_bits: int = 16

    def tiers(self) -> tuple[int, ...]:
        if len(self.bits) == 1 and self.recent in ((0,), ()):
            return ()
        if len(self.recent) != len(self.bits) - 1:
            raise fail(self.name, None, f"recent gives the size of every tier but the oldest: "
                       f"bits={','.join(map(str, self.bits))} needs {len(self.bits) - 1} "
                       f"size(s), got recent={','.join(map(str, self.recent))} (one width: "
                       "recent=0)")
        return self.recent

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        tiers = self.tiers()
        for axis in (self.key_axis, self.value_axis):
            if axis not in ("channel", "token"):
                raise fail(self.name, None, f"key_axis/value_axis must be channel or token, "
                           f"got '{axis}'")
        for attention in list(decode_attentions(op, self.name)):
            for index, role, axis in ((1, "key", self.key_axis), (2, "value", self.value_axis)):
                _, old = current_policy(attention.operands[index])
                if old is not None and old.quantizes:
                    raise fail(self.name, attention, f"its {role} cache is already quantized "
                               f"({old.label()}); quantize once")
                sink, window = (old.sink, old.window) if old is not None else (0, 0)
                try:
                    policy = KVPolicy(bits=self.bits, tiers=tiers, group=self.group, sink=sink,
                                      window=window, meta_bits=self.meta_bits,
                                      key_axis=axis, value_axis=axis)
                except ValueError as error:
                    raise fail(self.name, None, str(error)) from None
                set_policy(attention, index, role, policy, axis)
            report(self.name, attention, policy)
