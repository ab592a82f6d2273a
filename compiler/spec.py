"""The kernel spec language: AST, parser, semantic checks and located errors.

A spec file (``.sk``) holds one or more kernels::

    # comment
    kernel gemm {
      in    X: f32[128, 384] = random(seed=1)                 # runtime input
      param W: f32[384, 1536] = random(seed=2, density=0.5)  # compile-time constant
      Y = matmul(X, W)
      out Y
    }

``parse_spec`` turns text into a :class:`SpecFile` of :class:`Kernel` nodes and
runs :func:`check_kernel` on each, so a returned spec is known to be
well-formed and well-typed. Every mistake a user can make is reported as a
:class:`SpecError` pointing at the offending source text, rendered like a
compiler diagnostic::

    gemm.sk:5:17: error: unknown tensor 'Z'
        Y = matmul(X, Z)
                      ^

The language is kept small and uniform so later ops need no grammar change:
a statement's right-hand side is a call whose positional arguments are tensor
names and whose keyword arguments are values (numbers, strings, booleans,
bare identifiers, lists or nested calls such as ``window(64)``). Op typing is
table driven (:data:`OP_RULES`), as is source validation
(:data:`SOURCE_RULES`); both can be extended by other modules.

Data is not touched here: :mod:`sparsec.compiler.sources` materializes the
arrays a :class:`Source` describes.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Self

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from sparsec.tensors.conventions import accumulator_type_name

__all__ = [
    "ELEMENT_TYPES",
    "FLOAT_TYPES",
    "INT_TYPES",
    "OP_RULES",
    "SOURCE_RULES",
    "Assign",
    "Bool",
    "Call",
    "CallValue",
    "Decl",
    "Ident",
    "Kernel",
    "ListValue",
    "LoadParams",
    "Loc",
    "Number",
    "Operand",
    "RandomParams",
    "Source",
    "SpecError",
    "SpecFile",
    "String",
    "TensorType",
    "Value",
    "attr_bool",
    "attr_int",
    "attr_number",
    "check_attrs",
    "check_kernel",
    "check_source",
    "expect_operands",
    "expect_rank",
    "format_kernel",
    "format_spec",
    "load_params",
    "parse_spec",
    "parse_spec_file",
    "random_params",
]

# --------------------------------------------------------------------------
# Element types
# --------------------------------------------------------------------------

#: Element types in the order they are listed to users.
ELEMENT_TYPES: tuple[str, ...] = ("f64", "f32", "f16", "bf16", "i32", "i16", "i8")
FLOAT_TYPES: frozenset[str] = frozenset({"f64", "f32", "f16", "bf16"})
from sparsec.tensors.dtypes import INT_TYPES  # noqa: E402

# --------------------------------------------------------------------------
# Locations and errors
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Loc:
    """A position in a spec file: 1-based ``line`` and ``col``.

    ``end_col`` is the exclusive end column of the located token on the same
    line (``None`` when only a point is known); it drives the ``~~~``
    underline. ``line_text`` carries the source line so an error can be
    rendered long after parsing (e.g. when data is loaded) without re-reading
    the file; it is ignored by equality. ``line == 0`` means "the whole file".
    """

    file: str
    line: int
    col: int
    end_col: int | None = None
    line_text: str | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


class SpecError(Exception):
    """A user mistake in a spec (or its data), located in the spec file.

    ``str(err)`` and ``err.render()`` give::

        path/to/file.sk:LINE:COL: error: MESSAGE
          <the source line>
          <spaces>^~~~

    Construct as ``SpecError(loc, message)``; ``loc`` may be ``None`` for
    errors that belong to no file (then only ``error: MESSAGE`` is shown).
    """

    def __init__(self, loc: Loc | None, message: str) -> None:
        # Accept the swapped order too: callers in other modules may write
        # SpecError("msg", loc), and a wrong order must not hide the error.
        if isinstance(loc, str) and not isinstance(message, str):
            loc, message = message, loc
        self.loc: Loc | None = loc
        self.message: str = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.loc, self.message))

    def render(self) -> str:
        """The diagnostic: a ``file:line:col: error:`` line, source line, caret."""
        loc = self.loc
        if loc is None:
            return f"error: {self.message}"
        head = f"{loc}: error: {self.message}"
        if loc.line <= 0:
            return head
        text = loc.line_text if loc.line_text is not None else _read_line(loc.file, loc.line)
        if text is None:
            return head
        return f"{head}\n  {text}\n  {_caret_line(text, loc)}"


def _caret_line(text: str, loc: Loc) -> str:
    """Spaces up to ``loc.col`` (tabs kept so the caret lines up), ``^``, then ``~``s."""
    col = max(loc.col, 1)
    pad = "".join("\t" if ch == "\t" else " " for ch in text[: col - 1])
    pad += " " * max(0, col - 1 - len(text))
    end = loc.end_col if loc.end_col is not None else col + 1
    end = min(end, len(text) + 1)
    return pad + "^" + "~" * max(0, end - col - 1)


def _read_line(path: str, line: int) -> str | None:
    """Line ``line`` of file ``path`` from disk, or None when unavailable."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if line > len(lines):
        return None
    return lines[line - 1]


