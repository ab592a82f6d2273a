"""What a KV-cache read under a `sparsec.kv_compress` policy moves and dequantizes, from
the shapes and the policy alone: shared by every backend that lowers `kv_compress` to a
load-and-dequantize instruction carrying its properties (systolic.kv_load, bitllm.kv_load).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KvRead:
    """One cache tensor [heads, length, dim] read as its policy stores it.

    `stored_bytes`: ceil(exact stored bits / 8) (codes of every tier, plus a scale and a
    minimum per group at meta_bits each; fp16 tiers 16 bits per element; evicted tokens
    nothing); `dense_fp16_bytes`: the same tensor in fp16 (2 bytes per element);
    `dequantized_elements`: kept elements stored as integers (each is dequantized,
    q * scale + min, before the attention reads it)."""

    stored_bytes: int
    dense_fp16_bytes: int
    dequantized_elements: int
    tokens: int
    tokens_kept: int

    def add_to(self, tally: dict[str, int]) -> None:
        """Accumulate into a report's `kv_cache` details."""
        for key, value in (("bytes", self.stored_bytes),
                           ("dense_fp16_bytes", self.dense_fp16_bytes),
                           ("dequantized_elements", self.dequantized_elements),
                           ("tokens", self.tokens), ("tokens_kept", self.tokens_kept)):
            tally[key] = tally.get(key, 0) + value


def empty_tally() -> dict[str, int]:
    return {"bytes": 0, "dense_fp16_bytes": 0, "dequantized_elements": 0, "tokens_kept": 0,
            "tokens": 0}


def kv_read(op: Any, alive: Any = None) -> KvRead:
    """The read of an ISA op carrying `sparsec.kv_compress`'s properties (role, bits, tiers,
    group, axis, sink, window, meta_bits), input [heads, length, dim]; with `alive` (the
    runtime token-pruning flags over the length, 0 = pruned) only the alive tokens are
    read and dequantized."""
    import numpy as np

    from sparsec.dialects.kv import KvCompressOp
    from sparsec.tensors.kv_cache import policy_dequantized_elements, policy_storage_bits_one

    policy = KvCompressOp.policy(op)  # same properties
    heads, length, dim = op.input.type.get_shape()
    flags = None if alive is None else np.asarray(alive).reshape(-1) != 0
    bits = policy_storage_bits_one(policy, op.role.data, heads, length, dim, flags)
    kept = op.result.type.get_shape()[1] if flags is None else int(flags.sum())
    return KvRead(stored_bytes=-(-bits // 8), dense_fp16_bytes=heads * length * dim * 2,
                  dequantized_elements=policy_dequantized_elements(policy, heads, length, dim,
                                                                   flags),
                  tokens=length, tokens_kept=kept)
