"""Cluster-aligned INT-FP arithmetic of the bit-level LLM accelerator (ISSCC'25 23.8), numpy.

One GEMM `Y = X . (scale * Wq)` with BF16 activations X [M, K] and INT8 weight codes Wq
[K, N] runs as follows (equations and their provenance in backends/bitllm/README.md):

1. Each activation is split exactly into sign, integer significand and exponent:
   a = (-1)^s * m * 2^E with m < 2^8 (hidden one included; subnormals keep m < 128).
2. K is cut into groups of `group` (32) activations. Inside one (row, group) the nonzero
   activations are clustered by exponent, greedily from the largest exponent down: a
   cluster holds the exponents in [top - span, top]; its base is its smallest exponent
   e_k. At most `clusters` (C) clusters are processed per pass; a group that needs more
   takes ceil(n / C) passes (`overflow=spill`, exact, counted) or loses its smallest
   clusters (`overflow=drop`, lossy, counted).
3. AWSC: inside cluster k each weight is shifted left by d_i = E_i - e_k <= span (zero
   extension into W + d bits) instead of shifting the activation, and the cluster's
   integer dot product P_k = sum_i (-1)^s_i m_i (w_i << d_i) is formed exactly by an
   adder tree and held in an `acc_bits`-bit register: `saturate` clips to the register's
   range, `wrap` keeps the two's complement residue, `truncate` keeps the top bits (drops
   the t = need - acc_bits low bits, floor). Every clip, wrap and truncation is counted.
4. FP accumulation: float32(P_k) * 2^e_k is added to a float32 accumulator, clusters in
   order inside a group, groups in K order; finally y = float32(acc * scale[n]).

The integer dot products are formed with float64 matmuls of integers below 2^53, which
are exact, so the result equals the sequential hardware arithmetic bit for bit; each
output element's float32 operations happen in a fixed order independent of tiling, so
an interpreter that runs tiles of M and N reproduces `int_fp_gemm` exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

ACC_MODES = ("saturate", "wrap", "truncate")
OVERFLOW_POLICIES = ("spill", "drop")
BF16_SIGNIFICAND_BITS = 8
"""Significand bits of a BF16 value, hidden one included (7 stored + 1)."""


@dataclass(frozen=True)
class IntFpConfig:
    """Parameters of the cluster-aligned INT-FP MAC (defaults: the paper's as reported)."""

    group: int = 32
    clusters: int = 4
    span: int = 3
    act_bits: int = BF16_SIGNIFICAND_BITS
    weight_bits: int = 8
    acc_bits: int = 0
    """Width of the cluster register in bits; 0 = `required_acc_bits` (never overflows)."""
    acc_mode: str = "saturate"
    overflow: str = "spill"

    def __post_init__(self) -> None:
        if self.group < 1 or self.clusters < 1 or self.span < 0:
            raise ValueError("group and clusters must be >= 1 and span >= 0")
        if not 1 <= self.act_bits <= 24 or not 2 <= self.weight_bits <= 16:
            raise ValueError("act_bits must lie in [1, 24] and weight_bits in [2, 16]")
        if self.acc_mode not in ACC_MODES:
            raise ValueError(f"acc_mode must be one of {', '.join(ACC_MODES)}, got "
                             f"'{self.acc_mode}'")
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got "
                             f"'{self.overflow}'")
        if self.acc_bits != 0 and not 2 <= self.acc_bits <= 52:
            raise ValueError(f"acc_bits must be 0 (exact width) or lie in [2, 52], got "
                             f"{self.acc_bits}")

    @property
    def register_bits(self) -> int:
        """The register width in effect (acc_bits, or the exact requirement when 0)."""
        return self.acc_bits or required_acc_bits(self.act_bits, self.weight_bits,
                                                  self.span, self.group)


# -- theory: the widths and bounds derived in README.md --------------------------------------