def _suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match of ``word``, else ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _or_list(items: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


# --------------------------------------------------------------------------
# AST
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorType:
    """A tensor type: element type name and static shape, e.g. ``f32[128, 384]``."""

    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.dtype not in ELEMENT_TYPES:
            raise ValueError(f"unknown element type {self.dtype!r}")
        if not self.shape or any(not isinstance(d, int) or d <= 0 for d in self.shape):
            raise ValueError(f"shape must be one or more positive ints, got {self.shape!r}")

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)

    @property
    def is_float(self) -> bool:
        """True for floating-point element types."""
        return self.dtype in FLOAT_TYPES

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class Value:
    """Base of keyword/argument values; every value keeps its own ``loc``."""

    loc: Loc | None = field(default=None, compare=False, kw_only=True)

    @property
    def value(self) -> Any:
        """The plain Python value (number, str, bool, tuple, or the node itself for calls)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Value):
    """An int or float literal (``64``, ``-1.5e-3``)."""

    number: int | float

    @property
    def value(self) -> int | float:
        return self.number

    def __str__(self) -> str:
        return repr(self.number)


@dataclass(frozen=True)
class String(Value):
    """A quoted string literal, already unescaped."""

    text: str

    @property
    def value(self) -> str:
        return self.text

    def __str__(self) -> str:
        return _quote(self.text)


@dataclass(frozen=True)
class Bool(Value):
    """``true`` or ``false``."""

    flag: bool

    @property
    def value(self) -> bool:
        return self.flag

    def __str__(self) -> str:
        return "true" if self.flag else "false"


@dataclass(frozen=True)
class Ident(Value):
    """A bare identifier used as a value, e.g. ``causal`` in ``mask=causal``."""

    name: str

    @property
    def value(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ListValue(Value):
    """A bracketed list of values, e.g. ``[1, 2, 3]``."""

    items: tuple[Value, ...]

    @property
    def value(self) -> tuple[Any, ...]:
        return tuple(item.value for item in self.items)

    def __str__(self) -> str:
        return "[" + ", ".join(str(item) for item in self.items) + "]"


@dataclass(frozen=True)
class CallValue(Value):
    """A call used as a value, e.g. ``window(64)`` or ``pattern("p.npz")``.

    ``func_loc`` locates the function name; ``kwarg_locs`` the keyword names.
    """

    func: str
    args: tuple[Value, ...] = ()
    kwargs: Mapping[str, Value] = field(default_factory=dict)
    func_loc: Loc | None = field(default=None, compare=False, kw_only=True)
    kwarg_locs: Mapping[str, Loc] = field(default_factory=dict, compare=False, kw_only=True)

    @property
    def value(self) -> CallValue:
        return self

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.kwargs.items()]
        return f"{self.func}({', '.join(parts)})"


class Operand(str):
    """A tensor name used as an op operand (or in ``out``), with its ``loc``.

    It *is* the name (a ``str`` subclass), so ``kernel.types[operand]`` and
    ``operand == "X"`` work; ``.name`` gives a plain ``str``.
    """

    loc: Loc | None

    def __new__(cls, name: str, loc: Loc | None = None) -> Self:
        obj = super().__new__(cls, name)
        obj.loc = loc
        return obj

    @property
    def name(self) -> str:
        """The tensor name as a plain ``str``."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Operand({self.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Operand, (self.name, self.loc))


@dataclass(frozen=True)
class Source:
    """Where a declared tensor's data comes from: ``random(...)`` or ``load(...)``.

    ``args``/``kwargs`` hold :class:`Value` nodes (each with its loc); use
    :func:`random_params` / :func:`load_params` for validated plain values.
    ``loc`` spans the whole source expression; ``kind_loc`` the kind's name.
    """

    kind: str
    args: tuple[Value, ...] = ()
    kwargs: Mapping[str, Value] = field(default_factory=dict)
    loc: Loc | None = field(default=None, compare=False)
    kind_loc: Loc | None = field(default=None, compare=False, kw_only=True)
    kwarg_locs: Mapping[str, Loc] = field(default_factory=dict, compare=False, kw_only=True)

    def __str__(self) -> str:
        parts = [str(a) for a in self.args] + [f"{k}={v}" for k, v in self.kwargs.items()]
        return f"{self.kind}({', '.join(parts)})"


@dataclass(frozen=True)
class Decl:
    """``in NAME: type [= source]`` or ``param NAME: type = source``.

    ``loc`` is the location of NAME.
    """

    role: str
    name: str
    type: TensorType
    source: Source | None
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Call:
    """An op application ``op(operands..., attr=value...)``.

    ``loc`` spans the call; ``op_loc`` is the op name; ``attr_locs`` the
    keyword names. Operands are :class:`Operand` (tensor names with locs).
    """

    op: str
    operands: tuple[Operand, ...]
    attrs: Mapping[str, Value] = field(default_factory=dict)
    loc: Loc | None = field(default=None, compare=False)
    op_loc: Loc | None = field(default=None, compare=False, kw_only=True)
    attr_locs: Mapping[str, Loc] = field(default_factory=dict, compare=False, kw_only=True)

    def __str__(self) -> str:
        parts = [o.name if isinstance(o, Operand) else str(o) for o in self.operands]
        parts += [f"{k}={v}" for k, v in self.attrs.items()]
        return f"{self.op}({', '.join(parts)})"


@dataclass(frozen=True)
class Assign:
    """``NAME = op(...)``; ``loc`` is the location of NAME."""

    name: str
    call: Call
    loc: Loc | None = field(default=None, compare=False)


@dataclass
class Kernel:
    """One ``kernel NAME { ... }`` block.

    ``outs`` are :class:`Operand` (usable as plain names). ``types`` maps every
    tensor name (declared or assigned) to its type; :func:`check_kernel` fills
    it. ``pipeline``/``target`` are the raw strings of the optional kernel-level
    lines, with their locations for later located parse errors.
    """

    name: str
    decls: tuple[Decl, ...]
    assigns: tuple[Assign, ...]
    outs: tuple[Operand, ...]
    pipeline: str | None = None
    target: str | None = None
    loc: Loc | None = field(default=None, compare=False)
    types: dict[str, TensorType] = field(default_factory=dict, compare=False)
    pipeline_loc: Loc | None = field(default=None, compare=False, kw_only=True)
    target_loc: Loc | None = field(default=None, compare=False, kw_only=True)

    @property
    def inputs(self) -> tuple[Decl, ...]:
        """The ``in`` declarations (runtime data), in source order."""
        return tuple(d for d in self.decls if d.role == "in")

    @property
    def params(self) -> tuple[Decl, ...]:
        """The ``param`` declarations (compile-time constants), in source order."""
        return tuple(d for d in self.decls if d.role == "param")

    @property
    def out_names(self) -> tuple[str, ...]:
        """Names of the outputs as plain strings."""
        return tuple(str.__str__(o) for o in self.outs)

    def decl(self, name: str) -> Decl | None:
        """The declaration of ``name``, or None if it is not declared."""
        return next((d for d in self.decls if d.name == name), None)


