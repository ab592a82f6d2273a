"""Rewrite patterns that express one sparsec op by others, shared by the passes that run
them on their own (`decompose-attention`) and the lowerings that need them first (a
backend lowering attention runs the decomposition before its own patterns), as MLIR
dialects ship their decomposition patterns beside the ops."""

from __future__ import annotations

from xdsl.dialects.builtin import TensorType
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern

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
