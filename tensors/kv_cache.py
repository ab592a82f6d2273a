"""Recency-aware KV-cache precision and eviction (KIVI-style), in numpy, with exact storage.

A decode step reads the whole KV cache, so its size sets decode traffic. This module says
what a policy keeps of one head's cache K, V [S, d] (S tokens, oldest first) and what the
attention then computes with:

- **Eviction** (`sink`, `window`): keep the first `sink` tokens (attention sinks) and the
  last `window`; the rest are dropped. `window=0` keeps everything.
- **Quantization** (KIVI, Liu et al., ICML 2024): keys per channel, values per token,
  asymmetric integers with a scale and a minimum ("zero") per group; groups of `group`
  tokens for keys (one scale/min per channel per token group) and of `group` channels
  for values (one scale/min per token per channel group). Codes q = clip(round((x - min)
  / scale), 0, 2^b - 1), x ~ q * scale + min; scale and min are stored in `meta_bits`
  (16: fp16, as KIVI stores them).
- **Recency tiers**: `bits=(16, 4, 2)` with `tiers=(R, N)`: token groups whose newest
  token is among the R most recent tokens stay at 16 bits (fp16), the next N at 4 bits,
  all older at 2. A group (token positions [g*G, (g+1)*G)) moves tier only when its
  newest token has aged past the boundary, so a group is always quantized whole; the
  incomplete last group stays at the top tier (keys per channel cannot be quantized
  before their group is full: KIVI's residual). A group that moves from 4 to 2 bits is
  re-quantized from its stored 4-bit values (the fp16 originals are gone): `chain`.

Storage is exact: `storage_bits` counts codes and metadata of what `apply_policy` built,
and `policy_storage_bits` gives the same figure from the shapes alone.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np

FULL_BITS = 16
AXES = ("channel", "token")
"""`channel`: one scale/min per channel over a token group (KIVI's keys); `token`: one per
token over a channel group (KIVI's values)."""
"""Bits of an unquantized (fp16) cache element: a tier at >= 16 bits is stored as fp16."""


@dataclass(frozen=True)
class KVPolicy:
    """What a KV cache keeps and at which precision.

    `bits[i]` is the precision of tier i (16 = fp16, otherwise asymmetric integers);
    `tiers[i]` the number of most recent tokens tier i covers after the tiers before
    it; the last tier takes every older token, so len(tiers) == len(bits) - 1.
    """

    bits: tuple[int, ...] = (16,)
    tiers: tuple[int, ...] = ()
    group: int = 32
    sink: int = 0
    window: int = 0
    meta_bits: int = 16
    key_axis: str = "channel"
    value_axis: str = "token"

    def __post_init__(self) -> None:
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str:
        """Why the policy is invalid ('' when it is valid)."""
        if not self.bits:
            return "bits must name at least one tier"
        if len(self.tiers) != len(self.bits) - 1:
            return (f"tiers must give the size of every tier but the last: {len(self.bits)} "
                    f"bit widths need {len(self.bits) - 1} tier sizes, got {len(self.tiers)}")
        if any(b < 1 or b > FULL_BITS for b in self.bits):
            return f"bits must lie in [1, {FULL_BITS}], got {list(self.bits)}"
        if any(a < b for a, b in itertools.pairwise(self.bits)):
            return f"bits must not increase with age (older tiers get fewer bits), got {list(self.bits)}"
        if any(t < 0 for t in self.tiers):
            return f"tier sizes must be >= 0, got {list(self.tiers)}"
        if self.group < 1:
            return f"group must be >= 1, got {self.group}"
        if self.sink < 0 or self.window < 0:
            return f"sink and window must be >= 0, got sink={self.sink} window={self.window}"
        if self.key_axis not in AXES or self.value_axis not in AXES:
            return (f"key_axis and value_axis must be one of {', '.join(AXES)}, got "
                    f"{self.key_axis!r} and {self.value_axis!r}")
        if self.meta_bits not in (16, 32):
            return f"meta_bits must be 16 or 32, got {self.meta_bits}"
        return ""

    @property
    def evicts(self) -> bool:
        return self.window > 0

    @property
    def quantizes(self) -> bool:
        return any(b < FULL_BITS for b in self.bits)

    def label(self) -> str:
        parts = ["/".join(map(str, self.bits))]
        if self.tiers:
            parts.append("tiers=" + "/".join(map(str, self.tiers)))
        if self.evicts:
            parts.append(f"sink={self.sink} window={self.window}")
        return " ".join(parts)


def kept_positions(length: int, sink: int, window: int) -> np.ndarray:
    """Token positions an eviction policy keeps of a cache of `length` tokens, ascending.

    window == 0 keeps every token; otherwise [0, sink) and [length - window, length).
    """
    positions = np.arange(length)
    if window <= 0:
        return positions
    keep = (positions < sink) | (positions >= length - window)
    return positions[keep]


def group_tiers(length: int, policy: KVPolicy) -> np.ndarray:
    """Tier index of each token group of a cache of `length` tokens (groups oldest first).

    A full group's age is that of its newest token (length - 1 - last position); it is
    in tier i when the sum of tiers[:i] <= age < sum of tiers[:i+1]. The incomplete last
    group is always in tier 0.
    """
    g = policy.group
    count = -(-length // g)
    newest = np.minimum((np.arange(count) + 1) * g, length) - 1
    age = length - 1 - newest
    bounds = np.cumsum(policy.tiers, dtype=np.int64)
    tiers = np.searchsorted(bounds, age, side="right")
    if length % g:
        tiers[-1] = 0
    return tiers.astype(np.int64)


def token_bits(length: int, policy: KVPolicy) -> np.ndarray:
    """Bit width of each token position's elements under the policy's recency tiers."""
    tiers = group_tiers(length, policy)
    per_group = np.asarray(policy.bits, dtype=np.int64)[tiers]
    return np.repeat(per_group, policy.group)[:length]


def _round_meta(x: np.ndarray, meta_bits: int) -> np.ndarray:
    """Scale/min as stored: fp16 (meta_bits=16) or fp32."""
    return x.astype(np.float16 if meta_bits == 16 else np.float32).astype(np.float64)


def quantize_groups(x: np.ndarray, bits: int, axis: int, meta_bits: int = 16
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric `bits`-bit quantization of x with one scale and min per slice that
    reduces over `axis` (x is one group). Returns (codes, scale, min); x ~ codes*scale+min.

    The min and scale are rounded to their stored precision before coding, so decoding
    the stored numbers gives exactly what the attention computes with.
    """
    values = x.astype(np.float64)
    lo = _round_meta(values.min(axis=axis, keepdims=True), meta_bits)
    hi = values.max(axis=axis, keepdims=True)
    levels = 2**bits - 1
    scale = _round_meta((hi - lo) / levels, meta_bits)
    scale = np.where(scale > 0, scale, 1.0)
    codes = np.clip(np.rint((values - lo) / scale), 0, levels).astype(np.int64)
    return codes, scale, lo


def dequantize_groups(codes: np.ndarray, scale: np.ndarray, lo: np.ndarray) -> np.ndarray:
    return codes.astype(np.float64) * scale + lo


@dataclass
class QuantizedCache:
    """One head's K or V after a policy: the values attention reads and what is stored.

    `values` [S_kept, d] are the dequantized values (fp16-rounded for full-precision
    tiers); `code_bits` the bits of integer codes and fp16 elements stored; `meta_bits`
    the bits of scales and mins; `groups` the quantized groups (for dequantization work).
    """

    values: np.ndarray
    code_bits: int = 0
    meta_bits: int = 0
    dequantized_elements: int = 0
    groups: int = 0
    tier_tokens: dict[int, int] = field(default_factory=dict)

    @property
    def storage_bits(self) -> int:
        return self.code_bits + self.meta_bits


def _chain(x: np.ndarray, bit_path: list[int], axis: int, meta_bits: int
           ) -> tuple[np.ndarray, int, int]:
    """Quantize x through each width of `bit_path` in turn (each from the previous
    dequantized values); returns the final values, its code bits and meta bits."""
    values = x.astype(np.float16).astype(np.float64)
    code_bits, meta = values.size * FULL_BITS, 0
    for bits in bit_path:
        if bits >= FULL_BITS:
            continue
        codes, scale, lo = quantize_groups(values, bits, axis, meta_bits)
        values = dequantize_groups(codes, scale, lo)
        code_bits = codes.size * bits
        meta = (scale.size + lo.size) * meta_bits
    return values, code_bits, meta


def quantize_cache(x: np.ndarray, policy: KVPolicy, kind: str,
                   length: int | None = None) -> QuantizedCache:
    """Apply the policy's recency tiers to one head's keys (`kind='key'`, per channel
    over token groups) or values (`kind='value'`, per token over channel groups).

    `x` [S, d] holds the kept tokens; `length` is the full sequence length the tiers are
    measured against (default S: no eviction). Eviction keeps tiers by absolute
    position, so pass the kept rows and the original length's tiers are looked up.
    """
    if kind not in ("key", "value"):
        raise ValueError(f"kind must be 'key' or 'value', got {kind!r}")
    s, d = x.shape
    length = s if length is None else length
    positions = kept_positions(length, policy.sink, policy.window)
    if positions.size != s:
        raise ValueError(f"{s} cached tokens, but the policy keeps {positions.size} of {length}")
    g = policy.group
    tiers = group_tiers(length, policy)
    out = np.empty((s, d), dtype=np.float64)
    result = QuantizedCache(out)
    group_of = positions // g
    for group in np.unique(group_of):
        rows = np.flatnonzero(group_of == group)
        tier = int(tiers[group])
        path = list(policy.bits[: tier + 1])
        result.tier_tokens[tier] = result.tier_tokens.get(tier, 0) + rows.size
        block = x[rows]
        axis = policy.key_axis if kind == "key" else policy.value_axis
        if axis == "channel":
            values, code_bits, meta = _chain(block, path, 0, policy.meta_bits)
        else:
            values, code_bits, meta = _value_groups(block, path, g, policy.meta_bits)
        out[rows] = values
        result.code_bits += code_bits
        result.meta_bits += meta
        if policy.bits[tier] < FULL_BITS:
            result.dequantized_elements += block.size
            result.groups += 1 if axis == "channel" else rows.size * -(-d // g)
    return result


def _value_groups(block: np.ndarray, path: list[int], g: int, meta_bits: int
                  ) -> tuple[np.ndarray, int, int]:
    """Values: per token, channels in groups of g, each group quantized on its own."""
    out = np.empty(block.shape, dtype=np.float64)
    code_bits = meta = 0
    for c0 in range(0, block.shape[1], g):
        values, cb, mb = _chain(block[:, c0:c0 + g], path, 1, meta_bits)
        out[:, c0:c0 + g] = values
        code_bits += cb
        meta += mb
    return out, code_bits, meta


@dataclass
class CacheResult:
    """K and V of every head after a policy, and what storing them costs."""

    keys: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    storage_bits: int
    dense_bits: int
    dequantized_elements: int
    tier_tokens: dict[int, int]


def apply_policy(k: np.ndarray, v: np.ndarray, policy: KVPolicy) -> CacheResult:
    """The policy applied to a whole cache K, V [H, S, d] (or [S, d]).

    Returns the kept positions, the values attention computes with ([H, S_kept, d]),
    the exact storage in bits and the fp16 storage of the uncompressed cache.
    """
    k3 = k[None] if k.ndim == 2 else k
    v3 = v[None] if v.ndim == 2 else v
    length = k3.shape[1]
    positions = kept_positions(length, policy.sink, policy.window)
    keys = np.empty((k3.shape[0], positions.size, k3.shape[2]))
    values = np.empty((v3.shape[0], positions.size, v3.shape[2]))
    bits = dequant = 0
    tiers: dict[int, int] = {}
    for h in range(k3.shape[0]):
        for out, x, kind in ((keys, k3, "key"), (values, v3, "value")):
            q = quantize_cache(x[h, positions], policy, kind, length)
            out[h] = q.values
            bits += q.storage_bits
            dequant += q.dequantized_elements
            for tier, count in q.tier_tokens.items():
                tiers[tier] = tiers.get(tier, 0) + count
    if k.ndim == 2:
        keys, values = keys[0], values[0]
    dense = (k3.size + v3.size) * FULL_BITS
    return CacheResult(keys, values, positions, bits, dense, dequant, tiers)


def _read_positions(policy: KVPolicy, length: int, alive: np.ndarray | None) -> np.ndarray:
    """Positions a read touches: those eviction keeps, and of them the `alive` ones
    (runtime token pruning's flags over the `length` positions) when given."""
    positions = kept_positions(length, policy.sink, policy.window)
    if alive is None:
        return positions
    return positions[np.asarray(alive, dtype=bool)[positions]]


def policy_storage_bits(policy: KVPolicy, heads: int, length: int, key_dim: int,
                        value_dim: int, alive: np.ndarray | None = None) -> int:
    """Exact bits of a cache of `length` tokens under the policy, from shapes alone
    (with `alive`: the bits a read of only the alive tokens fetches, a group's
    metadata once if any of its tokens is alive).

    Per kept token group in a quantized tier of b bits with t kept tokens: t*d*b code bits
    plus 2*d metadata per channel-axis tensor (scale and min per channel) or
    2*t*ceil(d/G) per token-axis tensor (per token, per channel group); fp16 tiers t*d*16.
    """
    g = policy.group
    positions = _read_positions(policy, length, alive)
    tiers = group_tiers(length, policy)
    counts = np.bincount(positions // g, minlength=tiers.size)
    total = 0
    for group, t in enumerate(counts):
        if t == 0:
            continue
        b = policy.bits[int(tiers[group])]
        if b >= FULL_BITS:
            total += t * (key_dim + value_dim) * FULL_BITS
            continue
        for dim, axis in ((key_dim, policy.key_axis), (value_dim, policy.value_axis)):
            total += t * dim * b + _meta_count(axis, t, dim, g) * policy.meta_bits
    return heads * int(total)


def _meta_count(axis: str, tokens: int, dim: int, group: int) -> int:
    """Scales and mins of one quantized token group of `tokens` rows and `dim` channels."""
    if axis == "channel":
        return 2 * dim
    return 2 * tokens * -(-dim // group)


@dataclass
class Compressed:
    """One of K or V [H, S, d] after a policy: what attention reads and what it cost."""

    values: np.ndarray
    positions: np.ndarray
    storage_bits: int
    dequantized_elements: int


def compress(x: np.ndarray, policy: KVPolicy, role: str) -> Compressed:
    """Evict and quantize one cache tensor [H, S, d] (`role` 'key' or 'value'):
    the semantics of `sparsec.kv_compress`."""
    length = x.shape[-2]
    positions = kept_positions(length, policy.sink, policy.window)
    out = np.empty((x.shape[0], positions.size, x.shape[2]))
    bits = dequant = 0
    for h in range(x.shape[0]):
        q = quantize_cache(x[h, positions], policy, role, length)
        out[h] = q.values
        bits += q.storage_bits
        dequant += q.dequantized_elements
    return Compressed(out, positions, bits, dequant)


def policy_dequantized_elements(policy: KVPolicy, heads: int, length: int, dim: int,
                                alive: np.ndarray | None = None) -> int:
    """Elements of one cache tensor [heads, length, dim] stored as integers (each costs a
    multiply and an add to dequantize), from shapes alone (of the `alive` tokens only
    when given)."""
    positions = _read_positions(policy, length, alive)
    bits = np.asarray(policy.bits)[group_tiers(length, policy)[positions // policy.group]]
    return heads * dim * int(np.count_nonzero(bits < FULL_BITS))


def policy_storage_bits_one(policy: KVPolicy, role: str, heads: int, length: int,
                            dim: int, alive: np.ndarray | None = None) -> int:
    """Exact bits of one cache tensor (keys or values) under the policy."""
    both = policy_storage_bits(policy, heads, length, dim, 0, alive) if role == "key" else \
        policy_storage_bits(policy, heads, length, 0, dim, alive)
    return both


def group_paths(length: int, policy: KVPolicy) -> list[tuple[int, ...]]:
    """Per token group, the widths it was quantized through (its tier's prefix of bits)."""
    return [tuple(policy.bits[: int(t) + 1]) for t in group_tiers(length, policy)]


def quantize_paths(x: np.ndarray, kept: np.ndarray, paths: list[tuple[int, ...]], group: int,
                   axis: str, meta_bits: int = 16) -> np.ndarray:
    """Vectorized recency quantization of a cache x [H, S, d]: token group g goes through
    the widths `paths[g]` in turn (>= 16: fp16 only), over its `kept` tokens only.

    Equal, element for element, to `quantize_cache` on the kept rows when the paths are a
    policy's (`group_paths`); the online controller passes its own paths. Returns [H, S, d]
    with evicted rows left as they were (callers drop them).
    """
    h, s, d = x.shape
    ng = -(-s // group)
    padded = np.full((h, ng * group, d), np.nan)
    rows = np.flatnonzero(kept)
    padded[:, rows] = x[:, rows].astype(np.float16).astype(np.float64)
    blocks = padded.reshape(h, ng, group, d)
    if axis == "token":
        dp = -(-d // group) * group
        wide = np.full((h, ng, group, dp), np.nan)
        wide[..., :d] = blocks
        blocks = wide.reshape(h, ng, group, dp // group, group)
    reduce = 2 if axis == "channel" else 4
    depth = max(len(p) for p in paths)
    for step in range(depth):
        by_bits: dict[int, list[int]] = {}
        for g, path in enumerate(paths):
            if step < len(path) and path[step] < FULL_BITS:
                by_bits.setdefault(path[step], []).append(g)
        for bits, groups in by_bits.items():
            sel = blocks[:, groups]
            with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (evicted) slices
                lo = _round_meta(np.nanmin(sel, axis=reduce, keepdims=True), meta_bits)
                hi = np.nanmax(sel, axis=reduce, keepdims=True)
                levels = 2**bits - 1
                scale = _round_meta((hi - lo) / levels, meta_bits)
                scale = np.where(scale > 0, scale, 1.0)
                codes = np.clip(np.rint((sel - lo) / scale), 0, levels)
            blocks[:, groups] = codes * scale + lo
    out = blocks.reshape(h, ng * group, -1)[:, :s, :d]
    result = np.array(x, dtype=np.float64, copy=True)
    result[:, rows] = out[:, rows]
    return result


def compress_fast(x: np.ndarray, policy: KVPolicy, role: str) -> np.ndarray:
    """`compress(x, policy, role).values`, vectorized over heads and groups."""
    length = x.shape[-2]
    positions = kept_positions(length, policy.sink, policy.window)
    kept = np.zeros(length, dtype=bool)
    kept[positions] = True
    axis = policy.key_axis if role == "key" else policy.value_axis
    out = quantize_paths(x, kept, group_paths(length, policy), policy.group, axis,
                         policy.meta_bits)
    return out[:, positions]