@dataclass
class SpecFile:
    """A parsed spec file: its path (as given) and its kernels in order."""

    path: str
    kernels: tuple[Kernel, ...]

    @property
    def base_dir(self) -> Path:
        """Folder that relative ``load`` paths resolve against."""
        return Path(self.path).parent

    def kernel(self, name: str | None = None) -> Kernel:
        """The kernel called ``name`` (or the only one); KeyError otherwise."""
        if name is None:
            if len(self.kernels) != 1:
                raise KeyError(f"{self.path} has {len(self.kernels)} kernels; name one")
            return self.kernels[0]
        for k in self.kernels:
            if k.name == name:
                return k
        raise KeyError(f"no kernel {name!r} in {self.path}")


ValueT = Number | String | Bool | Ident | ListValue | CallValue


# --------------------------------------------------------------------------
# Parsing: lark setup and syntax errors
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The LALR parser for grammar.lark (package data), built once per process.

    Its tables are cached on disk (lark's `cache`, under `parser_cache_path`): building
    them costs more than the rest of parsing a spec. lark keys the file by a SHA-256 of
    the grammar, options and lark version and rebuilds on any mismatch or unreadable
    file, so a changed grammar never uses stale tables."""
    grammar = (
        resources.files("sparsec.compiler").joinpath("grammar.lark").read_text(encoding="utf-8")
    )
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=True,
        cache=parser_cache_path(grammar) or False,
    )


CACHE_DIR_ENV = "SPARSEC_CACHE_DIR"
"""Folder for sparsec's caches (default: $XDG_CACHE_HOME/sparsec, else ~/.cache/sparsec);
`none` turns caching off."""


def parser_cache_path(grammar: str) -> str | None:
    """Where the spec parser's tables are cached: a per-user folder (never a shared
    temporary one: lark's cache is a pickle), one file per grammar. None when caching is
    off or the folder cannot be made."""
    import hashlib
    import os

    folder = os.environ.get(CACHE_DIR_ENV, "").strip()
    if folder.lower() == "none":
        return None
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.join(
            os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "sparsec")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return None
    digest = hashlib.sha256(grammar.encode("utf-8")).hexdigest()[:16]
    return os.path.join(folder, f"spec-parser-{digest}.lark")


# Plain-word names for terminals that are not literal strings.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "end of line",
    "$END": "end of file",
}


_VALUE_STARTS = frozenset({"NAME", "NUMBER", "STRING", "LSQB"})


def _describe_expected(names: Iterable[str]) -> str:
    """Terminal names as plain words: ``')' or ','``, never lark's ``__ANON_0``."""
    names = set(names)
    literals: set[str] = set()
    words: set[str] = set()
    if _VALUE_STARTS <= names:
        names -= _VALUE_STARTS
        words.add("a value")
    for name in names:
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = _parser().get_terminal(name).pattern
        except (KeyError, AttributeError):
            words.add(name.lower().strip("_"))
            continue
        if pattern.type == "str":
            literals.add(f"'{pattern.value}'")
        else:
            words.add(name.lower().strip("_"))
    return _or_list(sorted(literals) + sorted(words))


def _describe_token(token: Token) -> str:
    """How an unexpected token is named in a message."""
    if token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line"
    if token.type == "NAME":
        return f"name '{token.value}'"
    if token.type == "NUMBER":
        return f"number {token.value}"
    if token.type == "STRING":
        return f"string {token.value}"
    return f"'{token.value}'"


class _Source:
    """The text of one spec file, split into lines, to make locations."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines = text.split("\n")
        self.lines = [ln.removesuffix("\r") for ln in self.lines]

    def line(self, n: int) -> str:
        """Text of line ``n`` (1-based), or '' past the end."""
        return self.lines[n - 1] if 1 <= n <= len(self.lines) else ""

    def loc(
        self, line: int, col: int, end_line: int | None = None, end_col: int | None = None
    ) -> Loc:
        """A Loc; multi-line spans are underlined to the end of the first line."""
        text = self.line(line)
        if end_line is not None and end_line != line:
            end_col = len(text) + 1
        return Loc(self.path, line, col, end_col, text)

    def tok(self, token: Token) -> Loc:
        """Location of a lark token."""
        return self.loc(token.line, token.column, token.end_line, token.end_column)

    def span(self, first: Token, last: Token) -> Loc:
        """Location from the start of token `first` to the end of token `last`."""
        return self.loc(first.line, first.column, last.end_line, last.end_column)

    def code_end(self, line: int) -> Loc:
        """Point just after the last code character of ``line`` (comments skipped)."""
        text = self.line(line)
        return self.loc(line, len(_strip_comment(text).rstrip()) + 1)

    def end_of_file(self) -> Loc:
        """Point just after the last code in the file (where EOF 'happens')."""
        for n in range(len(self.lines), 0, -1):
            if _strip_comment(self.lines[n - 1]).strip():
                return self.code_end(n)
        return self.loc(1, 1)


_STRING_OR_COMMENT = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|#.*""")


def _strip_comment(text: str) -> str:
    """``text`` without a trailing ``# comment`` (a ``#`` inside a string is kept)."""
    for m in _STRING_OR_COMMENT.finditer(text):
        if m.group(0).startswith("#"):
            return text[: m.start()]
    return text


