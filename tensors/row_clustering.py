"""Row-clustered (SpARC) attention in numpy: the one implementation of its semantics.

A `sparsec.attention` whose query carries `#sparsec.row_clustered<...>` *is* clustered
attention; this module defines what it computes. The reference interpreter
(`tensors/attention.py`, through `QUERY_FORMAT_SEMANTICS`), the `cluster-rows`
pass (calibration) and the SpARC machine all call the stage functions below on the
same slices, so the accelerator's output equals the reference bit for bit.

Per head h and row block [r0, r1) of n rows with k clusters and key columns c:

  1. low-rank scores  L = round(scale * Q[h, r0:r1, c] K[h, :, c]^T)              [n, S]
  2. centroids        farthest-point initialisation: m_0 = 0,
                      m_j = argmax over unchosen rows i of min_{l<j} |L_i - L_{m_l}|_1
  3. allocation       a_i = argmin_j |L_i - L_{m_j}|_1 (ties to the lower j; a centroid
                      row belongs to its own cluster). A block with as many clusters as
                      rows skips steps 1-3: its clusters are the singletons in row order
                      (the partition steps 2-3 reach), so it is computed exactly.
  4. representatives  Q_c[j] = round(mean of Q[h, r0 + i] over i with a_i = j)     [k, d]
  5. per cluster      P_c = softmax(sddmm(Q_c, K[h], scale)), O_c = spmm(P_c, V[h])   [k, e]
  6. expansion        O[h, r0 + i] = O_c[a_i]

`round` is rounding to the attention's element type, at the same points as the dense
reference (`backends/common/attention.py`), so a cluster's attention row is exactly
what dense attention computes for its representative query. Distances are summed in
float64. Steps 2 and 3 are one loop: after choosing centroid j every row compares its
distance to it with its distance to the nearest earlier centroid (the hardware's L1
distance and cluster units do exactly this, one centroid per pass).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sparsec.dialects.formats import RowClusteredAttr
from sparsec.tensors import attention
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.numerics import accumulate_dtype


class ClusteringError(ValueError):
    """Row-clustered attention asked for something it does not define (a mask, ...)."""


@dataclass(frozen=True)
class Block:
    """One row block of one head: rows [rows[0], rows[1]), its clusters and key columns."""

    head: int
    rows: tuple[int, int]
    clusters: int
    columns: tuple[int, ...]

    @property
    def size(self) -> int:
        return self.rows[1] - self.rows[0]


def blocks(fmt: RowClusteredAttr, rows: int) -> list[Block]:
    """Every (head, row block) of a query with `rows` rows, head-major, in row order."""
    result: list[Block] = []
    step = fmt.block_rows
    for head, (columns, counts) in enumerate(zip(fmt.column_lists, fmt.cluster_lists,
                                                  strict=True)):
        for index, clusters in enumerate(counts):
            start = index * step
            result.append(Block(head, (start, min(rows, start + step)), clusters, columns))
    return result


def heads_view(x: np.ndarray) -> np.ndarray:
    """A rank-2 tensor [T, d] as one head [1, T, d]; rank 3 unchanged."""
    return x if x.ndim == 3 else x[None]


def lowrank_scores(q_rows: np.ndarray, k_head: np.ndarray, columns: tuple[int, ...],
                   scale: float, dtype: str) -> np.ndarray:
    """Step 1: scale * Q_rows[:, c] K[:, c]^T over the selected key columns, rounded."""
    acc = accumulate_dtype(dtype)
    cols = list(columns)
    k_t = np.ascontiguousarray(k_head[:, cols].astype(acc).T)
    scores = np.matmul(q_rows[:, cols].astype(acc), k_t) * acc(scale)
    return round_to_dtype(scores, dtype)


@dataclass(frozen=True)
class Allocation:
    """Centroid rows (block-relative) and each row's cluster after k passes."""

    centroids: np.ndarray
    assignment: np.ndarray


def allocation_steps(scores: np.ndarray, clusters: int) -> Iterator[Allocation]:
    """Steps 2 and 3 for 1, 2, ..., `clusters` clusters: one Allocation per pass.

    Pass j picks centroid m_j (the unchosen row farthest from its nearest centroid; the
    lowest such row on ties) and moves every row strictly closer to it than to its
    current centroid. The k-th Allocation is the allocation with k clusters, so
    calibration can try every k in one sweep.
    """
    x = scores.astype(np.float64)
    n = x.shape[0]
    chosen = np.zeros(n, dtype=bool)
    nearest = np.full(n, np.inf)
    assignment = np.zeros(n, dtype=np.int64)
    centroids: list[int] = []
    for j in range(min(clusters, n)):
        candidate = np.where(chosen, -1.0, nearest)
        centroid = int(np.argmax(candidate)) if centroids else 0
        distance = np.abs(x - x[centroid]).sum(axis=1)
        closer = distance < nearest
        closer[centroid] = True
        assignment = np.where(closer, j, assignment)
        nearest = np.where(closer, distance, nearest)
        chosen[centroid] = True
        centroids.append(centroid)
        yield Allocation(np.asarray(centroids, dtype=np.int64), assignment)