def max_cluster_magnitude(act_bits: int, weight_bits: int, span: int, n: int) -> int:
    """Largest |P_k| a cluster of n nonzero activations can produce.

    |m| <= 2^M - 1, |w| <= 2^(W-1) (the most negative code), and inside a cluster at least
    one element has d = 0 (the base), the others d <= S:
    max |P| = (2^M - 1) 2^(W-1) ((n - 1) 2^S + 1).
    """
    if n <= 0:
        return 0
    return ((1 << act_bits) - 1) * (1 << (weight_bits - 1)) * ((n - 1) * (1 << span) + 1)


def required_acc_bits(act_bits: int, weight_bits: int, span: int, group: int) -> int:
    """Smallest two's complement width holding every cluster sum: 1 + bitlen(max |P|).

    Both signs reach max |P| (w = -2^(W-1) with s = 1 gives +max; s = 0 gives -max), so
    the register needs 2^(A-1) - 1 >= max |P|, i.e. A = 1 + bit_length(max |P|).
    """
    return 1 + max_cluster_magnitude(act_bits, weight_bits, span, group).bit_length()


def register_error_bound(act_bits: int, weight_bits: int, span: int, group: int,
                         acc_bits: int, mode: str) -> int:
    """Worst-case |P - register(P)| over all inputs, in units of the cluster's LSB 2^e_k.

    saturate: max |P| - (2^(A-1) - 1) (the register clips to +-(2^(A-1) - 1) / -2^(A-1));
    truncate: 2^t - 1 with t = need - A low bits dropped (floor);
    wrap:     the largest multiple of 2^A that a value of magnitude <= max |P| can lose:
              2^A * floor((max |P| + 2^(A-1)) / 2^A).
    0 whenever acc_bits >= required width.
    """
    need = required_acc_bits(act_bits, weight_bits, span, group)
    if acc_bits >= need:
        return 0
    top = max_cluster_magnitude(act_bits, weight_bits, span, group)
    if mode == "saturate":
        return top - ((1 << (acc_bits - 1)) - 1)
    if mode == "truncate":
        return (1 << (need - acc_bits)) - 1
    return (1 << acc_bits) * ((top + (1 << (acc_bits - 1))) >> acc_bits)


def apply_register(p: np.ndarray, bits: int, need: int, mode: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(value held by a `bits`-wide register given exact sums p, mask of altered sums).

    p holds exact integers (int64 or integral float64). `need` is the full width of the
    design; `truncate` drops need - bits low bits (floor) and never clips.
    """
    p = np.asarray(p, dtype=np.int64)
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if mode == "saturate":
        held = np.clip(p, low, high)
    elif mode == "wrap":
        held = ((p - low) & ((1 << bits) - 1)) + low
    else:
        shift = max(0, need - bits)
        held = (p >> shift) << shift
    return held, held != p


# -- BF16 fields and clustering --------------------------------------------------------------


def bf16_fields(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sign, significand, exponent) of BF16 values so that x = (-1)^s * m * 2^E exactly.

    Normal: m = 128 + fraction, E = biased - 127 - 7; subnormal: m = fraction,
    E = -126 - 7; zero: m = 0 (E = 0). x must already be BF16 values in float32 carriers
    (their low 16 bits zero); infinities and NaNs are rejected.
    """
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x32)):
        raise ValueError("bitllm: activations must be finite (inf/NaN has no INT-FP form)")
    bits = x32.view(np.uint32)
    if np.any(bits & 0xFFFF):
        raise ValueError("bitllm: activations must be BF16 values (round them first)")
    top = (bits >> 16).astype(np.int64)
    sign = top >> 15
    biased = (top >> 7) & 0xFF
    fraction = top & 0x7F
    normal = biased > 0
    significand = np.where(normal, fraction | 0x80, fraction)
    exponent = np.where(normal, biased, 1) - 127 - 7
    exponent = np.where(significand == 0, 0, exponent)
    return sign, significand, exponent