def _expected_terminals(err: UnexpectedInput, fallback: Iterable[str]) -> set[str]:
    """Terminals the parser could really take here.

    LALR's own ``expected`` set may include lookaheads of merged states (e.g.
    ']' after a complete statement); the interactive parser's ``accepts()``
    tries each terminal and is exact.
    """
    interactive = getattr(err, "interactive_parser", None)
    if interactive is not None:
        try:
            accepted = set(interactive.accepts())
        except Exception:  # noqa: BLE001 - fall back to lark's approximation
            accepted = set()
        if accepted:
            return accepted
    return set(fallback or ())


def _syntax_error(err: UnexpectedInput, src: _Source) -> SpecError:
    """Translate a lark error into a located SpecError with a plain-words message."""
    if isinstance(err, UnexpectedCharacters):
        return _unexpected_char(err, src)
    if isinstance(err, UnexpectedToken):
        return _unexpected_token(err, src)
    line = getattr(err, "line", 1) or 1
    col = getattr(err, "column", 1) or 1
    return SpecError(src.loc(max(line, 1), max(col, 1)), "syntax error")


def _unexpected_char(err: UnexpectedCharacters, src: _Source) -> SpecError:
    """A character no token can start with (or an unterminated string)."""
    loc = src.loc(err.line, err.column)
    if err.char in "\"'":
        return SpecError(loc, "unterminated string")
    shown = repr(err.char)[1:-1] if err.char.isprintable() else f"\\x{ord(err.char):02x}"
    message = f"unexpected character '{shown}'"
    expected = _expected_terminals(err, err.allowed)
    if expected:
        message += f", expected {_describe_expected(expected)}"
    return SpecError(loc, message)


def _unexpected_token(err: UnexpectedToken, src: _Source) -> SpecError:
    """A token that does not fit the grammar here."""
    token = err.token
    expected = _expected_terminals(err, err.expected)
    line_ended = token.type in ("_NL", "$END", "RBRACE")
    if line_ended and "COMMA" in expected and "RPAR" in expected:
        # Right after an argument of an open call: '(' or '=' could technically
        # follow a name, but the likely fix is the closing parenthesis.
        expected &= {"RPAR", "COMMA"}
    elif line_ended and "COMMA" in expected and "RSQB" in expected:
        expected &= {"RSQB", "COMMA"}
    if "KERNEL" in expected:
        expected.discard("_NL")  # blank lines between kernels are not worth suggesting
    if token.type == "$END":
        loc = src.end_of_file()
        # Inside a kernel with the last statement complete (a newline would
        # do), the missing piece is the closing brace.
        statement_done = "_NL" in expected and not expected & {"RPAR", "RSQB", "KERNEL"}
        if "RBRACE" in expected or statement_done:
            return SpecError(loc, "unexpected end of file, expected '}' to close the kernel")
    elif token.type == "_NL":
        loc = src.code_end(token.line)
    else:
        loc = src.tok(token)
    return SpecError(
        loc, f"unexpected {_describe_token(token)}, expected {_describe_expected(expected)}"
    )


# --------------------------------------------------------------------------
# Parse tree -> AST
# --------------------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unquote(token_text: str) -> str:
    """Decode a string literal; unknown escapes (e.g. ``\\d``) are kept verbatim."""
    body = token_text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), body)


def _quote(text: str) -> str:
    """A string literal that :func:`_unquote` maps back to ``text``."""
    inverse = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}
    return '"' + "".join(inverse.get(ch, ch) for ch in text) + '"'


def _number(text: str) -> int | float:
    """Parse a NUMBER token: int unless it has a '.' or an exponent."""
    if any(ch in text for ch in ".eE"):
        return float(text)
    return int(text)


