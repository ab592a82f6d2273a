"""A Llama-architecture decoder forward pass in numpy: prefill, then decode with a KV cache.

`LlamaForward` runs a `GgufModel` (SmolLM2-135M by default) with every op going through
a `Numerics` (`sparsec.tensors.hooks`): float32 numpy by default, or any backend's
arithmetic. GEMMs are batched float32 BLAS products, so a 256-token prefill through
30 blocks takes about a second (benchmarks/llm_forward.py).

A block (x: [T, d] hidden states at absolute positions start..start+T-1):

    h = rmsnorm(x, attn_norm, eps)
    q, k, v = h Wq^T, h Wk^T, h Wv^T        rope(q), rope(k) ('normal' pairing for GGUF)
    cache[start:start+T] = kv_store(k), kv_store(v)
    p = softmax(causal(q K^T / sqrt(dh)))   grouped-query: query head n reads KV head n // (H/G)
    x = x + (p V) Wo^T
    h = rmsnorm(x, ffn_norm, eps)
    x = x + (silu(h Wgate^T) * h Wup^T) Wdown^T

then logits = rmsnorm(x, output_norm, eps) Wout^T (Wout tied to the token embedding when
the file has no `output.weight`).

Keys of a saved workload (`sparsec workload llm`; T prompt tokens, D decode steps, d model
width, H query heads, G KV heads, dh head size, F FFN width; float32 unless noted; weights
are (out, in), so a projection is x @ W.T):

- ``input_ids`` [T] int64, ``tokens`` [T] str: the prompt.
- ``generated`` [D+1] int64: greedy tokens; entry 0 from the prefill's last row, entry i
  from decode step i (whose input was entry i-1).
- ``logits`` [D+1, V]: the logits those tokens were chosen from.
- ``config.*`` 0-d: n_layers, d_model, n_heads, n_kv_heads, head_dim, ffn, rms_eps,
  rope_base; ``decode_steps``.
- per recorded layer L, prefill (T rows):
  ``layerL.hidden_in`` [T, d]; ``layerL.attn_norm`` [T, d] (input of the Q/K/V GEMMs);
  ``layerL.q`` [H, T, dh], ``layerL.k`` / ``layerL.v`` [G, T, dh] (Q, K after RoPE);
  ``layerL.probs`` [H, T, T] (causal: zero above the diagonal); ``layerL.context`` [T, d]
  (input of the output-projection GEMM); ``layerL.attn_out`` [T, d];
  ``layerL.ffn_in`` [T, d] (hidden after the attention residual); ``layerL.ffn_norm``
  [T, d] (input of the gate/up GEMMs); ``layerL.gate``, ``layerL.up``, ``layerL.silu``
  [T, F]; ``layerL.ffn_act`` [T, F] (silu * up, input of the down GEMM);
  ``layerL.hidden_out`` [T, d].
- per recorded layer, decode: ``layerL.decode.NAME`` is NAME of every decode step
  stacked on a leading axis of D, each step with T = 1 (q [D, H, 1, dh], ...), and
  ``layerL.decode.probs`` [D, H, 1, T+D] zero beyond the step's T+i cached keys.
- ``layerL.k_cache`` / ``layerL.v_cache`` [G, T+D, dh]: the KV cache after the last step.
- weights of a recorded layer: ``layerL.wq`` [H dh, d], ``.wk`` / ``.wv`` [G dh, d],
  ``.wo`` [d, d], ``.w_gate`` / ``.w_up`` [F, d], ``.w_down`` [d, F] (dequantized),
  ``.attn_norm_weight`` / ``.ffn_norm_weight`` [d].
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparsec.tensors import block_ops
from sparsec.tensors.gguf_model import DEFAULT_PACKAGE, GgufModel, LlamaConfig, ModelError
from sparsec.tensors.hooks import FLOAT, Linear, Numerics

PROJECTIONS = {"wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output",
               "w_gate": "ffn_gate", "w_up": "ffn_up", "w_down": "ffn_down"}
"""Short name of a block's weight -> its GGUF tensor stem (blk.L.<stem>.weight)."""

DECODE_ARRAYS = ("hidden_in", "attn_norm", "q", "k", "v", "probs", "context", "attn_out",
                 "ffn_in", "ffn_norm", "gate", "up", "silu", "ffn_act", "hidden_out")
"""Per-layer arrays recorded at every decode step (and, unstacked, at prefill)."""