def cluster_exponents(exponent: np.ndarray, nonzero: np.ndarray, span: int
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy exponent clustering along the last axis (one group per row of that axis).

    Returns (cluster index per element, -1 for zeros; base exponent per cluster slot,
    shape [..., group]; clusters needed per group). Clusters are numbered from the
    largest exponent down: cluster 0 holds exponents in [max - span, max], cluster 1
    starts at the largest exponent below that, and so on.
    """
    sentinel = np.iinfo(np.int64).min // 4
    keyed = np.where(nonzero, exponent, sentinel)
    order = np.argsort(-keyed, axis=-1, kind="stable")
    ordered = np.take_along_axis(keyed, order, axis=-1)
    width = exponent.shape[-1]
    slot = np.full(ordered.shape, -1, dtype=np.int64)
    base = np.zeros(ordered.shape, dtype=np.int64)
    top = ordered[..., 0].copy()
    current = np.where(ordered[..., 0] > sentinel, 0, -1)
    for i in range(width):
        value = ordered[..., i]
        live = value > sentinel
        new = live & (value < top - span)
        current = np.where(new, current + 1, current)
        top = np.where(new, value, top)
        slot[..., i] = np.where(live, current, -1)
        index = np.maximum(current, 0)[..., None]
        # the base is the smallest exponent seen in the cluster: the latest live one
        np.put_along_axis(base, index, np.where(live, value, np.take_along_axis(
            base, index, axis=-1)[..., 0])[..., None], axis=-1)
    cluster = np.empty_like(slot)
    np.put_along_axis(cluster, order, slot, axis=-1)
    return cluster, base, current + 1


# -- the GEMM -------------------------------------------------------------------------------


@dataclass
class GemmStats:
    """Every event of one cluster-aligned GEMM; nothing the hardware does is silent."""

    groups: int = 0
    """(row, group) pairs processed."""
    clusters: int = 0
    """Clusters formed (summed over (row, group) pairs)."""
    passes: int = 0
    """Passes of the PE over (row, group) pairs: ceil(clusters / C), at least 1."""
    spilled_groups: int = 0
    """(row, group) pairs that needed more than C clusters."""
    extra_passes: int = 0
    """Passes beyond one per (row, group) pair (spill)."""
    dropped_elements: int = 0
    """Nonzero activations discarded because their cluster exceeded C (overflow=drop)."""
    register_events: int = 0
    """Cluster sums the register altered (saturated, wrapped or truncated)."""
    register_error_lsb: float = 0.0
    """Largest |P - register(P)| seen, in units of the cluster's LSB."""
    inexact_conversions: int = 0
    """Cluster sums not exactly representable in float32 (|P| >= 2^24)."""
    cluster_histogram: list[int] = field(default_factory=list)
    """How many (row, group) pairs needed 1, 2, ... clusters."""
    sum_bits_histogram: list[int] = field(default_factory=list)
    """How many exact cluster sums need b bits (two's complement), b = 0, 1, ...: which
    register widths the data overflows."""
    passes_per_row_group: np.ndarray | None = None
    """[M, groups] passes, for the cycle model."""

    def merge(self, other: GemmStats) -> None:
        for name in ("groups", "clusters", "passes", "spilled_groups", "extra_passes",
                     "dropped_elements", "register_events", "inexact_conversions"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.register_error_lsb = max(self.register_error_lsb, other.register_error_lsb)
        self.cluster_histogram = _add_lists(self.cluster_histogram, other.cluster_histogram)
        self.sum_bits_histogram = _add_lists(self.sum_bits_histogram, other.sum_bits_histogram)

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in (
            "groups", "clusters", "passes", "spilled_groups", "extra_passes",
            "dropped_elements", "register_events", "register_error_lsb",
            "inexact_conversions", "cluster_histogram", "sum_bits_histogram")}


def _add_lists(a: list[int], b: list[int]) -> list[int]:
    width = max(len(a), len(b))
    return [(a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(width)]


def signed_bits(values: np.ndarray) -> np.ndarray:
    """Two's complement width of each integer: bit_length(v) + 1 (v >= 0) or
    bit_length(-v - 1) + 1 (v < 0); exact for |v| < 2^53."""
    v = np.asarray(values, dtype=np.int64)
    magnitude = (v ^ (v >> 63)).astype(np.float64)  # v, or ~v = -v - 1 when negative
    # bit_length(m) of an integer m < 2^53 held exactly in a float64 is its biased
    # exponent - 1022 (2^(b-1) <= m < 2^b); m = 0 has exponent field 0
    exponent = (magnitude.view(np.int64) >> 52) - 1022
    return np.maximum(exponent, 0) + 1


@dataclass(frozen=True)
class ClusteredActivations:
    """Activations of one GEMM, decomposed once: per (row, group, lane) the signed
    significand, the AWSC shift d and the cluster slot; per cluster slot its base."""

    signed: np.ndarray      # [M, G, g] int64: (-1)^s m
    shift: np.ndarray       # [M, G, g] int64: d = E - e_k (0 for zeros)
    cluster: np.ndarray     # [M, G, g] int64: cluster slot, -1 for zeros / dropped
    base: np.ndarray        # [M, G, g] int64: e_k per slot
    needed: np.ndarray      # [M, G] clusters needed
    dropped: int


def cluster_activations(x: np.ndarray, cfg: IntFpConfig) -> ClusteredActivations:
    """Decompose and cluster BF16 activations [M, K] (K padded with zeros to groups)."""
    rows, k = x.shape
    groups = -(-k // cfg.group)
    padded = np.zeros((rows, groups * cfg.group), dtype=np.float32)
    padded[:, :k] = x
    sign, significand, exponent = bf16_fields(padded)
    shape = (rows, groups, cfg.group)
    sign, significand, exponent = (a.reshape(shape) for a in (sign, significand, exponent))
    nonzero = significand != 0
    cluster, base, needed = cluster_exponents(exponent, nonzero, cfg.span)
    dropped = 0
    if cfg.overflow == "drop":
        lost = cluster >= cfg.clusters
        dropped = int(np.count_nonzero(lost))
        cluster = np.where(lost, -1, cluster)
    own_base = np.take_along_axis(base, np.maximum(cluster, 0), axis=-1)
    shift = np.where(cluster >= 0, exponent - own_base, 0)
    signed = np.where(sign == 1, -significand, significand)
    return ClusteredActivations(signed, shift, cluster, base, needed, dropped)


def int_fp_gemm(x: np.ndarray, w_codes: np.ndarray, scale: np.ndarray | float,
                cfg: IntFpConfig, row_block: int = 256) -> tuple[np.ndarray, GemmStats]:
    """Y = X . (scale * Wq) on cluster-aligned INT-FP MACs; float32 [M, N] and its events.

    x: BF16 values (float32 carriers) [M, K]; w_codes: integer codes [K, N] with
    |w| <= 2^(weight_bits - 1); scale: a scalar or one per output column.
    """
    x = np.asarray(x, dtype=np.float32)
    codes = np.asarray(w_codes, dtype=np.int64)
    if x.ndim != 2 or codes.ndim != 2 or x.shape[1] != codes.shape[0]:
        raise ValueError(f"bitllm gemm: shapes {x.shape} and {codes.shape} do not chain")
    # |w| <= 2^(W-1): a CSD code may round 127 up to +128 (one digit at 2^7); the bounds
    # of README section 2 assume exactly this magnitude
    low, high = -(1 << (cfg.weight_bits - 1)), 1 << (cfg.weight_bits - 1)
    if codes.size and (codes.min() < low or codes.max() > high):
        raise ValueError(f"bitllm gemm: weight codes must lie in [{low}, {high}]")
    stats = GemmStats()
    outputs = []
    passes = []
    with threadpool_limits(1, "blas"):  # many small products: threads only contend
        for start in range(0, max(1, x.shape[0]), row_block):
            y, part = _gemm_rows(x[start:start + row_block], codes, cfg)
            outputs.append(y)
            passes.append(part.passes_per_row_group)
            stats.merge(part)
    acc = np.concatenate(outputs, axis=0) if outputs else np.zeros((0, codes.shape[1]))
    stats.passes_per_row_group = np.concatenate(passes, axis=0)
    factor = np.broadcast_to(np.asarray(scale, dtype=np.float32), (codes.shape[1],))
    return (acc * factor).astype(np.float32), stats


PRODUCT_BYTES = 1 << 22
"""Largest float64 product one cluster slot makes at a time ([groups, rows, columns]):
wider outputs are done in column blocks. Temporaries this small are reused from the
allocator's heap; larger ones are fresh pages the kernel must zero each time (an LM head
of 49,152 columns made 340 MB temporaries per slot and spent 80% of its time in the
kernel: 8.8 s for a 48-row LM head, now 2.1 s). Columns are independent, so the values
and the events are those of one block (tested)."""


def _gemm_rows(x: np.ndarray, codes: np.ndarray, cfg: IntFpConfig
               ) -> tuple[np.ndarray, GemmStats]:
    rows, k = x.shape
    n = codes.shape[1]
    act = cluster_activations(x, cfg)
    groups = act.needed.shape[1]
    aligned = np.swapaxes((act.signed << act.shift).astype(np.float64), 0, 1)  # [G, M, g]
    cluster = np.swapaxes(act.cluster, 0, 1)
    slots = [_slot_operands(aligned, cluster, j) for j in range(_slot_count(act))]
    stats = GemmStats()
    acc = np.zeros((rows, n), dtype=np.float32)
    columns = max(1, PRODUCT_BYTES // (8 * max(1, groups * rows)))
    for c0 in range(0, n, columns):
        block = codes[:, c0:c0 + columns]
        padded_w = np.zeros((groups * cfg.group, block.shape[1]), dtype=np.float64)
        padded_w[:k] = block
        acc[:, c0:c0 + columns] = _slot_sums(act, slots, padded_w.reshape(groups, cfg.group, -1),
                                             cfg, stats)
    needed = act.needed
    passes = np.maximum(1, -(-needed // cfg.clusters))
    kept = needed
    if cfg.overflow == "drop":
        passes = np.ones_like(needed)
        kept = np.minimum(needed, cfg.clusters)
    stats.groups = int(needed.size)
    stats.clusters = int(kept.sum())
    stats.passes = int(passes.sum())
    stats.spilled_groups = int(np.count_nonzero(needed > cfg.clusters))
    stats.extra_passes = int((passes - 1).sum())
    stats.dropped_elements = act.dropped
    stats.cluster_histogram = np.bincount(needed.ravel(), minlength=1)[1:].tolist()
    stats.passes_per_row_group = passes
    return acc, stats


def _slot_count(act: ClusteredActivations) -> int:
    return int(act.cluster.max()) + 1 if act.cluster.size else 0


@dataclass(frozen=True)
class _SlotOperands:
    """Cluster slot j's aligned activations, for every column block alike."""

    pairs: tuple[np.ndarray, np.ndarray]  # (group, row) pairs that hold a cluster j
    lhs: np.ndarray                        # [P, g] their members' aligned significands
    masked: np.ndarray | None              # [G, M, g] all of them, when P is most pairs


def _slot_operands(aligned: np.ndarray, cluster: np.ndarray, j: int) -> _SlotOperands | None:
    member = cluster == j
    pairs = np.nonzero(member.any(axis=-1))
    if pairs[0].size == 0:
        return None
    groups, rows = cluster.shape[:2]
    dense = pairs[0].size * 4 >= groups * rows
    return _SlotOperands(pairs, np.where(member[pairs], aligned[pairs], 0.0),
                         np.where(member, aligned, 0.0) if dense else None)


def _slot_sums(act: ClusteredActivations, slots: list[_SlotOperands | None],
               w_groups: np.ndarray, cfg: IntFpConfig, stats: GemmStats) -> np.ndarray:
    """Output columns of `w_groups` [G, g, N]: each slot's exact cluster sums through the
    register, converted to float32 and scaled by 2^base, accumulated in float32 in
    hardware order (groups in K order, clusters in order inside); the sums' events go
    to `stats`."""
    rows, n = act.needed.shape[0], w_groups.shape[2]
    bits = cfg.register_bits
    need = required_acc_bits(cfg.act_bits, cfg.weight_bits, cfg.span, cfg.group)
    acc_terms: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for j, slot in enumerate(slots):
        if slot is None:
            continue
        if slot.masked is not None:
            exact_f = np.matmul(slot.masked, w_groups)[slot.pairs]  # [G, M, N] -> [P, N]
        else:
            exact_f = np.einsum("pi,pin->pn", slot.lhs, w_groups[slot.pairs[0]])
        exact = np.rint(exact_f).astype(np.int64)  # [P, N]
        stats.sum_bits_histogram = _add_lists(stats.sum_bits_histogram,
                                              np.bincount(signed_bits(exact).ravel()).tolist())
        held = exact
        if bits < need:
            held, altered = apply_register(exact, bits, need, cfg.acc_mode)
            stats.register_events += int(np.count_nonzero(altered))
            if altered.any():
                stats.register_error_lsb = max(stats.register_error_lsb,
                                               float(np.abs(exact - held).max()))
        converted = held.astype(np.float32)
        stats.inexact_conversions += int(np.count_nonzero(converted.astype(np.int64) != held))
        base = act.base[slot.pairs[1], slot.pairs[0], j]
        acc_terms.append((slot.pairs[0], slot.pairs[1],
                          np.ldexp(converted, base[:, None].astype(np.int32))))
    acc = np.zeros((rows, n), dtype=np.float32)
    order = sorted(((g, j) for j, (gs, _, _) in enumerate(acc_terms) for g in np.unique(gs)))
    for g, j in order:
        gs, ms, values = acc_terms[j]
        pick = gs == g
        acc[ms[pick]] += values[pick]
    return acc


def aligned_activation_gemm(x: np.ndarray, w_codes: np.ndarray, cfg: IntFpConfig
                            ) -> np.ndarray:
    """The conventional alternative AWSC replaces: per cluster, activations are shifted
    left by d (into M + S bits) instead of the weights; exact integer arithmetic.

    Returns the exact per-(row, group, cluster) sums [M, G, slots, N] as int64, for the
    equivalence property: AWSC's sums equal these whenever acc_bits >= required width.
    """
    act = cluster_activations(np.asarray(x, dtype=np.float32), cfg)
    rows, groups, width = act.signed.shape
    codes = np.asarray(w_codes, dtype=np.int64)
    padded = np.zeros((groups * width, codes.shape[1]), dtype=np.int64)
    padded[:codes.shape[0]] = codes
    w_groups = padded.reshape(groups, width, -1)
    slots = int(act.cluster.max()) + 1 if act.cluster.size else 0
    out = np.zeros((rows, groups, max(slots, 1), codes.shape[1]), dtype=np.int64)
    shifted_act = act.signed << act.shift
    for j in range(slots):
        member = act.cluster == j
        a = np.where(member, shifted_act, 0)
        out[:, :, j, :] = np.einsum("mgi,gin->mgn", a, w_groups)
    return out


def awsc_products(significand: np.ndarray, sign: np.ndarray, weight: np.ndarray,
                  shift: np.ndarray, weight_bits: int) -> np.ndarray:
    """AWSC products as the hardware forms them: the weight zero-extended into
    W + d bits and shifted (w << d, an exact W + S bit value), times the signed
    significand."""
    extended = np.asarray(weight, dtype=np.int64) << np.asarray(shift, dtype=np.int64)
    limit = 1 << (weight_bits - 1 + int(np.max(shift, initial=0)))
    assert np.all((extended >= -limit) & (extended < limit))
    signed = np.where(np.asarray(sign) == 1, -np.asarray(significand, dtype=np.int64),
                      np.asarray(significand, dtype=np.int64))
    return signed * extended


def bits_needed_signed(value: int) -> int:
    """Two's complement width holding `value`."""
    return (value.bit_length() if value >= 0 else (-value - 1).bit_length()) + 1


def log2_ceil(value: int) -> int:
    return max(0, math.ceil(math.log2(value))) if value > 0 else 0
