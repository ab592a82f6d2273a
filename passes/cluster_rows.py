"""`cluster-rows`: make attention row-clustered (SpARC, Cho et al., DAC 2024), calibrated offline.

For every unmasked `sparsec.attention` the pass gives the query Q the format
`#sparsec.row_clustered<block, columns, clusters>`, which redefines the op as clustered
attention (backends/sparc/clustering.py): rows are clustered at run time by their
low-rank scores over a few key columns, and attention is computed once per cluster.
Two choices are made offline, on calibration inputs: the values bound to Q, K and V at
compile time (the spec's data; a runtime input's default source stands in for its
calibration set).

- Key columns: the paper selects 15% of K's columns with LDA on calibration data. We use
  a closed-form criterion instead: per head, the ceil(rank * d) columns c with the
  largest ||Q[:, c]||_2 * ||K[:, c] - mean_s K[s, c]||_2, the Frobenius norm of the part
  of the rank-1 score term Q[:, c] K[:, c]^T that softmax sees (a column's constant
  offset over keys shifts each row's scores uniformly, which softmax ignores). It is
  the deterministic top-r version of norm-proportional column sampling for approximate
  matrix products (Drineas, Kannan and Mahoney, SIAM J. Comput. 2006).
- Clusters per row block: the smallest k whose mean KL divergence KL(P_i || P~_i) between
  the dense attention row P_i and the clustered one P~_i, over the block's rows, is at
  most `threshold` (nats, computed in float64 from the scores); or `clusters` for every
  block.

The choices go into the format and the DataStore (`<kernel>.<Q>#columns` [H, r],
`#clusters` [H, blocks], `#kl` [H, blocks]); the effect on Q's binding op records the
clusters, the attention-map sparsity 1 - clusters / (H * T), the calibration KL and the
relative error of the attention output on the calibration inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass
from xdsl.utils.exceptions import VerifyException

from sparsec.dialects.formats import RowClusteredAttr
from sparsec.dialects.sparsec import AttentionOp, InputOp, ParamOp, element_type_name
from sparsec.passes.common import Target, encoding_of, fail, set_type, with_encoding
from sparsec.tensors import attention
from sparsec.tensors import row_clustering as clustering
from sparsec.tensors.datastore import DataStore, current_store, enclosing_kernel

NAME = "cluster-rows"


def key_columns(q: np.ndarray, k: np.ndarray, rank: float) -> np.ndarray:
    """Per head, the ceil(rank * d) key columns with the largest ||Q_c|| ||K_c - mean K_c||,
    ascending; [H, r] for [H, T, d] operands. Ties keep the lower column."""
    q3 = clustering.heads_view(q).astype(np.float64)
    k3 = clustering.heads_view(k).astype(np.float64)
    count = max(1, math.ceil(rank * q3.shape[2] - 1e-9))
    weight = np.linalg.norm(q3, axis=1) * np.linalg.norm(k3 - k3.mean(axis=1, keepdims=True), axis=1)
    order = np.argsort(-weight, axis=1, kind="stable")[:, :count]
    return np.sort(order, axis=1)


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row log-softmax in float64 (no log of a rounded zero)."""
    x = scores.astype(np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class BlockChoice:
    """The clusters chosen for one block and the calibration KL they give."""

    clusters: int
    kl: float


def logsumexp(x: np.ndarray) -> np.ndarray:
    """log sum_s exp(x[..., s]) in float64, max-shifted."""
    top = x.max(axis=-1)
    return top + np.log(np.exp(x - top[..., None]).sum(axis=-1))


class BlockKl:
    """Mean KL(P_i || P~_i) of one calibration block for k = 1, 2, ... clusters, in float64.

    With P~_j = softmax(scale * Q_c[j] K^T): KL_i = sum_s P_is log P_is - scale * Q_c[a_i] .
    (K^T P_i) + logsumexp_s(scale * Q_c[a_i] K^T). The first term and u_i = K^T P_i are
    fixed per row, so a new allocation only recomputes the clusters whose members
    changed: one sweep over k costs about as much as a few dense score rows per step.
    """

    def __init__(self, q_rows: np.ndarray, k_head: np.ndarray, k_t: np.ndarray, scale: float):
        """`k_head` [S, d] and its transpose `k_t` [d, S], float64 and C-contiguous
        (numpy multiplies a transposed view many times slower)."""
        self.q = q_rows.astype(np.float64)
        self.k_t = k_t
        self.scale = scale
        logs = log_softmax(scale * (self.q @ k_t))
        probs = np.exp(logs)
        self.neg_entropy = np.sum(probs * logs, axis=1)
        self.u = probs @ k_head
        self.assignment = np.full(self.q.shape[0], -1, dtype=np.int64)
        self.reps = np.zeros((0, self.q.shape[1]))
        self.lse = np.zeros(0)

    def kl(self, assignment: np.ndarray) -> float:
        """The block's mean KL with this allocation (clusters 0 .. max(assignment))."""
        count = int(assignment.max()) + 1
        moved = assignment != self.assignment
        changed = np.union1d(assignment[moved], self.assignment[moved & (self.assignment >= 0)])
        self.reps = np.resize(self.reps, (count, self.q.shape[1]))
        self.lse = np.resize(self.lse, count)
        for j in changed:
            members = self.q[assignment == j]
            self.reps[j] = members.mean(axis=0)
            self.lse[j] = logsumexp(self.scale * (self.reps[j] @ self.k_t))
        self.assignment = assignment
        cross = self.scale * np.einsum("id,id->i", self.reps[assignment], self.u)
        return float(np.mean(self.neg_entropy - cross + self.lse[assignment]))


def choose_clusters(blk: clustering.Block, q3: np.ndarray, k3: np.ndarray, scale: float,
                    dtype: str, threshold: float | None, fixed: int) -> BlockChoice:
    """The smallest k with mean KL <= threshold (or `fixed`, capped by the block's rows),
    trying k = 1, 2, ... along one farthest-point sweep."""
    q_rows = q3[blk.head, blk.rows[0]:blk.rows[1]]
    k_head = k3[blk.head]
    k64 = k_head.astype(np.float64)
    kl_of = BlockKl(q_rows, k64, np.ascontiguousarray(k64.T), scale)
    scores = clustering.lowrank_scores(q_rows, k_head, blk.columns, scale, dtype)
    limit = blk.size if threshold is not None else min(fixed, blk.size)
    kl = math.inf
    for count, step in enumerate(clustering.allocation_steps(scores, limit), start=1):
        kl = kl_of.kl(step.assignment)
        if threshold is not None and kl <= threshold:
            return BlockChoice(count, kl)
    return BlockChoice(limit, kl)


@dataclass(frozen=True)
class Calibration:
    """What cluster-rows chose for one attention op, and what it costs on calibration data."""

    fmt: RowClusteredAttr
    columns: np.ndarray
    clusters: np.ndarray
    kl: np.ndarray
    rel_error: float
    rows: int

    @property
    def map_sparsity(self) -> float:
        """Fraction of attention-map rows not computed exactly: 1 - clusters / (H * T)."""
        return 1.0 - float(self.clusters.sum()) / (self.clusters.shape[0] * self.rows)


def calibrate(q: np.ndarray, k: np.ndarray, v: np.ndarray, scale: float, dtype: str, *,
              block: int, rank: float, threshold: float | None = None,
              clusters: int = 0) -> Calibration:
    """Choose key columns and per-block clusters for attention over q, k, v (rank 2 or 3)."""
    q3, k3 = clustering.heads_view(q), clustering.heads_view(k)
    heads, rows = q3.shape[0], q3.shape[1]
    columns = key_columns(q3, k3, rank)
    nblocks = -(-rows // block)
    draft = RowClusteredAttr(block, columns.tolist(), [[1] * nblocks] * heads)
    counts = np.zeros((heads, nblocks), dtype=np.int64)
    kls = np.zeros((heads, nblocks))
    for index, blk in enumerate(clustering.blocks(draft, rows)):
        choice = choose_clusters(blk, q3, k3, scale, dtype, threshold, clusters)
        counts.flat[index], kls.flat[index] = choice.clusters, choice.kl
    fmt = RowClusteredAttr(block, columns.tolist(), counts.tolist())
    approx = clustering.clustered_attention(fmt, q, k, v, scale, None, dtype)
    exact = attention.attention(q, k, v, scale, None, dtype).astype(np.float64)
    norm = float(np.linalg.norm(exact))
    rel = float(np.linalg.norm(approx.astype(np.float64) - exact)) / norm if norm else 0.0
    return Calibration(fmt, columns, counts, kls, rel, rows)


def _binder(value: SSAValue) -> InputOp | ParamOp | None:
    owner = value.owner
    return owner if isinstance(owner, (InputOp, ParamOp)) else None


@dataclass(frozen=True)
class ClusterRowsPass(ModulePass):
    """Row-cluster every unmasked attention's query, e.g. `cluster-rows{threshold=0.2
    rank=0.15}` (per-block clusters within a KL budget) or `cluster-rows{clusters=8}`.
    """

    name: ClassVar[str] = NAME

    threshold: float = -1.0
    clusters: int = 0
    rank: float = 0.15
    block: int = 64

    def options_text(self) -> str:
        """The options that decided the result, for the recorded effect."""
        chosen = (f"threshold={self.threshold:g}" if self.threshold >= 0
                  else f"clusters={self.clusters}")
        return f"{NAME}{{{chosen} rank={self.rank:g} block={self.block}}}"

    def check_options(self) -> None:
        if (self.threshold >= 0) == (self.clusters > 0):
            raise fail(NAME, None, "give threshold=<mean KL per block, nats> or clusters=<per "
                       f"block>, exactly one (got threshold={self.threshold:g}, "
                       f"clusters={self.clusters})")
        if self.clusters < 0:
            raise fail(NAME, None, f"clusters must be >= 1, got {self.clusters}")
        if not 0.0 < self.rank <= 1.0:
            raise fail(NAME, None, f"rank must lie in (0, 1] (the fraction of K's columns), "
                       f"got {self.rank:g}")
        if self.block < 1:
            raise fail(NAME, None, f"block must be >= 1 row, got {self.block}")
        if self.clusters > self.block:
            raise fail(NAME, None, f"clusters={self.clusters} exceeds the {self.block} rows "
                       "of a block")

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        self.check_options()
        ops = [o for o in op.walk() if isinstance(o, AttentionOp)]
        if not ops:
            raise fail(NAME, None, "the module has no sparsec.attention to row-cluster")
        for attn in ops:
            self.cluster(attn, current_store())

    def cluster(self, attn: AttentionOp, store: DataStore) -> None:
        """Calibrate one attention op and give its query the row-clustered format."""
        binders = [_binder(v) for v in (attn.query, attn.key, attn.value)]
        query = binders[0]
        where = f"{attn.name} operand {query.sym_name if query else 'Q'}:"
        if attn.mask_kind != "none":
            raise fail(NAME, None, f"{where} mask={attn.mask_kind}: a cluster shares one "
                       "attention row, which a mask that differs per row breaks; only "
                       "unmasked (encoder) attention can be row-clustered")
        if query is None or None in binders:
            raise fail(NAME, None, f"{where} Q, K and V must be `in` or `param` tensors (their "
                       "values are the calibration data)")
        qtype = attn.query.type
        assert isinstance(qtype, TensorType)
        if encoding_of(qtype) is not None:
            raise fail(NAME, None, f"{where} Q already has the format {qtype.encoding}; "
                       "cluster-rows sets the query's format itself")
        kernel = enclosing_kernel(attn)
        q, k, v = (store.get(f"{kernel}.{b.sym_name}") for b in binders)  # type: ignore[union-attr]
        dtype = element_type_name(qtype.element_type)
        threshold = self.threshold if self.threshold >= 0 else None
        result = calibrate(q, k, v, attn.scale.value.data, dtype, block=self.block,
                           rank=self.rank, threshold=threshold, clusters=self.clusters)
        target = Target(query, kernel, qtype.get_num_dims() - 1, attn)
        set_type(target, with_encoding(qtype, result.fmt))
        store.put(f"{target.key}#columns", result.columns.astype(np.int32), "i32")
        store.put(f"{target.key}#clusters", result.clusters.astype(np.int32), "i32")
        store.put(f"{target.key}#kl", result.kl, "f64")
        query.record_effect({
            "pass": self.options_text(),
            "clusters": int(result.clusters.sum()),
            "map_sparsity": result.map_sparsity,
            "kl": float(result.kl.mean()),
            "rel_error": result.rel_error,
        })


@dataclass
class ClusteredBertAttention:
    """A `BertModel.attention_hook` (compiler/workloads.py) that row-clusters every layer.

    A layer uses `formats[layer]` when given (calibrated elsewhere, e.g. on another text
    of the same length), else it is calibrated on its own inputs, as `cluster-rows`
    calibrates on a kernel's data. `used` keeps each layer's format and calibration.
    """

    threshold: float | None = 0.2
    clusters: int = 0
    rank: float = 0.15
    block: int = 64
    formats: dict[int, RowClusteredAttr] = field(default_factory=dict)
    used: dict[int, RowClusteredAttr] = field(default_factory=dict)
    calibrations: dict[int, Calibration] = field(default_factory=dict)

    def __call__(self, layer: int, q: np.ndarray, k: np.ndarray,
                 v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scale = 1.0 / math.sqrt(q.shape[-1])
        fmt = self.formats.get(layer)
        if fmt is None:
            result = calibrate(q, k, v, scale, "f32", block=self.block, rank=self.rank,
                               threshold=self.threshold, clusters=self.clusters)
            self.calibrations[layer] = result
            fmt = result.fmt
        try:
            fmt.verify_tensor_type(TensorType(f32, q.shape))
        except VerifyException as err:
            raise ValueError(f"layer {layer}: the given format does not fit the input: {err} "
                             "(calibrate on a text of the same length)") from None
        self.used[layer] = fmt
        return clustering.clustered_attention_map(fmt, q, k, v, scale, None, "f32")
