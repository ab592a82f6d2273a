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
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)

from sparsec.dialects.sparsec import AttentionOp, SddmmOp, SoftmaxOp, SpmmOp


def redefines_attention(op: AttentionOp) -> bool:
    """Whether the query's format makes this attention approximate (SpARC's row
    clustering): such an op is not the plain sddmm/softmax/spmm chain, so it stays whole."""
    from sparsec.tensors.attention import QUERY_FORMAT_SEMANTICS

    encoding = getattr(op.query.type, "encoding", None)
    return getattr(encoding, "name", "") in QUERY_FORMAT_SEMANTICS


class DecomposeAttention(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: AttentionOp, rewriter: PatternRewriter) -> None:
        if redefines_attention(op):
            return
        q_shape = op.query.type.get_shape()  # type: ignore[union-attr]
        s_len = op.key.type.get_shape()[-2]  # type: ignore[union-attr]
        scores_type = TensorType(op.result.type.element_type,  # type: ignore[union-attr]
                                 [*q_shape[:-1], s_len])
        pattern = op.pattern[0] if op.pattern else None
        mask, window = op.mask_kind, op.window_size
        scores = SddmmOp(op.query, op.key, scores_type, op.scale.value.data, mask, window,
                         pattern)
        probs = SoftmaxOp(scores.result, mask, window, pattern)
        out = SpmmOp(probs.result, op.value, op.result.type)  # type: ignore[arg-type]
        base = op.result.name_hint or "attn"
        scores.result.name_hint = f"{base}_scores"
        probs.result.name_hint = f"{base}_probs"
        rewriter.replace(op, [scores, probs, out], [out.result])


@dataclass(frozen=True)
class DecomposeAttentionPass(ModulePass):
    """Split every sparsec.attention into sddmm, softmax and spmm (except attention whose
    query format redefines it, e.g. row-clustered: that one stays whole)."""

    name: ClassVar[str] = "decompose-attention"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        PatternRewriteWalker(DecomposeAttention(), apply_recursively=False).rewrite_module(op)
