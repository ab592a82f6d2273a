"""The polynomial nonlinear unit: exp, reciprocal, rsqrt as Taylor polynomials of a chosen
order with range reduction, evaluated by Horner's rule on the MAC datapath; sigmoid, SiLU,
GELU, softmax and RMSNorm composed from them. All arithmetic is float32 (the PE's FP
accumulator used as a fused multiply-add lane, (A)); range reduction is exact exponent
manipulation (frexp/ldexp). Equations, bounds and cycle counts: backends/bitllm/README.md.

    exp(x)   = 2^n * P_exp(r),   n = rint(x log2 e), r = x - n ln2,  |r| <= ln2/2
    1/x      = sign 2^-e * P_rec(f) / c, x = 2^e f, f in [1, 2), c = 1.5, t = f/c - 1
    1/sqrt x = 2^-e' * [1 or 1/sqrt 2] * P_rsq(f) / sqrt c,  x = 4^e' f, f in [1, 2) (or [2,4))
    sigmoid  = rec(1 + exp(-x)),  silu = x sigmoid(x),  gelu(tanh form) = x sigmoid(2u)

P_* are the order-p Taylor polynomials around 0 of e^r, 1/(1+t), (1+t)^(-1/2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FUNCTIONS = ("exp", "reciprocal", "rsqrt", "sigmoid", "silu", "gelu")
CENTER = 1.5
"""Expansion point of the reciprocal and rsqrt mantissa polynomials (A)."""
EXP_CLAMP = (-87.0, 88.0)
"""exp's input is clamped to float32's finite range (A: saturating range reduction)."""

F32 = np.float32


def taylor_coefficients(function: str, order: int) -> np.ndarray:
    """Coefficients a_0..a_p (float32) of the order-p Taylor polynomial the unit uses."""
    if order < 1:
        raise ValueError(f"Taylor order must be >= 1, got {order}")
    j = np.arange(order + 1)
    if function == "exp":
        return np.array([1.0 / math.factorial(int(i)) for i in j], dtype=F32)
    if function == "reciprocal":
        return ((-1.0) ** j).astype(F32)
    if function == "rsqrt":
        return np.array([math.comb(2 * int(i), int(i)) * (-0.25) ** int(i) for i in j], dtype=F32)
    raise ValueError(f"no polynomial for '{function}'")


def horner(coefficients: np.ndarray, t: np.ndarray) -> np.ndarray:
    """sum a_j t^j by Horner's rule in float32: p = a_p; p = p * t + a_j (one MAC each)."""
    t = np.asarray(t, dtype=F32)
    acc = np.full_like(t, coefficients[-1])
    for a in coefficients[-2::-1]:
        acc = (acc * t + a).astype(F32)
    return acc


def poly_exp(x: np.ndarray, order: int) -> np.ndarray:
    """e^x: n = rint(x log2 e), r = x - n ln2 (float32), 2^n * P(r); -inf -> 0."""
    x = np.asarray(x, dtype=F32)
    finite = np.clip(np.where(np.isneginf(x), EXP_CLAMP[0], x), *EXP_CLAMP).astype(F32)
    n = np.rint(finite * F32(1.0 / math.log(2.0)))
    r = (finite - n.astype(F32) * F32(math.log(2.0))).astype(F32)
    value = np.ldexp(horner(taylor_coefficients("exp", order), r), n.astype(np.int32))
    return np.where(np.isneginf(x), F32(0.0), value).astype(F32)


