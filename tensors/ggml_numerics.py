"""llama.cpp's CPU arithmetic as `Numerics` (the 'referee' option of `sparsec eval llm`).

This reproduces, operation for operation and rounding for rounding, the ggml CPU kernels
that llama-cpp-python 0.3.36 (built natively: AVX512F/BW/DQ/VL/VNNI, FMA, F16C,
GGML_USE_LLAMAFILE) runs for a Q4_1 Llama with flash attention off, an f16 KV cache and one
thread. It is meant to be bit-exact, not merely close: llama.cpp quantizes every GEMM's
activations to 8 bits, and a last-bit difference upstream flips a quantization step and
grows through 30 blocks (llama.cpp with flash attention on agrees with itself off on only
95-98% of next tokens). The kernels, read from that release's source and checked in the
built library's disassembly (docs/decisions.md):

- **Q4_1 weights x Q8_1 activations** (ggml_vec_dot_q4_1_q8_1, AVX2 branch; no llamafile
  or repack path takes Q4_1 on x86). quantize_row_q8_1: per block of 32, d = f32(max|x| /
  127), id = f32(127 / max|x|), q = round-half-even(x * id), stored d16 = f16(d) and
  s16 = f16(d * sum q). The dot keeps 8 float lanes; lane j of block b gets the exact
  integer sum of elements 4j..4j+3 (vpdpbusd), and acc_j = fma(d16_w * d16_x, lane, acc_j)
  block after block; a scalar summs = fma(m16_w, s16_x, summs) (GCC contracted it);
  result = hsum8(acc) + summs, hsum8 = ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
- **Q8_0 weights x Q8_0 activations** (the tied output matrix): llamafile's
  tinyBLAS_Q0_AVX (and ggml_vec_dot_q8_0_q8_0 for one row) compute the same 8-lane
  fma chain without summs.
- **The KV cache is f16**; K Q^T and V^T P are ggml_mul_mat with an f16 first operand, so
  Q and the probabilities are rounded to f16 and llamafile's tinyBLAS<16, __m512> runs
  them: 16 lanes over the reduction index (lane = index mod 16), acc = fma(a, b, acc) in
  index order (the f16 x f16 product is exact in f32, so this is a float32 add), then
  _mm512_reduce_add_ps's tree (8+8, 4+4, [0]+[2] and [1]+[3], last two). Masked and
  padding entries are exact zeros and change nothing.
- **Softmax** (ggml_compute_forward_soft_max_f32): w = kq * scale (f32), max, then
  ggml_vec_soft_max_f32: e = ggml_v_expf(w - max) (ggml's AVX512 polynomial, not expf),
  sum += double(reduce_add(16 lanes)) per chunk of 16, p = e * f32(1.0 / sum).
- **RoPE** (mode normal, adjacent pairs): theta_scale = powf(base, -2/n_dims), theta_i =
  position multiplied by theta_scale i times in f32, cos/sin from glibc's sincosf (called
  here through ctypes: it is the libm llama.cpp links), then y0 = fma(x0, cos, -(x1 sin)),
  y1 = fma(x0, sin, x1 cos) with the inner products rounded to f32 (the compiled code).
- **SiLU** in the SwiGLU: x / (1 + ggml_v_expf(-x)) in f32, then times up.
- **RMSNorm** (ggml_compute_forward_rms_norm_f32, fused with the weight multiply):
  squares in f32, their sum in double, mean = f32(sum / n), scale = 1 / sqrtf(mean + eps),
  y = x * scale * w. Residual adds are f32 adds.

An fma(a, b, c) of float32 numbers is emulated as float32(float64(a) * b + c): the
product is exact in float64 and the sum rounds twice, which differs from one rounding only
when the double sum lands exactly on a float32 midpoint (about 2^-29 of the cases).
A one-token decode step takes other kernels where llamafile's sgemm declines one row:
ggml_vec_dot_f16 (4 x 16 lanes) for the attention products, the same vec_dot for the
GEMMs (which is what the Q8_0 sgemm computes anyway). The GEMM lane chains run in a numba
kernel where numba imports, else in numpy; both give the same bits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np

from sparsec.tensors import block_ops
from sparsec.tensors.gguf_model import QK
from sparsec.tensors.hooks import FLOAT, Linear, Numerics, round_f16

F32, F64 = np.float32, np.float64

LANES = 8
"""Float lanes of the AVX2 integer dot kernels (one per 4 consecutive elements of a block)."""

SGEMM_LANES = 16
"""Float lanes of llamafile's tinyBLAS on AVX512 (f16 operands widened to f32)."""

