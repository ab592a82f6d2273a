"""`decompose-attention`: attention -> sddmm + softmax + spmm, masks and patterns kept.

Example: `%O = sparsec.attention %Q, %K, %V {scale = 0.125, mask = "causal"}` becomes
`%O_scores = sparsec.sddmm %Q, %K {scale = 0.125, mask = "causal"}`,
`%O_probs = sparsec.softmax %O_scores {mask = "causal"}` and
`%O = sparsec.spmm %O_probs, %V`; the result is bit-identical (same roundings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import PatternRewriteWalker

from sparsec.dialects.rewrites import DecomposeAttention, redefines_attention

__all__ = ["DecomposeAttention", "DecomposeAttentionPass", "redefines_attention"]


@dataclass(frozen=True)
class DecomposeAttentionPass(ModulePass):
    """Split every sparsec.attention into sddmm, softmax and spmm (except attention whose
    query format redefines it, e.g. row-clustered: that one stays whole)."""

    name: ClassVar[str] = "decompose-attention"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(DecomposeAttention(), apply_recursively=False).rewrite_module(op)