class _Builder:
    """Builds AST nodes from lark trees, raising SpecError for structural mistakes."""

    def __init__(self, src: _Source) -> None:
        self.src = src

    # -- values ---------------------------------------------------------
    def value(self, tree: Tree | Token) -> ValueT:
        """A value node from a ``number``/``string``/``ident``/``call``/``list`` tree."""
        kind = tree.data
        if kind == "number":
            tok = tree.children[0]
            return Number(_number(tok.value), loc=self.src.tok(tok))
        if kind == "string":
            tok = tree.children[0]
            return String(_unquote(tok.value), loc=self.src.tok(tok))
        if kind == "ident":
            tok = tree.children[0]
            loc = self.src.tok(tok)
            if tok.value in ("true", "false"):
                return Bool(tok.value == "true", loc=loc)
            return Ident(tok.value, loc=loc)
        if kind == "list":
            opening, *inner, closing = tree.children
            items = tuple(self.value(c) for c in inner if c is not None)
            return ListValue(items, loc=self.src.span(opening, closing))
        return self.call_value(tree)

    def call_value(self, tree: Tree) -> CallValue:
        """A ``call`` tree as a CallValue (used for sources and nested calls)."""
        name_tok, _, *inner, closing = tree.children
        args, kwargs, kwarg_locs = self.arguments(inner, name_tok.value)
        return CallValue(
            name_tok.value,
            tuple(args),
            kwargs,
            loc=self.src.span(name_tok, closing),
            func_loc=self.src.tok(name_tok),
            kwarg_locs=kwarg_locs,
        )

    def arguments(
        self, children: Sequence[Tree | None], func: str
    ) -> tuple[list[ValueT], dict[str, ValueT], dict[str, Loc]]:
        """Split call arguments into positional values and keywords (in order)."""
        args: list[ValueT] = []
        kwargs: dict[str, ValueT] = {}
        kwarg_locs: dict[str, Loc] = {}
        for child in children:
            if child is None:
                continue
            if child.data != "kwarg":
                value = self.value(child)
                if kwargs:
                    raise SpecError(
                        value.loc, f"{func}: positional argument after keyword argument"
                    )
                args.append(value)
                continue
            key_tok, value_tree = child.children
            key_loc = self.src.tok(key_tok)
            if key_tok.value in kwargs:
                raise SpecError(key_loc, f"{func}: keyword '{key_tok.value}' given twice")
            kwargs[key_tok.value] = self.value(value_tree)
            kwarg_locs[key_tok.value] = key_loc
        return args, kwargs, kwarg_locs

    # -- statements -----------------------------------------------------
    def tensor_type(self, tree: Tree) -> TensorType:
        """``dtype[d0, d1, ...]`` with the element type and dims checked."""
        dtype_tok, *dims = tree.children
        if dtype_tok.value not in ELEMENT_TYPES:
            raise SpecError(
                self.src.tok(dtype_tok),
                f"unknown element type '{dtype_tok.value}'"
                f"{_suggest(dtype_tok.value, ELEMENT_TYPES)}; "
                f"expected {_or_list(ELEMENT_TYPES)}",
            )
        shape = []
        for dim in dims:
            tok = dim.children[0]
            n = _number(tok.value)
            if not isinstance(n, int) or n <= 0:
                raise SpecError(
                    self.src.tok(tok), f"dimension must be a positive integer, got {tok.value}"
                )
            shape.append(n)
        return TensorType(dtype_tok.value, tuple(shape))

    def decl(self, tree: Tree) -> Decl:
        """``in``/``param`` declaration with an optional source."""
        role_tree, name_tok, type_tree, *rest = tree.children
        role = role_tree.children[0].value
        source = None
        if rest and rest[0] is not None:
            source = self.source(rest[0])
        return Decl(
            role, name_tok.value, self.tensor_type(type_tree), source, self.src.tok(name_tok)
        )

    def source(self, tree: Tree) -> Source:
        """A data source; it must be a call like ``random(...)`` or ``load(...)``."""
        value = self.value(tree)
        if not isinstance(value, CallValue):
            raise SpecError(
                value.loc,
                f'expected a data source like random(...) or load("file.npy"), got {value}',
            )
        return Source(
            value.func,
            value.args,
            dict(value.kwargs),
            value.loc,
            kind_loc=value.func_loc,
            kwarg_locs=dict(value.kwarg_locs),
        )

    def assign(self, tree: Tree) -> Assign:
        """``NAME = op(operands..., attrs...)``; operands must be tensor names."""
        name_tok, rhs = tree.children
        value = self.value(rhs)
        if not isinstance(value, CallValue):
            raise SpecError(value.loc, f"expected an op call like matmul(A, B), got {value}")
        operands = []
        for arg in value.args:
            if not isinstance(arg, Ident):
                raise SpecError(
                    arg.loc,
                    f"{value.func}: positional arguments must be tensor names, got {arg}; "
                    "write attributes as name=value",
                )
            operands.append(Operand(arg.name, arg.loc))
        call = Call(
            value.func,
            tuple(operands),
            dict(value.kwargs),
            value.loc,
            op_loc=value.func_loc,
            attr_locs=dict(value.kwarg_locs),
        )
        return Assign(name_tok.value, call, self.src.tok(name_tok))

    def kernel(self, tree: Tree) -> Kernel:
        """A kernel block; collects statements and rejects duplicate kernel-level lines."""
        name_tok, *stmts = tree.children
        decls: list[Decl] = []
        assigns: list[Assign] = []
        outs: list[Operand] = []
        settings: dict[str, tuple[str, Loc]] = {}
        for stmt in stmts:
            kind = stmt.data
            if kind == "decl":
                decls.append(self.decl(stmt))
            elif kind == "assign":
                assigns.append(self.assign(stmt))
            elif kind == "outs":
                outs.extend(Operand(tok.value, self.src.tok(tok)) for tok in stmt.children)
            else:
                self.setting(stmt, settings)
        pipeline = settings.get("pipeline")
        target = settings.get("target")
        return Kernel(
            name=name_tok.value,
            decls=tuple(decls),
            assigns=tuple(assigns),
            outs=tuple(outs),
            pipeline=pipeline[0] if pipeline else None,
            target=target[0] if target else None,
            loc=self.src.tok(name_tok),
            pipeline_loc=pipeline[1] if pipeline else None,
            target_loc=target[1] if target else None,
        )

    def setting(self, stmt: Tree, settings: dict[str, tuple[str, Loc]]) -> None:
        """Record a ``pipeline "..."``/``target "..."`` line (at most one each)."""
        kind = str(stmt.data)
        keyword, tok = stmt.children
        loc = self.src.tok(tok)
        if kind in settings:
            first = settings[kind][1]
            raise SpecError(
                self.src.span(keyword, tok),
                f"duplicate '{kind}' line (first given on line {first.line})",
            )
        settings[kind] = (_unquote(tok.value), loc)

    def spec(self, tree: Tree) -> list[Kernel]:
        """All kernels of the file, in order."""
        return [self.kernel(k) for k in tree.children if k is not None]


# --------------------------------------------------------------------------
# Sources: argument validation (data loading lives in sources.py)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomParams:
    """Validated arguments of ``random(seed=, density=, dist=)``."""

    seed: int = 0
    density: float = 1.0
    dist: str = "normal"
    std: float = 1.0
    """Multiplies float draws (N(0, std^2), U[-std, std)); ints ignore it."""


@dataclass(frozen=True)
class LoadParams:
    """Validated arguments of ``load(path[, key], transpose=, index=)``; ``fmt`` is the file
    kind; ``index`` picks one entry of the data's first axis (a decode step, a layer)."""

    path: str
    key: str | None
    transpose: bool
    fmt: str
    index: int | None = None


RANDOM_DISTS = ("normal", "uniform")
LOAD_FORMATS = {
    ".npy": "npy", ".npz": "npz", ".mtx": "mtx", ".mtx.gz": "mtx", ".safetensors": "safetensors",
}


