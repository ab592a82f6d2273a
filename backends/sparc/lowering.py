"""`lower-sparc`: row-clustered attention becomes SpARC's per-block stage instructions.

Example: `lower-sparc{preset=paper}` turns `%O = sparsec.attention %Q, %K, %V` with Q
`tensor<12x128x32xf32, #sparsec.row_clustered<block = 64, ...>>` into `sparc.zeros`,
three `sparc.load`s per head and, per (head, row block), `sparc.lowrank`, `sparc.cluster`
(or `sparc.singletons` for a block kept exact), `sparc.centroids`, `sparc.scores`,
`sparc.softmax`, `sparc.av` and `sparc.expand`: the program grows with blocks, not rows.
The blocks of all heads form one software pipeline in three groups: at step i, block
i+2's clustering (lowrank, cluster, centroids), block i+1's attention (scores, softmax)
and block i's output (av, expand), so the matrix unit computes while the clustering
units cluster (one block ahead instead of two when a head has a single block). Anything
SpARC cannot run is refused with what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import Rewriter
from xdsl.utils.exceptions import PassFailedException

from sparsec.backends.sparc import isa
from sparsec.backends.sparc.spec import DEFAULT_PREPARE, SparcSpec
from sparsec.dialects.formats import RowClusteredAttr
from sparsec.dialects.sparsec import (
    AttentionOp,
    InputOp,
    MatmulOp,
    ParamOp,
    SddmmOp,
    SoftmaxOp,
    SpmmOp,
)
from sparsec.tensors.row_clustering import Block, blocks


def _fail(message: str) -> PassFailedException:
    return PassFailedException(f"sparc: {message}")


def operand_name(value: SSAValue, role: str) -> str:
    """The tensor's name in the kernel spec (its DataStore symbol), else its role."""
    owner = value.owner
    if isinstance(owner, (InputOp, ParamOp)):
        return owner.sym_name
    return value.name_hint or role


def row_clustered(op: AttentionOp) -> RowClusteredAttr:
    """The query's row-clustered format; refuse attention SpARC cannot run."""
    name = operand_name(op.query, "Q")
    if op.mask_kind != "none":
        raise _fail(f"{op.name} has mask={op.mask_kind}; SpARC clusters rows of unmasked "
                    "(encoder) attention only")
    encoding = getattr(op.query.type, "encoding", None)
    if not isinstance(encoding, RowClusteredAttr):
        raise _fail(f"operand {name} of {op.name} is not row-clustered; run "
                    f"{DEFAULT_PREPARE} first")
    return encoding


def check_fits(op: AttentionOp, fmt: RowClusteredAttr, spec: SparcSpec) -> None:
    """Refuse a problem whose working set exceeds the buffer or the centroid cache."""
    heads, rows, d = isa.heads_rows_width(op.query.type, "query", op.name)
    _, keys, _ = isa.heads_rows_width(op.key.type, "key", op.name)
    _, _, e = isa.heads_rows_width(op.value.type, "value", op.name)
    word = spec.word_bytes
    per_head = (rows * d + keys * d + keys * e) * word
    scores = min(fmt.block_rows, rows) * keys * word
    need = 2 * per_head + scores
    if need > spec.buffer_bytes:
        raise _fail(f"{op.name} needs {need} bytes of global buffer (two heads of Q, K, V "
                    f"double-buffered, {2 * per_head}, plus one block's low-rank scores, "
                    f"{scores}) but buffer_kb={spec.buffer_kb} holds {spec.buffer_bytes}; "
                    "raise buffer_kb or use a smaller block in cluster-rows")
    if max(d, e) > spec.cache_line_words:
        raise _fail(f"a cluster's state (max(d, e) = {max(d, e)} words) does not fit one "
                    f"centroid-cache line of cache_line_words={spec.cache_line_words}")


def lower_attention(op: AttentionOp, spec: SparcSpec, first_slot: int = 0) -> list[Operation]:
    """The sparc ops computing one row-clustered attention, software-pipelined by block;
    its heads take buffer slots first_slot, first_slot + 1, ..."""
    fmt = row_clustered(op)
    check_fits(op, fmt, spec)
    rows = isa.heads_rows_width(op.query.type, "query", op.name)[1]
    plan = blocks(fmt, rows)
    stages = [BlockStages(op, blk) for blk in plan]
    zeros = isa.ZerosOp(op.result.type)  # type: ignore[arg-type]
    ops: list[Operation] = [zeros]
    acc = zeros.result
    for group, index in schedule(len(plan), pipeline_depth(plan)):
        if group == "clustering":
            ops += _loads(op, plan, index, first_slot)
        emitted = stages[index].emit(group, acc)
        ops += emitted
        acc = emitted[-1].results[0] if group == "output" else acc
    return ops


def schedule(blocks: int, ahead: int) -> list[tuple[str, int]]:
    """(stage group, block) in emission order: step i emits block i + ahead's clustering,
    block i + ahead - 1's attention and block i's output. Every unit runs its instructions
    in emission order, so the matrix unit computes block i + ahead's low-rank scores
    first, and the clustering of a block overlaps the attention of the blocks before it."""
    order = (("clustering", ahead), ("attention", ahead - 1), ("output", 0))
    return [(group, step + offset) for step in range(-ahead, blocks) for group, offset in order
            if 0 <= step + offset < blocks]