TILE_ELEMENTS = 1 << 17
"""Outputs x lanes of one GEMM tile of the numpy lane path (small, so it stays in cache)."""

TILE_ROWS = 32
"""Rows of one tile of the numpy lane path (activation rows of the GEMM)."""

FEW_ROWS = 16
"""Fewer activation rows than this take the integer-lane variant of the numpy lane path."""


# --------------------------------------------------------------------------- float helpers

def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """fma(a, b, c) of float32 operands, rounded to float32 (see module doc)."""
    return (np.asarray(a, F64) * np.asarray(b, F64) + np.asarray(c, F64)).astype(F32)


def hsum8(acc: np.ndarray) -> np.ndarray:
    """hsum_float_8 over the last axis (8 lanes): ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7))."""
    quad = acc[..., 4:] + acc[..., :4]
    pair = quad[..., :2] + quad[..., 2:]
    return pair[..., 0] + pair[..., 1]


def reduce16(acc: np.ndarray) -> np.ndarray:
    """_mm512_reduce_add_ps over the last axis (16 lanes), GCC's halving tree."""
    eight = acc[..., 8:] + acc[..., :8]
    four = eight[..., 4:] + eight[..., :4]
    return (four[..., 0] + four[..., 2]) + (four[..., 1] + four[..., 3])


_EXP = {name: F32(float.fromhex(text)) for name, text in (
    ("shift", "0x1.8p23"), ("log2e", "0x1.715476p+0"), ("ln2_hi", "0x1.62e4p-1"),
    ("ln2_lo", "0x1.7f7d1cp-20"), ("c5", "0x1.0e4020p-7"), ("c4", "0x1.573e2ep-5"),
    ("c3", "0x1.555e66p-3"), ("c2", "0x1.fffdb6p-2"), ("c1", "0x1.ffffecp-1"))}


def ggml_v_expf(x: np.ndarray) -> np.ndarray:
    """ggml_v_expf (vec.h, AVX512 branch): exp by range reduction n = round(x / ln 2) and a
    degree-5 polynomial, each step an fma or a float32 operation as in the source;
    |n| > 192 gives 0 (n <= 0) or inf."""
    x = np.asarray(x, F32)
    k = _EXP
    with np.errstate(invalid="ignore", over="ignore"):
        return _v_expf(x, k)


def _v_expf(x: np.ndarray, k: dict) -> np.ndarray:
    n = fma32(x, k["log2e"], k["shift"]) - k["shift"]
    b = fma32(-n, k["ln2_lo"], fma32(-n, k["ln2_hi"], x))
    u = b * b
    j = fma32(fma32(fma32(k["c5"], b, k["c4"]), u, fma32(k["c3"], b, k["c2"])), u,
              fma32(k["c1"], b, F32(1.0)))
    finite_n = np.where(np.isfinite(n), n, 0).astype(np.int32)
    result = np.ldexp(j, finite_n).astype(F32)
    out_of_range = ~(np.abs(n) <= 192)
    if np.any(out_of_range):
        result = np.where(out_of_range, np.where(n <= 0, F32(0), F32(np.inf)), result).astype(F32)
    return result


# --------------------------------------------------------------------------- libm (RoPE)