def load_suffix(name: str) -> str:
    """The file-kind suffix of a load path: `.mtx.gz` (gzip'd Matrix Market) counts as one
    suffix, otherwise the last one, lower-cased."""
    lowered = name.lower()
    if lowered.endswith(".mtx.gz"):
        return ".mtx.gz"
    return Path(lowered).suffix


def _unknown_keyword(what: str, key: str, loc: Loc | None, known: Sequence[str]) -> SpecError:
    """Error for a keyword argument ``what`` does not take."""
    if not known:
        return SpecError(loc, f"{what}: unknown keyword '{key}'; it takes no keywords")
    return SpecError(
        loc,
        f"{what}: unknown keyword '{key}'{_suggest(key, known)}; expected {_or_list(list(known))}",
    )


def random_params(source: Source) -> RandomParams:
    """Check ``random(...)``'s arguments and return them with defaults filled."""
    if source.args:
        raise SpecError(
            source.args[0].loc, "random: takes only keyword arguments (seed=, density=, dist=)"
        )
    known = ("seed", "density", "dist", "std")
    for key in source.kwargs:
        if key not in known:
            raise _unknown_keyword("random", key, source.kwarg_locs.get(key, source.loc), known)
    seed, density, dist = 0, 1.0, "normal"
    if "seed" in source.kwargs:
        v = source.kwargs["seed"]
        if not isinstance(v, Number) or not isinstance(v.number, int) or v.number < 0:
            raise SpecError(v.loc, f"random: seed must be a non-negative integer, got {v}")
        seed = v.number
    if "density" in source.kwargs:
        v = source.kwargs["density"]
        if not isinstance(v, Number) or not 0.0 <= v.number <= 1.0:
            raise SpecError(v.loc, f"random: density must be a number in [0, 1], got {v}")
        density = float(v.number)
    if "dist" in source.kwargs:
        v = source.kwargs["dist"]
        if not isinstance(v, (Ident, String)) or v.value not in RANDOM_DISTS:
            raise SpecError(v.loc, f"random: unknown dist {v}; expected {_or_list(RANDOM_DISTS)}")
        dist = v.value
    std = 1.0
    if "std" in source.kwargs:
        v = source.kwargs["std"]
        if not isinstance(v, Number) or not v.number > 0:
            raise SpecError(v.loc, f"random: std must be a positive number, got {v}")
        std = float(v.number)
    return RandomParams(seed, density, dist, std)


def load_params(source: Source, ttype: TensorType | None = None) -> LoadParams:
    """Check ``load(path[, key], transpose=bool)``; with ``ttype``, also check fit."""
    for key in source.kwargs:
        if key not in ("transpose", "index"):
            raise _unknown_keyword(
                "load", key, source.kwarg_locs.get(key, source.loc), ("transpose", "index")
            )
    if not source.args:
        raise SpecError(source.loc, 'load: missing file name, e.g. load("weights.npy")')
    if len(source.args) > 2:
        raise SpecError(source.args[2].loc, "load: takes a file name and at most one key")
    path_v = source.args[0]
    if not isinstance(path_v, String):
        raise SpecError(path_v.loc, f"load: file name must be a string, got {path_v}")
    if not path_v.text:
        raise SpecError(path_v.loc, "load: file name is empty")
    suffix = load_suffix(path_v.text)
    fmt = LOAD_FORMATS.get(suffix)
    if fmt is None:
        raise SpecError(
            path_v.loc,
            f"load: unsupported file type '{suffix or path_v.text}'; "
            f"expected {_or_list(list(LOAD_FORMATS))}",
        )
    key = None
    if len(source.args) == 2:
        key_v = source.args[1]
        if not isinstance(key_v, String):
            raise SpecError(key_v.loc, f"load: key must be a string, got {key_v}")
        if fmt in ("npy", "mtx"):
            raise SpecError(key_v.loc, f"load: {suffix} files hold a single array; remove the key")
        key = key_v.text
    transpose = False
    if "transpose" in source.kwargs:
        v = source.kwargs["transpose"]
        if not isinstance(v, Bool):
            raise SpecError(v.loc, f"load: transpose must be true or false, got {v}")
        transpose = v.flag
        if transpose and ttype is not None and ttype.rank < 2:
            raise SpecError(
                v.loc, f"load: transpose=true needs rank 2 or more, but the tensor is {ttype}"
            )
    if fmt == "mtx" and ttype is not None and ttype.rank != 2:
        raise SpecError(
            path_v.loc, f"load: Matrix Market files hold matrices, but the tensor is {ttype}"
        )
    index = None
    if "index" in source.kwargs:
        v = source.kwargs["index"]
        if not isinstance(v, Number) or not isinstance(v.number, int) or v.number < 0:
            raise SpecError(v.loc, f"load: index must be an integer >= 0, got {v}")
        if fmt == "mtx":
            raise SpecError(v.loc, "load: index picks an entry of an array's first axis; "
                                   "Matrix Market files hold one matrix")
        index = v.number
    return LoadParams(path_v.text, key, transpose, fmt, index)


#: Source kind -> validator(source, declared type). Extend to add source kinds
#: (sources.py must then know how to materialize them).
SOURCE_RULES: dict[str, Callable[[Source, TensorType], object]] = {
    "random": lambda source, ttype: random_params(source),
    "load": load_params,
}


def check_source(source: Source, ttype: TensorType) -> object:
    """Validate ``source`` for a tensor of type ``ttype``; returns its params."""
    rule = SOURCE_RULES.get(source.kind)
    if rule is None:
        kinds = [f"{k}(...)" for k in SOURCE_RULES]
        raise SpecError(
            source.kind_loc or source.loc,
            f"unknown source '{source.kind}'{_suggest(source.kind, SOURCE_RULES)}; "
            f"expected {_or_list(kinds)}",
        )
    return rule(source, ttype)