@dataclass
class BlockWeights:
    """One decoder block's weights, already passed through the numerics' prepare_weight."""

    linears: dict[str, Linear]
    attn_norm: np.ndarray
    ffn_norm: np.ndarray


@dataclass
class KVCache:
    """Per-layer K and V [G, capacity, dh]; rows 0..length-1 are filled."""

    keys: list[np.ndarray]
    values: list[np.ndarray]
    length: int = 0

    @classmethod
    def empty(cls, config: LlamaConfig, capacity: int) -> KVCache:
        shape = (config.n_kv_heads, capacity, config.head_dim)
        return cls([np.zeros(shape, np.float32) for _ in range(config.n_layers)],
                   [np.zeros(shape, np.float32) for _ in range(config.n_layers)])

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[1]


Recorder = Callable[[int, str, np.ndarray], None]
"""`record(layer, name, array)`: receives a block's intermediate values as they are made."""


class LlamaForward:
    """The forward pass of a `GgufModel` under one `Numerics`."""

    def __init__(self, model: GgufModel, numerics: Numerics = FLOAT, n_blocks: int | None = None):
        """`n_blocks` runs only the first blocks before the output norm and head (quick
        tests, truncated models); default all."""
        self.model = model
        self.config = model.config
        self.numerics = numerics
        cfg = self.config
        if cfg.rope_dim != cfg.head_dim:
            raise ModelError(f"partial RoPE ({cfg.rope_dim} of {cfg.head_dim} dims) is not supported")
        self.embedding = model.matrix("token_embd.weight")
        n_blocks = cfg.n_layers if n_blocks is None else n_blocks
        if not 1 <= n_blocks <= cfg.n_layers:
            raise ModelError(f"the model has {cfg.n_layers} blocks; cannot run {n_blocks}")
        self.blocks = [self._block(layer) for layer in range(n_blocks)]
        self.output_norm = model.vector("output_norm.weight")
        output = model.output_name
        self.output = numerics.prepare_weight(Linear("output", model.matrix(output), model.quantized(output)))

    def _block(self, layer: int) -> BlockWeights:
        linears = {}
        for short, stem in PROJECTIONS.items():
            name = f"blk.{layer}.{stem}.weight"
            linear = Linear(name, self.model.matrix(name), self.model.quantized(name))
            linears[short] = self.numerics.prepare_weight(linear)
        return BlockWeights(linears, self.model.vector(f"blk.{layer}.attn_norm.weight"),
                            self.model.vector(f"blk.{layer}.ffn_norm.weight"))

    # ------------------------------------------------------------------ running

    def new_cache(self, capacity: int) -> KVCache:
        return KVCache.empty(self.config, capacity)

    def forward(self, ids: Sequence[int] | np.ndarray, cache: KVCache,
                record: Recorder | None = None, last_only: bool = False) -> np.ndarray:
        """Logits [T, V] (or [1, V] with last_only) of tokens `ids` appended at the cache's end."""
        ids = np.asarray(ids, dtype=np.int64)
        start = cache.length
        if start + len(ids) > cache.capacity:
            raise ModelError(f"{start + len(ids)} tokens exceed the KV cache's {cache.capacity}")
        if np.any(ids < 0) or np.any(ids >= self.config.vocab):
            raise ModelError(f"token ids must lie in 0..{self.config.vocab - 1}")
        x = self.embedding[ids]
        positions = np.arange(start, start + len(ids))
        for layer, weights in enumerate(self.blocks):
            x = self.block(layer, weights, x, positions, cache, record)
        cache.length = start + len(ids)
        n = self.numerics
        if last_only:
            x = x[-1:]
        return n.gemm(n.rmsnorm(x, self.output_norm, self.config.rms_eps), self.output)

    def block(self, layer: int, w: BlockWeights, x: np.ndarray, positions: np.ndarray,
              cache: KVCache, record: Recorder | None) -> np.ndarray:
        """One decoder block on hidden states x [T, d] at `positions` (see module doc)."""
        cfg, n, lin = self.config, self.numerics, w.linears
        rec = record or _ignore
        t, start, dh = x.shape[0], int(positions[0]), cfg.head_dim
        groups, group = cfg.n_kv_heads, cfg.n_heads // cfg.n_kv_heads
        rec(layer, "hidden_in", x)
        h = n.rmsnorm(x, w.attn_norm, cfg.rms_eps)
        rec(layer, "attn_norm", h)
        q = n.rope(n.gemm(h, lin["wq"]), positions, cfg.rope_base, dh, cfg.rope_convention)
        k = n.rope(n.gemm(h, lin["wk"]), positions, cfg.rope_base, dh, cfg.rope_convention)
        v = n.gemm(h, lin["wv"])
        q_heads = q.reshape(t, cfg.n_heads, dh).transpose(1, 0, 2)
        k_heads = k.reshape(t, groups, dh).transpose(1, 0, 2)
        v_heads = v.reshape(t, groups, dh).transpose(1, 0, 2)
        rec(layer, "q", q_heads)
        rec(layer, "k", k_heads)
        rec(layer, "v", v_heads)
        cache.keys[layer][:, start:start + t] = n.kv_store(k_heads)
        cache.values[layer][:, start:start + t] = n.kv_store(v_heads)
        keys = cache.keys[layer][:, :start + t]
        values = cache.values[layer][:, :start + t]
        scores = n.attention_scores(q_heads.reshape(groups, group, t, dh), keys, 1.0 / math.sqrt(dh))
        scores = np.where(block_ops.causal_mask(t, start + t, start), scores, -np.inf)
        probs = n.softmax(scores)
        rec(layer, "probs", probs.reshape(cfg.n_heads, t, start + t))
        context = n.attention_values(probs, values).reshape(cfg.n_heads, t, dh)
        context = context.transpose(1, 0, 2).reshape(t, cfg.n_heads * dh)
        rec(layer, "context", context)
        attn_out = n.gemm(context, lin["wo"])
        rec(layer, "attn_out", attn_out)
        x = n.add(x, attn_out)
        rec(layer, "ffn_in", x)
        h = n.rmsnorm(x, w.ffn_norm, cfg.rms_eps)
        rec(layer, "ffn_norm", h)
        gate, up = n.gemm(h, lin["w_gate"]), n.gemm(h, lin["w_up"])
        act = n.silu(gate)
        prod = n.mul(act, up)
        for name, value in (("gate", gate), ("up", up), ("silu", act), ("ffn_act", prod)):
            rec(layer, name, value)
        x = n.add(x, n.gemm(prod, lin["w_down"]))
        rec(layer, "hidden_out", x)
        return x

    def generate(self, prompt: Sequence[int], decode_steps: int, record: Recorder | None = None,
                 cache: KVCache | None = None) -> tuple[np.ndarray, np.ndarray, KVCache]:
        """Prefill `prompt`, then `decode_steps` greedy single-token steps through the KV cache.

        Returns (generated [D+1] ids, their logits [D+1, V], the cache).
        """
        cache = cache or self.new_cache(len(prompt) + decode_steps)
        logits = [self.forward(prompt, cache, record, last_only=True)[0]]
        generated = [int(np.argmax(logits[0]))]
        for _ in range(decode_steps):
            logits.append(self.forward([generated[-1]], cache, record, last_only=True)[0])
            generated.append(int(np.argmax(logits[-1])))
        return np.array(generated, dtype=np.int64), np.stack(logits), cache

    def teacher_forced(self, ids: Sequence[int] | np.ndarray, record: Recorder | None = None
                       ) -> np.ndarray:
        """Logits [T, V] of every position of `ids` in one prefill (for perplexity)."""
        return self.forward(ids, self.new_cache(len(ids)), record)