def pipeline_depth(plan: list[Block]) -> int:
    """How many blocks ahead the low-rank scores and clustering run: 2 when every head
    has at least two blocks, else 1 (so a head's loads are issued only once the head
    two slots back is fully issued: the buffer double-buffers heads)."""
    per_head: dict[int, int] = {}
    for blk in plan:
        per_head[blk.head] = per_head.get(blk.head, 0) + 1
    return 2 if min(per_head.values()) >= 2 else 1


def _loads(op: AttentionOp, plan: list[Block], index: int, first_slot: int) -> list[Operation]:
    """Q, K, V of block `index`'s head, when it is the head's first block (V last: it is
    needed only after clustering, so its transfer overlaps the clustering stages)."""
    blk = plan[index]
    if index > 0 and plan[index - 1].head == blk.head:
        return []
    slot = first_slot + blk.head
    return [isa.LoadOp(value, blk.head, slot) for value in (op.query, op.key, op.value)]


class BlockStages:
    """One block's instructions in three groups, emitted at different pipeline steps:
    clustering (lowrank, cluster, centroids), attention (scores, softmax) and output (av,
    expand). A block with as many clusters as rows is kept exact: sparc.singletons
    replaces lowrank and cluster."""

    def __init__(self, op: AttentionOp, blk: Block):
        self.op, self.blk = op, blk
        self.centroids: isa.CentroidsOp | None = None
        self.assignment: SSAValue | None = None
        self.probs: SSAValue | None = None

    def _tensor(self, shape: list[int]) -> TensorType:
        element = self.op.result.type.element_type  # type: ignore[union-attr]
        return TensorType(element, shape)

    def emit(self, group: str, acc: SSAValue) -> list[Operation]:
        """The block's `clustering`, `attention` or `output` instructions."""
        if group == "clustering":
            return [*self.allocation(), *self.representatives()]
        if group == "attention":
            return self.attention()
        return self.output(acc)

    def allocation(self) -> list[Operation]:
        op, blk = self.op, self.blk
        if blk.clusters == blk.size:
            singletons = isa.SingletonsOp(blk.size)
            self.assignment = singletons.result
            return [singletons]
        keys = isa.heads_rows_width(op.key.type, "key", op.name)[1]
        lowrank = isa.LowrankOp(op.query, op.key, blk.head, blk.rows, blk.columns,
                                op.scale.value.data, self._tensor([blk.size, keys]))
        cluster = isa.ClusterOp(lowrank.result, blk.clusters)
        self.assignment = cluster.result
        return [lowrank, cluster]

    def representatives(self) -> list[Operation]:
        op, blk = self.op, self.blk
        assert self.assignment is not None
        d = isa.heads_rows_width(op.query.type, "query", op.name)[2]
        self.centroids = isa.CentroidsOp(op.query, self.assignment, blk.head, blk.rows,
                                         blk.clusters, self._tensor([blk.clusters, d]))
        return [self.centroids]

    def attention(self) -> list[Operation]:
        op, blk = self.op, self.blk
        assert self.centroids is not None
        keys = isa.heads_rows_width(op.key.type, "key", op.name)[1]
        scores = isa.ScoresOp(self.centroids.result, op.key, blk.head, op.scale.value.data,
                              self._tensor([blk.clusters, keys]))
        softmax = isa.SoftmaxOp(scores.result)
        self.probs = softmax.result
        return [scores, softmax]

    def output(self, acc: SSAValue) -> list[Operation]:
        op, blk = self.op, self.blk
        assert self.probs is not None and self.assignment is not None
        e = isa.heads_rows_width(op.value.type, "value", op.name)[2]
        av = isa.AvOp(self.probs, op.value, blk.head, self._tensor([blk.clusters, e]))
        return [av, isa.ExpandOp(av.result, self.assignment, acc, blk.head, blk.rows)]


UNSUPPORTED = (MatmulOp, SddmmOp, SoftmaxOp, SpmmOp)


@dataclass(frozen=True)
class LowerSparcPass(SparcSpec, ModulePass):
    """Lower every row-clustered sparsec.attention to SpARC stage instructions; options
    are the accelerator's spec.

    Example: `lower-sparc{preset=paper cache_kb=16}`.
    """

    name: ClassVar[str] = "lower-sparc"

    def hardware(self) -> SparcSpec:
        return SparcSpec(**self.config())

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        spec = self.hardware()
        for inner in op.walk():
            if isinstance(inner, UNSUPPORTED):
                raise _fail(f"{inner.name} is not an attention; SpARC runs sparsec.attention "
                            "(undecomposed) only")
        for kernel in [o for o in op.walk() if isinstance(o, func.FuncOp)]:
            slot = 0
            for attention in [o for o in kernel.walk() if isinstance(o, AttentionOp)]:
                ops = lower_attention(attention, spec, slot)
                slot += isa.heads_rows_width(attention.query.type, "query", attention.name)[0]
                Rewriter.replace_op(attention, ops, [ops[-1].results[0]])