def _mantissa(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f in [1, 2), e) with |x| = f 2^e, for x != 0."""
    f, e = np.frexp(np.abs(x).astype(F32))
    return (f * F32(2.0)).astype(F32), (e - 1).astype(np.int32)


def poly_reciprocal(x: np.ndarray, order: int) -> np.ndarray:
    """1/x = sign(x) 2^-e (1/c) P(f/c - 1); 1/0 = inf, 1/inf = 0."""
    x = np.asarray(x, dtype=F32)
    safe = np.where((x == 0) | ~np.isfinite(x), F32(1.0), x)
    f, e = _mantissa(safe)
    t = (f * F32(1.0 / CENTER) - F32(1.0)).astype(F32)
    value = (horner(taylor_coefficients("reciprocal", order), t) * F32(1.0 / CENTER)).astype(F32)
    value = np.ldexp(value, -e) * np.sign(safe).astype(F32)
    value = np.where(x == 0, F32(np.inf), value)
    return np.where(np.isinf(x), F32(0.0), value).astype(F32)


def poly_rsqrt(x: np.ndarray, order: int) -> np.ndarray:
    """1/sqrt(x) for x > 0: x = f 2^e; an odd e moves a factor 2 into f ([2, 4) -> times
    1/sqrt 2 after the [1, 2) polynomial); 2^(-e/2) exactly."""
    x = np.asarray(x, dtype=F32)
    safe = np.where(x > 0, x, F32(1.0))
    f, e = _mantissa(safe)
    odd = (e & 1) == 1
    t = (f * F32(1.0 / CENTER) - F32(1.0)).astype(F32)
    value = (horner(taylor_coefficients("rsqrt", order), t) * F32(1.0 / math.sqrt(CENTER)))
    value = np.where(odd, value * F32(1.0 / math.sqrt(2.0)), value).astype(F32)
    value = np.ldexp(value, -((e - odd.astype(np.int32)) // 2)).astype(F32)
    return np.where(x > 0, value, F32(np.inf)).astype(F32)


def poly_sigmoid(x: np.ndarray, order: int) -> np.ndarray:
    return poly_reciprocal((F32(1.0) + poly_exp(-np.asarray(x, dtype=F32), order)).astype(F32),
                           order)


def poly_silu(x: np.ndarray, order: int) -> np.ndarray:
    x = np.asarray(x, dtype=F32)
    return (x * poly_sigmoid(x, order)).astype(F32)


GELU_K = math.sqrt(2.0 / math.pi)


def poly_gelu(x: np.ndarray, order: int) -> np.ndarray:
    """tanh-form GELU: 0.5 x (1 + tanh u) = x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3)."""
    x = np.asarray(x, dtype=F32)
    u = (F32(2.0 * GELU_K) * (x + F32(0.044715) * x * x * x)).astype(F32)
    return (x * poly_sigmoid(u, order)).astype(F32)


def poly_softmax(scores: np.ndarray, order: int) -> np.ndarray:
    """Row softmax on the unit: max, exp(x - max), float32 sum, one reciprocal per row,
    multiply. Masked entries (-inf) give 0."""
    s = np.asarray(scores, dtype=F32)
    top = np.max(s, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, F32(0.0))
    e = poly_exp((s - top).astype(F32), order)
    total = np.sum(e, axis=-1, keepdims=True, dtype=F32)
    return (e * poly_reciprocal(total, order)).astype(F32)


def poly_rmsnorm(x: np.ndarray, weight: np.ndarray | None, eps: float, order: int) -> np.ndarray:
    """x * rsqrt(mean(x^2) + eps) * weight, the rsqrt on the unit."""
    x = np.asarray(x, dtype=F32)
    mean = (np.sum(x * x, axis=-1, keepdims=True, dtype=F32) / F32(x.shape[-1])).astype(F32)
    out = (x * poly_rsqrt((mean + F32(eps)).astype(F32), order)).astype(F32)
    return out if weight is None else (out * np.asarray(weight, dtype=F32)).astype(F32)


EVALUATORS = {"exp": poly_exp, "reciprocal": poly_reciprocal, "rsqrt": poly_rsqrt,
              "sigmoid": poly_sigmoid, "silu": poly_silu, "gelu": poly_gelu}


def exact(function: str, x: np.ndarray) -> np.ndarray:
    """The float64 function the polynomial stands for (GELU: the same tanh form)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        if function == "exp":
            return np.exp(x)
        if function == "reciprocal":
            return 1.0 / x
        if function == "rsqrt":
            return 1.0 / np.sqrt(x)
        sig = 1.0 / (1.0 + np.exp(-x))
        if function == "sigmoid":
            return sig
        if function == "silu":
            return x * sig
        u = GELU_K * (x + 0.044715 * x**3)
        return x / (1.0 + np.exp(-2.0 * u))


# -- Lagrange remainder bounds (relative error of the polynomial on the reduced range) --------


