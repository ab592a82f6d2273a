"""`kv-evict`: keep the first `sink` and the last `window` tokens of a decode step's KV cache.

Attention sinks plus a sliding window (StreamingLLM's eviction): the key and value
operands of every decode attention go through `sparsec.kv_compress` with the eviction,
so the cache (and the attention) shrinks to sink + window tokens; a `kv_compress` set by
`kv-quantize` keeps its bits (tiers are still measured on the full cache's positions).
The attention's `start` follows (its queries stay the newest kept positions). Run it
once; the report is the same `sparsec.kv_policy` as `kv-quantize` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from sparsec.passes.kv_quantize import (
    current_policy,
    decode_attentions,
    fail,
    fix_start,
    report,
    set_policy,
)
from sparsec.tensors.kv_cache import KVPolicy


@dataclass(frozen=True)
class KvEvictPass(ModulePass):
    """Sink + window eviction of the KV cache, e.g. `kv-evict{window=256 sink=4}`."""

    name: ClassVar[str] = "kv-evict"

    window: int = 256
    sink: int = 4

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        if self.window < 1 or self.sink < 0:
            raise fail(self.name, None, f"window must be >= 1 and sink >= 0, got window="
                       f"{self.window} sink={self.sink}")
        for attention in list(decode_attentions(op, self.name)):
            q_rows = attention.query.type.get_shape()[-2]  # type: ignore[union-attr]
            if getattr(attention, "keep", None):
                raise fail(self.name, attention, "its tokens are pruned at run time "
                           "(prune-runtime{tokens}); prune tokens or evict, not both")
            if self.window < q_rows:
                raise fail(self.name, attention, f"window {self.window} would evict the "
                           f"step's own {q_rows} query position(s); window >= T")
            for index, role in ((1, "key"), (2, "value")):
                _, old = current_policy(attention.operands[index])
                if old is not None and old.evicts:
                    raise fail(self.name, attention, f"its {role} cache is already evicted "
                               f"(sink={old.sink} window={old.window}); evict once")
                base = old or KVPolicy()
                policy = KVPolicy(bits=base.bits, tiers=base.tiers, group=base.group,
                                  sink=self.sink, window=self.window, meta_bits=base.meta_bits,
                                  key_axis=base.key_axis, value_axis=base.value_axis)
                axis = base.key_axis if role == "key" else base.value_axis
                set_policy(attention, index, role, policy, axis)
            fix_start(attention)
            report(self.name, attention, policy)