def _ignore(layer: int, name: str, value: np.ndarray) -> None:
    return None


# --------------------------------------------------------------------------- metrics

def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax along the last axis, in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    """exp of the mean negative log-likelihood of ids[1:] under logits[:-1]
    (logits[i] predicts ids[i+1]), as llama.cpp's perplexity counts it over a window."""
    ids = np.asarray(ids)
    if len(ids) < 2:
        raise ModelError("perplexity needs at least 2 tokens")
    logp = log_softmax(logits[:-1])
    nll = -logp[np.arange(len(ids) - 1), ids[1:]]
    return float(np.exp(nll.mean()))


# --------------------------------------------------------------------------- workload

@dataclass
class LayerRecorder:
    """Collects the arrays of chosen layers: the first call per (layer, name) is the prefill,
    later calls are decode steps."""

    layers: set[int]
    prefill: dict[str, np.ndarray] = field(default_factory=dict)
    decode: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def __call__(self, layer: int, name: str, value: np.ndarray) -> None:
        if layer not in self.layers:
            return
        key = f"layer{layer}.{name}"
        if key not in self.prefill:
            self.prefill[key] = np.array(value, dtype=np.float32)
            return
        self.decode.setdefault(key, []).append(np.array(value, dtype=np.float32))


@dataclass
class LlmWorkload:
    """A prefill + decode run with the recorded arrays (keys in the module doc)."""

    arrays: dict[str, np.ndarray]
    seconds: float

    def save(self, path: str | Path) -> Path:
        return save_npz_atomic(path, self.arrays)