def lagrange_relative_bound(function: str, order: int) -> float:
    """Upper bound on |f_poly - f| / |f| from the Lagrange remainder on the reduced range
    (exact arithmetic; float32 rounding adds about (order + 2) 2^-24). README derives each.

    exp:   |R| <= e^(ln2/2) (ln2/2)^(p+1)/(p+1)!  and e^r >= e^(-ln2/2): rel <= 2 (ln2/2)^(p+1)/(p+1)!
    recip: g = 1/(1+t), |t| <= 1/3: |R| <= (1/3)^(p+1) / (2/3)^(p+2), rel = |R| (1+t) <= |R| 4/3
    rsqrt: g = (1+t)^(-1/2): |R| <= |binom(-1/2, p+1)| (1/3)^(p+1) (2/3)^(-(p+3/2)),
           rel <= |R| sqrt(4/3)
    sigmoid, silu, gelu: 1/(1 + E(1+e1)) (1 + e2) with |e1| <= rho_exp, |e2| <= rho_rec:
           rel <= (1 + rho_rec) / (1 - rho_exp) - 1
    """
    p = order
    if function == "exp":
        return 2.0 * (math.log(2.0) / 2.0) ** (p + 1) / math.factorial(p + 1)
    if function == "reciprocal":
        return (1.0 / 3.0) ** (p + 1) / (2.0 / 3.0) ** (p + 2) * (4.0 / 3.0)
    if function == "rsqrt":
        binom = abs(math.prod(-0.5 - i for i in range(p + 1)) / math.factorial(p + 1))
        return binom * (1.0 / 3.0) ** (p + 1) * (2.0 / 3.0) ** (-(p + 1.5)) * math.sqrt(4.0 / 3.0)
    if function in ("sigmoid", "silu", "gelu"):
        rho_exp = lagrange_relative_bound("exp", p)
        rho_rec = lagrange_relative_bound("reciprocal", p)
        return (1.0 + rho_rec) / (1.0 - rho_exp) - 1.0 if rho_exp < 1 else math.inf
    raise ValueError(f"no bound for '{function}'")


# -- cycles on the MAC datapath ------------------------------------------------------------------


RANGE_REDUCTION_OPS = {"exp": 3, "reciprocal": 3, "rsqrt": 4}
"""Datapath operations besides Horner's p MACs (A): exp: n = rint(x log2e), r = x - n ln2,
exponent insert; reciprocal: mantissa split, t = f/c - 1, exponent insert; rsqrt: the same
plus the odd-exponent fix-up."""


def ops_per_element(function: str, order: int) -> int:
    """MAC-datapath operations one element of `function` takes at Taylor order p."""
    exp = order + RANGE_REDUCTION_OPS["exp"]
    rec = order + RANGE_REDUCTION_OPS["reciprocal"]
    table = {
        "exp": exp,
        "reciprocal": rec,
        "rsqrt": order + RANGE_REDUCTION_OPS["rsqrt"],
        "sigmoid": exp + 1 + rec,          # 1 + exp(-x), reciprocal
        "silu": exp + 1 + rec + 1,         # ... times x
        "gelu": 4 + 1 + exp + 1 + rec + 1,  # u = k(x + c x^3) (4), * 2, sigmoid, * x
    }
    return table[function]


@dataclass(frozen=True)
class NonlinearWork:
    """Datapath operations of one nonlinear-unit instruction (per element and per row)."""

    elementwise: int
    per_row: int = 0
    rows: int = 0

    def total(self, elements: int) -> int:
        return self.elementwise * elements + self.per_row * self.rows


def block_work(kind: str, shape: tuple[int, ...], order: int, props: dict | None = None
               ) -> NonlinearWork:
    """Operations of a kernel op of `kind` on the unit (elements = prod(shape))."""
    rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
    if kind in ("exp", "silu", "gelu", "sigmoid", "reciprocal", "rsqrt"):
        return NonlinearWork(ops_per_element(kind, order))
    if kind == "softmax":
        # max, subtract, exp, sum, multiply by the row's reciprocal
        return NonlinearWork(4 + ops_per_element("exp", order),
                             ops_per_element("reciprocal", order), rows)
    if kind == "rmsnorm":
        # square-accumulate, times rsqrt, times gain; per row mean scaling, + eps, rsqrt
        return NonlinearWork(3, 2 + ops_per_element("rsqrt", order), rows)
    if kind in ("add", "mul"):
        return NonlinearWork(1)
    if kind == "rope":
        # cos/sin tables per position (A); x * cos + rotate(x) * sin
        return NonlinearWork(3)
    if kind == "epilogue":
        return NonlinearWork(1)
    raise ValueError(f"the nonlinear unit has no '{kind}' instruction")
