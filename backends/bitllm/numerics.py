"""The bitllm's arithmetic per op kind, shared by its interpreter and by `sparsec eval llm`.

- GEMM against weights: activations rounded to BF16, weights as per-output-channel INT8
  codes (optionally bit-level coded), the cluster-aligned INT-FP GEMM of arith.py.
- Attention products (Q K^T, P V): BF16 x BF16 in the PE array's FP mode, float32
  accumulation (A: the paper's attention datapath is unknown).
- softmax, SiLU, GELU, RMSNorm: the polynomial unit of nonlinear.py at Taylor order p.
- add, mul, RoPE (cos/sin tables, A): float32, as the reference.

`numerics(dtype=None, spec=None)` returns the `Numerics` hooks of a whole model
(sparsec.tensors.hooks) with these functions; `int_fp_linear` / `NonlinearCounters` keep
the events (register saturations, spills, ...) of a whole forward pass, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparsec.backends.bitllm import nonlinear as nl
from sparsec.backends.bitllm.arith import GemmStats, IntFpConfig, int_fp_gemm
from sparsec.backends.bitllm.spec import BitllmSpec
from sparsec.tensors.bitlevel import encode
from sparsec.tensors.dtypes import round_to_dtype
from sparsec.tensors.numerics import matmul


def to_bf16(x: np.ndarray) -> np.ndarray:
    return np.asarray(round_to_dtype(np.asarray(x, dtype=np.float32), "bf16"), dtype=np.float32)


def int8_codes(weight: np.ndarray, max_ones: int, method: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """(codes [K, N], scale [N]) of a (K, N) weight: symmetric per-output-channel INT8,
    then at most `max_ones` signed powers of two per code (0: plain INT8). Same as the
    passes quantize{bits=8 per_channel=true},bitlevel-encode."""
    from sparsec.tensors.quantization import quantize_values

    q = quantize_values(np.asarray(weight, dtype=np.float64), 8, True, 1)
    codes = q.codes
    if max_ones:
        codes = encode(codes, 8, max_ones, method).codes
    return codes, q.scale.astype(np.float32)


def int_fp_matmul(x: np.ndarray, codes: np.ndarray, scale: np.ndarray, cfg: IntFpConfig
                  ) -> tuple[np.ndarray, GemmStats]:
    """X [.., K] (rounded to BF16) . (scale * codes) [K, N] on the INT-FP array."""
    x = np.asarray(x, dtype=np.float32)
    flat = to_bf16(x.reshape(-1, x.shape[-1]))
    y, stats = int_fp_gemm(flat, codes, scale, cfg)
    return y.reshape(*x.shape[:-1], codes.shape[1]), stats


def fp_mode_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """BF16 operands, float32 accumulation (the FP mode of the PE array)."""
    return np.asarray(matmul(to_bf16(a), to_bf16(b), "bf16", "f32"), dtype=np.float32)


def masked_scores(scores: np.ndarray, scale: float, mask: str, start: int) -> np.ndarray:
    """scale * scores with -inf where a causal mask hides the key (row t at start + t)."""
    s = np.asarray(scores, dtype=np.float32) * np.float32(scale)
    if mask != "causal":
        return s
    rows, keys = s.shape[-2], s.shape[-1]
    visible = np.arange(keys)[None, :] <= (start + np.arange(rows))[:, None]
    return np.where(visible, s, np.float32(-np.inf)).astype(np.float32)


def nonlinear(kind: str, inputs: list[np.ndarray], props: dict[str, Any], order: int,
              dtype: str) -> np.ndarray:
    """One nonlinear-unit instruction of `kind`, result rounded once to `dtype`."""
    from sparsec.backends.common.block_reference import evaluate

    x = [np.asarray(v, dtype=np.float32) for v in inputs]
    if kind == "softmax":
        scores = masked_scores(x[0], props.get("scale", 1.0), props.get("mask", "none"),
                               props.get("start", 0))
        if len(x) > 1:  # runtime token pruning's keep flags over the keys
            scores = np.where(x[1] != 0, scores, np.float32(-np.inf)).astype(np.float32)
        return round_to_dtype(nl.poly_softmax(scores, order), dtype)
    if kind == "rmsnorm":
        return round_to_dtype(nl.poly_rmsnorm(x[0], x[1], props["eps"], order), dtype)
    if kind == "silu":
        return round_to_dtype(nl.poly_silu(x[0], order), dtype)
    if kind == "gelu":
        return round_to_dtype(nl.poly_gelu(x[0], order), dtype)
    if kind == "exp":
        return round_to_dtype(nl.poly_exp(x[0], order), dtype)
    return evaluate(kind, x, props, dtype)


# -- whole-model hooks ------------------------------------------------------------------------


@dataclass
class Events:
    """What a forward pass on the bitllm did: GEMM events summed over every GEMM."""

    gemm: GemmStats = field(default_factory=GemmStats)
    gemms: int = 0

    def add(self, stats: GemmStats) -> None:
        self.gemm.merge(stats)
        self.gemms += 1


@dataclass
class Switches:
    """Which parts run in bitllm arithmetic (the rest in float32): for layer-by-layer
    insertion. `layers` None means every layer."""

    gemm: bool = True
    nonlinear: bool = True
    layers: frozenset[int] | None = None
    head: bool = True
    """Whether the LM head (a GEMM outside every layer) runs on the INT-FP array."""
    current: int | None = None
    """The block being run, when the caller tracks it (a forward's recorder at
    `hidden_in`); otherwise the layer of the latest GEMM's weight name."""