def save_npz_atomic(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write `arrays` as one .npz at exactly `path`: a temporary file, then a rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ModelError(f"{path}: output folder {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    except OSError as err:
        raise ModelError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def run_workload(runner: LlamaForward, ids: np.ndarray, decode_steps: int,
                 layers: Sequence[int]) -> LlmWorkload:
    """Prefill `ids`, decode `decode_steps` greedy tokens, record `layers` (module doc keys)."""
    began = time.perf_counter()
    recorder = LayerRecorder(set(layers))
    generated, logits, cache = runner.generate(ids, decode_steps, recorder)
    cfg = runner.config
    total = len(ids) + decode_steps
    arrays: dict[str, np.ndarray] = {
        "input_ids": np.asarray(ids, dtype=np.int64),
        "tokens": np.array([runner.model.tokenizer.id_to_token(int(i)) or "" for i in ids], dtype=str),
        "generated": generated,
        "logits": logits.astype(np.float32),
        "decode_steps": np.array(decode_steps),
    }
    for name in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "ffn", "rms_eps", "rope_base"):
        arrays[f"config.{name}"] = np.array(getattr(cfg, name))
    arrays.update(recorder.prefill)
    for key, steps in recorder.decode.items():
        if key.endswith(".probs"):
            steps = [np.pad(p, [(0, 0)] * (p.ndim - 1) + [(0, total - p.shape[-1])]) for p in steps]
        stem, name = key.split(".", 1)
        arrays[f"{stem}.decode.{name}"] = np.stack(steps)
    for layer in layers:
        arrays[f"layer{layer}.k_cache"] = cache.keys[layer][:, :total].copy()
        arrays[f"layer{layer}.v_cache"] = cache.values[layer][:, :total].copy()
        for short, stem in PROJECTIONS.items():
            arrays[f"layer{layer}.{short}"] = runner.model.matrix(f"blk.{layer}.{stem}.weight")
        arrays[f"layer{layer}.attn_norm_weight"] = runner.blocks[layer].attn_norm
        arrays[f"layer{layer}.ffn_norm_weight"] = runner.blocks[layer].ffn_norm
    return LlmWorkload(arrays, time.perf_counter() - began)


def load_model(path_or_package: str | Path = DEFAULT_PACKAGE) -> GgufModel:
    return GgufModel.load(path_or_package)


# --------------------------------------------------------------------------- shipped texts

TEXT_ORDER = ("prose", "code", "table")
"""The shipped texts in the order commands use them (the first is eval's decode text)."""


def shipped_texts() -> dict[str, Path]:
    """Name -> path of the texts shipped in sparsec/tensors/texts: prose, code, table, others."""
    folder = Path(__file__).parent / "texts"
    found = {path.stem: path for path in sorted(folder.glob("*.txt"))}
    first = {name: found[name] for name in TEXT_ORDER if name in found}
    return {**first, **{n: p for n, p in found.items() if n not in first}}


def load_text(name_or_file: str) -> str:
    """A shipped text by name, or the contents of a UTF-8 file."""
    shipped = shipped_texts()
    if name_or_file in shipped:
        return shipped[name_or_file].read_text(encoding="utf-8")
    path = Path(name_or_file)
    if not path.is_file():
        raise ModelError(f"text '{name_or_file}' is neither a shipped text ({', '.join(shipped)}) "
                         "nor a readable file")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: cannot read as UTF-8 text ({err})") from None


def text_ids(model: GgufModel, text: str, tokens: int | None, name: str = "text") -> np.ndarray:
    """The first `tokens` token ids of `text` (all when None); error if it has fewer."""
    ids = np.array(model.tokenizer.encode(text).ids, dtype=np.int64)
    if tokens is None:
        return ids
    if tokens < 1:
        raise ModelError(f"--tokens must be at least 1 (got {tokens})")
    if len(ids) < tokens:
        raise ModelError(f"{name} has only {len(ids)} tokens, fewer than --tokens {tokens}")
    return ids[:tokens]