# --------------------------------------------------------------------------
# Ops: typing rules
# --------------------------------------------------------------------------

#: A rule gets the operand types, the attributes and the call node; it returns
#: the result type or raises SpecError located at the offending argument.
OpRule = Callable[[Sequence[TensorType], Mapping[str, Value], Call], TensorType]


def expect_operands(call: Call, count: int, names: Sequence[str] = ()) -> None:
    """Require exactly ``count`` operands (``names`` only improve the message)."""
    n = len(call.operands)
    if n == count:
        return
    what = f"{count} operand{'s' if count != 1 else ''}"
    if names:
        what += f" ({', '.join(names)})"
    loc = call.operands[count].loc if n > count else call.loc
    raise SpecError(loc, f"{call.op}: expected {what}, got {n}")


def check_attrs(call: Call, known: Sequence[str]) -> None:
    """Reject keywords not in ``known``, pointing at the keyword's name."""
    for key in call.attrs:
        if key not in known:
            raise _unknown_keyword(call.op, key, call.attr_locs.get(key, call.loc), known)


def attr_bool(call: Call, name: str, default: bool) -> bool:
    """Boolean attribute ``name`` (``true``/``false``), or ``default``."""
    v = call.attrs.get(name)
    if v is None:
        return default
    if not isinstance(v, Bool):
        raise SpecError(v.loc, f"{call.op}: {name} must be true or false, got {v}")
    return v.flag


def attr_number(call: Call, name: str, default: float) -> float:
    """Numeric attribute ``name`` (int or float), or ``default``."""
    v = call.attrs.get(name)
    if v is None:
        return default
    if not isinstance(v, Number):
        raise SpecError(v.loc, f"{call.op}: {name} must be a number, got {v}")
    return v.number


def attr_int(call: Call, name: str, default: int, minimum: int | None = None) -> int:
    """Integer attribute ``name`` (optionally ``>= minimum``), or ``default``."""
    v = call.attrs.get(name)
    if v is None:
        return default
    if not isinstance(v, Number) or not isinstance(v.number, int):
        raise SpecError(v.loc, f"{call.op}: {name} must be an integer, got {v}")
    if minimum is not None and v.number < minimum:
        raise SpecError(v.loc, f"{call.op}: {name} must be at least {minimum}, got {v}")
    return v.number


def expect_rank(call: Call, index: int, ttype: TensorType, rank: int) -> None:
    """Require operand ``index`` to have rank ``rank``."""
    if ttype.rank == rank:
        return
    what = {1: "a vector", 2: "a matrix"}.get(rank, "a tensor")
    raise SpecError(
        call.operands[index].loc,
        f"{call.op}: {call.operands[index].name} must be {what} (rank {rank}), but it is {ttype}",
    )


def matmul_rule(types: Sequence[TensorType], attrs: Mapping[str, Value], call: Call) -> TensorType:
    """``matmul(a, b, transpose_a=false, transpose_b=false)``: ``[M, K] x [K, N] -> [M, N]``.

    With ``transpose_a`` the first operand is stored ``[K, M]``; with
    ``transpose_b`` the second is stored ``[N, K]``. Float results keep the
    operands' element type; integer operands return i32 (the accumulator).
    """
    expect_operands(call, 2, ("a", "b"))
    check_attrs(call, ("transpose_a", "transpose_b"))
    ta = attr_bool(call, "transpose_a", False)
    tb = attr_bool(call, "transpose_b", False)
    a, b = types
    expect_rank(call, 0, a, 2)
    expect_rank(call, 1, b, 2)
    an, bn = call.operands[0].name, call.operands[1].name
    if a.dtype != b.dtype:
        raise SpecError(
            call.operands[1].loc, f"{call.op}: element types disagree: {an} is {a} but {bn} is {b}"
        )
    m, ka = (a.shape[1], a.shape[0]) if ta else (a.shape[0], a.shape[1])
    kb, n = (b.shape[1], b.shape[0]) if tb else (b.shape[0], b.shape[1])
    if ka != kb:
        note_a = ", transposed" if ta else ""
        note_b = ", transposed" if tb else ""
        raise SpecError(
            call.operands[1].loc,
            f"{call.op}: inner dimensions disagree: {an} is {a} (K={ka}{note_a}) "
            f"but {bn} is {b} (K={kb}{note_b})",
        )
    return TensorType(accumulator_type_name(a.dtype), (m, n))


#: Op name -> typing rule. Later ops register here (e.g. ``OP_RULES["softmax"] = ...``).
OP_RULES: dict[str, OpRule] = {"matmul": matmul_rule}


# --------------------------------------------------------------------------
# Semantic checks
# --------------------------------------------------------------------------


def _loc_key(node: Decl | Assign) -> tuple[int, int]:
    """Sort key putting statements in source order (loc-less ones keep their order)."""
    return (node.loc.line, node.loc.col) if node.loc is not None else (0, 0)


def check_kernel(kernel: Kernel) -> Kernel:
    """Check names, sources and op typing of ``kernel``; fill ``kernel.types``.

    Statements are checked in source order, so a tensor must be defined
    before it is used. Returns the kernel for chaining.
    """
    defined: dict[str, Loc | None] = {}
    for node in [*kernel.decls, *kernel.assigns]:
        defined.setdefault(node.name, node.loc)
    types: dict[str, TensorType] = {}
    seen: dict[str, Loc | None] = {}
    for node in sorted([*kernel.decls, *kernel.assigns], key=_loc_key):
        if node.name in seen:
            first = seen[node.name]
            where = f" (first defined on line {first.line})" if first is not None else ""
            raise SpecError(node.loc, f"duplicate tensor name '{node.name}'{where}")
        seen[node.name] = node.loc
        if isinstance(node, Decl):
            types[node.name] = _check_decl(node)
        else:
            types[node.name] = _check_call(node.call, types, defined)
    _check_outs(kernel, types, defined)
    kernel.types = types
    return kernel