def numerics(dtype: str | None = None, spec: BitllmSpec | None = None,
             events: Events | None = None, switches: Switches | None = None) -> Any:
    """The whole-model `Numerics` of the chip described by `spec` (default preset).

    `dtype` must be None or bf16 (the chip's activation type). Weight names carry the layer
    (`blk.<i>....`); `switches.layers` restricts bitllm arithmetic to those layers.
    """
    from sparsec.tensors import hooks

    if dtype not in (None, "bf16"):
        raise ValueError(f"bitllm computes with BF16 activations, not '{dtype}'")
    spec = spec or BitllmSpec()
    cfg = spec.int_fp_config()
    order = spec.taylor_order
    events = events if events is not None else Events()
    switches = switches or Switches()
    current_layer: list[int | None] = [None]

    def active(kind: str, layer: int | None) -> bool:
        on = switches.gemm if kind == "gemm" else switches.nonlinear
        if layer is None:
            return on and switches.head
        return on and (switches.layers is None or layer in switches.layers)

    def block_layer() -> int | None:
        return switches.current if switches.current is not None else current_layer[0]

    def prepare(linear: Any) -> Any:
        if _layer_of(linear.name) is None and not (switches.gemm and switches.head):
            return linear  # runs in float32: no codes needed
        codes, scale = int8_codes(np.asarray(linear.matrix, dtype=np.float32).T,
                                  spec.max_ones, spec.method)
        prepared = linear.with_matrix((codes * scale[None, :]).T.astype(np.float32))
        prepared.aux["codes"] = codes
        prepared.aux["scale"] = scale
        prepared.aux["float"] = np.asarray(linear.matrix, dtype=np.float32)
        return prepared

    def gemm(x: np.ndarray, linear: Any) -> np.ndarray:
        current_layer[0] = _layer_of(linear.name)
        if not active("gemm", current_layer[0]):
            original = linear.aux.get("float", linear.matrix)
            return hooks.float_gemm(x, hooks.Linear(linear.name, original))
        y, stats = int_fp_matmul(x, linear.aux["codes"], linear.aux["scale"], cfg)
        events.add(stats)
        return y

    def scores(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
        if not active("gemm", block_layer()):
            return hooks.attention_scores(q, k, scale)
        return fp_mode_matmul(q, np.swapaxes(k, -1, -2)[:, None]) * np.float32(scale)

    def values(p: np.ndarray, v: np.ndarray) -> np.ndarray:
        if not active("gemm", block_layer()):
            return hooks.attention_values(p, v)
        return fp_mode_matmul(p, v[:, None])

    def softmax(s: np.ndarray) -> np.ndarray:
        return nl.poly_softmax(s, order) if active("nonlinear", block_layer()) \
            else hooks.FLOAT.softmax(s)

    def silu(x: np.ndarray) -> np.ndarray:
        return nl.poly_silu(x, order) if active("nonlinear", block_layer()) \
            else hooks.FLOAT.silu(x)

    def rmsnorm(x: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
        if not active("nonlinear", block_layer()):
            return hooks.FLOAT.rmsnorm(x, weight, eps)
        return nl.poly_rmsnorm(x, weight, eps, order)

    name = spec.label()
    return hooks.FLOAT.replace(name, prepare_weight=prepare, gemm=gemm,
                               attention_scores=scores, attention_values=values,
                               softmax=softmax, silu=silu, rmsnorm=rmsnorm)


def _layer_of(name: str) -> int | None:
    """Layer index from a GGUF tensor name `blk.<i>.attn_q.weight` (None otherwise)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[0] == "blk" and parts[1].isdigit():
        return int(parts[1])
    return None