@functools.cache
def _libm() -> ctypes.CDLL | None:
    """The C math library llama.cpp calls sinf/cosf/powf from (None where there is none)."""
    name = ctypes.util.find_library("m")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    for fn, args in (("sinf", 1), ("cosf", 1), ("powf", 2)):
        getattr(lib, fn).restype = ctypes.c_float
        getattr(lib, fn).argtypes = [ctypes.c_float] * args
    return lib


def _libm_map(fn: str, values: np.ndarray) -> np.ndarray:
    """libm's float function on every element (float64 numpy as a stand-in without libm)."""
    lib = _libm()
    if lib is None:
        return getattr(np, {"sinf": "sin", "cosf": "cos"}[fn])(values.astype(F64)).astype(F32)
    call = getattr(lib, fn)
    return np.array([call(v) for v in values.tolist()], dtype=F32).reshape(values.shape)


@functools.lru_cache(maxsize=64)
def rope_cache(position_range: tuple[int, int], base: float, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """ggml_rope_cache_init for positions start..stop-1: (cos, sin) [T, dims/2] float32."""
    lib = _libm()
    exponent = F32(-2.0) / F32(dims)
    scale = F32(lib.powf(F32(base), exponent)) if lib else F32(float(F32(base)) ** float(exponent))
    theta = np.arange(*position_range).astype(F32)
    angles = np.empty((len(theta), dims // 2), dtype=F32)
    for i in range(dims // 2):
        angles[:, i] = theta
        theta = theta * scale
    unique, inverse = np.unique(angles, return_inverse=True)
    cos, sin = _libm_map("cosf", unique), _libm_map("sinf", unique)
    return cos[inverse].reshape(angles.shape), sin[inverse].reshape(angles.shape)


# --------------------------------------------------------------------------- GEMM

def quantize_q8_blocks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ggml's quantize_row_q8_0/q8_1 (AVX2) of rows x [T, K] in blocks of 32.

    Returns (q [T, K/32, 32] integer-valued float32, d [T, K/32, 1] = f16(max|x|/127)
    widened to float32, s [T, K/32] = f16(d * sum q) with d unrounded, as Q8_1 stores it).
    """
    t, k = x.shape
    blocks = x.astype(F32, copy=False).reshape(t, k // QK, QK)
    amax = np.max(np.abs(blocks), axis=-1, keepdims=True)
    d = amax / F32(127.0)
    inv = np.divide(F32(127.0), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.rint(blocks * inv)
    s = round_f16(d[..., 0] * q.sum(axis=-1))
    return q, round_f16(d), s


def lane_dot(xq: np.ndarray, xd: np.ndarray, codes: np.ndarray, wd: np.ndarray,
             mins: np.ndarray | None = None, xs: np.ndarray | None = None,
             compiled: bool | None = None) -> np.ndarray:
    """The 8-lane block dot of ggml_vec_dot_q4_1_q8_1 / q8_0_q8_0 (module doc) for all
    rows at once: activation codes xq [T, B, 32] (integer-valued) with scales xd [T, B];
    weight codes [B, 32, N] (`element_layout`, uint8 or int8) with scales wd [B, N]; with
    mins [B, N] and xs [T, B] the Q4_1 summs term. -> [T, N] float32.

    Lane j of block b is the exact integer sum over elements 4j..4j+3; the fma's product
    scale * lane is exact in float64 and one add rounds it like the fma. `compiled`: True
    runs the numba kernel (a loop over rows and blocks, vectorized over the N outputs),
    False the numpy one (`_lane_dot_numpy`), None the numba kernel where numba imports.
    Both give the same bits (tests).
    """
    kernel = _lane_chain_kernel() if compiled is not False else None
    if compiled and kernel is None:
        raise RuntimeError("the compiled lane kernel needs numba")
    if kernel is None:
        return _lane_dot_numpy(xq, xd, codes, wd, mins, xs)
    t, n = xq.shape[0], codes.shape[-1]
    out = np.empty((t, n), dtype=F32)
    has_mins = mins is not None
    kernel(np.ascontiguousarray(xq, dtype=np.int32), np.ascontiguousarray(xd, dtype=F32), codes,
           np.ascontiguousarray(wd, dtype=F32), mins if has_mins else np.zeros((1, 1), F32),
           np.ascontiguousarray(xs, dtype=F32) if has_mins else np.zeros((1, 1), F32), has_mins, out)
    return out


@functools.cache
def _lane_chain_kernel():
    """The numba kernel of `lane_dot` (compiled once, cached on disk), or None without numba."""
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, fastmath=False, boundscheck=False, error_model="numpy")(_lane_chain)


def _lane_chain(xq, xd, codes, wd, mins, xs, has_mins, out):  # pragma: no cover - runs compiled
    """Loop form of `lane_dot` for numba: per row, 8 lane accumulators per output column,
    blocks in order; the innermost loop over the N columns is what vectorizes."""
    rows, blocks, _ = xq.shape
    n = codes.shape[2]
    acc = np.empty((8, n), np.float32)
    summs = np.empty(n, np.float32)
    for t in range(rows):
        acc[:] = 0.0
        summs[:] = 0.0
        for b in range(blocks):
            x_scale = xd[t, b]
            w_scale = wd[b]
            for j in range(8):
                x0, x1 = xq[t, b, 4 * j], xq[t, b, 4 * j + 1]
                x2, x3 = xq[t, b, 4 * j + 2], xq[t, b, 4 * j + 3]
                c0, c1 = codes[b, 4 * j], codes[b, 4 * j + 1]
                c2, c3 = codes[b, 4 * j + 2], codes[b, 4 * j + 3]
                lane_acc = acc[j]
                for c in range(n):
                    lane = (x0 * np.int32(c0[c]) + x1 * np.int32(c1[c])
                            + x2 * np.int32(c2[c]) + x3 * np.int32(c3[c]))
                    scale = np.float64(x_scale * w_scale[c])            # f16 x f16: exact in f32
                    lane_acc[c] = np.float32(scale * np.float64(lane) + np.float64(lane_acc[c]))
            if has_mins:
                for c in range(n):
                    summs[c] = np.float32(summs[c] + np.float32(mins[b, c] * xs[t, b]))
        for c in range(n):
            q0 = np.float32(acc[0, c] + acc[4, c])
            q1 = np.float32(acc[1, c] + acc[5, c])
            q2 = np.float32(acc[2, c] + acc[6, c])
            q3 = np.float32(acc[3, c] + acc[7, c])
            out[t, c] = np.float32(np.float32(np.float32(q0 + q2) + np.float32(q1 + q3)) + summs[c])


def _lane_dot_numpy(xq: np.ndarray, xd: np.ndarray, codes: np.ndarray, wd: np.ndarray,
                    mins: np.ndarray | None, xs: np.ndarray | None) -> np.ndarray:
    """`lane_dot` in numpy: the chain runs over the blocks on a tile of rows and columns
    small enough to stay in cache. From FEW_ROWS rows on, the exact product comes from one
    float64 matrix product of the scaled operands, (xq xd) . (codes wd) over 4 elements
    (terms of at most 38 bits), the weight scaling paid once per column tile; below, from
    the integer lane sums (exact in float32) times the scale."""
    t, nb, _ = xq.shape
    n = codes.shape[-1]
    codes = codes.reshape(nb, LANES, 4, n)                                               # [B, 8, 4, N]
    few = t < FEW_ROWS
    xl = xq.astype(F32) if few else (xq * xd[..., None]).astype(F64)                     # exact
    xl = xl.reshape(t, nb, LANES, 4).transpose(1, 2, 0, 3)                               # [B, 8, T, 4]
    out = np.empty((t, n), dtype=F32)
    rows = min(t, TILE_ROWS)
    cols = max(1, TILE_ELEMENTS // (LANES * rows))
    for c0 in range(0, n, cols):
        c1 = min(n, c0 + cols)
        wl = (codes[..., c0:c1].astype(F32) if few
              else codes[..., c0:c1] * wd[:, None, None, c0:c1].astype(F64))
        for r0 in range(0, t, rows):
            r1 = min(t, r0 + rows)
            out[r0:r1, c0:c1] = _lane_tile(np.ascontiguousarray(xl[:, :, r0:r1]), wl,
                                           xd[r0:r1] if few else None, wd[:, c0:c1] if few else None,
                                           None if mins is None else mins[:, c0:c1],
                                           None if xs is None else xs[r0:r1])
    return out


def _lane_tile(xl: np.ndarray, wl: np.ndarray, xd: np.ndarray | None, wd: np.ndarray | None,
               mins: np.ndarray | None, xs: np.ndarray | None) -> np.ndarray:
    """One tile of `_lane_dot_numpy`: xl [B, 8, t, 4], wl [B, 8, 4, c], scaled already
    unless the scales xd [t, B] and wd [B, c] are given."""
    acc = np.zeros((LANES, xl.shape[2], wl.shape[-1]), dtype=F32)
    exact = np.empty(acc.shape, dtype=F64)
    summs = np.zeros(acc.shape[1:], dtype=F32)
    for b in range(xl.shape[0]):
        if xd is None:
            np.matmul(xl[b], wl[b], out=exact)                 # scale * lane, exact
        else:
            lanes = np.matmul(xl[b], wl[b])                    # integer lane sums, exact
            np.multiply(lanes, (xd[:, b, None] * wd[None, b]).astype(F64), out=exact)
        np.add(exact, acc, out=acc, casting="unsafe")          # the fma: one rounding to f32
        if mins is not None:
            summs += xs[:, b, None] * mins[None, b]            # f16 x f16 is exact: fma = add
    return hsum8(np.moveaxis(acc, 0, -1)) + summs


def element_layout(codes: np.ndarray) -> np.ndarray:
    """Weight codes [N, K] -> [K/32, 32, N] (block, element, row), their integer type kept."""
    n, k = codes.shape
    return np.ascontiguousarray(codes.reshape(n, k // QK, QK).transpose(1, 2, 0))


def ggml_gemm(x: np.ndarray, linear: Linear) -> np.ndarray:
    """x @ W^T the way ggml's CPU mul_mat computes it for W's storage type (module doc)."""
    quant = linear.quant
    if quant is None:
        return np.matmul(x.astype(F32, copy=False), linear.matrix.T)
    q, d, s = quantize_q8_blocks(x)
    codes, scales, mins = linear_aux(linear)
    if quant.kind == "Q8_0":
        return lane_dot(q, d[..., 0], codes, scales)
    return lane_dot(q, d[..., 0], codes, scales, mins, s)


def linear_aux(linear: Linear) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(codes in `element_layout`, scales [K/32, N], mins [K/32, N] or None; scales and
    mins float32), kept in linear.aux so every GEMM reuses them."""
    if "ggml_codes" not in linear.aux:
        quant = linear.quant
        linear.aux["ggml_codes"] = element_layout(quant.codes)
        linear.aux["ggml_scales"] = np.ascontiguousarray(quant.scales.astype(F32).T)
        if quant.mins is not None:
            linear.aux["ggml_mins"] = np.ascontiguousarray(quant.mins.astype(F32).T)
    return linear.aux["ggml_codes"], linear.aux["ggml_scales"], linear.aux.get("ggml_mins")


def prepare(linear: Linear) -> Linear:
    """Reject weight types this emulation does not cover; lay the codes out by lane."""
    if linear.quant is not None and linear.quant.kind not in ("Q4_1", "Q8_0"):
        raise ValueError(f"{linear.name}: ggml numerics cover Q4_1 and Q8_0 weights, not {linear.quant.kind}")
    if linear.quant is not None:
        linear_aux(linear)
    return linear


# --------------------------------------------------------------------------- other ops

def ggml_rmsnorm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """ggml_compute_forward_rms_norm_f32 (fused with the weight multiply): squares in f32,
    their sum in double, mean = f32(sum / n), scale = 1 / sqrtf(mean + eps) in f32,
    y = x * scale * w."""
    xf = x.astype(F32, copy=False)
    total = np.sum(xf * xf, axis=-1, keepdims=True, dtype=F64)
    mean = (total / xf.shape[-1]).astype(F32)
    scale = F32(1.0) / np.sqrt(mean + F32(eps))
    y = xf * scale
    return y if weight is None else y * weight.astype(F32, copy=False)


def _pad_last(x: np.ndarray, multiple: int) -> np.ndarray:
    extra = -x.shape[-1] % multiple
    if not extra:
        return x
    return np.concatenate([x, np.zeros(x.shape[:-1] + (extra,), x.dtype)], axis=-1)


def ggml_softmax(scores: np.ndarray) -> np.ndarray:
    """ggml_vec_soft_max_f32 after the scale: e = ggml_v_expf(x - max), the sum in double
    of 16-lane float reductions, p = e * f32(1 / sum). Masked entries (-inf) give 0."""
    xf = scores.astype(F32, copy=False)
    e = ggml_v_expf(xf - np.max(xf, axis=-1, keepdims=True))
    chunks = _pad_last(e, SGEMM_LANES)
    chunks = chunks.reshape(chunks.shape[:-1] + (-1, SGEMM_LANES))
    total = np.zeros(e.shape[:-1], dtype=F64)
    for c in range(chunks.shape[-2]):
        total += reduce16(chunks[..., c, :])
    return e * (1.0 / total)[..., None].astype(F32)


def ggml_rope(x: np.ndarray, positions: np.ndarray, base: float, head_dim: int | None,
              convention: str) -> np.ndarray:
    """ggml's rope_f32 in normal mode (module doc); other conventions as block_ops, with
    ggml's angles."""
    xf, head_dim = block_ops._check_rope(x, positions, head_dim, convention)
    positions = np.asarray(positions)
    start = int(positions[0]) if len(positions) else 0
    if not np.array_equal(positions, np.arange(start, start + len(positions))):
        raise ValueError("ggml rope emulation expects consecutive positions")
    cos, sin = rope_cache((start, start + len(positions)), float(base), head_dim)
    if convention != "normal":
        return block_ops.rotate_pairs(xf, cos, sin, head_dim, convention)
    t = xf.shape[0]
    pairs = xf.reshape(t, -1, head_dim // 2, 2)
    c, s = cos[:, None, :], sin[:, None, :]
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = np.empty_like(pairs)
    out[..., 0] = fma32(x0, c, -(x1 * s))
    out[..., 1] = fma32(x0, s, x1 * c)
    return out.reshape(xf.shape)


def ggml_silu(x: np.ndarray) -> np.ndarray:
    """ggml_v_silu: x / (1 + ggml_v_expf(-x)) in float32."""
    xf = np.asarray(x, F32)
    return xf / (F32(1.0) + ggml_v_expf(-xf))


def _lane_sums(a: np.ndarray, b: np.ndarray, lanes: int) -> np.ndarray:
    """Per-lane float32 sums of exact f16 x f16 products, index order within each lane:
    a [..., M, K], b [..., N, K] -> [lanes, ..., M, N] with lane = index mod `lanes`
    (lanes first, so the reductions read whole slabs; one lane at a time stays in cache)."""
    a, b = _pad_last(a, lanes), _pad_last(b, lanes)
    a_by_lane = np.ascontiguousarray(np.moveaxis(a.reshape(a.shape[:-1] + (-1, lanes)), (-1, -2), (0, 1)))
    b_by_lane = np.ascontiguousarray(np.moveaxis(b.reshape(b.shape[:-1] + (-1, lanes)), (-1, -2), (0, 1)))
    # a_by_lane [lanes, C, ..., M], b_by_lane [lanes, C, ..., N]
    shape = np.broadcast_shapes(a_by_lane.shape[2:] + (1,), b_by_lane.shape[2:-1] + (1, b_by_lane.shape[-1]))
    acc = np.empty((lanes,) + shape, dtype=F32)
    product = np.empty(shape, dtype=F32)
    for lane in range(lanes):
        np.multiply(a_by_lane[lane, 0][..., :, None], b_by_lane[lane, 0][..., None, :], out=acc[lane])
        for c in range(1, a_by_lane.shape[1]):
            np.multiply(a_by_lane[lane, c][..., :, None], b_by_lane[lane, c][..., None, :], out=product)
            acc[lane] += product                                               # exact products: fma = add
    return acc


def _reduce16_first(acc: np.ndarray) -> np.ndarray:
    """_mm512_reduce_add_ps over the leading axis (16 lanes)."""
    eight = acc[8:] + acc[:8]
    four = eight[4:] + eight[:4]
    return (four[0] + four[2]) + (four[1] + four[3])


def sgemm_f16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """tinyBLAS<16, __m512> over f16 operands: a [..., M, K] and b [..., N, K] (f16 values
    carried as float32, broadcasting in the leading axes) -> [..., M, N] (module doc)."""
    return _reduce16_first(_lane_sums(a, b, SGEMM_LANES))


VEC_DOT_F16_STEP = 64
"""ggml_vec_dot_f16 on AVX512 (no AVX512-FP16): 4 accumulators of 16 lanes per step of 64."""


def vec_dot_f16(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ggml_vec_dot_f16 (the mul_mat path of a single row, where llamafile's sgemm declines):
    index i feeds accumulator (i // 16) % 4, lane i % 16, in index order; then
    GGML_F32x16_REDUCE: s0 + s2, s1 + s3, their sum, _mm512_reduce_add_ps. Same operands
    and result shape as `sgemm_f16` (the lengths here are multiples of 64, so the scalar
    tail in double never runs; zero padding stands for it otherwise)."""
    acc = _lane_sums(a, b, VEC_DOT_F16_STEP)
    s = [acc[i * SGEMM_LANES:(i + 1) * SGEMM_LANES] for i in range(4)]
    return _reduce16_first((s[0] + s[2]) + (s[1] + s[3]))


def f16_mul_mat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ggml_mul_mat of f16 operands: llamafile's tinyBLAS for two or more rows of `a`
    (the tokens), ggml_vec_dot_f16 for one (a decode step)."""
    return sgemm_f16(a, b) if a.shape[-2] >= 2 else vec_dot_f16(a, b)


def _scores(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    """kq = K Q^T of f16 operands (q [G, g, Tq, d], k [G, Tk, d]), then * f32 scale."""
    return f16_mul_mat(round_f16(q), round_f16(k)[:, None]) * F32(scale)


def _values(p: np.ndarray, v: np.ndarray) -> np.ndarray:
    """V^T P of f16 operands (p [G, g, Tq, Tk], v [G, Tk, d]) -> [G, g, Tq, d]."""
    return f16_mul_mat(round_f16(p), np.swapaxes(round_f16(v), -1, -2)[:, None])


GGML_CPU = FLOAT.replace("referee", prepare_weight=prepare, gemm=ggml_gemm, kv_store=round_f16,
                         attention_scores=_scores, attention_values=_values, rmsnorm=ggml_rmsnorm,
                         softmax=ggml_softmax, rope=ggml_rope, silu=ggml_silu)
"""llama.cpp CPU (no flash attention, f16 KV cache) numerics."""


def ggml_numerics(activations: bool = True, kv_f16: bool = True, attention_f16: bool = True) -> Numerics:
    """GGML_CPU with parts switched off, to measure what each part contributes."""
    kinds = {}
    if not activations:
        kinds["gemm"] = FLOAT.gemm
    if not kv_f16:
        kinds["kv_store"] = FLOAT.kv_store
    if not attention_f16:
        kinds.update(attention_scores=FLOAT.attention_scores, attention_values=FLOAT.attention_values)
    return GGML_CPU.replace("referee" if not kinds else "referee-partial", **kinds)