def _check_decl(decl: Decl) -> TensorType:
    """A declaration's type, after checking its source."""
    if decl.role not in ("in", "param"):
        raise SpecError(decl.loc, f"unknown role '{decl.role}'; expected in or param")
    if decl.source is None:
        if decl.role == "param":
            raise SpecError(
                decl.loc,
                f"param '{decl.name}' needs a source, "
                'e.g. = random(seed=0) or = load("file.npy")',
            )
        return decl.type
    check_source(decl.source, decl.type)
    return decl.type


def _unknown_tensor(
    name: str,
    loc: Loc | None,
    types: Mapping[str, TensorType],
    defined: Mapping[str, Loc | None],
    what: str = "",
) -> SpecError:
    """Error for a use of ``name`` that is not (yet) defined."""
    later = defined.get(name)
    if name in defined and later is not None:
        return SpecError(
            loc, f"{what}tensor '{name}' is used before its definition on line {later.line}"
        )
    return SpecError(loc, f"{what}unknown tensor '{name}'{_suggest(name, types)}")


def _check_call(
    call: Call, types: Mapping[str, TensorType], defined: Mapping[str, Loc | None]
) -> TensorType:
    """Type of an op application via :data:`OP_RULES`."""
    rule = OP_RULES.get(call.op)
    if rule is None:
        raise SpecError(
            call.op_loc or call.loc,
            f"unknown op '{call.op}'{_suggest(call.op, OP_RULES)}; "
            f"known ops: {', '.join(sorted(OP_RULES))}",
        )
    operand_types = []
    for operand in call.operands:
        if operand not in types:
            raise _unknown_tensor(str.__str__(operand), operand.loc, types, defined)
        operand_types.append(types[operand])
    return rule(tuple(operand_types), call.attrs, call)


def _check_outs(
    kernel: Kernel, types: Mapping[str, TensorType], defined: Mapping[str, Loc | None]
) -> None:
    """At least one ``out``; each names a defined tensor, once."""
    if not kernel.outs:
        raise SpecError(kernel.loc, f"kernel '{kernel.name}' has no 'out' statement")
    seen: set[str] = set()
    for out in kernel.outs:
        name = str.__str__(out)
        if name not in types:
            raise _unknown_tensor(name, out.loc, types, defined, what="out: ")
        if name in seen:
            raise SpecError(out.loc, f"out: tensor '{name}' is listed twice")
        seen.add(name)


def _check_file(kernels: Sequence[Kernel], src: _Source) -> None:
    """File-level checks: at least one kernel, unique kernel names."""
    if not kernels:
        raise SpecError(src.end_of_file(), "no kernel in spec file; expected 'kernel NAME { ... }'")
    seen: dict[str, Loc | None] = {}
    for k in kernels:
        if k.name in seen:
            first = seen[k.name]
            where = f" (first defined on line {first.line})" if first is not None else ""
            raise SpecError(k.loc, f"duplicate kernel name '{k.name}'{where}")
        seen[k.name] = k.loc


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def parse_spec(text: str, path: str = "<spec>") -> SpecFile:
    """Parse and check spec ``text``; ``path`` names it in errors and anchors loads.

    Raises SpecError (never a lark exception) for any syntax or semantic
    mistake. Data files are not read here (see ``sources.materialize``).
    """
    path = str(path)
    src = _Source(text, path)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as err:
        raise _syntax_error(err, src) from None
    except LarkError as err:  # defensive: any other lark failure is still a located error
        raise SpecError(src.loc(1, 1), f"syntax error: {err}") from None
    builder = _Builder(src)
    kernels = builder.spec(tree)
    _check_file(kernels, src)
    for kernel in kernels:
        check_kernel(kernel)
    return SpecFile(path, tuple(kernels))


def parse_spec_file(path: str | Path) -> SpecFile:
    """Read and parse the spec file at ``path`` (UTF-8)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError(Loc(path, 0, 0), "spec file not found") from None
    except OSError as err:
        raise SpecError(Loc(path, 0, 0), f"cannot read spec file: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise SpecError(
            Loc(path, line, 1), f"spec file is not valid UTF-8 (byte 0x{data[err.start]:02x})"
        ) from None
    text = text.removeprefix("\ufeff")
    return parse_spec(text, path)


# --------------------------------------------------------------------------
# Printing (canonical text; parse(format(k)) gives back an equal kernel)
# --------------------------------------------------------------------------


def format_kernel(kernel: Kernel) -> str:
    """The kernel as canonical spec text (statements in source order)."""
    lines = [f"kernel {kernel.name} {{"]
    if kernel.pipeline is not None:
        lines.append(f"  pipeline {_quote(kernel.pipeline)}")
    if kernel.target is not None:
        lines.append(f"  target {_quote(kernel.target)}")
    for node in sorted([*kernel.decls, *kernel.assigns], key=_loc_key):
        if isinstance(node, Decl):
            role = "in   " if node.role == "in" else "param"
            src = f" = {node.source}" if node.source is not None else ""
            lines.append(f"  {role} {node.name}: {node.type}{src}")
        else:
            lines.append(f"  {node.name} = {node.call}")
    lines.append(f"  out {', '.join(str.__str__(o) for o in kernel.outs)}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def format_spec(spec: SpecFile) -> str:
    """All kernels of ``spec`` as canonical spec text."""
    return "\n".join(format_kernel(k) for k in spec.kernels)


# The attention-family ops register their rules in OP_RULES (kept in their own module).
from sparsec.compiler import attention_rules as _attention_rules  # noqa: E402, F401
from sparsec.compiler import block_rules as _block_rules  # noqa: E402, F401