def allocate(scores: np.ndarray, clusters: int) -> Allocation:
    """Steps 2 and 3 with `clusters` clusters (1 <= clusters <= rows). As many clusters as
    rows are the singletons, numbered in row order (`singletons`): the same partition
    farthest-point allocation reaches, without computing it."""
    rows = scores.shape[0]
    if not 1 <= clusters <= rows:
        raise ClusteringError(f"cannot make {clusters} clusters of {rows} rows")
    if clusters == rows:
        return singletons(rows)
    *_, last = allocation_steps(scores, clusters)
    return last


def singletons(rows: int) -> Allocation:
    """Every row its own cluster, in row order: the block is computed exactly."""
    identity = np.arange(rows, dtype=np.int64)
    return Allocation(identity, identity)


def representatives(q_rows: np.ndarray, assignment: np.ndarray, clusters: int,
                    dtype: str) -> np.ndarray:
    """Step 4: each cluster's mean query (sum of its members over their count), rounded."""
    acc = accumulate_dtype(dtype)
    members = (assignment[None, :] == np.arange(clusters)[:, None]).astype(acc)
    sums = np.matmul(members, q_rows.astype(acc))
    counts = members.sum(axis=1, keepdims=True)
    return round_to_dtype(sums / counts, dtype)


def cluster_scores(reps: np.ndarray, k_head: np.ndarray, scale: float, dtype: str) -> np.ndarray:
    """Step 5a: scale * Q_c K^T, exactly the dense reference's scores of these queries."""
    return attention.sddmm(reps, k_head, scale, None, dtype)


def cluster_probs(scores: np.ndarray, dtype: str) -> np.ndarray:
    """Step 5b: the row softmax of the cluster scores."""
    return attention.masked_softmax(scores, None, dtype)


def cluster_outputs(probs: np.ndarray, v_head: np.ndarray, dtype: str) -> np.ndarray:
    """Step 5c: A_c V."""
    return attention.spmm(probs, v_head, dtype)


def expand(outputs: np.ndarray, assignment: np.ndarray) -> np.ndarray:
    """Step 6: every row takes its cluster's output row."""
    return outputs[assignment]


@dataclass(frozen=True)
class BlockResult:
    """One block's clustering and its clusters' attention rows and outputs."""

    assignment: np.ndarray
    probs: np.ndarray
    outputs: np.ndarray


def block_attention(blk: Block, q3: np.ndarray, k3: np.ndarray, v3: np.ndarray, scale: float,
                    dtype: str) -> BlockResult:
    """Steps 1-5 for one block (step 6 is `expand` of the result)."""
    q_rows = q3[blk.head, blk.rows[0]:blk.rows[1]]
    k_head, v_head = k3[blk.head], v3[blk.head]
    if blk.clusters == blk.size:
        assignment = singletons(blk.size).assignment
    else:
        scores = lowrank_scores(q_rows, k_head, blk.columns, scale, dtype)
        assignment = allocate(scores, blk.clusters).assignment
    reps = representatives(q_rows, assignment, blk.clusters, dtype)
    probs = cluster_probs(cluster_scores(reps, k_head, scale, dtype), dtype)
    return BlockResult(assignment, probs, cluster_outputs(probs, v_head, dtype))


def _check_unmasked(mask: np.ndarray | None) -> None:
    if mask is not None:
        raise ClusteringError("row-clustered attention is defined for unmasked attention only "
                              "(a cluster shares one attention row, which a per-row mask breaks)")


def clustered_attention(fmt: RowClusteredAttr, q: np.ndarray, k: np.ndarray, v: np.ndarray,
                        scale: float, mask: np.ndarray | None, dtype: str) -> np.ndarray:
    """Attention over a row-clustered query: steps 1-6 for every (head, block)."""
    return clustered_attention_map(fmt, q, k, v, scale, mask, dtype)[1]


def clustered_attention_map(fmt: RowClusteredAttr, q: np.ndarray, k: np.ndarray,
                            v: np.ndarray, scale: float, mask: np.ndarray | None,
                            dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(the approximate attention map, every row its cluster's row; the output), shaped
    like q's rank: [H, T, S] and [H, T, e], or [T, S] and [T, e]."""
    _check_unmasked(mask)
    q3, k3, v3 = heads_view(q), heads_view(k), heads_view(v)
    heads, rows = q3.shape[0], q3.shape[1]
    probs = np.empty((heads, rows, k3.shape[1]), dtype=q3.dtype)
    out = np.empty((heads, rows, v3.shape[2]), dtype=q3.dtype)
    for blk in blocks(fmt, rows):
        result = block_attention(blk, q3, k3, v3, scale, dtype)
        probs[blk.head, blk.rows[0]:blk.rows[1]] = expand(result.probs, result.assignment)
        out[blk.head, blk.rows[0]:blk.rows[1]] = expand(result.outputs, result.assignment)
    if q.ndim == 2:
        return probs[0], out[0]
    return probs, out
